"""A client's view of volatile records: the rule for "this node may use the record
now", and the records handed out by fetch_lock and traverse. No I/O beyond the local
tdb file; the async and the blocking databases share these."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import attrs

from ctdbcore.client.errors import DbError
from ctdbcore.db import record
from ctdbcore.protocol.constants import RecordFlags
from ctdbcore.protocol.records import LtdbHeader

if TYPE_CHECKING:
    from ctdbcore.db.tdb import Tdb

HEADER_SIZE = 24
# A record that keeps not arriving is a bug or a live-lock; 4.17 would loop forever.
MAX_MIGRATIONS = 1000
# ltdb header: rsn at 0, dmaster at 8, flags at 16.
DMASTER_FLAGS = struct.Struct("<I4xI")
# A plain int: ``int & IntFlag`` goes through enum's Python code, slow on a hot path.
RO_FLAGS = int(record.RO_FLAGS)


@attrs.define
class Record:
    """One record as a daemon holds it (traverse)."""

    key: bytes
    header: LtdbHeader
    data: bytes


def usable_here(value: bytes | None, pnn: int) -> bool:
    """Whether a record this node's file holds may be read and written here without
    the daemon: this node is its data master and no read-only delegation is in play
    (Samba's dbwrap_ctdb ``db_ctdb_can_use_local_copy``)."""
    if value is None or len(value) < HEADER_SIZE:
        return False
    dmaster, flags = DMASTER_FLAGS.unpack_from(value, 8)
    return dmaster == pnn and not flags & RO_FLAGS


# A node holding a read-only copy, or the data master that handed copies out.
RO_READABLE = int(RecordFlags.RO_HAVE_READONLY | RecordFlags.RO_HAVE_DELEGATIONS)


def readable_here(value: bytes | None, pnn: int) -> bool:
    """Whether a record may be *read* here without the daemon (4.17 ``ctdb_fetch_lock``
    with readonly): this node is its data master, or holds a read-only copy of it."""
    if value is None or len(value) < HEADER_SIZE:
        return False
    dmaster, flags = DMASTER_FLAGS.unpack_from(value, 8)
    return dmaster == pnn or bool(flags & RO_READABLE)


def local_value(tdb: Tdb, key: bytes) -> bytes | None:
    """A persistent record's value as this node's copy has it (None when missing or
    empty): every commit updates every node's copy, so reads need no daemon."""
    got = record.split_value(tdb.fetch(key))
    return got[1] if got and got[1] else None


class HeldRecord:
    """A record held under its chain lock (async fetch_lock); ``data`` is its value
    (b"" when new). Writes go straight to this node's file."""

    __slots__ = ("tdb", "key", "raw_header", "data", "deleted", "readonly")

    def __init__(self, tdb: Tdb, key: bytes, value: bytes, readonly: bool = False) -> None:
        self.tdb = tdb
        self.key = key
        self.raw_header = value[:HEADER_SIZE]
        self.data = value[HEADER_SIZE:]
        self.deleted = False
        # Held for reading only (fetch_lock(readonly=True)): it may be a read-only copy.
        self.readonly = readonly

    @property
    def header(self) -> LtdbHeader:
        return LtdbHeader.unpack(self.raw_header)

    def store(self, data: bytes) -> None:
        if self.readonly:
            raise DbError("record was fetched read-only")
        # Like Samba, the header goes back as read: the daemon counts RSNs on migration.
        self.tdb.store(self.key, self.raw_header + data)
        self.data = data
        self.deleted = False

    def delete(self) -> None:
        """Empty the record; the daemon is asked to delete it once it is unlocked."""
        self.store(b"")
        self.deleted = True
