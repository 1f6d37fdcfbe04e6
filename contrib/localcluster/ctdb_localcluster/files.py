"""The per-node CTDB_BASE contents (ctdb.conf, nodes, public_addresses, ctdb.tunables)."""

from __future__ import annotations

from pathlib import Path

HELPER = "/usr/libexec/ctdb/ctdb_mutex_fcntl_helper"
REAL_EVENT_SCRIPTS = "/usr/share/ctdb/events/legacy"
REAL_FUNCTIONS = "/etc/ctdb/functions"
# Debian's 4.17 event scripts enabled for the real daemon: 10.interface adds and removes
# the public addresses (takeip/releaseip) and kills TCP connections on release.
REAL_ENABLED_SCRIPTS = ("10.interface",)
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


def link_real_event_scripts(node_dir: Path) -> None:
    """Enable Debian's 4.17 event scripts in a real node's CTDB_BASE (events/legacy/*.script
    symlinks, plus the `functions` file they source); a no-op where ctdb is not installed."""
    legacy = node_dir / "events" / "legacy"
    legacy.mkdir(parents=True, exist_ok=True)
    wanted = {Path(node_dir) / "functions": Path(REAL_FUNCTIONS)}
    for name in REAL_ENABLED_SCRIPTS:
        wanted[legacy / f"{name}.script"] = Path(REAL_EVENT_SCRIPTS) / f"{name}.script"
    for link, target in wanted.items():
        if not target.exists():
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
