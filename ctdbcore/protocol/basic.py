"""Primitive encodings shared by all payloads (protocol/protocol_basic.c): integers, strings,
booleans, timevals, and one-value payload wrappers for the control table."""

from __future__ import annotations

import ipaddress
import math
import struct
from typing import ClassVar, Self

import attrs

from .errors import BadPayload, Truncated

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")
_U32X2 = struct.Struct("<II")


def _need(buf: memoryview | bytes, size: int, what: str) -> None:
    if len(buf) < size:
        raise Truncated(f"{what}: need {size} bytes, have {len(buf)}")


def _view(buf: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(buf)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _text(raw: bytes | memoryview) -> str:
    # surrogateescape: names on the wire are C strings of unknown encoding and must round-trip.
    return bytes(raw).decode("utf-8", "surrogateescape")


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _cstr(raw: bytes | memoryview) -> bytes:
    """C string semantics: everything up to the first NUL (or the end)."""
    data = bytes(raw)
    nul = data.find(b"\0")
    return data if nul < 0 else data[:nul]


def _bool(value: int, what: str) -> bool:
    # ctdb_bool_pull refuses anything but 0 and 1 with EINVAL.
    if value not in (0, 1):
        raise BadPayload(f"{what}: bool must be 0 or 1, got {value}")
    return bool(value)


def _count(buf: memoryview, offset: int, item_size: int, what: str) -> int:
    """Read a u32 element count at ``offset`` and check that the elements fit."""
    _need(buf, offset + 4, what)
    (num,) = _U32.unpack_from(buf, offset)
    _need(buf, offset + 4 + num * item_size, f"{what} with {num} entries")
    return num


# --- scalar helpers ---------------------------------------------------------------------------


def pack_u32(value: int) -> bytes:
    return _U32.pack(value)


def unpack_u32(buf: bytes | memoryview) -> int:
    _need(buf, 4, "u32")
    return _U32.unpack_from(buf)[0]


def pack_i32(value: int) -> bytes:
    return _I32.pack(value)


def unpack_i32(buf: bytes | memoryview) -> int:
    _need(buf, 4, "i32")
    return _I32.unpack_from(buf)[0]


def pack_u64(value: int) -> bytes:
    return _U64.pack(value)


def unpack_u64(buf: bytes | memoryview) -> int:
    _need(buf, 8, "u64")
    return _U64.unpack_from(buf)[0]


def pack_string(text: str | None) -> bytes:
    """NUL-terminated string; ``None`` is 4.17's NULL string, which is no bytes at all."""
    return b"" if text is None else _raw(text) + b"\0"


def unpack_string(buf: bytes | memoryview) -> str:
    # ctdb_string_pull takes up to the first NUL and accepts an empty buffer as NULL.
    return _text(_cstr(buf))


def pack_stringn(text: str) -> bytes:
    """``u32 len`` (counting the NUL), then the string and its NUL."""
    raw = _raw(text) + b"\0"
    return _U32.pack(len(raw)) + raw


def unpack_stringn(buf: bytes | memoryview) -> str:
    return _unpack_stringn_from(_view(buf), 0, "stringn")[0]


def _unpack_stringn_from(buf: memoryview, offset: int, what: str) -> tuple[str, int]:
    _need(buf, offset + 4, what)
    (size,) = _U32.unpack_from(buf, offset)
    end = offset + 4 + size
    _need(buf, end, f"{what} of length {size}")
    return _text(_cstr(buf[offset + 4 : end])), end


def _datan(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def _unpack_datan_from(buf: memoryview, offset: int, what: str) -> tuple[bytes, int]:
    _need(buf, offset + 4, what)
    (size,) = _U32.unpack_from(buf, offset)
    end = offset + 4 + size
    _need(buf, end, f"{what} of length {size}")
    return bytes(buf[offset + 4 : end]), end


# --- scalar payloads, so that the control table can name a type for every opcode -------------


@attrs.frozen
class UInt32:
    value: int
    SIZE: ClassVar[int] = 4

    def pack(self) -> bytes:
        return _U32.pack(self.value)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls(unpack_u32(buf))


@attrs.frozen
class Int32:
    value: int
    SIZE: ClassVar[int] = 4

    def pack(self) -> bytes:
        return _I32.pack(self.value)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls(unpack_i32(buf))


@attrs.frozen
class UInt64:
    """Also GET_DB_SEQNUM's request: ``u32 db_id + u32 pad`` is a u64 on a little-endian host."""

    value: int
    SIZE: ClassVar[int] = 8

    def pack(self) -> bytes:
        return _U64.pack(self.value)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls(unpack_u64(buf))


@attrs.frozen
class Float64:
    value: float
    SIZE: ClassVar[int] = 8

    def pack(self) -> bytes:
        return _DOUBLE.pack(self.value)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 8, "double")
        return cls(_DOUBLE.unpack_from(buf)[0])


@attrs.frozen
class CString:
    """A NUL-terminated string filling the whole payload (db names, paths, health reasons)."""

    value: str

    def pack(self) -> bytes:
        return pack_string(self.value)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls(unpack_string(buf))


@attrs.frozen
class StringN:
    value: str

    def pack(self) -> bytes:
        return pack_stringn(self.value)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls(unpack_stringn(buf))


# --- time -------------------------------------------------------------------------------------

_TIMEVAL = struct.Struct("<qq")


@attrs.frozen
class Timeval:
    sec: int = 0
    usec: int = 0
    SIZE: ClassVar[int] = 16

    @classmethod
    def from_float(cls, t: float) -> Self:
        sec = math.floor(t)
        usec = round((t - sec) * 1_000_000)
        if usec >= 1_000_000:  # rounding can carry into the next second
            sec, usec = sec + 1, usec - 1_000_000
        return cls(sec, usec)

    def to_float(self) -> float:
        return self.sec + self.usec / 1_000_000

    def pack(self) -> bytes:
        return _TIMEVAL.pack(self.sec, self.usec)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 16, "timeval")
        return cls(*_TIMEVAL.unpack_from(buf))
