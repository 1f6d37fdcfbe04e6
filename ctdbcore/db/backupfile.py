"""4.17's database backup file (``ctdb backupdb`` / ``restoredb`` / ``dumpdbbackup``).

Layout, as 4.17's tools/ctdb.c writes it on x86_64 (its ``struct db_header`` is made of
``unsigned long`` and ``time_t`` fields, so the file is only portable between 64-bit
little-endian machines, which is what Debian's tool reads):

* header, 104 bytes: version (u64, 3), timestamp (i64), database flags (u64), number of
  record buffers (u64), number of records (u64), name (64 bytes, NUL padded, at most 63
  used);
* then each record buffer: db_id (u32), count (u32), body length (u64 = size_t), body
  (4.17's ``ctdb_rec_buffer`` records: raw tdb values, 24-byte ltdb header included).

Errors carry the errno 4.17's tool exits with.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import attrs

from ctdbcore.db import marshall

VERSION = 3
NAME_SIZE = 64
MAX_REC_BUFFER_SIZE = 100 * 1000  # 4.17 writes a buffer out once it reaches this size
# talloc refuses allocations of this size or more (MAX_TALLOC_SIZE): 4.17 reports ENOMEM.
TALLOC_LIMIT = 0x10000000
# 4.17's ctdb_rec_buffer_read returns a stale errno on a short read; Debian's build exits
# with ENOENT (2) there every time, left over from its start-up.
SHORT_READ = errno.ENOENT

_HEADER = struct.Struct("<QqQQQ64s")
_BUF_HEAD = struct.Struct("<IIQ")  # db_id, count, body length
HEADER_SIZE = _HEADER.size


class BackupError(Exception):
    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code = code


@attrs.frozen
class Header:
    version: int
    timestamp: int
    flags: int
    nbuf: int
    nrec: int
    name: bytes

    def pack(self) -> bytes:
        # strncpy(name, db_name, 63) into a zeroed header
        return _HEADER.pack(self.version, self.timestamp, self.flags, self.nbuf, self.nrec,
                            self.name[: NAME_SIZE - 1])

    @classmethod
    def unpack(cls, raw: bytes) -> Header:
        """A header from what one read returned; 4.17 reads short files into an
        uninitialised header, we read the missing bytes as zeros."""
        version, timestamp, flags, nbuf, nrec, name = _HEADER.unpack(raw[:HEADER_SIZE].ljust(HEADER_SIZE, b"\0"))
        return cls(version, timestamp, flags, nbuf, nrec, name[: NAME_SIZE - 1].split(b"\0", 1)[0])


EMPTY_HEADER = bytes(HEADER_SIZE)


@attrs.frozen
class RecBuffer:
    db_id: int
    count: int
    body: bytes

    def message(self) -> bytes:
        """The buffer as a push message carries it (4.17 ``ctdb_rec_buffer_push``)."""
        return struct.pack("<II", self.db_id, self.count) + self.body

    def records(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, raw value) pairs; BackupError(EMSGSIZE) at the first malformed one."""
        try:
            yield from marshall.walk(self.body, self.count)
        except ValueError as e:
            raise BackupError(errno.EMSGSIZE, str(e)) from None


@attrs.frozen
class Chunk:
    """One record buffer as written to the file."""

    count: int
    data: bytes

    @property
    def full(self) -> bool:
        """Written when it filled up (4.17 does that inside its traverse), not at the end."""
        return len(self.data) - 8 >= MAX_REC_BUFFER_SIZE


def chunks(db_id: int, records: Iterable[tuple[bytes, bytes]]) -> Iterator[Chunk]:
    """The file's record buffers for these (key, raw value) records: 4.17 starts a new
    buffer once db_id + count + body reach MAX_REC_BUFFER_SIZE bytes, and writes none
    for an empty database."""
    for buf in marshall.pack_limited(db_id, records, limit=MAX_REC_BUFFER_SIZE - 8):
        buf_db_id, count = struct.unpack_from("<II", buf)
        if count:
            yield Chunk(count, _BUF_HEAD.pack(buf_db_id, count, len(buf) - 8) + buf[8:])


def _remaining(f: BinaryIO) -> int | None:
    try:
        return os.fstat(f.fileno()).st_size - f.tell()
    except (OSError, AttributeError, ValueError):
        return None  # not a plain file: just read


def read_buffer(f: BinaryIO) -> RecBuffer:
    """The next record buffer (4.17 ``ctdb_rec_buffer_read``)."""
    try:
        head = f.read(_BUF_HEAD.size)
    except OSError as e:
        raise BackupError(e.errno or errno.EIO, str(e)) from None
    if len(head) != _BUF_HEAD.size:
        raise BackupError(SHORT_READ, "file ends inside a record buffer header")
    db_id, count, size = _BUF_HEAD.unpack(head)
    if size >= TALLOC_LIMIT:
        raise BackupError(errno.ENOMEM, f"record buffer of {size} bytes")
    remaining = _remaining(f)
    if remaining is not None and remaining < size:
        raise BackupError(SHORT_READ, f"file ends inside a record buffer of {size} bytes")
    try:
        body = f.read(size)
    except OSError as e:
        raise BackupError(e.errno or errno.EIO, str(e)) from None
    if len(body) != size:
        raise BackupError(SHORT_READ, f"file ends inside a record buffer of {size} bytes")
    return RecBuffer(db_id, count, body)
