"""Record migration between nodes (4.17 server/ctdb_call.c, §2.7).

A client's REQ_CALL is answered locally when this node is the record's data master.
Otherwise the call goes to the last known data master; a node that is not the data
master redirects it to the lmaster, which always knows the current one; the data master
hands the record over (REQ_DMASTER through the lmaster, REPLY_DMASTER to the requester)
and the requester runs the call on its now-local copy.

On a READONLY database a call wanting a read-only copy is answered by the data master
with a copy (REPLY_CALL carrying a header), and a call without that wish on a record
with copies out first revokes them (UPDATE_RECORD to every holder) while the calls for
that record wait. On a STICKY database a record that arrives at a node where it became
sticky is pinned down there for StickyPindown ms. The header rules are in
:mod:`ctdbcore.db.record`, the sticky table in :mod:`ctdbcore.db.sticky`.

Every step holds the record's chain lock only for code that does not await, so two
tasks of this daemon never interleave on one record, and smbd (which locks the same
chains in the same file) sees 4.17's locking.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import TYPE_CHECKING

import anyio
import attrs

from ctdbcore.db import marshall, record
from ctdbcore.db.database import Database
from ctdbcore.db.locking import record_lock
from ctdbcore.protocol import packets as P
from ctdbcore.protocol.constants import (
    CALL_FLAG_VACUUM_MIGRATION,
    FETCH_FUNC,
    FETCH_WITH_HEADER_FUNC,
    IMMEDIATE_MIGRATION,
    NULL_FUNC,
    WANT_READONLY,
    Opcode,
    RecMode,
    RecordFlags,
)
from ctdbcore.protocol.records import LtdbHeader

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ctdbcore.daemon.clients import ClientConn
    from ctdbcore.daemon.node import Daemon

log = logging.getLogger("ctdb")
COLLAPSE_TIMEOUT = 30.0


@attrs.define(eq=False)
class PendingCall:
    """A client's call waiting for its record to arrive here."""

    reqid: int
    client: ClientConn | None  # None: the daemon's own call (vacuuming)
    client_reqid: int
    db_id: int
    key: bytes
    callid: int
    flags: int
    calldata: bytes
    started: float = attrs.Factory(time.monotonic)
    # A read-only request is sent as FETCH_WITH_HEADER (4.17 ``daemon_call_state``);
    # this is what the client asked for, so that its reply can be put back in shape.
    client_callid: int | None = None
    # FetchCollapse: later calls of this node's clients for the same record, waiting
    # for this one to bring it here.
    followers: list[PendingCall] = attrs.Factory(list)


@attrs.define(eq=False)
class Revoke:
    """A revoke of a record's read-only copies in progress on its data master; the
    calls for that record wait for its end (4.17 ``revokechild_handle``)."""

    deferred: list = attrs.Factory(list)  # (callable, args, wants read-only)
    scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    failed: bool = False


class Calls:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self._reqids = itertools.count(1)
        self.pending: dict[int, PendingCall] = {}
        # Calls that arrived while the databases were being recovered; run at thaw.
        self.deferred: list[PendingCall] = []
        # Other nodes' packets of the current generation for a database that could not
        # serve them yet (frozen, or the node not yet out of recovery): 4.17 queues them
        # behind the freeze lock and runs them when it is released. Dropping them would
        # leave a node that thawed first waiting for ever: its resend is already done.
        self.parked: list[tuple[Callable[..., Awaitable[None]], int, object]] = []
        # FetchCollapse (4.17's deferred fetch queues): while a client's call fetches a
        # record from another node, later calls for that record from this node's
        # clients wait for it instead of each sending a call of its own; they then
        # find the record here. By (db_id, key): the call that went out.
        self.fetching: dict[tuple[int, bytes], PendingCall] = {}
        # 4.17's dmaster defer queues: while a REQ_DMASTER waits here (the lmaster) for
        # its record's lock, other nodes' calls for that record wait for it too; served
        # first, they would be sent to the data master that just gave the record away.
        self.dmaster_moves: dict[tuple[int, bytes], list[tuple[int, P.ReqCall]]] = {}

    # -- helpers -------------------------------------------------------------------------

    @property
    def pnn(self) -> int:
        return self.d.pnn

    def lmaster(self, key: bytes) -> int:
        return record.lmaster(key, self.d.vnnmap.map)

    def _usable(self, db: Database) -> bool:
        return self.d.recmode == RecMode.NORMAL and not db.frozen

    def fetch(self, db: Database, key: bytes) -> tuple[LtdbHeader, bytes]:
        """4.17 ``ctdb_ltdb_fetch``: a missing record reads as the initial header, and the
        lmaster materialises it at once so that its knowledge of the dmaster is on disk."""
        got = db.fetch(key)
        if got is not None:
            return got
        header = record.initial_header(key, self.d.vnnmap.map)
        if header.dmaster == self.pnn or not db.volatile:
            db.store(key, header, b"", pnn=self.pnn, is_lmaster=True)
        return header, b""

    def store(self, db: Database, key: bytes, header: LtdbHeader, data: bytes) -> LtdbHeader | None:
        return db.store(key, header, data, pnn=self.pnn, is_lmaster=self.lmaster(key) == self.pnn)

    @staticmethod
    def execute(callid: int, header: LtdbHeader, data: bytes) -> tuple[int, bytes]:
        """The built-in call functions; 4.17 registers no others on a database."""
        if callid == NULL_FUNC:
            return 0, b""
        if callid == FETCH_FUNC:
            return 0, data
        if callid == FETCH_WITH_HEADER_FUNC:
            return 0, header.pack() + data
        return -1, b""

    def _reply(self, call: PendingCall, status: int, data: bytes) -> None:
        self.pending.pop(call.reqid, None)
        self._release_followers(call)
        if call.client is None:
            return
        if call.client_callid == FETCH_FUNC and len(data) >= LtdbHeader.SIZE:
            # A read-only FETCH went out as FETCH_WITH_HEADER: the client gets the value only.
            data = data[LtdbHeader.SIZE:]
        call.client.send(P.pack(P.ReplyCall(status=status, data=data, reqid=call.client_reqid,
                                            srcnode=self.pnn, destnode=self.pnn,
                                            generation=self.d.vnnmap.generation)))

    def _send(self, dest: int, pkt, srcnode: int | None = None) -> None:
        self.d.send_node(dest, pkt, srcnode=srcnode)

    # -- from clients --------------------------------------------------------------------

    def from_client(self, client: ClientConn, pkt: P.ReqCall) -> None:
        db = self.d.dbs.get(pkt.db_id)
        if db is None:
            # 4.17 does not answer at all: smbd then waits for its "ctdb timeout".
            log.error("Client pid %d called unknown database 0x%08x", client.pid, pkt.db_id)
            return
        call = PendingCall(reqid=next(self._reqids), client=client, client_reqid=pkt.reqid, db_id=pkt.db_id,
                           key=pkt.key, callid=pkt.callid, flags=pkt.flags, calldata=pkt.calldata)
        self.d.spawn_for(client, self.start, call)

    async def start(self, call: PendingCall) -> None:
        """A local client's call (4.17 ``daemon_request_call_from_client``)."""
        db = self.d.dbs.get(call.db_id)
        if db is None:
            self.pending.pop(call.reqid, None)
            return
        if not self._usable(db):
            self.deferred.append(call)
            return
        collapse = call.client is not None and bool(self.d.tunables.get("FetchCollapse"))
        async with record_lock(db.tdb, call.key):
            if not self._usable(db):
                self.deferred.append(call)
                return
            header, data = self.fetch(db, call.key)
            if collapse:
                ahead = self.fetching.get((call.db_id, call.key))
                if ahead is not None and ahead is not call:
                    ahead.followers.append(call)
                    if len(ahead.followers) == 1:  # a timer only for a key someone waits on
                        self.d.spawn(self._collapse_expires, ahead)
                    return
            if call.flags & WANT_READONLY and not db.readonly:
                # Read-only copies only where this node tracks them.
                call.flags &= ~WANT_READONLY
            want_ro = bool(call.flags & WANT_READONLY)
            header = self._clear_completed_revoke(db, call.key, header, data)
            if header.flags & RecordFlags.RO_REVOKING_READONLY:
                self._defer_for_revoke(db, call.key, want_ro, self.start, call)
                return
            if header.dmaster == self.pnn and record.needs_revoke(header, want_readonly=want_ro):
                self._start_revoke(db, call.key, header, data)
                self._defer_for_revoke(db, call.key, want_ro, self.start, call)
                return
            if want_ro and call.client_callid is None:
                call.client_callid = call.callid
                call.callid = FETCH_WITH_HEADER_FUNC
            served = header.dmaster == self.pnn
            if served:
                status, out = self.execute(call.callid, header, data)
            dest = header.dmaster
        if served:  # once the lock is released (see _become_dmaster)
            self._reply(call, status, out)
            return
        self.pending[call.reqid] = call
        if collapse and (call.db_id, call.key) not in self.fetching:
            self.fetching[(call.db_id, call.key)] = call
        self._send(dest, P.ReqCall(reqid=call.reqid, flags=call.flags, db_id=call.db_id, callid=call.callid,
                                   hopcount=0, key=call.key, calldata=call.calldata))

    def _release_followers(self, call: PendingCall) -> None:
        """The call that fetched a record for others is over: run theirs, in the order
        they came (4.17 ``deferred_fetch_queue_destructor``)."""
        if self.fetching.get((call.db_id, call.key)) is not call:
            return
        del self.fetching[(call.db_id, call.key)]
        followers, call.followers = call.followers, []
        for f in followers:
            self.d.spawn(self.start, f)

    async def _collapse_expires(self, call: PendingCall) -> None:
        # 4.17 gives the first fetch 30 s; then the others go out by themselves.
        await anyio.sleep(max(0.0, call.started + COLLAPSE_TIMEOUT - time.monotonic()))
        self._release_followers(call)

    def migrate_here(self, db: Database, key: bytes) -> None:
        """Fetch a record to this node on the daemon's own behalf."""
        call = PendingCall(reqid=next(self._reqids), client=None, client_reqid=0, db_id=db.db_id, key=key,
                           callid=NULL_FUNC, flags=IMMEDIATE_MIGRATION | CALL_FLAG_VACUUM_MIGRATION, calldata=b"")
        self.d.spawn(self.start, call)

    def client_gone(self, client: ClientConn) -> None:
        for reqid, call in list(self.pending.items()):
            if call.client is client:
                del self.pending[reqid]
        for ahead in list(self.fetching.values()):
            ahead.followers = [c for c in ahead.followers if c.client is not client]
            if ahead.client is client:
                self._release_followers(ahead)
        self.deferred = [c for c in self.deferred if c.client is not client]

    def resend_all(self) -> None:
        """After recovery every waiting call starts over under the new generation (4.17
        ``ctdb_call_resend_all``): the record may now live somewhere else."""
        calls = list(self.pending.values()) + self.deferred
        self.pending.clear()
        self.deferred = []
        for ahead in list(self.fetching.values()):
            self._release_followers(ahead)
        for call in calls:
            self.d.spawn(self.start, attrs.evolve(call, reqid=next(self._reqids)))
        self.replay_parked()

    def resume(self) -> None:
        """The node left recovery mode: run what waited for that (a database thawed
        while the node was still in recovery served nobody yet)."""
        calls, self.deferred = self.deferred, []
        for call in calls:
            self.d.spawn(self.start, attrs.evolve(call, reqid=next(self._reqids)))
        self.replay_parked()

    def replay_parked(self) -> None:
        """Run the parked packets again: those of an older generation are dropped then
        (their senders resend), those for a database still not usable park again."""
        parked, self.parked = self.parked, []
        for handler, src, pkt in parked:
            self.d.spawn(handler, src, pkt)

    def resend_db(self, db_id: int) -> None:
        """A database thawed outside a recovery (wipedb, restoredb): its waiting calls
        start over, as 4.17's ``ctdb_call_resend_db``."""
        calls = [c for c in self.pending.values() if c.db_id == db_id]
        calls += [c for c in self.deferred if c.db_id == db_id]
        for call in calls:
            self.pending.pop(call.reqid, None)
            self._release_followers(call)
        self.deferred = [c for c in self.deferred if c.db_id != db_id]
        for call in calls:
            self.d.spawn(self.start, attrs.evolve(call, reqid=next(self._reqids)))
        self.replay_parked()

    # -- from nodes ----------------------------------------------------------------------

    def _valid(self, src: int, pkt, handler: Callable[..., Awaitable[None]]) -> Database | None:
        if pkt.generation != self.d.vnnmap.generation:
            log.info("%s from node %d has generation %d, not %d: dropped", type(pkt).__name__, src,
                     pkt.generation, self.d.vnnmap.generation)
            return None
        db = self.d.dbs.get(pkt.db_id)
        if db is None:
            self._send(pkt.srcnode, P.ReplyError(
                status=-1, msg=f"Unknown database in request. db_id==0x{pkt.db_id:08x}".encode(), reqid=pkt.reqid))
            return None
        if not self._usable(db):
            self.parked.append((handler, src, pkt))
            return None
        return db

    async def req_call(self, src: int, pkt: P.ReqCall) -> None:
        """4.17 ``ctdb_request_call``: a call from another node (or our own, resent)."""
        db = self._valid(src, pkt, self.req_call)
        if db is None:
            return
        if db.sticky and self._defer_if_pinned(db, src, pkt):
            return
        moving = self.dmaster_moves.get((db.db_id, pkt.key))
        if moving is not None:
            log.info("Call from node %d for a record of %s whose data master is moving: deferred", src, db.name)
            moving.append((src, pkt))
            return
        own: tuple[PendingCall, int, bytes] | None = None
        async with record_lock(db.tdb, pkt.key):
            if pkt.generation != self.d.vnnmap.generation:
                return
            if not self._usable(db):
                self.parked.append((self.req_call, src, pkt))
                return
            header, data = self.fetch(db, pkt.key)
            if pkt.flags & WANT_READONLY and not db.readonly:
                pkt = attrs.evolve(pkt, flags=pkt.flags & ~WANT_READONLY)
            want_ro = bool(pkt.flags & WANT_READONLY)
            header = self._clear_completed_revoke(db, pkt.key, header, data)
            if header.flags & RecordFlags.RO_REVOKING_READONLY:
                self._defer_for_revoke(db, pkt.key, want_ro, self.req_call, src, pkt)
                return
            if header.dmaster != self.pnn and not header.flags & RecordFlags.RO_HAVE_DELEGATIONS:
                lm = self.lmaster(pkt.key)
                dest = header.dmaster if lm == self.pnn else lm
                hops = pkt.hopcount + 1
                if hops % 100 > 95:
                    log.warning("High hopcount %d dbid:0x%08x key of %d bytes", hops, pkt.db_id, len(pkt.key))
                # The original requester stays the source: it is who gets the record.
                self._send(dest, attrs.evolve(pkt, hopcount=hops), srcnode=pkt.srcnode)
                return
            if record.needs_revoke(header, want_readonly=want_ro):
                self._start_revoke(db, pkt.key, header, data)
                self._defer_for_revoke(db, pkt.key, want_ro, self.req_call, src, pkt)
                return
            if want_ro and pkt.callid == FETCH_WITH_HEADER_FUNC and pkt.srcnode != self.pnn:
                self._delegate(db, pkt, header, data)
                return
            db.counters.hop(pkt.hopcount)  # 4.17 counts the hops of calls the data master serves
            if db.sticky and pkt.hopcount >= int(self.d.tunables.get("HopcountMakeSticky")):
                if db.sticky_records.make_sticky(pkt.key, time.monotonic(),
                                                 float(self.d.tunables.get("StickyDuration"))):
                    log.info("Make record sticky for %s s in db %s", self.d.tunables.get("StickyDuration"), db.name)
            if pkt.srcnode == self.pnn:
                # Our own call came back to us: the record arrived here in the meantime.
                call = self.pending.get(pkt.reqid)
                if call is not None:
                    own = (call, *self.execute(call.callid, header, data))
            else:
                self._hand_over(db, pkt.key, header, data, requester=pkt.srcnode, reqid=pkt.reqid)
        if own is not None:  # once the lock is released (see _become_dmaster)
            self._reply(*own)

    # -- read-only delegations -------------------------------------------------------------

    def _delegate(self, db: Database, pkt: P.ReqCall, header: LtdbHeader, data: bytes) -> None:
        """Answer a read-only request as data master: a copy instead of the record."""
        stored, copy = record.delegation_headers(header)
        if stored is not None:
            self.store(db, pkt.key, stored, data)
        db.ro_tracking[pkt.key] = record.tracking_add(db.ro_tracking.get(pkt.key, b""), pkt.srcnode)
        self._send(pkt.srcnode, P.ReplyCall(status=0, data=copy.pack() + data, reqid=pkt.reqid))
        self.d.stats["total_ro_delegations"] += 1
        db.counters.ro_delegations += 1

    async def reply_call(self, src: int, pkt: P.ReplyCall) -> None:
        """4.17 ``ctdb_reply_call``: the answer to a call this node sent; a read-only
        copy in it is kept here when newer than this node's."""
        call = self.pending.get(pkt.reqid)
        if call is None:
            log.error("REPLY_CALL from node %d for unknown reqid %d", src, pkt.reqid)
            return
        if pkt.generation != self.d.vnnmap.generation:
            return  # resent under the new generation; its own answer will come
        db = self.d.dbs.get(call.db_id)
        if db is not None and call.callid == FETCH_WITH_HEADER_FUNC and len(pkt.data) >= LtdbHeader.SIZE:
            copy = LtdbHeader.unpack(pkt.data)
            if copy.flags & RecordFlags.RO_HAVE_READONLY and self._usable(db):
                async with record_lock(db.tdb, call.key):
                    # A recovery in between cleared every delegation: this copy is stale.
                    if (self.pending.get(pkt.reqid) is not call or not self._usable(db)
                            or pkt.generation != self.d.vnnmap.generation):
                        return
                    got = db.fetch(call.key)
                    if record.ro_copy_newer(copy, got[0] if got else None):
                        self.store(db, call.key, copy, pkt.data[LtdbHeader.SIZE:])
        if self.pending.get(pkt.reqid) is call:
            self._reply(call, pkt.status, pkt.data)

    def _clear_completed_revoke(self, db: Database, key: bytes, header: LtdbHeader, data: bytes) -> LtdbHeader:
        if not header.flags & RecordFlags.RO_REVOKE_COMPLETE:
            return header
        cleared = record.revoke_cleared(header)
        stored = self.store(db, key, cleared, data)
        db.ro_tracking.pop(key, None)
        self.d.stats["total_ro_revokes"] += 1
        db.counters.ro_revokes += 1
        return stored or cleared

    def _start_revoke(self, db: Database, key: bytes, header: LtdbHeader, data: bytes) -> None:
        """Mark the record as being revoked (under its lock) and take the copies back."""
        header = record.revoking(header)
        self.store(db, key, header, data)
        rv = Revoke()
        db.revokes[key] = rv
        self.d.spawn(self._revoke, db, key, header, data, rv)

    def _defer_for_revoke(self, db: Database, key: bytes, want_ro: bool, fn, *args) -> None:
        rv = db.revokes.get(key)
        if rv is None:
            # Left REVOKING by a revoke that is gone (4.17 calls this fatal); a recovery
            # clears the flags, so wait for one.
            log.error("Record of %s is being revoked but no revoke runs: forcing recovery", db.name)
            self.d.force_recovery("read-only revoke lost")
            self.d.spawn(self._later, 1.0, fn, *args)
            return
        rv.deferred.append((fn, args, want_ro))

    async def _revoke(self, db: Database, key: bytes, header: LtdbHeader, data: bytes, rv: Revoke) -> None:
        """4.17 ``ctdb_revoke_all_delegations``: every node holding a copy is sent an
        UPDATE_RECORD with a plain header; then the data master marks the revoke complete
        (or drops the REVOKING flag when a node failed, so that the next call retries)."""
        try:
            with rv.scope:
                nodes = record.tracking_nodes(db.ro_tracking.get(key, b""))
                buf = marshall.pack(db.db_id, [(key, record.revoke_update_header(header).pack() + data)])
                failed: list[int] = []
                timeout = float(self.d.tunables.get("ControlTimeout"))

                async def update(pnn: int) -> None:
                    status, _, err = await self.d.control(pnn, Opcode.UPDATE_RECORD, buf, timeout=timeout)
                    if status != 0:
                        log.error("Revoke of a read-only copy on node %d failed: %s", pnn,
                                  err.decode(errors="replace") or status)
                        failed.append(pnn)

                async with anyio.create_task_group() as tg:
                    for pnn in nodes:
                        if pnn != self.pnn:
                            tg.start_soon(update, pnn)
                async with record_lock(db.tdb, key):
                    if not self._usable(db):
                        return
                    got = db.fetch(key)
                    new = record.revoke_finished(got[0], header.rsn, all_ok=not failed) if got else None
                    if new is None:
                        log.error("Record of %s changed during its revoke; revoke abandoned", db.name)
                        return
                    if failed:
                        log.log(25, "Revoke of read-only copies failed on nodes %s, retrying", failed)
                        rv.failed = True
                    self.store(db, key, new, got[1])
        finally:
            if db.revokes.get(key) is rv:
                del db.revokes[key]
            self._requeue_revoke_waiters(rv)

    def _requeue_revoke_waiters(self, rv: Revoke) -> None:
        # The next call retries a failed revoke (a copy holder died: until the recovery
        # that follows clears every copy); a short pause keeps that from spinning.
        pause = 0.1 if rv.failed else 0.0
        for fn, args, want_ro in rv.deferred:
            # 4.17 gives read/write requests a second's head start over read-only ones.
            self.d.spawn(self._later, (1.0 if want_ro else 0.0) + pause, fn, *args)
        rv.deferred.clear()

    async def _later(self, delay: float, fn, *args) -> None:
        if delay:
            await anyio.sleep(delay)
        await fn(*args)

    def recovered(self, db: Database) -> None:
        """A recovery rebuilt the database without read-only flags (4.17 at
        DB_PUSH_CONFIRM): forget the copies handed out and stop every revoke."""
        db.ro_tracking.clear()
        for rv in list(db.revokes.values()):
            rv.scope.cancel()
        db.revokes.clear()

    # -- sticky records --------------------------------------------------------------------

    def _defer_if_pinned(self, db: Database, src: int, pkt: P.ReqCall) -> bool:
        until = db.sticky_records.pinned_until(pkt.key, time.monotonic())
        if until is None:
            return False
        log.warning("Defer request for pinned down record in %s", db.name)
        db.pinned_calls.setdefault(pkt.key, []).append((src, pkt))
        return True

    def _pin_down(self, db: Database, key: bytes) -> None:
        """A sticky record just became this node's: keep it here for StickyPindown ms."""
        now = time.monotonic()
        pindown = float(self.d.tunables.get("StickyPindown")) / 1000.0
        until = db.sticky_records.pin_down(key, now, pindown)
        if until is not None:
            log.info("Pinning down record in %s for %d ms", db.name, self.d.tunables.get("StickyPindown"))
            self.d.spawn(self._unpin_later, db, key, until - now)

    async def _unpin_later(self, db: Database, key: bytes, delay: float) -> None:
        await anyio.sleep(delay)
        db.sticky_records.unpin(key)
        for src, pkt in db.pinned_calls.pop(key, []):
            self.d.spawn(self.req_call, src, pkt)

    def _hand_over(self, db: Database, key: bytes, header: LtdbHeader, data: bytes, *, requester: int,
                   reqid: int) -> None:
        flags = header.flags | (RecordFlags.MIGRATED_WITH_DATA if data else 0)
        flags &= ~record.TRANSIENT_FLAGS
        self.store(db, key, LtdbHeader(rsn=header.rsn, dmaster=requester, flags=flags), data)
        lm = self.lmaster(key)
        if lm == self.pnn:
            self._send(requester, P.ReplyDmaster(db_id=db.db_id, rsn=header.rsn, key=key, data=data,
                                                 record_flags=flags, reqid=reqid))
        else:
            self._send(lm, P.ReqDmaster(db_id=db.db_id, rsn=header.rsn, dmaster=requester, key=key, data=data,
                                        record_flags=flags, reqid=reqid))

    async def req_dmaster(self, src: int, pkt: P.ReqDmaster) -> None:
        db = self._valid(src, pkt, self.req_dmaster)
        if db is None:
            return
        move = (db.db_id, pkt.key)
        if move in self.dmaster_moves:
            await self._req_dmaster(db, src, pkt)
            return
        self.dmaster_moves[move] = []
        try:
            await self._req_dmaster(db, src, pkt)
        finally:
            # In the order they came; each checks its generation again.
            for waiting in self.dmaster_moves.pop(move):
                self.d.spawn(self.req_call, *waiting)

    async def _req_dmaster(self, db: Database, src: int, pkt: P.ReqDmaster) -> None:
        reply = None
        async with record_lock(db.tdb, pkt.key):
            reply = self._req_dmaster_locked(db, src, pkt)
        if reply is not None:
            self._reply(*reply)

    def _req_dmaster_locked(self, db: Database, src: int, pkt: P.ReqDmaster) -> tuple[PendingCall, int, bytes] | None:
        """REQ_DMASTER under the record lock; the reply to send once it is released
        (see :meth:`_become_dmaster`)."""
        if pkt.generation != self.d.vnnmap.generation:
            return None
        if not self._usable(db):
            self.parked.append((self.req_dmaster, src, pkt))
            return None
        if self.lmaster(pkt.key) != self.pnn:
            log.error("REQ_DMASTER for a key whose lmaster is node %d, not this node", self.lmaster(pkt.key))
            return None
        header, _ = self.fetch(db, pkt.key)
        if header.dmaster != pkt.srcnode and (header.rsn != 0 or header.dmaster != self.pnn):
            log.error("REQ_DMASTER from node %d, but node %d holds the record (rsn %d): forcing recovery",
                      pkt.srcnode, header.dmaster, header.rsn)
            self.d.force_recovery("dmaster inconsistency")
            return None
        flags = pkt.record_flags or 0
        if pkt.dmaster == self.pnn:
            return self._become_dmaster(db, pkt.key, pkt.rsn, flags, pkt.data, pkt.reqid)
        self.store(db, pkt.key, LtdbHeader(rsn=pkt.rsn, dmaster=pkt.dmaster, flags=flags), pkt.data)
        self._send(pkt.dmaster, P.ReplyDmaster(db_id=db.db_id, rsn=pkt.rsn, key=pkt.key, data=pkt.data,
                                               record_flags=flags, reqid=pkt.reqid))
        return None

    async def reply_dmaster(self, src: int, pkt: P.ReplyDmaster) -> None:
        db = self._valid(src, pkt, self.reply_dmaster)
        if db is None:
            return
        reply = None
        async with record_lock(db.tdb, pkt.key):
            if pkt.generation != self.d.vnnmap.generation:
                return
            if not self._usable(db):
                self.parked.append((self.reply_dmaster, src, pkt))
                return
            reply = self._become_dmaster(db, pkt.key, pkt.rsn, pkt.record_flags or 0, pkt.data, pkt.reqid)
        if reply is not None:
            self._reply(*reply)

    def _become_dmaster(self, db: Database, key: bytes, rsn: int, flags: int, data: bytes,
                        reqid: int) -> tuple[PendingCall, int, bytes] | None:
        """Store the record as its new data master (under its lock); the reply to the
        waiting call, if any, for the caller to send once the lock is released: a
        client woken while this node still held the chain would find it busy (and take
        the slow path of a lock helper)."""
        call = self.pending.get(reqid)
        if call is not None and (call.key != key or call.db_id != db.db_id):
            call = None
        if call is not None and call.flags & CALL_FLAG_VACUUM_MIGRATION:
            # Lets the store drop an empty record that a vacuum run fetched home (4.17).
            flags |= RecordFlags.VACUUM_MIGRATED
        header = self.store(db, key, LtdbHeader(rsn=rsn, dmaster=self.pnn, flags=flags), data)
        if db.sticky:
            self._pin_down(db, key)
        if call is None:
            return None
        db.counters.migrated_here(key)
        status, out = self.execute(call.callid, header or LtdbHeader(rsn=rsn + 1, dmaster=self.pnn), data)
        return call, status, out

    def reply_error(self, src: int, pkt: P.ReplyError) -> None:
        # 4.17 logs and leaves the client waiting; we at least free the slot.
        call = self.pending.pop(pkt.reqid, None)
        if call is not None:
            self._release_followers(call)
        log.error("Call to node %d failed: %s%s", src, pkt.msg.decode(errors="replace"),
                  f" (client pid {call.client.pid})" if call and call.client else "")
