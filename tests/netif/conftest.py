"""Namespaces for the netif tests: a hub namespace with a bridge and two or three "hosts".

Nothing touches the host's own network namespace: every link is created with
``ip -n NS`` inside a namespace of ours, every address is in a TEST-NET range, and
every namespace is deleted by the fixture's finalizer.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import subprocess
from collections.abc import Iterator

import attrs
import pytest

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_counter = itertools.count()


def _available() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "ip netns not usable"
    return None


pytestmark = pytest.mark.netns


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the body with the calling thread in network namespace ``name``; subprocesses follow it."""
    old = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    new = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(new)
        try:
            yield
        finally:
            _setns(old)
    finally:
        os.close(new)
        os.close(old)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc


@attrs.define
class Lan:
    """``hosts[i]`` is a namespace with ``eth0`` plugged into bridge ``br0`` of namespace ``hub``."""

    hub: str
    hosts: list[str]
    ports: list[str]
    made: list[str] = attrs.field(factory=list)

    def ip(self, host: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "-n", self.hosts[host], *args, check=check)

    def ns(self, host: int):
        return in_netns(self.hosts[host])

    def second_iface(self, host: int, name: str) -> None:
        """A second Ethernet interface ``name`` on ``host`` (a veth whose peer ``name``p is up too)."""
        self.ip(host, "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
        self.ip(host, "link", "set", f"{name}p", "up")
        self.ip(host, "link", "set", name, "up")

    def unplug(self, host: int) -> None:
        """Take the hub side of ``host``'s cable down: ``eth0`` loses carrier."""
        sh("ip", "-n", self.hub, "link", "set", self.ports[host], "down")


def _new_lan(n: int) -> Lan:
    tag = f"nt{os.getpid()}x{next(_counter)}"
    return Lan(hub=f"{tag}h", hosts=[f"{tag}n{i}" for i in range(n)], ports=[f"p{i}" for i in range(n)])


def _build(lan: Lan) -> None:
    for ns in [lan.hub, *lan.hosts]:
        sh("ip", "netns", "add", ns)
        lan.made.append(ns)
    sh("ip", "-n", lan.hub, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", lan.hub, "link", "set", "br0", "up")
    for i, host in enumerate(lan.hosts):
        port = lan.ports[i]
        sh("ip", "-n", lan.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host)
        sh("ip", "-n", lan.hub, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", host, "link", "set", "lo", "up")
        sh("ip", "-n", host, "link", "set", "eth0", "up")


def _destroy(lan: Lan) -> None:
    for ns in reversed(lan.made):
        sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def lan(request) -> Iterator[Lan]:
    """Three hosts on one bridge (host 0 = "server"/ctdb node, 1 = client, 2 = observer)."""
    reason = _available()
    if reason:
        pytest.skip(reason)
    made = _new_lan(3)
    request.addfinalizer(lambda: _destroy(made))  # also after a half-built LAN
    _build(made)
    yield made
