"""Databases from an async client's side (4.17 client/client_db.c, Samba's dbwrap_ctdb).

A client opens the very TDB file its daemon uses: records this node is data master of
are read and written locally under the chain lock, with no message to the daemon; for
any other record the client asks the daemon to migrate it here (REQ_CALL) and looks
again. A chain lock another process holds is waited for by a lock helper process, so
the event loop never blocks. Persistent databases are changed only in cluster-wide
transactions: a g_lock on ``g_lock.tdb`` serialises writers, and TRANS3_COMMIT applies
the batch on every node.

Use::

    db = await c.attach("test.tdb")
    async with db.fetch_lock(b"key") as rec:
        rec.store(rec.data + b"!")
    pdb = await c.attach("conf.tdb", persistent=True)
    async with pdb.transaction() as t:
        t.store(b"k", b"v")
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Iterator

from ctdbcore.client.aio import AsyncClient
from ctdbcore.client.dbfiles import close_shared, open_shared
from ctdbcore.client.errors import DEFAULT_TIMEOUT, DbError
from ctdbcore.client.glock import GLock
from ctdbcore.client.inbox import shielded
from ctdbcore.client.records import MAX_MIGRATIONS, HeldRecord, Record, local_value, readable_here, usable_here
from ctdbcore.client.transaction import Transaction
from ctdbcore.db import record
from ctdbcore.db.tdb import TdbBusy
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import CTRL_FLAG_NOREPLY, IMMEDIATE_MIGRATION, WANT_READONLY, DbFlags, Opcode
from ctdbcore.protocol.records import KeyData, LtdbHeader, RecData

# ctdb_rec_data: length, reqid, keylen, datalen.
_LENGTHS = struct.Struct("<II")
# A whole traverse waits here while a slow reader goes through it (4.17 keeps sending).
_TRAVERSE_BUFFER = float("inf")


def attach_kind(persistent: bool, replicated: bool) -> tuple[int, int]:
    """The attach control and database flags for a kind of database."""
    if persistent:
        return Opcode.DB_ATTACH_PERSISTENT, int(DbFlags.PERSISTENT)
    if replicated:
        return Opcode.DB_ATTACH_REPLICATED, int(DbFlags.REPLICATED)
    return Opcode.DB_ATTACH, 0


async def attach(c: AsyncClient, name: str, *, persistent: bool = False, replicated: bool = False) -> AsyncClientDb:
    """Attach ``name`` on the local daemon (creating it cluster-wide if new) and open
    its file. Raises :class:`ControlError` (refused) or :class:`DbError`."""
    opcode, flags = attach_kind(persistent, replicated)
    r = await c.checked(opcode, name.encode() + b"\0")
    if len(r.data) != 4:
        raise DbError(f"attach of {name}: reply of {len(r.data)} bytes")
    db_id = T.unpack_u32(r.data)
    path = (await c.checked(Opcode.GETDBPATH, T.pack_u32(db_id))).data.rstrip(b"\0").decode()
    tdb_flags = T.unpack_i32((await c.checked(Opcode.DB_OPEN_FLAGS, T.pack_u32(db_id))).data)
    return AsyncClientDb(c, db_id, name, flags, path, tdb_flags)


class AsyncClientDb:
    """An attached database: its id, name, flags and this node's open file."""

    def __init__(self, c: AsyncClient, db_id: int, name: str, flags: int, path: str, tdb_flags: int) -> None:
        self.c = c
        self.db_id = db_id
        self.name = name
        self.flags = flags
        self.path = path
        self.tdb = open_shared(path, tdb_flags)
        self.closed = False

    @property
    def persistent(self) -> bool:
        return bool(self.flags & DbFlags.PERSISTENT)

    def close(self) -> None:
        """Let go of the file (the database stays attached to the daemon)."""
        if not self.closed:
            self.closed = True
            close_shared(self.path)

    async def __aenter__(self) -> AsyncClientDb:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- volatile records --------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def fetch_lock(self, key: bytes, *, readonly: bool = False,
                         timeout: float | None = None) -> AsyncIterator[HeldRecord]:
        """Hold ``key`` locked in this node's copy, migrating it here first if this node
        is not its data master. Reads and writes inside the block are local. A lock
        another process holds is waited for up to ``timeout`` s (TimeoutError).
        Do not await other work on the same database inside the block.

        ``readonly=True`` (4.17 ``ctdb_fetch_lock(..., readonly)``): the record is only
        read, so a read-only copy will do. On a database with the READONLY flag on this
        node and on the data master's, the data master hands this node a copy instead of
        the record, and later reads here use the copy with no daemon traffic until a
        writer somewhere revokes it. Elsewhere it is an ordinary migration."""
        if self.persistent:
            raise DbError("persistent databases are changed in transactions")
        usable = readable_here if readonly else usable_here
        flags = IMMEDIATE_MIGRATION | (WANT_READONLY if readonly else 0)
        for _ in range(MAX_MIGRATIONS):
            async with self._chain_locked(key, timeout):
                value = self.tdb.fetch(key)
                if usable(value, self.c.pnn):
                    assert value is not None
                    rec = HeldRecord(self.tdb, key, value, readonly)
                    yield rec
                    break
            await self.c.call(self.db_id, key, flags=flags)
        else:
            raise DbError(f"record {key!r} did not arrive after {MAX_MIGRATIONS} migrations")
        if rec.deleted:
            # After the unlock, as 4.17: the daemon takes the chain lock itself.
            await self.schedule_for_deletion(rec.header, key)

    @contextlib.asynccontextmanager
    async def _chain_locked(self, key: bytes, timeout: float | None) -> AsyncIterator[None]:
        """``key``'s chain lock for the block: taken at once when free, else by a lock
        helper (:func:`ctdbcore.db.locking.record_lock`'s two ways)."""
        try:
            self.tdb.chainlock_nonblock(key)
        except TdbBusy:
            async with self.helper_locked(key, timeout):
                yield
            return
        try:
            yield
        finally:
            self.tdb.chainunlock(key)

    @contextlib.asynccontextmanager
    async def helper_locked(self, key: bytes, timeout: float | None = None) -> AsyncIterator[None]:
        """A lock helper holds ``key``'s chain lock and this context marks it, for the
        block. The blocking client's way to wait for a busy chain: its own thread then
        reads and writes the record (see :func:`ctdbcore.db.locking.helper_record_lock`)."""
        # Imported here: the helper is driven with anyio, whose import only a busy
        # chain should cost a `ctdb` command.
        from ctdbcore.db.locking import helper_record_lock

        async with helper_record_lock(self.tdb, key, timeout):
            yield

    async def schedule_for_deletion(self, header: LtdbHeader, key: bytes) -> None:
        """Tell the daemon a record was emptied here, so that vacuuming deletes it."""
        await self.c.control(Opcode.SCHEDULE_FOR_DELETION, KeyData(self.db_id, header, key).pack(),
                             srvid=self.db_id, flags=CTRL_FLAG_NOREPLY)

    async def fetch(self, key: bytes, *, readonly: bool = False) -> bytes | None:
        """The record's value (None when missing or empty). A persistent database is
        read from this node's copy, which every commit updates. ``readonly``: a
        read-only copy will do (see :meth:`fetch_lock`)."""
        if self.persistent:
            return local_value(self.tdb, key)
        async with self.fetch_lock(key, readonly=readonly) as rec:
            return rec.data or None

    async def store(self, key: bytes, data: bytes) -> None:
        async with self.fetch_lock(key) as rec:
            rec.store(data)

    async def delete(self, key: bytes) -> None:
        async with self.fetch_lock(key) as rec:
            rec.delete()

    # -- traverse ----------------------------------------------------------------------

    async def traverse_batches(self, *, with_empty: bool = False,
                               timeout: float | None = DEFAULT_TIMEOUT) -> AsyncIterator[list[Record]]:
        """Every record of the cluster once, in batches of what has arrived so far.
        Raises :class:`DbError` when nothing arrives for ``timeout`` s."""
        c = self.c
        wait = c.timeout if timeout == DEFAULT_TIMEOUT else timeout
        srvid = c.next_srvid()
        await c.register_srvid(srvid, buffer=_TRAVERSE_BUFFER)
        try:
            start = T.TraverseStartExt(db_id=self.db_id, reqid=0, srvid=srvid, withemptyrecords=with_empty)
            await c.checked(Opcode.TRAVERSE_START_EXT, start.pack())
            while True:
                first = await c.receive(srvid, wait)
                if first is None:
                    raise DbError("traverse timed out")
                batch = []
                for data in (first, *c.receive_waiting(srvid)):
                    if _LENGTHS.unpack_from(data, 8) == (0, 0):  # the end marker: no key, no data
                        if batch:
                            yield batch
                        return
                    rec = RecData.unpack(data, with_header=True)
                    assert rec.header is not None
                    batch.append(Record(rec.key, rec.header, rec.data))
                yield batch
        finally:
            await c.deregister_quietly(srvid)

    async def traverse(self, *, with_empty: bool = False,
                       timeout: float | None = DEFAULT_TIMEOUT) -> AsyncIterator[Record]:
        """Every record of the cluster once, as the daemons hold them."""
        batches = self.traverse_batches(with_empty=with_empty, timeout=timeout)
        try:
            async for batch in batches:
                for rec in batch:
                    yield rec
        finally:
            await batches.aclose()

    def traverse_local(self) -> Iterator[Record]:
        """This node's copy, straight from the file (4.17 ``cattdb``)."""
        for key, value in self.tdb.traverse():
            got = record.split_value(value)
            if got is not None:
                yield Record(key, got[0], got[1])

    # -- persistent transactions -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self, timeout: float = 60.0) -> AsyncIterator[Transaction]:
        """A cluster-wide transaction: the writes made in the block are committed on
        every node when it ends (nothing is written if it raises). Waits up to
        ``timeout`` s for other writers' g_lock."""
        if not self.flags & (DbFlags.PERSISTENT | DbFlags.REPLICATED):
            raise DbError("transactions are for persistent and replicated databases")
        c = self.c
        if c.glock_db is None:
            c.glock_db = await attach(c, "g_lock.tdb")
        glock = GLock(c, c.glock_db, f"transaction_db_0x{self.db_id:08x}".encode() + b"\0")
        await glock.lock(timeout)
        try:
            t = Transaction(self.tdb, self.db_id)
            yield t
            await self._commit(t)
        finally:
            await shielded(glock.unlock())

    async def _commit(self, t: Transaction) -> None:
        plan = t.commit_buffer(self.c.pnn)
        if plan is None:
            return
        buf, seq = plan
        while True:
            r = await self.c.control(Opcode.TRANS3_COMMIT, buf, srvid=self.db_id, timeout=120)
            if r.status == 0:
                return
            # 4.17's rule: the local seqnum tells whether a recovery finished the job.
            now = t.seqnum()
            if now == seq + 1:
                return
            if now != seq:
                raise DbError(f"transaction on {self.name} lost: seqnum {now}, expected {seq} or {seq + 1}")
            await asyncio.sleep(0.1)
