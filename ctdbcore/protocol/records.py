"""Record marshalling: ltdb header, rec_data, marshall buffers, key_data (§1.7, §2.6)."""

from __future__ import annotations

import struct
from typing import ClassVar, Self

import attrs

from .basic import (
    _U32,
    _U32X2,
    _datan,
    _need,
    _unpack_datan_from,
    _view,
)
from .errors import Truncated

# --- records ----------------------------------------------------------------------------------

_LTDB_HEADER = struct.Struct("<QII I4x")


@attrs.frozen
class LtdbHeader:
    """``ctdb_ltdb_header``, prefixed to every record value in the tdb files (§2.6)."""

    rsn: int = 0
    dmaster: int = 0
    flags: int = 0
    SIZE: ClassVar[int] = 24

    def pack(self) -> bytes:
        return _LTDB_HEADER.pack(self.rsn, self.dmaster, 0, self.flags)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 24, "ltdb_header")
        rsn, dmaster, _reserved, flags = _LTDB_HEADER.unpack_from(buf)
        return cls(rsn, dmaster, flags)


_REC_DATA = struct.Struct("<4I")


@attrs.frozen
class RecData:
    """One marshalled record: ``u32 length, reqid, keylen, datalen``, key, data.

    The wire does not say whether ``data`` starts with an ltdb header; the receiver knows from
    context (traverse records and TRANS3 records have one), so ``unpack`` takes ``with_header``.
    """

    reqid: int
    key: bytes
    data: bytes
    header: LtdbHeader | None = None

    def pack(self) -> bytes:
        data = self.data if self.header is None else self.header.pack() + self.data
        length = 16 + len(self.key) + len(data)
        return _REC_DATA.pack(length, self.reqid, len(self.key), len(data)) + self.key + data

    @classmethod
    def unpack(cls, buf: bytes | memoryview, with_header: bool = False) -> Self:
        return cls._unpack_from(_view(buf), 0, with_header)[0]

    @classmethod
    def _unpack_from(cls, buf: memoryview, offset: int, with_header: bool) -> tuple[Self, int]:
        _need(buf, offset + 16, "rec_data")
        _length, reqid, keylen, datalen = _REC_DATA.unpack_from(buf, offset)
        key_at = offset + 16
        end = key_at + keylen + datalen
        _need(buf, end, f"rec_data with keylen {keylen} datalen {datalen}")
        key = bytes(buf[key_at : key_at + keylen])
        data = buf[key_at + keylen : end]
        if not with_header:
            return cls(reqid, key, bytes(data)), end
        if datalen < LtdbHeader.SIZE:
            raise Truncated(f"rec_data: datalen {datalen} too short for a 24-byte ltdb header")
        return cls(reqid, key, bytes(data[24:]), LtdbHeader.unpack(data)), end


@attrs.frozen
class RecBuffer:
    """``ctdb_marshall_buffer``: u32 db_id, u32 count, then records back to back, unpadded."""

    db_id: int
    records: tuple[RecData, ...] = attrs.field(default=(), converter=tuple)

    def pack(self) -> bytes:
        return b"".join(
            [_U32X2.pack(self.db_id, len(self.records))] + [r.pack() for r in self.records]
        )

    @classmethod
    def unpack(cls, buf: bytes | memoryview, with_header: bool = False) -> Self:
        view = _view(buf)
        _need(view, 8, "rec_buffer")
        db_id, count = _U32X2.unpack_from(view, 0)
        records = []
        offset = 8
        for _ in range(count):
            rec, offset = RecData._unpack_from(view, offset, with_header)
            records.append(rec)
        return cls(db_id, tuple(records))


_KEY_DATA = struct.Struct("<I4x")


@attrs.frozen
class KeyData:
    """SCHEDULE_FOR_DELETION request: u32 db_id, pad, ltdb_header, u32 keylen, key."""

    db_id: int
    header: LtdbHeader
    key: bytes

    def pack(self) -> bytes:
        return _KEY_DATA.pack(self.db_id) + self.header.pack() + _datan(self.key)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        _need(view, 36, "key_data")
        (db_id,) = _KEY_DATA.unpack_from(view, 0)
        key, _ = _unpack_datan_from(view, 32, "key_data key")
        return cls(db_id, LtdbHeader.unpack(view[8:32]), key)


_PID_SRVID = struct.Struct("<iQ")  # packed: 4.17 pushes the two fields with no hole


@attrs.frozen
class PidSrvid:
    pid: int
    srvid: int
    SIZE: ClassVar[int] = 12

    def pack(self) -> bytes:
        return _PID_SRVID.pack(self.pid, self.srvid)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 12, "pid_srvid")
        return cls(*_PID_SRVID.unpack_from(buf))


@attrs.frozen
class EchoData:
    timeout: int
    data: bytes = b""

    def pack(self) -> bytes:
        return _U32.pack(self.timeout) + _datan(self.data)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        _need(view, 4, "echo_data")
        data, _ = _unpack_datan_from(view, 4, "echo_data")
        return cls(_U32.unpack_from(view, 0)[0], data)


_NOTIFY = struct.Struct("<QI")


@attrs.frozen
class NotifyData:
    """REGISTER_NOTIFY request: u64 srvid, u32 len, data."""

    srvid: int
    data: bytes = b""

    def pack(self) -> bytes:
        return _NOTIFY.pack(self.srvid, len(self.data)) + self.data

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        _need(view, 12, "notify_data")
        srvid, size = _NOTIFY.unpack_from(view, 0)
        _need(view, 12 + size, f"notify_data of length {size}")
        return cls(srvid, bytes(view[12 : 12 + size]))
