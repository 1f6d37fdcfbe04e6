"""Public addresses on local interfaces, through iproute2 (what 4.17's ``config/functions`` does).

Every function runs ``ip``/``ss`` as a subprocess with a timeout, in the network
namespace of the **calling thread** (the daemon runs these in a worker thread; the
tests switch a thread into a namespace with ``setns``). Errors are raised as
:class:`NetifError`, carrying the command, its exit status and its stderr.

4.17 facts this module follows (``ctdb/config/functions``):

* ``add_ip_to_iface``: ``ip link set IF up``, then ``ip addr add IP/BITS brd + dev IF``
  (IPv4) or ``ip addr add IP/BITS dev IF`` (IPv6). For IPv6 it then waits up to
  10 × 0.5 s while the address is ``tentative`` and fails (deleting it) when it stays
  tentative or is ``dadfailed``. Here IPv6 addresses are added with ``nodad`` by default
  (usable at once); ``nodad=False`` gives 4.17's DAD wait.
* ``delete_ip_from_iface``: write ``1`` to ``net.ipv4.conf.IF.promote_secondaries``
  ("much cheaper than remembering and re-adding secondaries"), then
  ``ip addr del IP/BITS dev IF``. So removing a primary address keeps the secondaries
  (one of them becomes primary); 4.17 does not re-add anything.
* ``ip_maskbits_iface``: ``ip addr show to IP/32`` (``/128``) gives the interface and
  the prefix length an address is actually on.
* ``ip_block``/``ip_unblock``: ``iptables -I/-D INPUT -i IF -d IP -j DROP``
  (``ip6tables`` for IPv6).
* ``flush_route_cache``: ``1`` into ``/proc/sys/net/ipv{4,6}/route/flush`` when writable.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Sequence

import attrs

log = logging.getLogger("ctdb.netif")

#: Default timeout of one ``ip``/``ss``/``iptables`` command, in seconds.
COMMAND_TIMEOUT = 10.0

#: 4.17 waits ``seq 1 10`` × ``sleep 0.5`` for an IPv6 address to stop being tentative.
DAD_WAIT_TRIES = 10
DAD_WAIT_INTERVAL = 0.5


class NetifError(Exception):
    """A network command failed (or could not be run).

    :ivar cmd: the argument vector that was run.
    :ivar returncode: its exit status (``None`` when it could not be run or timed out).
    :ivar stderr: what it wrote to stderr, stripped.
    """

    def __init__(self, message: str, *, cmd: Sequence[str] = (), returncode: int | None = None, stderr: str = ""):
        self.cmd = tuple(cmd)
        self.returncode = returncode
        self.stderr = stderr
        detail = f": {stderr}" if stderr else ""
        super().__init__(f"{message}{detail}")


@attrs.frozen
class Address:
    """One address on one interface, from ``ip -j addr show``."""

    iface: str
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    prefixlen: int
    secondary: bool = False
    tentative: bool = False
    dadfailed: bool = False

    @property
    def family(self) -> int:
        return self.ip.version


def run(argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; raise :class:`NetifError` on failure when ``check``."""
    argv = [str(a) for a in argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise NetifError(f"{argv[0]} not found", cmd=argv) from exc
    except subprocess.TimeoutExpired as exc:
        raise NetifError(f"{' '.join(argv)} timed out after {timeout:g}s", cmd=argv) from exc
    if check and proc.returncode != 0:
        raise NetifError(
            f"{' '.join(argv)} failed with status {proc.returncode}",
            cmd=argv,
            returncode=proc.returncode,
            stderr=proc.stderr.strip(),
        )
    return proc


def _ip_json(*args: str, timeout: float = COMMAND_TIMEOUT) -> list[dict]:
    proc = run(["ip", "-j", *args], timeout=timeout)
    out = proc.stdout.strip()
    if not out:
        return []
    try:
        return json.loads(out)
    except ValueError as exc:
        raise NetifError(f"ip -j {' '.join(args)}: unparsable output", cmd=["ip", "-j", *args]) from exc


def _ip(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(str(ip).split("%", 1)[0])


def list_ifaces(*, timeout: float = COMMAND_TIMEOUT) -> list[str]:
    """Names of all interfaces (``ip -j link show``), without the ``@peer`` suffix."""
    return [link["ifname"] for link in _ip_json("link", "show", timeout=timeout)]


def link_state(iface: str, *, timeout: float = COMMAND_TIMEOUT) -> bool:
    """Whether ``iface`` is administratively up **and** has carrier (``UP`` and ``LOWER_UP``).

    :raises NetifError: if the interface does not exist.
    """
    links = _ip_json("link", "show", "dev", iface, timeout=timeout)
    if not links:
        raise NetifError(f"interface {iface} does not exist", cmd=["ip", "link", "show", "dev", iface])
    flags = set(links[0].get("flags", ()))
    return "UP" in flags and "LOWER_UP" in flags


def set_link_up(iface: str, *, timeout: float = COMMAND_TIMEOUT) -> None:
    """``ip link set IF up`` (4.17 does it before adding an address)."""
    run(["ip", "link", "set", iface, "up"], timeout=timeout)


def list_addresses(iface: str | None = None, *, timeout: float = COMMAND_TIMEOUT) -> list[Address]:
    """Addresses on ``iface`` (all interfaces when ``None``), IPv4 and IPv6."""
    args = ["addr", "show"] + (["dev", iface] if iface else [])
    out: list[Address] = []
    for link in _ip_json(*args, timeout=timeout):
        for info in link.get("addr_info", ()):
            if info.get("family") not in ("inet", "inet6") or "local" not in info:
                continue
            out.append(
                Address(
                    iface=link["ifname"],
                    ip=_ip(info["local"]),
                    prefixlen=int(info["prefixlen"]),
                    secondary=bool(info.get("secondary", False)),
                    tentative=bool(info.get("tentative", False)),
                    dadfailed=bool(info.get("dadfailed", False)),
                )
            )
    return out


def find_ip(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address, *, timeout: float = COMMAND_TIMEOUT) -> Address | None:
    """The :class:`Address` entry of ``ip`` if it is on a local interface (``ip addr show to IP/32``)."""
    addr = _ip(ip)
    bits = 32 if addr.version == 4 else 128
    for link in _ip_json("addr", "show", "to", f"{addr}/{bits}", timeout=timeout):
        for info in link.get("addr_info", ()):
            if "local" in info and _ip(info["local"]) == addr:
                return Address(
                    iface=link["ifname"],
                    ip=addr,
                    prefixlen=int(info["prefixlen"]),
                    secondary=bool(info.get("secondary", False)),
                    tentative=bool(info.get("tentative", False)),
                    dadfailed=bool(info.get("dadfailed", False)),
                )
    return None


def has_ip(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address, *, timeout: float = COMMAND_TIMEOUT) -> str | None:
    """The interface ``ip`` is on, or ``None``."""
    found = find_ip(ip, timeout=timeout)
    return found.iface if found else None


def ip_maskbits_iface(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address, *, timeout: float = COMMAND_TIMEOUT) -> tuple[int, str] | None:
    """``(maskbits, iface)`` of a hosted address, like 4.17's ``ip_maskbits_iface``."""
    found = find_ip(ip, timeout=timeout)
    return (found.prefixlen, found.iface) if found else None


def add_ip(
    iface: str,
    ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
    prefixlen: int,
    *,
    nodad: bool = True,
    timeout: float = COMMAND_TIMEOUT,
) -> None:
    """Bring ``iface`` up and add ``ip/prefixlen`` to it (4.17 ``add_ip_to_iface``).

    IPv4 gets ``brd +``. IPv6 gets ``nodad`` unless ``nodad=False``, in which case this
    waits (up to 5 s) for duplicate address detection as 4.17 does and fails, deleting
    the address again, if it stays tentative or DAD fails.

    :raises NetifError: with ``ip``'s stderr (e.g. "Address already assigned").
    """
    addr = _ip(ip)
    try:
        set_link_up(iface, timeout=timeout)
    except NetifError as exc:
        raise NetifError(f"Failed to bringup interface {iface}", cmd=exc.cmd, returncode=exc.returncode, stderr=exc.stderr) from exc
    argv = ["ip", "addr", "add", f"{addr}/{prefixlen}"]
    if addr.version == 4:
        argv += ["brd", "+"]
    argv += ["dev", iface]
    if addr.version == 6 and nodad:
        argv.append("nodad")
    try:
        run(argv, timeout=timeout)
    except NetifError as exc:
        raise NetifError(
            f"Failed to add {addr}/{prefixlen} on dev {iface}", cmd=exc.cmd, returncode=exc.returncode, stderr=exc.stderr
        ) from exc
    if addr.version == 6:
        found = find_ip(addr, timeout=timeout)
        for _ in range(DAD_WAIT_TRIES):
            if found is None or not found.tentative:
                break
            time.sleep(DAD_WAIT_INTERVAL)
            found = find_ip(addr, timeout=timeout)
        if found is None or found.tentative or found.dadfailed:
            if found is not None:
                run(["ip", "addr", "del", f"{addr}/{prefixlen}", "dev", iface], timeout=timeout, check=False)
            state = "missing" if found is None else ("dadfailed" if found.dadfailed else "tentative")
            raise NetifError(f"Failed to add {addr}/{prefixlen} on dev {iface} (address {state})", cmd=argv)


def set_promote_secondaries(iface: str) -> bool:
    """Write 1 to ``net.ipv4.conf.IF.promote_secondaries``; ``False`` if it could not be set."""
    path = f"/proc/sys/net/ipv4/conf/{iface}/promote_secondaries"
    try:
        with open(path, "w", encoding="ascii") as fh:
            fh.write("1\n")
    except OSError as exc:
        log.warning("cannot set %s: %s", path, exc)
        return False
    return True


def del_ip(
    iface: str,
    ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
    prefixlen: int,
    *,
    timeout: float = COMMAND_TIMEOUT,
) -> None:
    """Remove ``ip/prefixlen`` from ``iface`` (4.17 ``delete_ip_from_iface``).

    Sets ``promote_secondaries`` on the interface first, so when ``ip`` is the primary
    IPv4 address of its subnet the kernel promotes a secondary instead of deleting
    all of them.

    :raises NetifError: with ``ip``'s stderr if the delete fails.
    """
    addr = _ip(ip)
    if addr.version == 4:
        set_promote_secondaries(iface)
    try:
        run(["ip", "addr", "del", f"{addr}/{prefixlen}", "dev", iface], timeout=timeout)
    except NetifError as exc:
        raise NetifError(
            f"Failed to del {addr} on dev {iface}", cmd=exc.cmd, returncode=exc.returncode, stderr=exc.stderr
        ) from exc


def drop_ip(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address, *, timeout: float = COMMAND_TIMEOUT) -> tuple[int, str] | None:
    """Remove ``ip`` from whichever interface holds it (4.17 ``drop_ip``); errors are ignored.

    :return: ``(maskbits, iface)`` it was removed from, or ``None`` if it was not hosted.
    """
    found = ip_maskbits_iface(ip, timeout=timeout)
    if found is None:
        return None
    maskbits, iface = found
    log.info("Removing public address %s/%d from device %s", ip, maskbits, iface)
    try:
        del_ip(iface, ip, maskbits, timeout=timeout)
    except NetifError as exc:
        log.warning("%s", exc)
    return found


def flush_route_cache() -> None:
    """Write 1 to ``/proc/sys/net/ipv{4,6}/route/flush`` where writable (4.17 ``flush_route_cache``)."""
    for path in ("/proc/sys/net/ipv4/route/flush", "/proc/sys/net/ipv6/route/flush"):
        try:
            with open(path, "w", encoding="ascii") as fh:
                fh.write("1\n")
        except OSError:
            pass


def _iptables(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    return shutil.which("iptables" if ip.version == 4 else "ip6tables")


def block_ip(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address, iface: str, *, timeout: float = COMMAND_TIMEOUT) -> bool:
    """``iptables -I INPUT -i IF -d IP -j DROP`` (after deleting a stale copy), as 4.17 ``ip_block``.

    :return: ``False`` when ``iptables``/``ip6tables`` is not installed (nothing done).
    :raises NetifError: if the insert fails.
    """
    addr = _ip(ip)
    tool = _iptables(addr)
    if tool is None:
        log.debug("no %s: not blocking %s", "iptables" if addr.version == 4 else "ip6tables", addr)
        return False
    rule = ["INPUT", "-i", iface, "-d", str(addr), "-j", "DROP"]
    run([tool, "-D", *rule], timeout=timeout, check=False)
    run([tool, "-I", *rule], timeout=timeout)
    return True


def unblock_ip(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address, iface: str, *, timeout: float = COMMAND_TIMEOUT) -> None:
    """``iptables -D INPUT -i IF -d IP -j DROP``, errors ignored (4.17 ``ip_unblock``)."""
    addr = _ip(ip)
    tool = _iptables(addr)
    if tool is not None:
        run([tool, "-D", "INPUT", "-i", iface, "-d", str(addr), "-j", "DROP"], timeout=timeout, check=False)


# --- interface monitoring (4.17 interface_monitor) ---------------------------------------


def _real_iface(iface: str, *, timeout: float) -> str:
    """The underlying interface of a VLAN (``ip link`` ``link`` field, else the part before '.')."""
    links = _ip_json("link", "show", "dev", iface, timeout=timeout)
    if links and links[0].get("link") and links[0].get("link_type") != "none":
        return str(links[0]["link"])
    return iface.split(".", 1)[0]


def _bond_problem(text: str, iface: str) -> str | None:
    if "Currently Active Slave: None" in text:
        return f"ERROR: No active slaves for bond device {iface}"
    mii = [line for line in text.splitlines() if line.startswith("MII Status:")]
    if "MII Status: up" not in mii:  # 4.17: grep -q '^MII Status: up' (any line)
        return f"ERROR: public network interface {iface} is down"
    if any(line.startswith("Bonding Mode: IEEE 802.3ad Dynamic link aggregation") for line in text.splitlines()):
        if "MII Status: up" not in mii[1:]:
            return f"ERROR: No active slaves for 802.ad bond device {iface}"
    return None


def interface_problem(iface: str, *, timeout: float = COMMAND_TIMEOUT) -> str | None:
    """Why ``iface`` is not usable for public addresses, or ``None`` if it is (4.17 ``interface_monitor``).

    * missing → ``"ERROR: Monitored interface IF does not exist"``;
    * a bond (``/proc/net/bonding/IF``) needs an active slave (802.3ad: one slave up);
    * ``lo*`` and ``ib*`` are always up;
    * otherwise the link must have carrier; as 4.17 does, a link without it is set
      up once and checked again → ``"ERROR: No link on the public network interface IF"``.
    """
    try:
        real = _real_iface(iface, timeout=timeout)
    except NetifError:
        return f"ERROR: Monitored interface {iface} does not exist"
    try:
        # thread-self: the namespace of this thread (ctdbd runs hooks in worker threads)
        with open(f"/proc/thread-self/net/bonding/{real}", encoding="utf-8", errors="replace") as fh:
            return _bond_problem(fh.read(), real)
    except OSError:
        pass
    if iface.startswith(("lo", "ib")):
        return None
    try:
        if link_state(iface, timeout=timeout):
            return None
        run(["ip", "link", "set", iface, "up"], timeout=timeout, check=False)
        if link_state(iface, timeout=timeout):
            return None
    except NetifError:
        return f"ERROR: Monitored interface {iface} does not exist"
    return f"ERROR: No link on the public network interface {iface}"
