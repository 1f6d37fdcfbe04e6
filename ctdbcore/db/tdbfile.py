"""Every live record of a quiet TDB file, read straight from the file.

Recovery pulls every record of every database from every node while the database is
frozen: the lock helper holds the whole-database lock, nobody writes, and the file on
disk is exactly what libtdb would show. A libtdb traverse calls back into Python once
per record (two TDB_DATA structs built by ctypes each time), which costs several
microseconds a record; walking the file's records in order costs well under one.

The format (Samba's lib/tdb/common/tdb_private.h, mutex.c): with TDB_MUTEX_LOCKING the
file starts with the mutex area (``mutex_size`` bytes, beginning with a copy of the
header) and every offset is relative to the end of it. Then the 168-byte header, the
free-list head and ``hash_size`` chain heads (4 bytes each), then records one after
the other: a 24-byte header (next, rec_len, key_len, data_len, full_hash, magic) and
``rec_len`` bytes. Live records carry TDB_MAGIC; free, dead and transaction-recovery
areas carry other magics and are skipped.

Anything unexpected (another byte order, a bad length, an unknown magic) returns None:
the caller then asks libtdb instead. Only for files nobody is writing.
"""

from __future__ import annotations

import os
import struct

TDB_VERSION = 0x26011967 + 6
TDB_MAGIC = 0x26011999
TDB_FREE_MAGIC = ~TDB_MAGIC & 0xFFFFFFFF
TDB_DEAD_MAGIC = 0xFEE1DEAD
TDB_RECOVERY_MAGIC = 0xF53BC0E7
TDB_RECOVERY_INVALID_MAGIC = 0
TDB_FEATURE_FLAG_MUTEX = 0x00000001
_SKIPPED = frozenset((TDB_FREE_MAGIC, TDB_DEAD_MAGIC, TDB_RECOVERY_MAGIC, TDB_RECOVERY_INVALID_MAGIC))

_MAGIC_FOOD = b"TDB file\n\0"
# version, hash_size, rwlocks, recovery_start, sequence_number, magic1, magic2,
# feature_flags, mutex_size
_HEADER = struct.Struct("<9I")
_HEADER_SIZE = 32 + 9 * 4 + 25 * 4
_RECORD = struct.Struct("<6I")


def read(fd: int) -> bytes:
    """The whole file, through the caller's own descriptor of it, never a new one:
    closing any descriptor of a file drops every fcntl lock the process holds on it,
    libtdb's included."""
    size = os.fstat(fd).st_size
    # One read of the whole size: reading in chunks and joining them costs twice as much.
    chunks = [os.pread(fd, size, 0)]
    off = len(chunks[0])
    while off < size:  # a read is cut at 2 GiB
        chunk = os.pread(fd, size - off, off)
        if not chunk:
            break
        chunks.append(chunk)
        off += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def live_records(fd: int) -> list[tuple[bytes, bytes]] | None:
    """(key, value) of every live record of the TDB open on ``fd``, in file order; None
    when the file is not one this reader is sure of."""
    return parse(read(fd))


def parse(buf: bytes) -> list[tuple[bytes, bytes]] | None:
    spans = live_spans(buf)
    if spans is None:
        return None
    return [(buf[body:body + klen], buf[body + klen:body + klen + dlen]) for body, klen, dlen in spans]


def live_spans(buf: bytes) -> list[tuple[int, int, int]] | None:
    """(offset, key length, value length) of every live record of a TDB file's bytes,
    in file order; the value follows the key. None when the file is not one this
    reader is sure of.

    Spans rather than copies: recovery's pull packs key and value as they lie in the
    file, one slice per record."""
    base = 0
    if len(buf) < _HEADER_SIZE or not buf.startswith(_MAGIC_FOOD):
        return None
    version, hash_size, _, _, _, _, _, features, mutex_size = _HEADER.unpack_from(buf, 32)
    if version != TDB_VERSION or hash_size == 0:
        return None
    if features & TDB_FEATURE_FLAG_MUTEX:
        base = mutex_size
        if len(buf) < base + _HEADER_SIZE or buf[base:base + len(_MAGIC_FOOD)] != _MAGIC_FOOD:
            return None
        version, hash_size = _HEADER.unpack_from(buf, base + 32)[:2]
        if version != TDB_VERSION:
            return None
    end = len(buf)
    off = base + _HEADER_SIZE + 4 * (hash_size + 1)
    out: list[tuple[int, int, int]] = []
    append = out.append
    unpack = _RECORD.unpack_from
    while off + 24 <= end:
        _, rec_len, key_len, data_len, _, magic = unpack(buf, off)
        body = off + 24
        nxt = body + rec_len
        if nxt > end:
            return None
        if magic == TDB_MAGIC:
            if key_len + data_len > rec_len:
                return None
            append((body, key_len, data_len))
        elif magic not in _SKIPPED:
            return None
        off = nxt
    # Records cover the file to its end (an expansion adds a free record).
    return out if off == end else None
