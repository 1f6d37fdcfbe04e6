"""Databases from a blocking client's side (4.17 client/client_db.c, Samba's dbwrap_ctdb):
a facade over :mod:`ctdbcore.client.aiodb`, plus the node-local fast path.

A client opens the very TDB file its daemon uses. A record this node is data master
of is read and written in the caller's thread under its chain lock, with no message to
the daemon and no hop to the portal thread (:mod:`ctdbcore.client.fastpath`), and so
is reading a persistent record. Everything else -- attach, migrating a record here
(REQ_CALL), waiting for a chain lock another process holds (a lock helper),
traverse, persistent transactions with ctdb's g_lock -- is the async client's,
awaited through the client's portal.

Use::

    with Client() as c:
        db = attach(c, "test.tdb")
        with db.fetch_lock(b"key") as rec:
            rec.store(rec.data + b"!")
        pdb = attach(c, "conf.tdb", persistent=True)
        with pdb.transaction() as t:
            t.store(b"k", b"v")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from ctdbcore.client.errors import DEFAULT_TIMEOUT, ControlError, ControlTimeout, DbError
from ctdbcore.client.records import Record, local_value
from ctdbcore.client.sync import Client
from ctdbcore.client.transaction import Transaction
from ctdbcore.protocol.constants import IMMEDIATE_MIGRATION, NULL_FUNC, WANT_READONLY, DbFlags
from ctdbcore.protocol.records import LtdbHeader

if TYPE_CHECKING:
    from ctdbcore.client.aiodb import AsyncClientDb
    from ctdbcore.client.fastpath import LockedRecord
    from ctdbcore.client.glock import GLock as AsyncGLock

__all__ = [
    "ClientDb",
    "ControlError",
    "ControlTimeout",
    "DbError",
    "GLock",
    "LockedRecord",
    "Record",
    "Transaction",
    "attach",
    "attach_kind",
    "call",
]

# The database modules load libtdb; they are imported on first attach so that a CLI
# command that touches no database does not pay for them at start-up.


def __getattr__(name: str) -> object:
    if name == "LockedRecord":
        from ctdbcore.client.fastpath import LockedRecord

        return LockedRecord
    raise AttributeError(name)


def attach(c: Client, name: str, *, persistent: bool = False, replicated: bool = False) -> ClientDb:
    """Attach ``name`` on the local daemon (creating it cluster-wide if new) and open its file."""
    from ctdbcore.client import aiodb

    return ClientDb(c, c._run(aiodb.attach, c.aio, name, persistent=persistent, replicated=replicated))


def attach_kind(persistent: bool, replicated: bool) -> tuple[int, int]:
    """The attach control and database flags for a kind of database."""
    from ctdbcore.client import aiodb

    return aiodb.attach_kind(persistent, replicated)


def call(c: Client, db_id: int, key: bytes, *, callid: int = NULL_FUNC, flags: int = IMMEDIATE_MIGRATION,
         calldata: bytes = b"", timeout: float | None = None) -> bytes:
    """One REQ_CALL to the local daemon; the REPLY_CALL's data."""
    return c._run(c.aio.call, db_id, key, callid=callid, flags=flags, calldata=calldata,
                  timeout=DEFAULT_TIMEOUT if timeout is None else timeout)


class ClientDb:
    """An attached database (blocking). ``tdb`` is this node's open file.

    libtdb contexts are not thread-safe and a process has one per file, shared by
    every client: use a database's records from one thread at a time."""

    def __init__(self, c: Client, adb: AsyncClientDb) -> None:
        from ctdbcore.client.fastpath import LockedRecord

        self.c = c
        self.adb = adb
        self.db_id = adb.db_id
        self.name = adb.name
        self.flags = adb.flags
        self.path = adb.path
        self.tdb = adb.tdb
        # What the fast path reads on every record: the libtdb context (0 once closed)
        # and this node's pnn.
        self._handle = adb.tdb.handle
        self._pnn = c.pnn
        self._persistent = bool(adb.flags & DbFlags.PERSISTENT)
        self._locked_record = LockedRecord

    @property
    def persistent(self) -> bool:
        return self._persistent

    def close(self) -> None:
        """Let go of the file (the database stays attached to the daemon). Idempotent."""
        self._handle = 0
        self.adb.close()

    def __enter__(self) -> ClientDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- volatile records --------------------------------------------------------------

    def fetch_lock(self, key: bytes, *, readonly: bool = False) -> LockedRecord:
        """Hold ``key`` locked in this node's copy (``with db.fetch_lock(k) as rec:``),
        migrating it here first if this node is not its data master. Reads and writes
        inside the block are local. ``readonly=True``: only reads, and a read-only copy
        will do (see :meth:`AsyncClientDb.fetch_lock`)."""
        if self._persistent:
            raise DbError("persistent databases are changed in transactions")
        return self._locked_record(self, key, readonly) if readonly else self._locked_record(self, key)

    def fetch(self, key: bytes, *, readonly: bool = False) -> bytes | None:
        """The record's value (None when missing or empty). A persistent database is
        read from this node's copy, in the caller's thread. ``readonly``: a read-only
        copy will do."""
        if self._persistent:
            return local_value(self.tdb, key)
        with self.fetch_lock(key, readonly=readonly) as rec:
            return rec.data or None

    def store(self, key: bytes, data: bytes) -> None:
        with self.fetch_lock(key) as rec:
            rec.store(data)

    def delete(self, key: bytes) -> None:
        with self.fetch_lock(key) as rec:
            rec.delete()

    # the slow paths of LockedRecord, through the portal

    def _hold_by_helper(self, key: bytes) -> AbstractContextManager[None]:
        """Wait until a lock helper holds ``key``'s busy chain and this context has it
        marked; leaving the returned context lets go."""
        if self.c._closed:
            raise DbError("client is closed")
        held = self.c.portal.wrap(self.adb.helper_locked(key))
        held.__enter__()
        return held

    def _migrate(self, key: bytes, readonly: bool = False) -> None:
        flags = IMMEDIATE_MIGRATION | (WANT_READONLY if readonly else 0)
        self.c._run(self.adb.c.call, self.db_id, key, flags=flags)

    def _deleted(self, header: LtdbHeader, key: bytes) -> None:
        self.c._run(self.adb.schedule_for_deletion, header, key)

    # -- traverse ----------------------------------------------------------------------

    def traverse(self, *, with_empty: bool = False, timeout: float | None = None) -> Iterator[Record]:
        """Every record in the cluster once, as the daemons hold them. Raises
        :class:`DbError` when nothing arrives for ``timeout`` s (the client's timeout)."""
        run = self.c._run
        batches = self.adb.traverse_batches(with_empty=with_empty,
                                            timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
        try:
            while True:
                try:
                    batch = run(batches.__anext__)
                except StopAsyncIteration:
                    return
                yield from batch
        finally:
            if not self.c._closed:
                run(batches.aclose)

    def traverse_local(self) -> Iterator[Record]:
        """This node's copy, straight from the file (4.17 ``cattdb``)."""
        return self.adb.traverse_local()

    # -- persistent transactions -------------------------------------------------------

    def transaction(self, timeout: float = 60.0) -> AbstractContextManager[Transaction]:
        """``with db.transaction() as t:`` -- the writes made in the block are committed
        on every node when it ends (nothing is written if it raises). Waits up to
        ``timeout`` s for other writers."""
        if self.c._closed:
            raise DbError("client is closed")
        return self.c.portal.wrap(self.adb.transaction(timeout))


class GLock:
    """ctdb's g_lock (see :mod:`ctdbcore.client.glock`), blocking: a write lock on
    ``key`` in ``g_lock.tdb``."""

    def __init__(self, c: Client, key: bytes) -> None:
        from ctdbcore.client.glock import GLock as AsyncGLock

        self.c = c
        self.key = key
        self.db = attach(c, "g_lock.tdb")
        self._glock: AsyncGLock = AsyncGLock(c.aio, self.db.adb, key)
        self.me = self._glock.me

    def lock(self, timeout: float) -> None:
        """Take the lock, waiting up to ``timeout`` s (DbError after that)."""
        self.c._run(self._glock.lock, timeout)

    def unlock(self) -> None:
        try:
            self.c._run(self._glock.unlock)
        finally:
            self.db.close()
