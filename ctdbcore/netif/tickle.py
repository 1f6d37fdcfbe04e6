"""Tickle ACKs and TCP connection killing (4.17 ``ctdb_sys_send_tcp`` and ``ctdb_killtcp``).

The packet (``ctdb/common/system_socket.c`` ``tcp4_build``/``tcp6_build``): a bare
IPv4/IPv6 + 20-byte TCP header, flags ``ACK`` (``ACK|RST`` for a reset), window
**1234** ("easy to spot in a sniffer"), no options, no payload; IPv4 TTL 255, IPv6
hop limit 64. It is sent on a raw ``IPPROTO_RAW`` socket to the destination address,
so the kernel routes it (a local destination goes through ``lo``).

* **Tickle ACK**: ``seq = 0, ack = 0``. It is out of window for the receiver, which
  answers with an ACK carrying its real ``seq`` (its ``snd_nxt``) and ``ack`` (its
  ``rcv_nxt``), or with an RST when it has no such connection.
* **Kill** (``ctdb_killtcp``): open a capture socket on the interface first; then every
  :data:`RETRY_INTERVAL` s, at most :data:`MAX_ATTEMPTS` times, send a tickle to every
  connection still alive (:data:`BATCH_SIZE` at a time). A captured segment going
  *from* the victim *to* the impersonated peer gives the numbers: the RST is sent to
  the victim from the peer with ``seq = captured ack`` and ``ack = captured seq``,
  which the victim accepts at once. Captured segments with window 1234 and (RST set
  or seq 0) are ours and ignored.

Connection direction conventions:

* :func:`kill_connections` takes ``(victim, peer)`` pairs — the socket at ``victim`` is
  reset, the packets impersonate ``peer``. A line ``"SRC DST"`` fed to 4.17's
  ``ctdb_killtcp`` is the pair ``(DST, SRC)`` here.
* :func:`connections_for_ip` returns :class:`TcpConnection` ``(server, client)``: the
  local end (on the public address) and the remote end, as ``ss`` lists them.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import logging
import select
import socket
import struct
import time
from collections.abc import Iterable

import attrs

from ctdbcore.netif.addresses import COMMAND_TIMEOUT, NetifError, run

log = logging.getLogger("ctdb.netif")

#: ``ctdb_killtcp``: tickle rounds, the pause between them, connections per round.
MAX_ATTEMPTS = 50
RETRY_INTERVAL = 0.1
BATCH_SIZE = 300
#: The TCP window 4.17 puts in every packet it forges.
TICKLE_WINDOW = 1234

Endpoint = tuple[str, int]

_TCP_ACK = 0x10
_TCP_RST = 0x04
_ETH_P_ALL = 0x0003
_ETH_P_IP = 0x0800
_ETH_P_IPV6 = 0x86DD
_SO_ATTACH_FILTER = 26


@attrs.frozen
class TcpConnection:
    """An established TCP connection on a public address: local ``server`` end, remote ``client`` end."""

    server: Endpoint
    client: Endpoint


def _norm(ep: Endpoint) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """Canonical (address, port); v4-mapped IPv6 becomes IPv4, as 4.17 canonicalises."""
    ip = ipaddress.ip_address(str(ep[0]).split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, int(ep[1])


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    res = ~total & 0xFFFF
    return res or 0xFFFF


def build_tcp(dest: Endpoint, src: Endpoint, seq: int, ack: int, rst: bool) -> bytes:
    """The IP + TCP packet 4.17's ``ctdb_sys_send_tcp(dest, src, seq, ack, rst)`` sends."""
    dip, dport = _norm(dest)
    sip, sport = _norm(src)
    if dip.version != sip.version:
        raise ValueError(f"address families differ: {src[0]} -> {dest[0]}")
    flags = _TCP_ACK | (_TCP_RST if rst else 0)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, TICKLE_WINDOW, 0, 0)
    if sip.version == 4:
        pseudo = sip.packed + dip.packed + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp)) + tcp[18:]
        iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 255, socket.IPPROTO_TCP, 0, sip.packed, dip.packed)
        iph = iph[:10] + struct.pack("!H", _csum(iph)) + iph[12:]
        return iph + tcp
    pseudo = sip.packed + dip.packed + struct.pack("!IxxxB", len(tcp), socket.IPPROTO_TCP)
    tcp = tcp[:16] + struct.pack("!H", _csum(pseudo + tcp)) + tcp[18:]
    iph = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), socket.IPPROTO_TCP, 64, sip.packed, dip.packed)
    return iph + tcp


def send_tcp(dest: Endpoint, src: Endpoint, seq: int = 0, ack: int = 0, rst: bool = False) -> None:
    """Send one forged segment from ``src`` to ``dest`` (argument order as 4.17's ``ctdb_sys_send_tcp``).

    :raises NetifError: if the raw socket cannot be opened or the send fails.
    """
    pkt = build_tcp(dest, src, seq, ack, rst)
    dip, _ = _norm(dest)
    family = socket.AF_INET if dip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW) as s:
            # IPPROTO_RAW implies IP_HDRINCL; the port of the address must be 0.
            target = (str(dip), 0) if family == socket.AF_INET else (str(dip), 0, 0, 0)
            sent = s.sendto(pkt, target)
    except OSError as exc:
        raise NetifError(f"Failed sendto {dest[0]}:{dest[1]} ({exc.strerror or exc})") from exc
    if sent != len(pkt):
        raise NetifError(f"short sendto {dest[0]}:{dest[1]} ({sent}/{len(pkt)})")


def send_tickle_ack(src: Endpoint, dst: Endpoint) -> None:
    """Send a tickle ACK (seq 0, ack 0, window 1234) from ``src`` (e.g. public IP:port) to ``dst`` (the client)."""
    send_tcp(dst, src, 0, 0, False)


# --- capture --------------------------------------------------------------------------------

# Classic BPF on an Ethernet frame: accept IPv4/TCP and IPv6/TCP (next header TCP), drop the rest.
_BPF_TCP = (
    (0x28, 0, 0, 12),  # ldh [12]            ethertype
    (0x15, 0, 2, _ETH_P_IP),  # jeq #0x800   else -> v6 test
    (0x30, 0, 0, 23),  # ldb [23]            ip proto
    (0x15, 3, 4, socket.IPPROTO_TCP),  # jeq #6 -> accept : drop
    (0x15, 0, 3, _ETH_P_IPV6),  # jeq #0x86dd else drop
    (0x30, 0, 0, 20),  # ldb [20]            next header
    (0x15, 0, 1, socket.IPPROTO_TCP),  # jeq #6 -> accept : drop
    (0x06, 0, 0, 0x40000),  # ret #262144     accept
    (0x06, 0, 0, 0),  # ret #0               drop
)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def open_capture(iface: str) -> socket.socket:
    """A non-blocking ``AF_PACKET`` socket on ``iface`` that only sees TCP frames (in and out)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    try:
        insns = (_SockFilter * len(_BPF_TCP))(*[_SockFilter(*i) for i in _BPF_TCP])
        prog = _SockFprog(len(_BPF_TCP), insns)
        s.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(ctypes.string_at(ctypes.addressof(prog), ctypes.sizeof(prog))))
        s.bind((iface, _ETH_P_ALL))
        s.setblocking(False)
        # Frames queued between socket() and the filter/bind are not filtered: drop them.
        while True:
            try:
                s.recv(65535)
            except BlockingIOError:
                break
    except OSError as exc:
        s.close()
        raise NetifError(f"Failed to open capturing socket on iface '{iface}' ({exc.strerror or exc})") from exc
    return s


@attrs.frozen
class CapturedSegment:
    src: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]
    dst: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]
    seq: int
    ack: int
    rst: bool
    window: int


def parse_frame(frame: bytes) -> CapturedSegment | None:
    """The TCP fields of an Ethernet frame, as 4.17's ``ctdb_sys_read_tcp_packet`` reads them."""
    if len(frame) < 14 + 20:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == _ETH_P_IP:
        vihl, _, _, _, frag, _, proto = struct.unpack_from("!BBHHHBB", frame, 14)
        if vihl >> 4 != 4 or frag & 0x1FFF or proto != socket.IPPROTO_TCP:
            return None
        off = 14 + (vihl & 0xF) * 4
        sip = ipaddress.IPv4Address(frame[26:30])
        dip = ipaddress.IPv4Address(frame[30:34])
    elif ethertype == _ETH_P_IPV6:
        if len(frame) < 14 + 40 or frame[14 + 6] != socket.IPPROTO_TCP:
            return None
        off = 14 + 40
        sip = ipaddress.IPv6Address(frame[22:38])
        dip = ipaddress.IPv6Address(frame[38:54])
    else:
        return None
    if len(frame) < off + 16:
        return None
    sport, dport, seq, ack, _, flags, window = struct.unpack_from("!HHIIBBH", frame, off)
    return CapturedSegment((sip, sport), (dip, dport), seq, ack, bool(flags & _TCP_RST), window)


# --- kill -------------------------------------------------------------------------------------


def kill_connections(
    conns: Iterable[tuple[Endpoint, Endpoint]],
    iface: str,
    timeout: float = 5.0,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    retry_interval: float = RETRY_INTERVAL,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Reset TCP sockets the way 4.17's ``ctdb_killtcp IFACE`` does; return how many were reset.

    :param conns: ``(victim, peer)`` pairs of ``(ip, port)``: the socket at ``victim`` is
        reset, the forged packets come from ``peer``. For a client connected to a
        public address, ``(client, public)`` resets the client and ``(public, client)``
        resets the local server socket (4.17 does both, except one-way for ports 139/445;
        see :func:`ctdbcore.netif.plugin.kill_tcp_connections`).
    :param iface: the interface the victim's answers arrive or leave on (captured there).
    :param timeout: hard upper bound in seconds, whatever ``max_attempts`` says.
    :return: the number of distinct pairs for which an RST was sent.
    :raises NetifError: when the capture socket cannot be opened.
    """
    pending: dict[tuple, tuple[Endpoint, Endpoint]] = {}
    for victim, peer in conns:
        v, p = _norm(victim), _norm(peer)
        if v[0].version != p[0].version:
            log.error("different address families: %s:%d / %s:%d", v[0], v[1], p[0], p[1])
            continue
        pending[(v, p)] = ((str(v[0]), v[1]), (str(p[0]), p[1]))
    if not pending:
        return 0
    total = len(pending)
    deadline = time.monotonic() + timeout
    killed = 0
    with open_capture(iface) as cap:
        attempts = 0
        while pending and attempts < max_attempts and time.monotonic() < deadline:
            for victim, peer in list(pending.values())[:batch_size]:
                try:
                    send_tcp(victim, peer, 0, 0, False)
                except NetifError as exc:
                    log.debug("tickle %s:%d <- %s:%d: %s", *victim, *peer, exc)
            attempts += 1
            round_end = min(deadline, time.monotonic() + retry_interval)
            while pending:
                left = round_end - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select([cap], [], [], left)
                if not ready:
                    break
                killed += _drain(cap, pending)
    if pending:
        log.info("killtcp: %d/%d connections not reset on %s", len(pending), total, iface)
    return killed


def _drain(cap: socket.socket, pending: dict[tuple, tuple[Endpoint, Endpoint]]) -> int:
    killed = 0
    while pending:
        try:
            frame = cap.recv(128)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno in (errno.EINTR, errno.ENETDOWN):
                break
            raise
        seg = parse_frame(frame)
        if seg is None:
            continue
        if seg.window == TICKLE_WINDOW and (seg.rst or seg.seq == 0):
            continue  # one of ours
        found = pending.pop((seg.src, seg.dst), None)
        if found is None:
            continue
        victim, peer = found
        log.info("Sending a TCP RST to kill connection (%s:%d) -> %s:%d", *peer, *victim)
        try:
            send_tcp(victim, peer, seg.ack, seg.seq, True)
        except NetifError as exc:
            log.warning("RST to %s:%d failed: %s", *victim, exc)
            continue
        killed += 1
    return killed


# --- the kernel's view ------------------------------------------------------------------------


def _parse_endpoint(text: str) -> Endpoint:
    host, _, port = text.rpartition(":")
    host = host.strip("[]").split("%", 1)[0]
    ip = ipaddress.ip_address(host)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(port)


def connections_for_ip(ip: str, *, timeout: float = COMMAND_TIMEOUT) -> list[TcpConnection]:
    """Established TCP connections whose local end is ``ip`` (4.17 ``get_tcp_connections_for_ip``).

    Runs ``ss -tnH state established src [IP]``.
    """
    addr = ipaddress.ip_address(str(ip))
    proc = run(["ss", "-tnH", "state", "established", f"src [{addr}]"], timeout=timeout)
    out: list[TcpConnection] = []
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        try:
            out.append(TcpConnection(server=_parse_endpoint(fields[2]), client=_parse_endpoint(fields[3])))
        except ValueError:
            log.debug("unparsable ss line: %r", line)
    return out
