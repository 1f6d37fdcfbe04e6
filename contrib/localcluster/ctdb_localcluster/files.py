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


def plugin_sections(lines) -> str:
    """ctdb.conf sections of event plugins from (section, key, value) triples."""
    sections: dict[str, list[str]] = {}
    for section, key, value in lines:
        sections.setdefault(section, []).append(f"\t{key} = {value}")
    return "".join(f"[{name}]\n" + "\n".join(body) + "\n\n" for name, body in sections.items())


def nodes_file(addresses: list[str]) -> str:
    return "".join(f"{a}\n" for a in addresses)


def public_addresses_file(addresses: list[str], iface: str = "eth1") -> str:
    return "".join(f"{a}/{64 if ':' in a else 24} {iface}\n" for a in addresses)


def tunables_file(tunables: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in tunables.items())


# 4.17 in test mode (CTDB_TEST_MODE) sets do_checkpublicip = false: it never asks the kernel
# whether it already holds an address, so it sends `takeip` for every address it keeps on
# every takeover run (and `releaseip` without the kernel check). Debian's 10.interface then
# fails with "Address already assigned" and the node gets banned. This wrapper does the
# kernel check the non-test daemon does itself (ctdb_sys_have_ip) and hands every other
# call to Debian's script unchanged.
REAL_INTERFACE_WRAPPER = """#!/bin/sh
# Written by localcluster: Debian's 10.interface with the kernel check that 4.17 skips in
# test mode (see ctdb_localcluster/files.py).
case "$1" in
takeip)
	ip -o addr show dev "$2" to "$3/32" 2>/dev/null | grep -q . && exit 0 ;;
releaseip)
	ip -o addr show to "$3/32" 2>/dev/null | grep -q . || exit 0 ;;
esac
exec {script} "$@"
"""


def link_real_event_scripts(node_dir: Path, extra: tuple[str, ...] = ()) -> None:
    """Enable Debian's 4.17 event scripts in a real node's CTDB_BASE (events/legacy/*.script,
    plus the `functions` file they source; ``extra`` more script names, e.g. "50.samba");
    a no-op where ctdb is not installed."""
    legacy = Path(node_dir) / "events" / "legacy"
    legacy.mkdir(parents=True, exist_ok=True)
    functions = Path(node_dir) / "functions"
    if Path(REAL_FUNCTIONS).exists():
        if functions.is_symlink() or functions.exists():
            functions.unlink()
        functions.symlink_to(REAL_FUNCTIONS)
    for name in (*REAL_ENABLED_SCRIPTS, *extra):
        target = Path(REAL_EVENT_SCRIPTS) / f"{name}.script"
        if not target.exists():
            continue
        link = legacy / f"{name}.script"
        if link.is_symlink() or link.exists():
            link.unlink()
        if name == "10.interface":
            link.write_text(REAL_INTERFACE_WRAPPER.replace("{script}", str(target)))
            link.chmod(0o755)
        else:
            link.symlink_to(target)
