"""Socket addresses and the payloads built from them: connections, tickles, public IPs,
interfaces (§1.1, §1.7)."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any, ClassVar, Self

import attrs

from .basic import (
    _U32,
    IPAddress,
    _count,
    _cstr,
    _need,
    _raw,
    _text,
    _unpack_stringn_from,
    _view,
    pack_stringn,
)
from .errors import BadPayload

# --- addresses --------------------------------------------------------------------------------

_U16 = struct.Struct("<H")
_PORT = struct.Struct(">H")  # sin_port stays in network order inside the native struct

AF_INET = 2
AF_INET6 = 10
_SOCKADDR_SIZE = 28


def _to_ip(value: Any) -> IPAddress:
    ip = value if isinstance(value, IPAddress) else ipaddress.ip_address(value)
    # ctdbd and Samba both canonicalise ::ffff:a.b.c.d to AF_INET; doing it at construction
    # means two spellings of one address compare equal everywhere in the daemon.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _port(instance: Any, attribute: Any, value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"port {value} out of range")


@attrs.frozen
class SockAddr:
    """``ctdb_sock_addr``: the 28-byte union of sockaddr_in and sockaddr_in6."""

    ip: IPAddress = attrs.field(converter=_to_ip)
    port: int = attrs.field(default=0, validator=_port)
    SIZE: ClassVar[int] = _SOCKADDR_SIZE

    @classmethod
    def parse(cls, text: str, port: int = 0) -> Self:
        return cls(ip=text, port=port)  # type: ignore[arg-type]  # converter accepts str

    def __str__(self) -> str:
        return str(self.ip)

    def pack(self) -> bytes:
        if self.ip.version == 4:
            # family, port, address, sin_zero[8], then slack up to the size of sockaddr_in6.
            return _U16.pack(AF_INET) + _PORT.pack(self.port) + self.ip.packed + bytes(20)
        return _U16.pack(AF_INET6) + _PORT.pack(self.port) + bytes(4) + self.ip.packed + bytes(4)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls._unpack_from(_view(buf), 0)

    @classmethod
    def _unpack_from(cls, buf: memoryview, offset: int) -> Self:
        _need(buf, offset + _SOCKADDR_SIZE, "sock_addr")
        (family,) = _U16.unpack_from(buf, offset)
        (port,) = _PORT.unpack_from(buf, offset + 2)
        if family == AF_INET:
            ip: IPAddress = ipaddress.IPv4Address(bytes(buf[offset + 4 : offset + 8]))
        elif family == AF_INET6:
            # flowinfo and scope_id are dropped: ctdb never sets them for its addresses.
            ip = ipaddress.IPv6Address(bytes(buf[offset + 8 : offset + 24]))
        else:
            raise BadPayload(f"sock_addr: unknown address family {family}")
        return cls(ip=ip, port=port)


@attrs.frozen
class Connection:
    """``ctdb_connection``; for TCP_CLIENT src is the client and dst the public IP."""

    src: SockAddr
    dst: SockAddr
    SIZE: ClassVar[int] = 56

    def pack(self) -> bytes:
        return self.src.pack() + self.dst.pack()

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls._unpack_from(_view(buf), 0)

    @classmethod
    def _unpack_from(cls, buf: memoryview, offset: int) -> Self:
        _need(buf, offset + 56, "connection")
        return cls(
            src=SockAddr._unpack_from(buf, offset), dst=SockAddr._unpack_from(buf, offset + 28)
        )


@attrs.frozen
class TickleList:
    addr: SockAddr
    conns: tuple[Connection, ...] = attrs.field(default=(), converter=tuple)

    def pack(self) -> bytes:
        return b"".join(
            [self.addr.pack(), _U32.pack(len(self.conns))] + [c.pack() for c in self.conns]
        )

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        addr = SockAddr._unpack_from(view, 0)
        num = _count(view, 28, 56, "tickle_list")
        return cls(addr, tuple(Connection._unpack_from(view, 32 + 56 * i) for i in range(num)))


# --- public IPs and interfaces ----------------------------------------------------------------


@attrs.frozen
class PublicIp:
    pnn: int
    addr: SockAddr
    SIZE: ClassVar[int] = 32

    def pack(self) -> bytes:
        return _U32.pack(self.pnn) + self.addr.pack()

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls._unpack_from(_view(buf), 0)

    @classmethod
    def _unpack_from(cls, buf: memoryview, offset: int) -> Self:
        _need(buf, offset + 32, "public_ip")
        return cls(_U32.unpack_from(buf, offset)[0], SockAddr._unpack_from(buf, offset + 4))


@attrs.frozen
class PublicIpList:
    ips: tuple[PublicIp, ...] = attrs.field(default=(), converter=tuple)

    def pack(self) -> bytes:
        return b"".join([_U32.pack(len(self.ips))] + [ip.pack() for ip in self.ips])

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        num = _count(view, 0, 32, "public_ip_list")
        return cls(tuple(PublicIp._unpack_from(view, 4 + 32 * i) for i in range(num)))


_IFACE = struct.Struct("<18sHI")
_IFACE_NAME_MAX = 17  # char name[IFNAMSIZ+2] with room for the NUL


def _iface_name(instance: Any, attribute: Any, value: str) -> None:
    if len(_raw(value)) > _IFACE_NAME_MAX or "\0" in value:
        raise ValueError(f"interface name {value!r} does not fit in 18 bytes with its NUL")


@attrs.frozen
class Iface:
    name: str = attrs.field(validator=_iface_name)
    link_state: int = 0
    references: int = 0
    SIZE: ClassVar[int] = 24

    def pack(self) -> bytes:
        return _IFACE.pack(_raw(self.name), self.link_state, self.references)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls._unpack_from(_view(buf), 0)

    @classmethod
    def _unpack_from(cls, buf: memoryview, offset: int) -> Self:
        _need(buf, offset + 24, "iface")
        name, link_state, references = _IFACE.unpack_from(buf, offset)
        return cls(_text(_cstr(name)), link_state, references)


def _pack_ifaces(ifaces: tuple[Iface, ...]) -> bytes:
    return b"".join([_U32.pack(len(ifaces))] + [i.pack() for i in ifaces])


def _unpack_ifaces(buf: memoryview, offset: int, what: str) -> tuple[Iface, ...]:
    num = _count(buf, offset, 24, what)
    return tuple(Iface._unpack_from(buf, offset + 4 + 24 * i) for i in range(num))


@attrs.frozen
class IfaceList:
    ifaces: tuple[Iface, ...] = attrs.field(default=(), converter=tuple)

    def pack(self) -> bytes:
        return _pack_ifaces(self.ifaces)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls(_unpack_ifaces(_view(buf), 0, "iface_list"))


@attrs.frozen
class PublicIpInfo:
    ip: PublicIp
    active_idx: int = 0
    ifaces: tuple[Iface, ...] = attrs.field(default=(), converter=tuple)

    def pack(self) -> bytes:
        return self.ip.pack() + _U32.pack(self.active_idx) + _pack_ifaces(self.ifaces)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        ip = PublicIp._unpack_from(view, 0)
        _need(view, 36, "public_ip_info")
        (active_idx,) = _U32.unpack_from(view, 32)
        return cls(ip, active_idx, _unpack_ifaces(view, 36, "public_ip_info"))


@attrs.frozen
class AddrInfo:
    """ADD/DEL_PUBLIC_IP, SEND_GRATUITOUS_ARP: sock_addr, u32 mask, stringn iface."""

    addr: SockAddr
    mask: int
    iface: str = ""

    def pack(self) -> bytes:
        return self.addr.pack() + _U32.pack(self.mask) + pack_stringn(self.iface)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        addr = SockAddr._unpack_from(view, 0)
        _need(view, 32, "addr_info")
        (mask,) = _U32.unpack_from(view, 28)
        iface, _ = _unpack_stringn_from(view, 32, "addr_info iface")
        return cls(addr, mask, iface)
