"""Record migration between nodes (4.17 server/ctdb_call.c, §2.7).

A client's REQ_CALL is answered locally when this node is the record's data master.
Otherwise the call goes to the last known data master; a node that is not the data
master redirects it to the lmaster, which always knows the current one; the data master
hands the record over (REQ_DMASTER through the lmaster, REPLY_DMASTER to the requester)
and the requester runs the call on its now-local copy.

Every step holds the record's chain lock only for code that does not await, so two
tasks of this daemon never interleave on one record, and smbd (which locks the same
chains in the same file) sees 4.17's locking.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import TYPE_CHECKING

import attrs

from ctdbcore.db import record
from ctdbcore.db.database import Database
from ctdbcore.db.locking import record_lock
from ctdbcore.protocol import packets as P
from ctdbcore.protocol.constants import (
    CALL_FLAG_VACUUM_MIGRATION,
    FETCH_FUNC,
    IMMEDIATE_MIGRATION,
    FETCH_WITH_HEADER_FUNC,
    NULL_FUNC,
    RecMode,
    RecordFlags,
)
from ctdbcore.protocol.records import LtdbHeader

if TYPE_CHECKING:
    from ctdbcore.daemon.clients import ClientConn
    from ctdbcore.daemon.node import Daemon

log = logging.getLogger("ctdb")


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


class Calls:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self._reqids = itertools.count(1)
        self.pending: dict[int, PendingCall] = {}
        # Calls that arrived while the databases were being recovered; run at thaw.
        self.deferred: list[PendingCall] = []

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
        if call.client is None:
            return
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
        self.d.spawn(self.start, call)

    async def start(self, call: PendingCall) -> None:
        db = self.d.dbs.get(call.db_id)
        if db is None:
            self.pending.pop(call.reqid, None)
            return
        if not self._usable(db):
            self.deferred.append(call)
            return
        async with record_lock(db.tdb, call.key):
            if not self._usable(db):
                self.deferred.append(call)
                return
            header, data = self.fetch(db, call.key)
            db.counters.locks_total += 1
            if header.dmaster == self.pnn:
                status, out = self.execute(call.callid, header, data)
                self._reply(call, status, out)
                return
            dest = header.dmaster
        self.pending[call.reqid] = call
        self._send(dest, P.ReqCall(reqid=call.reqid, flags=call.flags, db_id=call.db_id, callid=call.callid,
                                   hopcount=0, key=call.key, calldata=call.calldata))

    def migrate_here(self, db: Database, key: bytes) -> None:
        """Fetch a record to this node on the daemon's own behalf."""
        call = PendingCall(reqid=next(self._reqids), client=None, client_reqid=0, db_id=db.db_id, key=key,
                           callid=NULL_FUNC, flags=IMMEDIATE_MIGRATION | CALL_FLAG_VACUUM_MIGRATION, calldata=b"")
        self.d.spawn(self.start, call)

    def client_gone(self, client: ClientConn) -> None:
        for reqid, call in list(self.pending.items()):
            if call.client is client:
                del self.pending[reqid]
        self.deferred = [c for c in self.deferred if c.client is not client]

    def resend_all(self) -> None:
        """After recovery every waiting call starts over under the new generation (4.17
        ``ctdb_call_resend_all``): the record may now live somewhere else."""
        calls = list(self.pending.values()) + self.deferred
        self.pending.clear()
        self.deferred = []
        for call in calls:
            self.d.spawn(self.start, attrs.evolve(call, reqid=next(self._reqids)))

    def resend_db(self, db_id: int) -> None:
        """A database thawed outside a recovery (wipedb, restoredb): its waiting calls
        start over, as 4.17's ``ctdb_call_resend_db``."""
        calls = [c for c in self.pending.values() if c.db_id == db_id]
        calls += [c for c in self.deferred if c.db_id == db_id]
        for call in calls:
            self.pending.pop(call.reqid, None)
        self.deferred = [c for c in self.deferred if c.db_id != db_id]
        for call in calls:
            self.d.spawn(self.start, attrs.evolve(call, reqid=next(self._reqids)))

    # -- from nodes ----------------------------------------------------------------------

    def _valid(self, src: int, pkt) -> Database | None:
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
            return None  # the requester resends after recovery
        return db

    async def req_call(self, src: int, pkt: P.ReqCall) -> None:
        db = self._valid(src, pkt)
        if db is None:
            return
        async with record_lock(db.tdb, pkt.key):
            if not self._usable(db):
                return
            header, data = self.fetch(db, pkt.key)
            if header.dmaster != self.pnn:
                lm = self.lmaster(pkt.key)
                dest = header.dmaster if lm == self.pnn else lm
                hops = pkt.hopcount + 1
                db.counters.hop(hops)
                if hops % 100 > 95:
                    log.warning("High hopcount %d dbid:0x%08x key of %d bytes", hops, pkt.db_id, len(pkt.key))
                # The original requester stays the source: it is who gets the record.
                self._send(dest, attrs.evolve(pkt, hopcount=hops), srcnode=pkt.srcnode)
                return
            if pkt.srcnode == self.pnn:
                # Our own call came back to us: the record arrived here in the meantime.
                call = self.pending.get(pkt.reqid)
                if call is not None:
                    status, out = self.execute(call.callid, header, data)
                    self._reply(call, status, out)
                return
            self._hand_over(db, pkt.key, header, data, requester=pkt.srcnode, reqid=pkt.reqid)

    def _hand_over(self, db: Database, key: bytes, header: LtdbHeader, data: bytes, *, requester: int,
                   reqid: int) -> None:
        flags = header.flags | (RecordFlags.MIGRATED_WITH_DATA if data else 0)
        flags &= ~record.TRANSIENT_FLAGS
        self.store(db, key, LtdbHeader(rsn=header.rsn, dmaster=requester, flags=flags), data)
        db.counters.migrations_out += 1
        lm = self.lmaster(key)
        if lm == self.pnn:
            self._send(requester, P.ReplyDmaster(db_id=db.db_id, rsn=header.rsn, key=key, data=data,
                                                 record_flags=flags, reqid=reqid))
        else:
            self._send(lm, P.ReqDmaster(db_id=db.db_id, rsn=header.rsn, dmaster=requester, key=key, data=data,
                                        record_flags=flags, reqid=reqid))

    async def req_dmaster(self, src: int, pkt: P.ReqDmaster) -> None:
        db = self._valid(src, pkt)
        if db is None:
            return
        async with record_lock(db.tdb, pkt.key):
            if not self._usable(db):
                return
            if self.lmaster(pkt.key) != self.pnn:
                log.error("REQ_DMASTER for a key whose lmaster is node %d, not this node", self.lmaster(pkt.key))
                return
            header, _ = self.fetch(db, pkt.key)
            if header.dmaster != pkt.srcnode and (header.rsn != 0 or header.dmaster != self.pnn):
                log.error("REQ_DMASTER from node %d, but node %d holds the record (rsn %d): forcing recovery",
                          pkt.srcnode, header.dmaster, header.rsn)
                self.d.force_recovery("dmaster inconsistency")
                return
            flags = pkt.record_flags or 0
            if pkt.dmaster == self.pnn:
                self._become_dmaster(db, pkt.key, pkt.rsn, flags, pkt.data, pkt.reqid)
                return
            self.store(db, pkt.key, LtdbHeader(rsn=pkt.rsn, dmaster=pkt.dmaster, flags=flags), pkt.data)
            self._send(pkt.dmaster, P.ReplyDmaster(db_id=db.db_id, rsn=pkt.rsn, key=pkt.key, data=pkt.data,
                                                   record_flags=flags, reqid=pkt.reqid))

    async def reply_dmaster(self, src: int, pkt: P.ReplyDmaster) -> None:
        db = self._valid(src, pkt)
        if db is None:
            return
        async with record_lock(db.tdb, pkt.key):
            self._become_dmaster(db, pkt.key, pkt.rsn, pkt.record_flags or 0, pkt.data, pkt.reqid)

    def _become_dmaster(self, db: Database, key: bytes, rsn: int, flags: int, data: bytes, reqid: int) -> None:
        call = self.pending.get(reqid)
        if call is not None and (call.key != key or call.db_id != db.db_id):
            call = None
        if call is not None and call.flags & CALL_FLAG_VACUUM_MIGRATION:
            # Lets the store drop an empty record that a vacuum run fetched home (4.17).
            flags |= RecordFlags.VACUUM_MIGRATED
        header = self.store(db, key, LtdbHeader(rsn=rsn, dmaster=self.pnn, flags=flags), data)
        db.counters.migrations_in += 1
        if call is None:
            return
        status, out = self.execute(call.callid, header or LtdbHeader(rsn=rsn + 1, dmaster=self.pnn), data)
        self._reply(call, status, out)

    def reply_error(self, src: int, pkt: P.ReplyError) -> None:
        # 4.17 logs and leaves the client waiting; we at least free the slot.
        call = self.pending.pop(pkt.reqid, None)
        log.error("Call to node %d failed: %s%s", src, pkt.msg.decode(errors="replace"),
                  f" (client pid {call.client.pid})" if call and call.client else "")
