"""This node's side of the databases: attach, freeze for recovery, the recovery
transaction, pull and push, cluster-wide traverse, persistent commits.

The leader drives recovery (:mod:`ctdbcore.daemon.dbrecovery`); every node, leader
included, answers the same controls here, as 4.17's daemons do.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import struct
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import attrs

from ctdbcore.daemon.calls import Calls
from ctdbcore.db import bulk, marshall, record, tdbfast
from ctdbcore.db.database import Database
from ctdbcore.db.locking import freeze_lock, record_lock
from ctdbcore.db.registry import AttachError, Databases
from ctdbcore.db.tdb import TDB_REPLACE, TdbFlags
from ctdbcore.protocol import packets as P
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import INACTIVE, INVALID_GENERATION, Opcode, RecMode
from ctdbcore.protocol.records import RecData

if TYPE_CHECKING:
    from ctdbcore.daemon.clients import ClientConn
    from ctdbcore.daemon.node import Daemon

log = logging.getLogger("ctdb")
_RSN = struct.Struct("<Q")
_U64 = ctypes.c_uint64  # a record's RSN, read in place in libtdb's copy
NOTICE = 25

@attrs.define(eq=False)
class Freeze:
    thaw: anyio.Event = attrs.Factory(anyio.Event)
    held: anyio.Event = attrs.Factory(anyio.Event)
    failed: str = ""


@attrs.define(eq=False)
class Push:
    srvid: int
    count: int = 0
    failed: bool = False  # a bad record: later buffers are ignored, as 4.17 does


@attrs.define(eq=False)
class Traverse:
    """A cluster-wide traverse a local client asked for."""

    client: ClientConn
    srvid: int
    client_reqid: int
    waiting: set[int]
    with_empty: bool
    done: anyio.Event = attrs.Factory(anyio.Event)


class DbService:
    def __init__(self, daemon: Daemon, registry: Databases) -> None:
        self.d = daemon
        self.registry = registry
        self.calls = Calls(daemon)
        self._freezes: dict[int, Freeze] = {}
        self._pushes: dict[int, Push] = {}  # db_id -> push in progress
        self._push_srvids: dict[int, int] = {}  # srvid -> db_id
        self._traverse_ids = itertools.count(1)
        self._traverses: dict[int, Traverse] = {}
        self._commits: dict[int, anyio.Event] = {}  # db_id -> trans3 commit in flight
        self._commit_results: dict[int, int] = {}

    def get(self, db_id: int) -> Database | None:
        return self.registry.get(db_id)

    # -- attach ------------------------------------------------------------------------

    def attach(self, name: str, flags: int, *, from_client: bool) -> tuple[int, bytes, bytes]:
        if from_client and self.registry.by_name(name) is None and not self.d.tunables.get("AllowClientDBAttach"):
            return (-1, b"", b"client attach not allowed")
        try:
            db, new = self.registry.attach(name, flags)
        except AttachError as e:
            log.error("Attach of %s failed: %s", name, e)
            return (-1, b"", str(e).encode())
        if new:
            # Current as of now; a recovery that did not see it yet will not match.
            db.generation = self.d.vnnmap.generation
            # The same database must exist everywhere (4.17 broadcasts the attach).
            opcode = (Opcode.DB_ATTACH_PERSISTENT if db.persistent else
                      Opcode.DB_ATTACH_REPLICATED if db.replicated else Opcode.DB_ATTACH)
            for pnn in self.d.connected_pnns():
                self.d.send_control_noreply(pnn, opcode, name.encode() + b"\0")
        return (0, T.pack_u32(db.db_id), b"")

    def detach(self, db_id: int) -> None:
        db = self.registry.detach(db_id)
        if db is not None:
            log.log(NOTICE, "Detached database %s", db.name)

    # -- freeze / thaw -----------------------------------------------------------------

    async def freeze(self, db: Database, timeout: float) -> tuple[int, bytes, bytes]:
        """Hold the whole-database lock (smbd's chainlocks then wait) until thawed."""
        f = self._freezes.get(db.db_id)
        if f is None:
            self.d.vacuumer.stop()
            f = Freeze()
            self._freezes[db.db_id] = f
            self.d.spawn(self._hold_freeze, db, f)
        with anyio.move_on_after(timeout):
            await f.held.wait()
        if not f.held.is_set() or f.failed:
            return (-1, b"", f"freeze of {db.name} failed: {f.failed or 'timeout'}".encode())
        return (0, b"", b"")

    async def _hold_freeze(self, db: Database, f: Freeze) -> None:
        try:
            async with freeze_lock(db.tdb):
                db.frozen = True
                f.held.set()
                await f.thaw.wait()
        except Exception as e:  # the freeze control reports it; the daemon carries on
            f.failed = str(e)
            f.held.set()
            log.error("Freeze of %s failed: %s", db.name, e)
        finally:
            if not f.thaw.is_set():
                db.frozen = False
            if self._freezes.get(db.db_id) is f:
                del self._freezes[db.db_id]

    def thaw(self, db: Database) -> None:
        f = self._freezes.get(db.db_id)
        if f is not None:
            self._thaw(db, f)
        self.calls.resend_db(db.db_id)

    def thaw_all(self) -> None:
        for db_id, f in list(self._freezes.items()):
            db = self.get(db_id)
            if db is not None:
                self._thaw(db, f)
            else:
                f.thaw.set()

    def _thaw(self, db: Database, f: Freeze) -> None:
        if db.txn_id is not None:
            self._cancel_txn(db)
        # Usable at once: until the helper has let go, our own locks simply wait for it.
        db.frozen = False
        f.thaw.set()

    # -- recovery transaction (under the freeze) ---------------------------------------

    def _nolock(self, db: Database, fn) -> None:
        # The freeze lock belongs to the lock helper process and is only marked here;
        # like 4.17, run the transaction calls without libtdb's own locking.
        db.tdb.add_flags(TdbFlags.NOLOCK)
        try:
            fn()
        finally:
            db.tdb.remove_flags(TdbFlags.NOLOCK)

    def txn_start(self, db: Database, tid: int) -> int:
        if not db.frozen:
            log.error("Transaction start on %s, which is not frozen", db.name)
            return -1
        if db.txn_id is not None:
            self._cancel_txn(db)  # a retried recovery starts over
        self._nolock(db, db.tdb.transaction_start)
        db.txn_id = tid
        return 0

    def _cancel_txn(self, db: Database) -> None:
        try:
            self._nolock(db, db.tdb.transaction_cancel)
        finally:
            db.txn_id = None

    def txn_cancel(self, db: Database) -> int:
        if db.txn_id is not None:
            self._cancel_txn(db)
        return 0

    def txn_commit(self, db: Database, tid: int) -> int:
        if db.txn_id is None or db.txn_id != tid:
            log.error("Transaction commit on %s with tid %d, expected %s", db.name, tid, db.txn_id)
            return -1
        try:
            self._nolock(db, db.tdb.transaction_commit)
        finally:
            db.txn_id = None
        db.generation = tid
        return 0

    def wipe(self, db: Database, tid: int) -> int:
        if not db.frozen or db.txn_id != tid:
            log.error("Wipe of %s refused: frozen=%s transaction=%s tid=%d", db.name, db.frozen, db.txn_id, tid)
            return -1
        db.tdb.wipe_all()
        return 0

    # -- pull / push -------------------------------------------------------------------

    # Frozen, so nobody writes: the file is read as it is (ctdbcore.db.bulk, over the
    # format tdbfile knows), much faster than a libtdb traverse; libtdb is asked only
    # when the file looks unfamiliar.

    def traversed_records(self, db: Database) -> list[tuple[bytes, bytes]]:
        """Every record of a frozen copy that has a header, through a libtdb traverse:
        what a pull sends when reading the file directly failed."""
        log.warning("Reading %s directly failed; pulling through a traverse", db.path)
        # Under the freeze the helper holds every lock; reading must not wait for them.
        db.tdb.add_flags(TdbFlags.NOLOCK)
        try:
            return [(k, v) for k, v in db.tdb.traverse() if len(v) >= record.HEADER_SIZE]
        finally:
            db.tdb.remove_flags(TdbFlags.NOLOCK)

    async def pull(self, db: Database, dest: int, srvid: int) -> int:
        """Stream every record of this copy to the leader as messages; reply the count."""
        packed = bulk.pull_pack(db.tdb.fd(), db.db_id)
        if packed is None:
            records = self.traversed_records(db)
            count = len(records)
            buffers = list(marshall.pack_limited(db.db_id, records))
        else:
            count, buffers = packed
        for data in buffers:
            self.d.send_message(dest, srvid, data)
            # A big database must not keep keepalives and other controls waiting.
            await anyio.sleep(0)
        return count

    def push_start(self, db: Database, srvid: int) -> int:
        old = self._pushes.pop(db.db_id, None)
        if old is not None:
            self._push_srvids.pop(old.srvid, None)
        self._pushes[db.db_id] = Push(srvid)
        self._push_srvids[srvid] = db.db_id
        return 0

    def push_message(self, srvid: int, data: bytes) -> bool:
        """Records for a push in progress; True when the srvid was a push's."""
        db_id = self._push_srvids.get(srvid)
        if db_id is None:
            return False
        db = self.get(db_id)
        push = self._pushes.get(db_id)
        if db is None or push is None or push.failed:
            return True  # 4.17 ignores the rest of a push once a buffer was bad
        try:
            push.count += bulk.store_buffer(db.tdb, data, self.d.pnn if db.volatile else None)
        except ValueError as e:
            # 4.17 keeps what it stored but counts none of this buffer: the sender
            # sees a short count at DB_PUSH_CONFIRM.
            log.error("Bad push buffer for %s: %s", db.name, e)
            push.failed = True
        return True

    def push_confirm(self, db: Database) -> tuple[int, bytes, bytes]:
        push = self._pushes.pop(db.db_id, None)
        if push is None:
            return (-1, b"", b"no push in progress")
        self._push_srvids.pop(push.srvid, None)
        if db.volatile:
            self.calls.recovered(db)
        return (0, T.pack_u32(push.count), b"")

    # -- end of recovery ---------------------------------------------------------------

    def recovery_finished(self) -> None:
        self.thaw_all()
        for db_id, ev in list(self._commits.items()):
            self._commit_results[db_id] = 2
            ev.set()
        self.calls.resend_all()

    def check_generation(self) -> str | None:
        """4.17 refuses to leave recovery while a database was not rebuilt by the
        recovery that set the current generation (attached during it, say)."""
        for db in self.registry:
            if db.generation != self.d.vnnmap.generation:
                return f"Inconsistent DB generation {db.generation} for {db.name}"
        return None

    def invalidate_generations(self) -> None:
        for db in self.registry:
            db.generation = INVALID_GENERATION

    # -- cluster-wide traverse ---------------------------------------------------------

    async def traverse_for_client(self, client: ClientConn, db: Database, srvid: int, client_reqid: int,
                                  with_empty: bool) -> None:
        """Ask every active node for its records (a persistent copy is complete on each
        node, so only this one) and forward them to the client, then an end marker."""
        tid = next(self._traverse_ids)
        if db.volatile:
            nodes = [p for p in self.d.vnnmap.map if not self.d.flags.get(p, 0) & INACTIVE]
        else:
            nodes = [self.d.pnn]
        t = Traverse(client=client, srvid=srvid, client_reqid=client_reqid, waiting=set(nodes),
                     with_empty=with_empty)
        self._traverses[tid] = t
        req = T.TraverseAllExt(db_id=db.db_id, reqid=tid, pnn=self.d.pnn, client_reqid=client_reqid,
                               srvid=srvid, withemptyrecords=with_empty).pack()
        for pnn in nodes:
            if pnn == self.d.pnn:
                self.d.spawn(self._traverse_local, db, self.d.pnn, tid, with_empty)
            else:
                self.d.send_control_noreply(pnn, Opcode.TRAVERSE_ALL_EXT, req)
        with anyio.move_on_after(float(self.d.tunables.get("TraverseTimeout"))):
            await t.done.wait()
        self._traverses.pop(tid, None)
        self._to_client(t, RecData(reqid=client_reqid, key=b"", data=b""))

    async def _traverse_local(self, db: Database, dest: int, tid: int, with_empty: bool) -> None:
        """Send this node's share: the records it is dmaster of (each record once in
        the whole cluster), or all of them for a persistent database."""
        sent = 0
        for key, header, data in list(db.records()):
            if db.volatile and header.dmaster != self.d.pnn:
                continue
            if not data and not with_empty:
                continue
            self._traverse_data(dest, RecData(reqid=tid, key=key, data=data, header=header))
            sent += 1
            if sent % 1000 == 0:
                await anyio.sleep(0)  # let keepalives and other clients through
        self._traverse_data(dest, RecData(reqid=tid, key=b"", data=b""))

    def _traverse_data(self, dest: int, rec: RecData) -> None:
        if dest == self.d.pnn:
            self.traverse_data(self.d.pnn, rec)
        else:
            self.d.send_control_noreply(dest, Opcode.TRAVERSE_DATA, rec.pack())

    def traverse_all(self, src: int, req: T.TraverseAllExt) -> int:
        db = self.get(req.db_id)
        if db is None:
            return -1
        self.d.spawn(self._traverse_local, db, req.pnn, req.reqid, req.withemptyrecords)
        return 0

    def traverse_data(self, src: int, rec: RecData) -> None:
        t = self._traverses.get(rec.reqid)
        if t is None:
            return
        if not rec.key and not rec.data:
            t.waiting.discard(src)
            if not t.waiting:
                t.done.set()
            return
        self._to_client(t, attrs.evolve(rec, reqid=t.client_reqid))

    def _to_client(self, t: Traverse, rec: RecData) -> None:
        t.client.send(P.pack(P.ReqMessage(srvid=t.srvid, data=rec.pack(), srcnode=self.d.pnn,
                                          destnode=self.d.pnn, generation=self.d.vnnmap.generation)))

    def node_lost(self, pnn: int) -> None:
        for t in self._traverses.values():
            if pnn in t.waiting:
                t.waiting.discard(pnn)
                if not t.waiting:
                    t.done.set()

    # -- persistent commits (TRANS3) ---------------------------------------------------

    async def trans3_commit(self, client: ClientConn | None, db: Database, data: bytes) -> tuple[int, bytes, bytes]:
        if self.d.recmode != RecMode.NORMAL:
            return (-1, b"", b"recovery active")
        if db.volatile:
            return (-1, b"", b"trans3 commit on a volatile database")
        if db.db_id in self._commits:
            return (-1, b"", b"another commit is in progress on this database")
        ev = anyio.Event()
        self._commits[db.db_id] = ev
        self._commit_results.pop(db.db_id, None)
        try:
            nodes = [p for p in self.d.vnnmap.map if not self.d.flags.get(p, 0) & INACTIVE]
            failed: list[str] = []

            timeout = float(self.d.tunables.get("ControlTimeout"))

            async def update(pnn: int, after_sends: bool = False) -> None:
                if after_sends:
                    # One pass of the event loop: the transport's writers, woken by
                    # the other nodes' UPDATE_RECORDs queued just before, put them on
                    # the wire before this node's own copy is written (which keeps the
                    # loop busy), so every copy is written at the same time.
                    await anyio.lowlevel.checkpoint()
                status, _, err = await self.d.control(pnn, Opcode.UPDATE_RECORD, data, timeout=timeout)
                if status != 0:
                    failed.append(f"node {pnn}: {err.decode(errors='replace') or status}")

            own = self.d.pnn
            async with anyio.create_task_group() as tg:
                for pnn in nodes:
                    if pnn != own:
                        tg.start_soon(update, pnn)
                if own in nodes:
                    tg.start_soon(update, own, True)
            if not failed:
                return (0, b"", b"")
            # Some copies may have the transaction and some not: only a recovery (which
            # takes the copy with the highest seqnum) makes them agree again.
            log.error("Trans3 commit on %s failed (%s): forcing recovery", db.name, "; ".join(failed))
            self.d.force_recovery("trans3 commit failed")
            with anyio.move_on_after(float(self.d.tunables.get("ControlTimeout"))):
                await ev.wait()
            status = self._commit_results.pop(db.db_id, 1)
            msg = b"trans3 commit ended by recovery" if status == 2 else b"timeout in ctdb_persistent_state"
            return (status, b"", msg)
        finally:
            self._commits.pop(db.db_id, None)

    async def update_record(self, db: Database, data: bytes) -> tuple[int, bytes, bytes]:
        """Apply a committed persistent transaction to this copy, all or nothing; on a
        volatile database, replace records this node has (a read-only revoke)."""
        if db.volatile:
            try:
                _, records = marshall.unpack(data)
            except ValueError as e:
                return (-1, b"", f"bad update buffer: {e}".encode())
            return await self._update_volatile(db, records)
        tdb = db.tdb
        tdb.transaction_start()
        try:
            self._apply_update(tdb, data)
            tdb.transaction_commit()
        except marshall.BadBuffer as e:
            tdb.transaction_cancel()
            return (-1, b"", f"bad update buffer: {e}".encode())
        except Exception as e:
            tdb.transaction_cancel()
            log.error("Update of %s refused: %s", db.name, e)
            return (-1, b"", str(e).encode())
        return (0, b"", b"")

    @staticmethod
    def _apply_update(tdb, data: bytes) -> None:
        """Store an update buffer's records inside the open transaction, each as it is
        read (4.17's ``ctdb_marshall_loop_next`` loop); ValueError (or TdbError) when
        one of them must not be applied, :class:`marshall.BadBuffer` for a malformed
        buffer.

        Every record of every persistent commit passes here on every node: libtdb is
        called directly (:mod:`ctdbcore.db.tdbfast`), and an old record is only copied
        out when its RSN is not below the update's (then its data decides)."""
        h = tdb.handle
        Datum, fetch, store = tdbfast.Datum, tdbfast.fetch_datum, tdbfast.store_datum
        string_at, free, rsn_of, rsn_at = tdbfast.string_at, tdbfast.free, _RSN.unpack_from, _U64.from_address
        size = record.HEADER_SIZE
        for key, value in marshall.records(data):
            if len(value) < size:
                raise ValueError("record without a header")
            kd = Datum(key, len(key))
            d = fetch(h, kd)
            p = d.dptr
            if p:
                old_size = d.dsize
                if old_size >= size:
                    old_rsn, (new_rsn,) = rsn_at(p).value, rsn_of(value)
                    if old_rsn >= new_rsn and string_at(p + size, old_size - size) != value[size:]:
                        free(p)
                        raise ValueError(f"record with rsn {old_rsn} is newer than the update's {new_rsn}")
                free(p)
            elif not tdbfast.missing(h):
                tdbfast.raise_error(tdb, "fetch")
            if store(h, kd, Datum(value, len(value)), TDB_REPLACE) != 0:
                tdbfast.raise_error(tdb, "store")

    async def _update_volatile(self, db: Database, records: list[tuple[bytes, bytes]]) -> tuple[int, bytes, bytes]:
        """4.17 UPDATE_RECORD on a volatile database (``UPDATE_FLAGS_REPLACE_ONLY``): a
        record this node does not have is skipped; one with a newer RSN and other data
        fails the update; the rest go through the daemon's store rules. Record by record
        under its chain lock (4.17 writes in a child under a transaction; here the lock
        helper keeps the event loop free)."""
        if self.d.recmode != RecMode.NORMAL:
            return (-1, b"", b"recovery active")
        calls = self.calls
        for key, value in records:
            if len(value) < record.HEADER_SIZE:
                return (-1, b"", b"record without a header")
            header, data = record.split_value(value) or (None, b"")
            async with record_lock(db.tdb, key):
                if db.frozen:
                    return (-1, b"", b"database frozen")
                old = db.fetch(key)
                if old is None:
                    continue
                if old[0].rsn >= header.rsn and old[1] != data:
                    log.error("Update of %s refused: record with rsn %d is newer than the update's %d",
                              db.name, old[0].rsn, header.rsn)
                    return (-1, b"", b"existing record has a larger RSN")
                calls.store(db, key, header, data)
        return (0, b"", b"")

    def vacuum_try_delete(self, db: Database, data: bytes) -> bytes:
        return self.d.vacuumer.try_delete(db, data)

    # -- statistics ----------------------------------------------------------------------

    def statistics(self, db: Database) -> T.DbStatistics:
        return db.counters.statistics()


def parse_name(data: bytes) -> str | None:
    """Attach payloads are C strings; anything else is a malformed request."""
    if not data or data[-1:] != b"\0" or b"\0" in data[:-1]:
        return None
    try:
        return data[:-1].decode()
    except UnicodeDecodeError:
        return None

