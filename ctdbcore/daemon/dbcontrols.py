"""Database controls with 4.17's semantics (server/ctdb_control.c, ctdb_ltdb_server.c,
ctdb_freeze.c, ctdb_recover.c, ctdb_traverse.c, ctdb_persistent.c).

Registered in the same table as the other controls; the work is done by the daemon's
:class:`~ctdbcore.daemon.databases.DbService` (``d.dbs``).
"""

from __future__ import annotations

import logging
import struct

from ctdbcore.daemon.controls import control
from ctdbcore.daemon.databases import parse_name
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import CTRL_FLAG_ATTACH_RECOVERY, INACTIVE, DbFlags, Opcode, RecMode
from ctdbcore.protocol.records import RecData

log = logging.getLogger("ctdb")


def _db(d, data: bytes, size: int = 4):
    if len(data) < 4:
        return None
    return d.dbs.get(struct.unpack_from("<I", data)[0])


def _unknown(data: bytes) -> tuple[int, bytes, bytes]:
    db_id = struct.unpack_from("<I", data)[0] if len(data) >= 4 else 0
    return (-1, b"", f"Unknown database 0x{db_id:08x}".encode())


# -- which databases, and where -------------------------------------------------------


@control(Opcode.GET_DBMAP, 0)
def get_dbmap(d, req, src, client):
    # 4.17 prepends each attach to its list: newest first.
    return T.DbidMap(dbs=tuple(T.DbidMapEntry(db.db_id, db.flags) for db in reversed(list(d.dbs.registry)))).pack()


def _attach(flags: int):
    async def handler(d, req, src, client):
        name = parse_name(req.data)
        if name is None:
            return (-1, b"", b"invalid database name")
        if client is not None:
            # Local clients only: attaches from other nodes are the recovery's own.
            if d.own_flags & INACTIVE:
                log.error("DB Attach to database %s refused since node is inactive (flags=0x%x)", name, d.own_flags)
                return (-1, b"", b"node is inactive")
            recovery = bool(req.flags & CTRL_FLAG_ATTACH_RECOVERY)
            if recovery and d.recmode != RecMode.ACTIVE:
                log.error("Attach from recovery refused because recovery is not active")
                return (-1, b"", b"recovery is not active")
            if not recovery and d.recmode == RecMode.ACTIVE:
                # A database opened mid-recovery would miss the records being pushed.
                log.error("DB Attach to database %s deferred for client with pid:%d since node is in "
                          "recovery mode.", name, client.pid)
                if not await d.wait_recmode_normal(float(d.tunables.get("DeferredAttachTO"))):
                    return (-1, b"", b"attach deferred too long: node still in recovery")
        return d.dbs.attach(name, flags, from_client=client is not None)

    return handler


control(Opcode.DB_ATTACH)(_attach(0))
control(Opcode.DB_ATTACH_PERSISTENT)(_attach(DbFlags.PERSISTENT))
control(Opcode.DB_ATTACH_REPLICATED)(_attach(DbFlags.REPLICATED))


@control(Opcode.DB_DETACH, 4)
def db_detach(d, req, src, client):
    db = _db(d, req.data)
    if db is None:
        return 0  # 4.17: detaching what is not attached succeeds
    if d.tunables.get("AllowClientDBAttach"):
        return (-1, b"", b"AllowClientDBAttach must be 0 to detach")
    if not db.volatile:
        return (-1, b"", b"only volatile databases can be detached")
    if d.recmode != RecMode.NORMAL:
        return (-1, b"", b"recovery in progress")
    if client is not None:
        for pnn in d.connected_pnns():
            d.send_control_noreply(pnn, Opcode.DB_DETACH, req.data)
    d.dbs.detach(db.db_id)
    return 0


@control(Opcode.GETDBPATH, 4)
def getdbpath(d, req, src, client):
    db = _db(d, req.data)
    return _unknown(req.data) if db is None else db.path.encode() + b"\0"


@control(Opcode.GET_DBNAME, 4)
def get_dbname(d, req, src, client):
    db = _db(d, req.data)
    return _unknown(req.data) if db is None else db.name.encode() + b"\0"


@control(Opcode.DB_OPEN_FLAGS, 4)
def db_open_flags(d, req, src, client):
    db = _db(d, req.data)
    return _unknown(req.data) if db is None else T.pack_i32(db.tdb_flags)


@control(Opcode.GET_DB_SEQNUM, 8)
def get_db_seqnum(d, req, src, client):
    db = _db(d, req.data)
    return _unknown(req.data) if db is None else struct.pack("<Q", db.seqnum())


@control(Opcode.DB_GET_HEALTH, 4)
def db_get_health(d, req, src, client):
    db = _db(d, req.data)
    if db is None:
        return _unknown(req.data)
    return db.unhealthy_reason.encode() + b"\0" if db.unhealthy_reason else b""


@control(Opcode.DB_SET_HEALTHY, 4)
def db_set_healthy(d, req, src, client):
    db = _db(d, req.data)
    if db is None:
        return _unknown(req.data)
    db.unhealthy_reason = ""
    return 0


def _runtime_flag(flag: int):
    def handler(d, req, src, client):
        db = _db(d, req.data)
        if db is None:
            return _unknown(req.data)
        if not db.volatile:
            return (-1, b"", b"only volatile databases take this flag")
        db.flags |= flag
        return 0

    return handler


control(Opcode.SET_DB_READONLY, 4)(_runtime_flag(DbFlags.READONLY))
control(Opcode.SET_DB_STICKY, 4)(_runtime_flag(DbFlags.STICKY))


@control(Opcode.ENABLE_SEQNUM, 4)
def enable_seqnum(d, req, src, client):
    db = _db(d, req.data)
    return _unknown(req.data) if db is None else 0


@control(Opcode.GET_DB_STATISTICS, 4)
def get_db_statistics(d, req, src, client):
    db = _db(d, req.data)
    return _unknown(req.data) if db is None else d.dbs.statistics(db).pack()


# -- recovery: freeze, transaction, wipe, pull, push ----------------------------------


@control(Opcode.DB_FREEZE, 4)
async def db_freeze(d, req, src, client):
    db = _db(d, req.data)
    if db is None:
        return _unknown(req.data)
    # No recovery mode needed: 4.17's wipedb and restoredb freeze a database by itself.
    return await d.dbs.freeze(db, float(d.tunables.get("RecoverTimeout")))


@control(Opcode.DB_THAW, 4)
def db_thaw(d, req, src, client):
    db = _db(d, req.data)
    if db is None:
        return _unknown(req.data)
    d.dbs.thaw(db)
    return 0


def _transdb(d, req):
    t = T.TransDb.unpack(req.data)
    return t, d.dbs.get(t.db_id)


@control(Opcode.DB_TRANSACTION_START, 8)
def db_transaction_start(d, req, src, client):
    t, db = _transdb(d, req)
    return _unknown(req.data) if db is None else d.dbs.txn_start(db, t.tid)


@control(Opcode.DB_TRANSACTION_COMMIT, 8)
def db_transaction_commit(d, req, src, client):
    t, db = _transdb(d, req)
    return _unknown(req.data) if db is None else d.dbs.txn_commit(db, t.tid)


@control(Opcode.DB_TRANSACTION_CANCEL, 4)
def db_transaction_cancel(d, req, src, client):
    db = _db(d, req.data)
    return _unknown(req.data) if db is None else d.dbs.txn_cancel(db)


@control(Opcode.WIPE_DATABASE, 8)
def wipe_database(d, req, src, client):
    t, db = _transdb(d, req)
    return _unknown(req.data) if db is None else d.dbs.wipe(db, t.tid)


@control(Opcode.DB_PULL, 16)
async def db_pull(d, req, src, client):
    p = T.PulldbExt.unpack(req.data)
    db = d.dbs.get(p.db_id)
    if db is None:
        return _unknown(req.data)
    if not db.frozen:
        return (-1, b"", b"database is not frozen")
    return T.pack_u32(await d.dbs.pull(db, src, p.srvid))


@control(Opcode.DB_PUSH_START, 16)
def db_push_start(d, req, src, client):
    p = T.PulldbExt.unpack(req.data)
    db = d.dbs.get(p.db_id)
    if db is None:
        return _unknown(req.data)
    if not db.frozen or db.txn_id is None:
        return (-1, b"", b"push requires a frozen database in a transaction")
    return d.dbs.push_start(db, p.srvid)


@control(Opcode.DB_PUSH_CONFIRM, 4)
def db_push_confirm(d, req, src, client):
    db = _db(d, req.data)
    return _unknown(req.data) if db is None else d.dbs.push_confirm(db)


# -- traverse -------------------------------------------------------------------------


async def _traverse_start(d, req, client, start) -> tuple[int, bytes, bytes]:
    db = d.dbs.get(start.db_id)
    if db is None:
        return _unknown(req.data)
    if client is None:
        return (-1, b"", b"traverse must come from a client")
    # 4.17 answers the control before the first record arrives.
    d.spawn(d.dbs.traverse_for_client, client, db, start.srvid, start.reqid,
            getattr(start, "withemptyrecords", False))
    return (0, b"", b"")


@control(Opcode.TRAVERSE_START, 16)
async def traverse_start(d, req, src, client):
    return await _traverse_start(d, req, client, T.TraverseStart.unpack(req.data))


@control(Opcode.TRAVERSE_START_EXT, 24)
async def traverse_start_ext(d, req, src, client):
    return await _traverse_start(d, req, client, T.TraverseStartExt.unpack(req.data))


@control(Opcode.TRAVERSE_ALL_EXT, 32)
def traverse_all_ext(d, req, src, client):
    return d.dbs.traverse_all(src, T.TraverseAllExt.unpack(req.data))


@control(Opcode.TRAVERSE_ALL, 24)
def traverse_all(d, req, src, client):
    t = T.TraverseAll.unpack(req.data)
    return d.dbs.traverse_all(src, T.TraverseAllExt(t.db_id, t.reqid, t.pnn, t.client_reqid, t.srvid, False))


@control(Opcode.TRAVERSE_DATA)
def traverse_data(d, req, src, client):
    try:
        rec = RecData.unpack(req.data)
    except Exception as e:
        log.error("Bad TRAVERSE_DATA from node %d: %s", src, e)
        return -1
    if rec.data:
        rec = RecData.unpack(req.data, with_header=True)
    d.dbs.traverse_data(src, rec)
    return 0


# -- persistent databases -------------------------------------------------------------


@control(Opcode.TRANS3_COMMIT)
async def trans3_commit(d, req, src, client):
    db = _db(d, req.data)
    if db is None:
        return _unknown(req.data)
    return await d.dbs.trans3_commit(client, db, req.data)


@control(Opcode.UPDATE_RECORD)
async def update_record(d, req, src, client):
    db = _db(d, req.data)
    if db is None:
        return _unknown(req.data)
    return await d.dbs.update_record(db, req.data)


@control(Opcode.SCHEDULE_FOR_DELETION)
def schedule_for_deletion(d, req, src, client):
    # The vacuumer finds every empty record by itself (ctdbcore/daemon/vacuum.py); the
    # hint only makes 4.17 faster.
    return 0


@control(Opcode.TRY_DELETE_RECORDS)
def try_delete_records(d, req, src, client):
    db = _db(d, req.data)
    if db is None:
        return _unknown(req.data)
    if not db.volatile or db.frozen:
        return (-1, b"", b"database cannot be vacuumed now")
    try:
        return d.dbs.vacuum_try_delete(db, req.data)
    except ValueError as e:
        return (-1, b"", str(e).encode())
