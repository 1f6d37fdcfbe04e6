"""Databases from a client's side (4.17 client/client_db.c, Samba's dbwrap_ctdb).

A client opens the very TDB file its daemon uses: records this node is data master of
are read and written locally under the chain lock, with no message to the daemon; for
any other record the client asks the daemon to migrate it here (REQ_CALL) and looks
again. Persistent databases are changed only in cluster-wide transactions: a g_lock on
``g_lock.tdb`` serialises writers, and TRANS3_COMMIT applies the batch on every node.

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

import contextlib
import os
import struct
import time
from collections.abc import Iterator

import attrs

from ctdbcore.client.sync import Client, ControlError, ControlTimeout
from ctdbcore.db import record
from ctdbcore.db.tdb import Tdb
from ctdbcore.protocol import packets
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import (
    CTRL_FLAG_NOREPLY,
    CURRENT_NODE,
    IMMEDIATE_MIGRATION,
    NULL_FUNC,
    DbFlags,
    Opcode,
)
from ctdbcore.protocol.records import KeyData, LtdbHeader, RecBuffer, RecData

_U64 = struct.Struct("<Q")
_DMASTER_FLAGS = struct.Struct("<I4xI")  # ltdb header: dmaster at 8, flags at 16
_GLOCK_ENTRY = struct.Struct("<I4xQIIQ")  # type, pad, server_id{pid, task_id, vnn, unique_id}
GLOCK_READ, GLOCK_WRITE = 0, 1


class DbError(Exception):
    pass


@attrs.define
class Record:
    key: bytes
    header: LtdbHeader
    data: bytes


def call(c: Client, db_id: int, key: bytes, *, callid: int = NULL_FUNC, flags: int = IMMEDIATE_MIGRATION,
         calldata: bytes = b"", timeout: float | None = None) -> bytes:
    """One REQ_CALL to the local daemon; the REPLY_CALL's data."""
    reqid = c._next_reqid()
    c._send(packets.ReqCall(generation=0, destnode=CURRENT_NODE, srcnode=c.pnn, reqid=reqid, flags=flags,
                            db_id=db_id, callid=callid, hopcount=0, key=key, calldata=calldata))
    deadline = c._deadline(c.timeout if timeout is None else timeout)
    while reqid not in c._replies:
        if not c._pump(deadline):
            raise ControlTimeout(Opcode.GET_DBMAP)  # no opcode for calls; the type is what matters
    reply = c._replies.pop(reqid)
    if not isinstance(reply, packets.ReplyCall) or reply.status != 0:
        raise DbError(f"call on db 0x{db_id:08x} failed: {reply}")
    return bytes(reply.data)


def attach(c: Client, name: str, *, persistent: bool = False, replicated: bool = False) -> ClientDb:
    """Attach ``name`` on the local daemon (creating it cluster-wide if new) and open its file."""
    opcode, flags = attach_kind(persistent, replicated)
    r = c._checked(opcode, name.encode() + b"\0")
    if len(r.data) != 4:
        raise DbError(f"attach of {name}: reply of {len(r.data)} bytes")
    db_id = T.unpack_u32(r.data)
    path = c._checked(Opcode.GETDBPATH, T.pack_u32(db_id)).data.rstrip(b"\0").decode()
    tdb_flags = T.unpack_i32(c._checked(Opcode.DB_OPEN_FLAGS, T.pack_u32(db_id)).data)
    return ClientDb(c, db_id, name, flags, path, tdb_flags)


def attach_kind(persistent: bool, replicated: bool) -> tuple[int, int]:
    """The attach control and database flags for a kind of database."""
    if persistent:
        return Opcode.DB_ATTACH_PERSISTENT, int(DbFlags.PERSISTENT)
    if replicated:
        return Opcode.DB_ATTACH_REPLICATED, int(DbFlags.REPLICATED)
    return Opcode.DB_ATTACH, 0


# libtdb refuses to open one file twice in a process (its fcntl locks would clash), so
# every ClientDb of a path shares one open tdb.
_shared: dict[str, list] = {}


def _open_shared(path: str, tdb_flags: int) -> Tdb:
    entry = _shared.get(path)
    if entry is None:
        entry = _shared[path] = [Tdb.open(path, hash_size=0, tdb_flags=tdb_flags, open_flags=os.O_RDWR), 0]
    entry[1] += 1
    return entry[0]


def _close_shared(path: str) -> None:
    entry = _shared.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _shared[path]
        entry[0].close()


class ClientDb:
    def __init__(self, c: Client, db_id: int, name: str, flags: int, path: str, tdb_flags: int) -> None:
        self.c = c
        self.db_id = db_id
        self.name = name
        self.flags = flags
        self.path = path
        self.tdb = _open_shared(path, tdb_flags)
        self._closed = False

    @property
    def persistent(self) -> bool:
        return bool(self.flags & DbFlags.PERSISTENT)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _close_shared(self.path)

    def __enter__(self) -> ClientDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- volatile records --------------------------------------------------------------

    def fetch_lock(self, key: bytes) -> LockedRecord:
        """Hold ``key`` locked in this node's copy (``with db.fetch_lock(k) as rec:``),
        migrating it here first if this node is not its data master. Reads and writes
        inside the block are local."""
        if self.persistent:
            raise DbError("persistent databases are changed in transactions")
        return LockedRecord(self, key)

    def fetch(self, key: bytes) -> bytes | None:
        """The record's value (None when missing or empty)."""
        if self.persistent:
            got = record.split_value(self.tdb.fetch(key))
            return got[1] if got and got[1] else None
        with self.fetch_lock(key) as rec:
            return rec.data or None

    def store(self, key: bytes, data: bytes) -> None:
        with self.fetch_lock(key) as rec:
            rec.store(data)

    def delete(self, key: bytes) -> None:
        with self.fetch_lock(key) as rec:
            rec.delete()

    # -- traverse ----------------------------------------------------------------------

    def traverse(self, *, with_empty: bool = False, timeout: float | None = None) -> Iterator[Record]:
        """Every record in the cluster once, as the daemons hold them."""
        srvid = self.c.next_srvid()
        self.c.register_srvid(srvid)
        try:
            start = T.TraverseStartExt(db_id=self.db_id, reqid=0, srvid=srvid, withemptyrecords=with_empty)
            self.c._checked(Opcode.TRAVERSE_START_EXT, start.pack())
            while True:
                data = self.c.wait_message(srvid, self.c.timeout if timeout is None else timeout)
                if data is None:
                    raise DbError("traverse timed out")
                rec = RecData.unpack(data)
                if not rec.key and not rec.data:
                    return
                rec = RecData.unpack(data, with_header=True)
                assert rec.header is not None
                yield Record(rec.key, rec.header, rec.data)
        finally:
            with contextlib.suppress(ControlError, OSError):
                self.c.deregister_srvid(srvid)

    def traverse_local(self) -> Iterator[Record]:
        """This node's copy, straight from the file (4.17 ``cattdb``)."""
        for key, value in self.tdb.traverse():
            got = record.split_value(value)
            if got is not None:
                yield Record(key, got[0], got[1])

    # -- persistent transactions -------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, timeout: float = 60.0) -> Iterator[Transaction]:
        if not self.persistent and not self.flags & DbFlags.REPLICATED:
            raise DbError("transactions are for persistent and replicated databases")
        glock = GLock(self.c, f"transaction_db_0x{self.db_id:08x}".encode() + b"\0")
        glock.lock(timeout)
        try:
            t = Transaction(self)
            yield t
            t.commit()
        finally:
            glock.unlock()


class LockedRecord:
    """A record held under its chain lock; ``data`` is its value (b"" when new).

    Written for the hot path of a node-local workload: one chainlock, one fetch, one
    store and one unlock, no per-record objects beyond this one."""

    __slots__ = ("db", "key", "_raw_header", "data", "deleted")

    def __init__(self, db: ClientDb, key: bytes) -> None:
        self.db = db
        self.key = key
        self.deleted = False

    def __enter__(self) -> LockedRecord:
        db, key, tdb, pnn = self.db, self.key, self.db.tdb, self.db.c.pnn
        for _ in range(1000):
            tdb.chainlock(key)
            value = tdb.fetch(key)
            if value is not None and len(value) >= 24:
                dmaster, flags = _DMASTER_FLAGS.unpack_from(value, 8)
                if dmaster == pnn and not flags & record.RO_FLAGS:
                    self._raw_header = value[:24]
                    self.data = value[24:]
                    return self
            tdb.chainunlock(key)
            call(db.c, db.db_id, key)
        raise DbError(f"record {key!r} did not arrive after 1000 migrations")

    def __exit__(self, *exc: object) -> None:
        self.db.tdb.chainunlock(self.key)
        if self.deleted:
            self.db.c.control(Opcode.SCHEDULE_FOR_DELETION, KeyData(self.db.db_id, self.header, self.key).pack(),
                              srvid=self.db.db_id, flags=CTRL_FLAG_NOREPLY)

    @property
    def header(self) -> LtdbHeader:
        return LtdbHeader.unpack(self._raw_header)

    def store(self, data: bytes) -> None:
        # Like Samba, the header goes back as read: the daemon counts RSNs on migration.
        self.db.tdb.store(self.key, self._raw_header + data)
        self.data = data
        self.deleted = False

    def delete(self) -> None:
        self.store(b"")
        self.deleted = True


class Transaction:
    """Writes buffered until commit; reads see the local copy plus this transaction."""

    def __init__(self, db: ClientDb) -> None:
        self.db = db
        self.writes: dict[bytes, bytes] = {}

    def fetch(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key] or None
        got = record.split_value(self.db.tdb.fetch(key))
        return got[1] if got and got[1] else None

    def store(self, key: bytes, data: bytes) -> None:
        self.writes[key] = data

    def delete(self, key: bytes) -> None:
        self.writes[key] = b""

    def _header(self, key: bytes) -> LtdbHeader:
        got = record.split_value(self.db.tdb.fetch(key))
        rsn = got[0].rsn if got else 0
        return LtdbHeader(rsn=rsn + 1, dmaster=self.db.c.pnn, flags=0)

    def commit(self) -> None:
        changes = {k: v for k, v in self.writes.items() if self._current(k) != v}
        if not changes:
            return
        old = self.db.tdb.fetch(record.SEQNUM_KEY)
        got = record.split_value(old)
        seq = _U64.unpack(got[1])[0] if got and len(got[1]) == 8 else 0
        changes[record.SEQNUM_KEY] = _U64.pack(seq + 1)
        recs = tuple(RecData(reqid=0, key=k, data=v, header=self._header(k)) for k, v in changes.items())
        buf = RecBuffer(self.db.db_id, recs).pack()
        while True:
            r = self.db.c.control(Opcode.TRANS3_COMMIT, buf, srvid=self.db.db_id, timeout=120)
            if r.status == 0:
                return
            # 4.17's rule: the local seqnum tells whether a recovery finished the job.
            now_got = record.split_value(self.db.tdb.fetch(record.SEQNUM_KEY))
            now = _U64.unpack(now_got[1])[0] if now_got and len(now_got[1]) == 8 else 0
            if now == seq + 1:
                return
            if now != seq:
                raise DbError(f"transaction on {self.db.name} lost: seqnum {now}, expected {seq} or {seq + 1}")
            time.sleep(0.1)

    def _current(self, key: bytes) -> bytes:
        got = record.split_value(self.db.tdb.fetch(key))
        return got[1] if got else b""


class GLock:
    """ctdb's own g_lock (4.17 client/client_db.c): a list of holders in a record of
    the volatile ``g_lock.tdb``, changed under that record's fetch_lock."""

    def __init__(self, c: Client, key: bytes) -> None:
        self.c = c
        self.key = key
        self.db = attach(c, "g_lock.tdb")
        self.me = (os.getpid(), 0, c.pnn, int.from_bytes(os.urandom(8), "little"))

    def _entries(self, data: bytes) -> list[tuple[int, tuple[int, int, int, int]]]:
        out = []
        for off in range(0, len(data) - len(data) % 32, 32):
            t, pid, task, vnn, uid = _GLOCK_ENTRY.unpack_from(data, off)
            out.append((t, (pid, task, vnn, uid)))
        return out

    def _pack(self, entries) -> bytes:
        return b"".join(_GLOCK_ENTRY.pack(t, *sid) for t, sid in entries)

    def _alive(self, sid: tuple[int, int, int, int]) -> bool:
        pid, _, vnn, _ = sid
        r = self.c.control(Opcode.PROCESS_EXISTS, struct.pack("<i", pid), destnode=vnn)
        return r.status == 0

    def lock(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            with self.db.fetch_lock(self.key) as rec:
                entries = [e for e in self._entries(rec.data) if e[1] != self.me]
                if not entries:
                    rec.store(self._pack([(GLOCK_WRITE, self.me)]))
                    return
                holders = [e for e in entries if self._alive(e[1])]
                if len(holders) != len(entries):
                    rec.store(self._pack(holders))  # the dead do not hold locks
                    continue
            if time.monotonic() > deadline:
                raise DbError(f"g_lock {self.key!r} held by {holders[0][1]}")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def unlock(self) -> None:
        with self.db.fetch_lock(self.key) as rec:
            entries = [e for e in self._entries(rec.data) if e[1] != self.me]
            rec.store(self._pack(entries))
        self.db.close()
