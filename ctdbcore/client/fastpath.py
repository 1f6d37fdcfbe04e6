"""The blocking client's fetch_lock: a record this node is data master of is locked,
read, written and unlocked in the caller's thread, straight through libtdb
(:mod:`ctdbcore.db.tdbfast`), with no daemon traffic and no hop to the portal thread.

Only when the chain is busy (another process holds it) or the record is held by
another node does it go through the portal: a lock helper waits for the chain, or the
async client migrates the record here (REQ_CALL); then it looks again.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from ctdbcore.client.errors import DbError
from ctdbcore.client.records import (
    DMASTER_FLAGS,
    HEADER_SIZE,
    MAX_MIGRATIONS,
    RO_FLAGS,
    RO_READABLE,
    readable_here,
    usable_here,
)
from ctdbcore.db import tdbfast
from ctdbcore.db.tdb import TDB_REPLACE
from ctdbcore.protocol.records import LtdbHeader

if TYPE_CHECKING:
    from ctdbcore.client.db import ClientDb

# Module globals, not attribute chains: every lookup counts on this path.
_Datum = tdbfast.Datum
_chainlock_nonblock = tdbfast.chainlock_nonblock
_chainunlock = tdbfast.chainunlock
_fetch = tdbfast.fetch_datum
_store = tdbfast.store_datum
_string_at = tdbfast.string_at
_free = tdbfast.free
_dmaster_flags = DMASTER_FLAGS.unpack_from


class LockedRecord:
    """A record held under its chain lock (``with db.fetch_lock(key) as rec``);
    ``data`` is its value (b"" when new), ``header`` its ltdb header.

    Entering takes the lock; a record held by another node is migrated here first.
    Reads and writes inside the block are local; leaving unlocks."""

    __slots__ = ("db", "key", "data", "deleted", "readonly", "_raw_header", "_datum", "_handle", "_helper")

    def __init__(self, db: ClientDb, key: bytes, readonly: bool = False) -> None:
        self.db = db
        self.key = key
        self.deleted = False
        # Held for reading only: a read-only copy will do (and cannot be written).
        self.readonly = readonly
        self._helper: AbstractContextManager[None] | None = None

    def __enter__(self) -> LockedRecord:
        # The common case, inlined: one try of the lock, one fetch, this node holds it.
        db = self.db
        h = self._handle = db._handle  # 0 once the database is closed
        key = self.key
        datum = self._datum = _Datum(key, len(key))
        if h and not _chainlock_nonblock(h, datum):
            d = _fetch(h, datum)
            p = d.dptr
            if p:
                value = _string_at(p, d.dsize)
                _free(p)
                # records.usable_here / readable_here, inlined: the hot path
                if len(value) >= HEADER_SIZE:
                    dmaster, flags = _dmaster_flags(value, 8)
                    if (dmaster == db._pnn and not flags & RO_FLAGS) or (
                            self.readonly and (dmaster == db._pnn or flags & RO_READABLE)):
                        self._raw_header = value[:HEADER_SIZE]
                        self.data = value[HEADER_SIZE:]
                        return self
            # Held by another node (or missing): have it migrated, then look again.
            _chainunlock(h, datum)
            return self._enter_slowly(migrate_first=True)
        return self._enter_slowly(migrate_first=False)

    def _enter_slowly(self, *, migrate_first: bool) -> LockedRecord:
        """Every case: busy chains, records held elsewhere, errors."""
        db = self.db
        h, datum = self._handle, self._datum
        if not h:
            raise DbError(f"database {db.name} is closed")
        if migrate_first:
            db._migrate(self.key, self.readonly)
        for _ in range(MAX_MIGRATIONS):
            if _chainlock_nonblock(h, datum):
                if not tdbfast.busy(h):
                    tdbfast.raise_error(db.tdb, "chainlock_nonblock")
                self._helper = db._hold_by_helper(self.key)
            value = tdbfast.fetch(h, datum)
            if value is None and not tdbfast.missing(h):
                error = tdbfast.error(db.tdb, "fetch")  # before the unlock resets it
                self._unlock()
                raise error
            if usable_here(value, db._pnn) or (self.readonly and readable_here(value, db._pnn)):
                self._raw_header = value[:HEADER_SIZE]
                self.data = value[HEADER_SIZE:]
                return self
            self._unlock()
            db._migrate(self.key, self.readonly)
        raise DbError(f"record {self.key!r} did not arrive after {MAX_MIGRATIONS} migrations")

    def _unlock(self) -> None:
        helper = self._helper
        if helper is None:
            if _chainunlock(self._handle, self._datum):
                tdbfast.raise_error(self.db.tdb, "chainunlock")
        else:
            # Unmarked in the loop, then the helper lets go.
            self._helper = None
            helper.__exit__(None, None, None)

    def __exit__(self, *exc: object) -> None:
        if self._helper is None:
            if _chainunlock(self._handle, self._datum):
                tdbfast.raise_error(self.db.tdb, "chainunlock")
        else:
            self._unlock()
        if self.deleted:
            # After the unlock, as 4.17: the daemon takes the chain lock itself.
            self.db._deleted(self.header, self.key)

    @property
    def header(self) -> LtdbHeader:
        return LtdbHeader.unpack(self._raw_header)

    def store(self, data: bytes) -> None:
        """Write ``data`` under the header as read: the daemon counts RSNs on
        migration, as Samba does."""
        if self.readonly:
            raise DbError("record was fetched read-only")
        value = self._raw_header + data
        if _store(self._handle, self._datum, _Datum(value, len(value)), TDB_REPLACE):
            tdbfast.raise_error(self.db.tdb, "store")
        self.data = data
        self.deleted = False

    def delete(self) -> None:
        """Empty the record; the daemon is asked to delete it once it is unlocked."""
        self.store(b"")
        self.deleted = True
