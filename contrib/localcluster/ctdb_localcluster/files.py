"""The per-node CTDB_BASE contents (ctdb.conf, nodes, public_addresses, ctdb.tunables)."""

from __future__ import annotations

from pathlib import Path

HELPER = "/usr/libexec/ctdb/ctdb_mutex_fcntl_helper"
LOCK_MODES = ("none", "file", "helper")


def cluster_lock_value(root: Path, lock: str) -> str | None:
    path = root / "shared" / ".ctdb" / "cluster.lock"
    if lock == "none":
        return None
    if lock == "file":
        return str(path)
    if lock == "helper":
        return f"!{HELPER} {path}"
    raise ValueError(f"--lock must be one of {', '.join(LOCK_MODES)}, not {lock!r}")


def ctdb_conf(node_dir: Path, address: str, log_level: str, cluster_lock: str | None) -> str:
    lines = [
        "# Written by localcluster; overwritten by the next `localcluster up`.",
        "[logging]",
        f"\tlocation = file:{node_dir / 'log.ctdb'}",
        f"\tlog level = {log_level}",
        "",
        "[cluster]",
        f"\tnode address = {address}",
    ]
    if cluster_lock is not None:
        lines.append(f"\tcluster lock = {cluster_lock}")
    lines += [
        "",
        "[database]",
        f"\tvolatile database directory = {node_dir / 'db' / 'volatile'}",
        f"\tpersistent database directory = {node_dir / 'db' / 'persistent'}",
        f"\tstate database directory = {node_dir / 'db' / 'state'}",
        "",
        "[legacy]",
        "\trealtime scheduling = false",
        "",
    ]
    return "\n".join(lines)


def nodes_file(addresses: list[str]) -> str:
    return "".join(f"{a}\n" for a in addresses)


def public_addresses_file(addresses: list[str], iface: str = "eth1") -> str:
    return "".join(f"{a}/24 {iface}\n" for a in addresses)


def tunables_file(tunables: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in tunables.items())
