"""Gratuitous ARP and unsolicited neighbour advertisements (4.17 ``ctdb_sys_send_arp``).

What 4.17 puts on the wire (``ctdb/common/system_socket.c``), reproduced here:

* an ``AF_PACKET``/``SOCK_RAW`` socket sends whole Ethernet frames on the interface;
  loopback interfaces are skipped silently and non-Ethernet ones are an error;
* IPv4: **two** broadcast frames to ``ff:ff:ff:ff:ff:ff``, each zero-padded to 64 bytes:
  an ARP **request** (sha = own MAC, spa = tpa = IP, tha = 0) then an ARP **reply**
  (sha = tha = own MAC, spa = tpa = IP);
* IPv6: **one** Neighbor Advertisement from the IP to ``ff02::1``
  (``33:33:00:00:00:01``), hop limit 255, flags = OVERRIDE only (no router, no
  solicited), target = the IP, option Target Link-Layer Address = own MAC.

After takeip ctdbd sends such a burst :data:`ARP_REPEAT` times, :data:`ARP_INTERVAL`
seconds apart (the first at once); that repetition belongs to the daemon.
:func:`send_gratuitous` sends one burst, as ``ctdb gratarp IP IFACE`` does.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

from ctdbcore.netif.addresses import NetifError

#: ``CTDB_ARP_REPEAT``: bursts after a takeover.
ARP_REPEAT = 3
#: ``CTDB_ARP_INTERVAL`` (1 s) + 100 ms between bursts.
ARP_INTERVAL = 1.1

_SIOCGIFHWADDR = 0x8927
_ARPHRD_ETHER = 1
_ARPHRD_LOOPBACK = 772
_ETH_P_ALL = 0x0003
#: 4.17 sends ``MAX(sizeof frame, 64)`` bytes.
_MIN_FRAME = 64


def iface_hwaddr(iface: str) -> tuple[int, bytes]:
    """``(ARPHRD type, hardware address)`` of ``iface`` (``SIOCGIFHWADDR``).

    :raises NetifError: if the interface does not exist.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14s", iface.encode()[:15], 0, b"")
        try:
            res = fcntl.ioctl(s.fileno(), _SIOCGIFHWADDR, req)
        except OSError as exc:
            raise NetifError(f"Interface '{iface}' not found ({exc.strerror})") from exc
    _, family, data = struct.unpack("16sH14s", res)
    return family, data[:6]


def _mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def build_arp_frames(ip: str | ipaddress.IPv4Address, mac: bytes) -> list[bytes]:
    """The two 64-byte frames 4.17 sends for an IPv4 address: request, then reply."""
    from scapy.layers.l2 import ARP, Ether

    hw = _mac_str(mac)
    ipstr = str(ip)
    request = Ether(dst="ff:ff:ff:ff:ff:ff", src=hw) / ARP(
        op=1, hwsrc=hw, psrc=ipstr, hwdst="00:00:00:00:00:00", pdst=ipstr
    )
    reply = Ether(dst="ff:ff:ff:ff:ff:ff", src=hw) / ARP(op=2, hwsrc=hw, psrc=ipstr, hwdst=hw, pdst=ipstr)
    return [bytes(f).ljust(_MIN_FRAME, b"\0") for f in (request, reply)]


def build_na_frame(ip: str | ipaddress.IPv6Address, mac: bytes) -> bytes:
    """The unsolicited Neighbor Advertisement 4.17 sends for an IPv6 address (86 bytes)."""
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import Ether

    hw = _mac_str(mac)
    ipstr = str(ip)
    frame = (
        Ether(dst="33:33:00:00:00:01", src=hw)
        / IPv6(src=ipstr, dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(R=0, S=0, O=1, tgt=ipstr)
        / ICMPv6NDOptDstLLAddr(lladdr=hw)
    )
    return bytes(frame).ljust(_MIN_FRAME, b"\0")


def send_gratuitous(iface: str, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Send one gratuitous ARP burst (IPv4) or one unsolicited NA (IPv6) for ``ip`` on ``iface``.

    :return: ``True`` if frames were sent, ``False`` for a loopback interface (skipped, as 4.17).
    :raises NetifError: unknown interface, not Ethernet, or the send failed.
    """
    addr = ipaddress.ip_address(str(ip))
    hwtype, mac = iface_hwaddr(iface)
    if hwtype == _ARPHRD_LOOPBACK:
        return False
    if hwtype != _ARPHRD_ETHER:
        raise NetifError(f"Not an ethernet address family (0x{hwtype:x}) on {iface}")
    frames = build_arp_frames(addr, mac) if addr.version == 4 else [build_na_frame(addr, mac)]
    try:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
            for frame in frames:
                s.sendto(frame, (iface, _ETH_P_ALL))
    except OSError as exc:
        raise NetifError(f"Failed to send gratuitous ARP for {addr} on {iface}: {exc}") from exc
    return True
