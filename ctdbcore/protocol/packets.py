"""CTDB packets: the 32-byte header plus one body per ``Operation`` (§1.2, §1.3).

``pack`` produces what a 4.17 ctdbd emits: at least ``sizeof(struct ctdb_*_old)`` bytes, padded
with zeros to a multiple of 8, with ``length`` naming the padded size. ``unpack`` accepts what
anyone sends, padded or not: body sizes come from the inner keylen/datalen fields and anything
after them is ignored, as ctdbd does.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar, Self

import attrs

from .constants import (
    ALIGNMENT,
    CTDB_MAGIC,
    CTDB_PROTOCOL,
    HEADER_SIZE,
    KEEPALIVE_VERSION,
    Opcode,
    Operation,
)
from .errors import BadLength, BadMagic, BadVersion, ProtocolError, Truncated, UnknownOperation

_HEADER = struct.Struct("<8I")


@attrs.frozen
class Header:
    """The raw header, unvalidated: the decoder needs it to judge a packet before parsing it."""

    length: int
    magic: int
    version: int
    generation: int
    operation: int
    destnode: int
    srcnode: int
    reqid: int


def unpack_header(buf: bytes | bytearray | memoryview) -> Header:
    if len(buf) < HEADER_SIZE:
        raise Truncated(f"header: need {HEADER_SIZE} bytes, have {len(buf)}")
    return Header(*_HEADER.unpack_from(buf))


def check_header(hdr: Header) -> None:
    """The checks every receiver makes whatever the transport: magic, version, minimum length."""
    if hdr.magic != CTDB_MAGIC:
        raise BadMagic(f"bad magic 0x{hdr.magic:08x}, expected 0x{CTDB_MAGIC:08x}")
    if hdr.version != CTDB_PROTOCOL:
        raise BadVersion(f"bad protocol version {hdr.version}, expected {CTDB_PROTOCOL}")
    if hdr.length < HEADER_SIZE:
        raise BadLength(f"bad length {hdr.length}, shorter than the {HEADER_SIZE}-byte header")


def _need(body: memoryview, size: int, what: str) -> None:
    if len(body) < size:
        raise Truncated(f"{what}: body needs {size} bytes, packet has {len(body)}")


@attrs.frozen(kw_only=True)
class Packet:
    """Header fields shared by every packet; subclasses add the body."""

    OPERATION: ClassVar[Operation]
    # sizeof(struct ctdb_*_old): ctdbd never allocates less, even for an empty payload.
    MIN_SIZE: ClassVar[int]

    generation: int = 0
    destnode: int = 0
    srcnode: int = 0
    reqid: int = 0

    def _pack_body(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        raise NotImplementedError


_REQ_CALL = struct.Struct("<6I")


@attrs.frozen(kw_only=True)
class ReqCall(Packet):
    OPERATION = Operation.REQ_CALL
    MIN_SIZE = 60

    flags: int = 0
    db_id: int = 0
    callid: int = 0
    hopcount: int = 0
    key: bytes = b""
    calldata: bytes = b""

    def _pack_body(self) -> bytes:
        fixed = _REQ_CALL.pack(
            self.flags, self.db_id, self.callid, self.hopcount, len(self.key), len(self.calldata)
        )
        return fixed + self.key + self.calldata

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        _need(body, 24, "REQ_CALL")
        flags, db_id, callid, hopcount, keylen, datalen = _REQ_CALL.unpack_from(body)
        _need(body, 24 + keylen + datalen, f"REQ_CALL keylen {keylen} calldatalen {datalen}")
        return cls(
            **head,
            flags=flags,
            db_id=db_id,
            callid=callid,
            hopcount=hopcount,
            key=bytes(body[24 : 24 + keylen]),
            calldata=bytes(body[24 + keylen : 24 + keylen + datalen]),
        )


_STATUS_LEN = struct.Struct("<iI")


@attrs.frozen(kw_only=True)
class ReplyCall(Packet):
    OPERATION = Operation.REPLY_CALL
    MIN_SIZE = 44

    status: int = 0
    data: bytes = b""

    def _pack_body(self) -> bytes:
        return _STATUS_LEN.pack(self.status, len(self.data)) + self.data

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        _need(body, 8, "REPLY_CALL")
        status, datalen = _STATUS_LEN.unpack_from(body)
        _need(body, 8 + datalen, f"REPLY_CALL datalen {datalen}")
        return cls(**head, status=status, data=bytes(body[8 : 8 + datalen]))


_U32 = struct.Struct("<I")


def _record_flags(body: memoryview, offset: int) -> int | None:
    # 4.17 appends the record flags after key+data without counting them in any length field;
    # receivers read them only when the packet is long enough (older senders omit them).
    if len(body) >= offset + 4:
        return _U32.unpack_from(body, offset)[0]
    return None


def _pack_record_flags(flags: int | None) -> bytes:
    return b"" if flags is None else _U32.pack(flags)


_REQ_DMASTER = struct.Struct("<I4xQ3I")


@attrs.frozen(kw_only=True)
class ReqDmaster(Packet):
    OPERATION = Operation.REQ_DMASTER
    MIN_SIZE = 64

    db_id: int = 0
    rsn: int = 0
    dmaster: int = 0
    key: bytes = b""
    data: bytes = b""
    record_flags: int | None = 0

    def _pack_body(self) -> bytes:
        fixed = _REQ_DMASTER.pack(self.db_id, self.rsn, self.dmaster, len(self.key), len(self.data))
        return fixed + self.key + self.data + _pack_record_flags(self.record_flags)

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        _need(body, 28, "REQ_DMASTER")
        db_id, rsn, dmaster, keylen, datalen = _REQ_DMASTER.unpack_from(body)
        end = 28 + keylen + datalen
        _need(body, end, f"REQ_DMASTER keylen {keylen} datalen {datalen}")
        return cls(
            **head,
            db_id=db_id,
            rsn=rsn,
            dmaster=dmaster,
            key=bytes(body[28 : 28 + keylen]),
            data=bytes(body[28 + keylen : end]),
            record_flags=_record_flags(body, end),
        )


_REPLY_DMASTER = struct.Struct("<I4xQ2I")


@attrs.frozen(kw_only=True)
class ReplyDmaster(Packet):
    OPERATION = Operation.REPLY_DMASTER
    MIN_SIZE = 64

    db_id: int = 0
    rsn: int = 0
    key: bytes = b""
    data: bytes = b""
    record_flags: int | None = 0

    def _pack_body(self) -> bytes:
        fixed = _REPLY_DMASTER.pack(self.db_id, self.rsn, len(self.key), len(self.data))
        return fixed + self.key + self.data + _pack_record_flags(self.record_flags)

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        _need(body, 24, "REPLY_DMASTER")
        db_id, rsn, keylen, datalen = _REPLY_DMASTER.unpack_from(body)
        end = 24 + keylen + datalen
        _need(body, end, f"REPLY_DMASTER keylen {keylen} datalen {datalen}")
        return cls(
            **head,
            db_id=db_id,
            rsn=rsn,
            key=bytes(body[24 : 24 + keylen]),
            data=bytes(body[24 + keylen : end]),
            record_flags=_record_flags(body, end),
        )


def _cstr(raw: memoryview) -> bytes:
    data = bytes(raw)
    nul = data.find(b"\0")
    return data if nul < 0 else data[:nul]


@attrs.frozen(kw_only=True)
class ReplyError(Packet):
    """``msg`` is a C string: it is sent with its NUL (msglen counts it) and read up to a NUL."""

    OPERATION = Operation.REPLY_ERROR
    MIN_SIZE = 44

    status: int = 0
    msg: bytes = b""

    def _pack_body(self) -> bytes:
        return _STATUS_LEN.pack(self.status, len(self.msg) + 1) + self.msg + b"\0"

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        _need(body, 8, "REPLY_ERROR")
        status, msglen = _STATUS_LEN.unpack_from(body)
        _need(body, 8 + msglen, f"REPLY_ERROR msglen {msglen}")
        return cls(**head, status=status, msg=_cstr(body[8 : 8 + msglen]))


_REQ_MESSAGE = struct.Struct("<QI")


@attrs.frozen(kw_only=True)
class ReqMessage(Packet):
    OPERATION = Operation.REQ_MESSAGE
    MIN_SIZE = 48

    srvid: int
    data: bytes = b""

    def _pack_body(self) -> bytes:
        return _REQ_MESSAGE.pack(self.srvid, len(self.data)) + self.data

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        _need(body, 12, "REQ_MESSAGE")
        srvid, datalen = _REQ_MESSAGE.unpack_from(body)
        _need(body, 12 + datalen, f"REQ_MESSAGE datalen {datalen}")
        return cls(**head, srvid=srvid, data=bytes(body[12 : 12 + datalen]))


_REQ_CONTROL = struct.Struct("<I4xQ3I")


def _opcode(value: int) -> int:
    # Known opcodes become Opcode for readable reprs; unknown ones stay ints so that the daemon
    # can still answer them with -1 as 4.17 does.
    try:
        return Opcode(value)
    except ValueError:
        return value


@attrs.frozen(kw_only=True)
class ReqControl(Packet):
    OPERATION = Operation.REQ_CONTROL
    MIN_SIZE = 64

    opcode: int = attrs.field(converter=_opcode)
    srvid: int = 0
    client_id: int = 0
    flags: int = 0
    data: bytes = b""

    def _pack_body(self) -> bytes:
        fixed = _REQ_CONTROL.pack(
            self.opcode, self.srvid, self.client_id, self.flags, len(self.data)
        )
        return fixed + self.data

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        _need(body, 28, "REQ_CONTROL")
        opcode, srvid, client_id, flags, datalen = _REQ_CONTROL.unpack_from(body)
        _need(body, 28 + datalen, f"REQ_CONTROL datalen {datalen}")
        return cls(
            **head,
            opcode=opcode,
            srvid=srvid,
            client_id=client_id,
            flags=flags,
            data=bytes(body[28 : 28 + datalen]),
        )


_REPLY_CONTROL = struct.Struct("<iII")


@attrs.frozen(kw_only=True)
class ReplyControl(Packet):
    """ctdbd sends errorlen = strlen (no NUL), the 4.17 client library strlen+1; ``errmsg`` is
    read up to the first NUL so both forms give the same value, and packed in ctdbd's form."""

    OPERATION = Operation.REPLY_CONTROL
    MIN_SIZE = 48

    status: int = 0
    data: bytes = b""
    errmsg: bytes = b""

    def _pack_body(self) -> bytes:
        fixed = _REPLY_CONTROL.pack(self.status, len(self.data), len(self.errmsg))
        return fixed + self.data + self.errmsg

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        _need(body, 12, "REPLY_CONTROL")
        status, datalen, errorlen = _REPLY_CONTROL.unpack_from(body)
        end = 12 + datalen + errorlen
        _need(body, end, f"REPLY_CONTROL datalen {datalen} errorlen {errorlen}")
        return cls(
            **head,
            status=status,
            data=bytes(body[12 : 12 + datalen]),
            errmsg=_cstr(body[12 + datalen : end]),
        )


_KEEPALIVE = struct.Struct("<II")


@attrs.frozen(kw_only=True)
class ReqKeepalive(Packet):
    """A 32-byte keepalive (no body) is a pre-4.x peer; it unpacks as ``Truncated``."""

    OPERATION = Operation.REQ_KEEPALIVE
    MIN_SIZE = 40

    version: int = KEEPALIVE_VERSION
    uptime: int = 0

    def _pack_body(self) -> bytes:
        return _KEEPALIVE.pack(self.version, self.uptime)

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        _need(body, 8, "REQ_KEEPALIVE")
        version, uptime = _KEEPALIVE.unpack_from(body)
        return cls(**head, version=version, uptime=uptime)


_REQ_TUNNEL = struct.Struct("<QII")


@attrs.frozen(kw_only=True)
class ReqTunnel(Packet):
    OPERATION = Operation.REQ_TUNNEL
    MIN_SIZE = 56

    tunnel_id: int = 0
    flags: int = 0
    data: bytes = b""

    def _pack_body(self) -> bytes:
        return _REQ_TUNNEL.pack(self.tunnel_id, self.flags, len(self.data)) + self.data

    @classmethod
    def _unpack_body(cls, head: dict[str, int], body: memoryview) -> Self:
        _need(body, 16, "REQ_TUNNEL")
        tunnel_id, flags, datalen = _REQ_TUNNEL.unpack_from(body)
        _need(body, 16 + datalen, f"REQ_TUNNEL datalen {datalen}")
        return cls(**head, tunnel_id=tunnel_id, flags=flags, data=bytes(body[16 : 16 + datalen]))


PACKET_CLASSES: dict[Operation, type[Packet]] = {
    cls.OPERATION: cls
    for cls in (
        ReqCall,
        ReplyCall,
        ReqDmaster,
        ReplyDmaster,
        ReplyError,
        ReqMessage,
        ReqControl,
        ReplyControl,
        ReqKeepalive,
        ReqTunnel,
    )
}


def padded_size(size: int) -> int:
    return (size + ALIGNMENT - 1) & ~(ALIGNMENT - 1)


def pack(pkt: Packet) -> bytes:
    body = pkt._pack_body()
    size = padded_size(max(HEADER_SIZE + len(body), pkt.MIN_SIZE))
    out = bytearray(size)
    _HEADER.pack_into(
        out,
        0,
        size,
        CTDB_MAGIC,
        CTDB_PROTOCOL,
        pkt.generation,
        pkt.OPERATION,
        pkt.destnode,
        pkt.srcnode,
        pkt.reqid,
    )
    out[HEADER_SIZE : HEADER_SIZE + len(body)] = body
    return bytes(out)


def unpack(buf: bytes | bytearray | memoryview) -> Packet:
    """Parse one whole packet. ``buf`` may be longer than ``length``; the excess is ignored."""
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    hdr = unpack_header(view)
    check_header(hdr)
    if hdr.length > len(view):
        raise Truncated(f"packet length {hdr.length} but only {len(view)} bytes given")
    try:
        cls = PACKET_CLASSES[Operation(hdr.operation)]
    except ValueError:
        raise UnknownOperation(f"unknown operation {hdr.operation}") from None
    head = {
        "generation": hdr.generation,
        "destnode": hdr.destnode,
        "srcnode": hdr.srcnode,
        "reqid": hdr.reqid,
    }
    return cls._unpack_body(head, view[HEADER_SIZE : hdr.length])


def with_header(pkt: Packet, **changes: Any) -> Packet:
    """Copy with header fields replaced; the daemon rewrites srcnode/destnode/generation/reqid."""
    return attrs.evolve(pkt, **changes)


__all__ = [
    "Header",
    "Packet",
    "ProtocolError",
    "ReqCall",
    "ReplyCall",
    "ReqDmaster",
    "ReplyDmaster",
    "ReplyError",
    "ReqMessage",
    "ReqControl",
    "ReplyControl",
    "ReqKeepalive",
    "ReqTunnel",
    "PACKET_CLASSES",
    "check_header",
    "pack",
    "padded_size",
    "unpack",
    "unpack_header",
    "with_header",
]
