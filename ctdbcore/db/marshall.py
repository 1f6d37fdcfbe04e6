"""Marshall buffers (``ctdb_marshall_buffer``) of raw tdb records, without building
an object per record: recovery moves every record of every database through here, so
it works on the stored bytes (24-byte header + value) directly.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

_HEAD = struct.Struct("<II")  # db_id, count
_REC = struct.Struct("<4I")  # length, reqid, keylen, datalen
_RSN_DMASTER = struct.Struct("<QI")
_U32 = struct.Struct("<I")
_LTDB_FIELDS = struct.Struct("<QI4xI")  # rsn, dmaster, (reserved), flags
_LTDB_ALL = struct.Struct("<QIIII")  # rsn, dmaster, reserved1, flags, reserved2

LIMIT = 1_000_000  # 4.17's RecBufferSizeLimit


def pack(db_id: int, records: list[tuple[bytes, bytes]], claim: tuple[int, int] | None = None) -> bytes:
    """A buffer of ``records``. ``claim`` = (dmaster, flags): every record's header
    names that data master and gains those flags on the way (what
    :func:`with_dmaster` does, without a copy of each record for it)."""
    parts: list[bytes | memoryview] = [_HEAD.pack(db_id, len(records))]
    append = parts.append
    rec = _REC.pack
    if claim is None:
        for key, value in records:
            append(rec(16 + len(key) + len(value), 0, len(key), len(value)))
            append(key)
            append(value)
        return b"".join(parts)
    dmaster, add_flags = claim
    header, header_of = _LTDB_ALL.pack, _LTDB_ALL.unpack_from
    for key, value in records:
        rsn, _, reserved1, flags, reserved2 = header_of(value)
        append(rec(16 + len(key) + len(value), 0, len(key), len(value)))
        append(key)
        append(header(rsn, dmaster, reserved1, flags | add_flags, reserved2))
        append(memoryview(value)[24:])
    return b"".join(parts)


def pack_limited(db_id: int, records: Iterable[tuple[bytes, bytes]], limit: int = LIMIT,
                 claim: tuple[int, int] | None = None) -> Iterator[bytes]:
    """Buffers of at most about ``limit`` bytes each; always at least one. ``claim``
    as for :func:`pack` (values must then have a header)."""
    batch: list[tuple[bytes, bytes]] = []
    size = 0
    sent = False
    for key, value in records:
        batch.append((key, value))
        size += 16 + len(key) + len(value)
        if size >= limit:
            yield pack(db_id, batch, claim)
            sent = True
            batch, size = [], 0
    if batch or not sent:
        yield pack(db_id, batch, claim)


def pack_spans(db_id: int, buf: bytes, spans: Iterable[tuple[int, int, int]], min_value: int = 0,
               limit: int = LIMIT) -> Iterator[bytes]:
    """:func:`pack_limited` for records that lie in ``buf`` as a key followed by its
    value: (offset, key length, value length) each, as
    :func:`ctdbcore.db.tdbfile.live_spans` finds them in a TDB file. Values shorter
    than ``min_value`` are left out. Each record is copied once, into its buffer."""
    mv = memoryview(buf)
    rec = _REC.pack
    parts: list[bytes | memoryview] = [b""]
    count = size = 0
    sent = False
    for off, keylen, datalen in spans:
        if datalen < min_value:
            continue
        n = keylen + datalen
        parts.append(rec(16 + n, 0, keylen, datalen))
        parts.append(mv[off:off + n])
        count += 1
        size += 16 + n
        if size >= limit:
            parts[0] = _HEAD.pack(db_id, count)
            yield b"".join(parts)
            sent = True
            parts, count, size = [b""], 0, 0
    if count or not sent:
        parts[0] = _HEAD.pack(db_id, count)
        yield b"".join(parts)


class BadBuffer(ValueError):
    """A marshall buffer that is not one (too short, a record past its end)."""


def records(buf: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (key, raw value) records of a buffer one by one, as :func:`unpack` reads
    them; :class:`BadBuffer` only once the walk reaches the fault (a persistent update
    stores each record as it comes, inside a transaction, as 4.17 does)."""
    n = len(buf)
    if n < 8:
        raise BadBuffer("marshall buffer shorter than its header")
    _db_id, count = _HEAD.unpack_from(buf)
    rec = _REC.unpack_from
    off = 8
    for i in range(count):
        if off + 16 > n:
            raise BadBuffer(f"marshall buffer ends inside record {i}")
        _length, _reqid, keylen, datalen = rec(buf, off)
        k0 = off + 16
        v0 = k0 + keylen
        end = v0 + datalen
        if end > n:
            raise BadBuffer(f"record {i} runs past the end of the buffer")
        yield buf[k0:v0], buf[v0:end]
        off = end


def unpack(buf: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    """(db_id, [(key, raw value)]); :class:`BadBuffer` (a ValueError) on a malformed
    buffer."""
    records_ = list(records(buf))  # checks the header before db_id is read
    return _HEAD.unpack_from(buf)[0], records_


def merge_newest(buf: bytes, merged: dict[bytes, bytes], leader: int) -> int:
    """Recovery's collect step for volatile records, without building the list
    :func:`unpack` would: each record of ``buf`` replaces the copy in ``merged`` unless
    :func:`ctdbcore.db.record.keeps_existing` keeps that one. Returns the number of
    records in ``buf``; :class:`BadBuffer` on a malformed buffer (``merged`` may then
    hold part of it)."""
    return merge_newest_records(records(buf), merged, leader)


def merge_newest_records(recs: Iterable[tuple[bytes, bytes]], merged: dict[bytes, bytes], leader: int) -> int:
    """:func:`merge_newest` for (key, raw value) pairs (the leader's own copy, which
    never goes through a buffer). Returns how many there were."""
    rsn_dm = _RSN_DMASTER.unpack_from
    get = merged.get
    count = 0
    for key, value in recs:
        count += 1
        old = get(key)
        if old is None:
            merged[key] = value
        elif len(value) >= 12:
            if len(old) < 12:  # no header to keep it by
                merged[key] = value
                continue
            rsn_in = rsn_dm(value)[0]
            rsn_old, dmaster_old = rsn_dm(old)
            # keeps_existing, inlined: this runs once per record of every node
            if not (rsn_in < rsn_old or (rsn_in == rsn_old and dmaster_old != leader)):
                merged[key] = value
    return count


def walk(body: bytes, count: int) -> Iterator[tuple[bytes, bytes]]:
    """The ``count`` records of a buffer's body (what follows db_id and count), one by
    one, refusing (ValueError) at the first one 4.17's ``ctdb_rec_data_pull_data``
    refuses: a record that does not fit the rest of the buffer or its own length field.
    A length field below 4 passes there (its size_t arithmetic wraps), so it does here."""
    off = 0
    for i in range(count):
        if len(body) - off < 4:
            raise ValueError(f"record {i} has no length field")
        (length,) = _U32.unpack_from(body, off)
        if length > len(body) - off or 4 <= length < 16:
            raise ValueError(f"record {i} has a bad length {length}")
        if len(body) - off < 16:
            raise ValueError(f"record {i} ends inside its header")
        _length, _reqid, keylen, datalen = _REC.unpack_from(body, off)
        if length >= 16 and (keylen > length - 16 or datalen > length - 16 - keylen):
            raise ValueError(f"record {i} is longer than its length field")
        k0 = off + 16
        end = k0 + keylen + datalen
        if end > len(body):
            raise ValueError(f"record {i} runs past the end of the buffer")
        yield body[k0 : k0 + keylen], body[k0 + keylen : end]
        off = end


def rsn_dmaster(value: bytes) -> tuple[int, int]:
    return _RSN_DMASTER.unpack_from(value)


def with_dmaster(value: bytes, dmaster: int, add_flags: int = 0, rsn_delta: int = 0) -> bytes:
    """The same record claiming another data master (and maybe more flags / RSN)."""
    rsn, _ = _RSN_DMASTER.unpack_from(value)
    (flags,) = _U32.unpack_from(value, 16)
    return (_RSN_DMASTER.pack(rsn + rsn_delta, dmaster) + value[12:16] + _U32.pack(flags | add_flags)
            + value[20:])


def header_fields(value: bytes) -> tuple[int, int, int]:
    """(rsn, dmaster, flags) of a raw record."""
    return _LTDB_FIELDS.unpack_from(value)


def flags_of(value: bytes) -> int:
    return _U32.unpack_from(value, 16)[0]


def with_flags(value: bytes, flags: int, rsn_delta: int = 0) -> bytes:
    rsn, dmaster = _RSN_DMASTER.unpack_from(value)
    return _RSN_DMASTER.pack(rsn + rsn_delta, dmaster) + value[12:16] + _U32.pack(flags) + value[20:]
