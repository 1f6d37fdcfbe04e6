"""Thin wrappers over `ip` for the namespace topology.

Everything is created inside namespaces this module names: the hub namespace holds the
bridges and the hub-side ends of all veths, so the host namespace is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess

INTERNAL_BRIDGE = "br-int"
PUBLIC_BRIDGE = "br-pub"
PARTITION_BRIDGE_PREFIX = "br-part"
CLIENT_HUB_IF = "cl-p"


def hub_internal_if(pnn: int) -> str:
    return f"n{pnn}-i"


def hub_public_if(pnn: int) -> str:
    return f"n{pnn}-p"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def available() -> str | None:
    """None when namespaces can be used, else the reason why not."""
    if os.geteuid() != 0:
        return "namespace mode needs root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    if ip("netns", "list", check=False).returncode != 0:
        return "`ip netns list` fails"
    return None


def exists(ns: str) -> bool:
    return os.path.exists(f"/run/netns/{ns}")


def add(ns: str) -> None:
    if not exists(ns):
        ip("netns", "add", ns)
    ip("-n", ns, "link", "set", "lo", "up")


def delete(ns: str) -> None:
    if exists(ns):
        ip("netns", "delete", ns, check=False)


def pids(ns: str) -> list[int]:
    if not exists(ns):
        return []
    out = ip("netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split()]


def link_exists(ns: str, name: str) -> bool:
    return ip("-n", ns, "link", "show", "dev", name, check=False).returncode == 0


def add_bridge(ns: str, name: str) -> None:
    if not link_exists(ns, name):
        ip("-n", ns, "link", "add", name, "type", "bridge")
    ip("-n", ns, "link", "set", name, "up")


def add_veth(hub: str, hub_if: str, bridge: str, ns: str, ns_if: str) -> None:
    """A veth pair created in the hub with its peer placed straight into `ns`."""
    if link_exists(hub, hub_if):
        ip("-n", hub, "link", "delete", hub_if, check=False)
    ip("-n", hub, "link", "add", hub_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
    ip("-n", hub, "link", "set", hub_if, "master", bridge)
    ip("-n", hub, "link", "set", hub_if, "up")
    ip("-n", ns, "link", "set", ns_if, "up")


def set_master(ns: str, ifname: str, bridge: str) -> None:
    ip("-n", ns, "link", "set", ifname, "master", bridge)


def bridges(ns: str) -> list[str]:
    out = ip("-n", ns, "-o", "link", "show", "type", "bridge", check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def delete_link(ns: str, name: str) -> None:
    ip("-n", ns, "link", "delete", name, check=False)
