"""Async (anyio) client for ctdbd's unix socket, with databases.

One reader task routes replies to their waiters by reqid and messages to per-srvid
queues, so any number of tasks can share one connection. Database access is the same
as :mod:`ctdbcore.client.db` (same files, same rules), except that waiting for a chain
lock another process holds goes through a lock helper process instead of blocking the
event loop.

Use::

    async with await AsyncClient.connect() as c:
        db = await c.attach("test.tdb")
        async with db.fetch_lock(b"key") as rec:
            rec.store(b"value")
        async for rec in db.traverse():
            ...
        await c.register_srvid(srvid)
        data = await c.receive(srvid, timeout=5)
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import struct
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc

from ctdbcore.client.db import _close_shared, _open_shared, attach_kind
from ctdbcore.client.sync import ControlError, ControlReply, ControlTimeout, _errmsg, default_socket_path
from ctdbcore.db import record
from ctdbcore.db.locking import record_lock
from ctdbcore.protocol import packets
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import (
    CTRL_FLAG_NOREPLY,
    CURRENT_NODE,
    IMMEDIATE_MIGRATION,
    NULL_FUNC,
    UNKNOWN_PNN,
    Opcode,
    Srvid,
)
from ctdbcore.protocol.decoder import StreamDecoder
from ctdbcore.protocol.records import LtdbHeader, RecData

_DMASTER_FLAGS = struct.Struct("<I4xI")


class AsyncClient:
    def __init__(self, stream: anyio.abc.SocketStream, timeout: float) -> None:
        self._stream = stream
        self.timeout = timeout
        self.pnn = UNKNOWN_PNN
        self._reqids = itertools.count(1)
        self._waiters: dict[int, tuple[anyio.Event, list[Any]]] = {}
        self._queues: dict[int, tuple[Any, Any]] = {}
        self._srvids = itertools.count(1)
        self._tool_srvid = Srvid.CLIENT_RANGE | ((os.getpid() & 0xFFFF) << 32)
        self._tg: anyio.abc.TaskGroup | None = None
        self._closed = False
        self._send_lock = anyio.Lock()

    @classmethod
    async def connect(cls, socket_path: str | None = None, timeout: float = 10.0) -> AsyncClient:
        stream = await anyio.connect_unix(socket_path or default_socket_path())
        return cls(stream, timeout)

    async def __aenter__(self) -> AsyncClient:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._reader)
        reply = await self.control(Opcode.GET_PNN)
        self.pnn = reply.status
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closed = True
        await self._stream.aclose()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)

    # -- plumbing ------------------------------------------------------------------------

    async def _reader(self) -> None:
        decoder = StreamDecoder(strict=False)
        try:
            while True:
                decoder.feed(await self._stream.receive(65536))
                for ev in decoder.events():
                    if isinstance(ev, (packets.ReplyControl, packets.ReplyCall, packets.ReplyError)):
                        waiter = self._waiters.get(ev.reqid)
                        if waiter is not None:
                            waiter[1].append(ev)
                            waiter[0].set()
                    elif isinstance(ev, packets.ReqMessage):
                        q = self._queues.get(ev.srvid)
                        if q is not None:
                            try:
                                q[0].send_nowait(bytes(ev.data))
                            except anyio.WouldBlock:
                                pass  # a listener that does not read loses messages, as with 4.17
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            for ev, _ in self._waiters.values():
                ev.set()

    async def _request(self, pkt: Any, timeout: float | None, opcode: int) -> Any:
        reqid = pkt.reqid
        ev = anyio.Event()
        box: list[Any] = []
        self._waiters[reqid] = (ev, box)
        try:
            async with self._send_lock:
                await self._stream.send(packets.pack(pkt))
            with anyio.move_on_after(math.inf if timeout is None else timeout):
                await ev.wait()
            if not box:
                if self._closed or ev.is_set():
                    raise ConnectionError("connection to daemon closed")
                raise ControlTimeout(opcode)
            return box[0]
        finally:
            self._waiters.pop(reqid, None)

    # -- controls and messages -----------------------------------------------------------

    async def control(self, opcode: int, data: bytes = b"", *, destnode: int = CURRENT_NODE, srvid: int = 0,
                      flags: int = 0, timeout: float | None = -1.0) -> ControlReply:
        pkt = packets.ReqControl(generation=0, destnode=destnode, srcnode=self.pnn, reqid=next(self._reqids),
                                 opcode=opcode, srvid=srvid, client_id=0, flags=flags, data=bytes(data))
        if flags & CTRL_FLAG_NOREPLY:
            async with self._send_lock:
                await self._stream.send(packets.pack(pkt))
            return ControlReply(0)
        reply = await self._request(pkt, self.timeout if timeout == -1.0 else timeout, opcode)
        return ControlReply(int(reply.status), bytes(reply.data), _errmsg(reply))

    async def checked(self, opcode: int, data: bytes = b"", **kw: Any) -> ControlReply:
        reply = await self.control(opcode, data, **kw)
        if reply.status != 0:
            raise ControlError(opcode, reply.status, reply.errmsg)
        return reply

    def next_srvid(self) -> int:
        return self._tool_srvid + next(self._srvids)

    async def register_srvid(self, srvid: int, buffer: int = 1000) -> None:
        if srvid not in self._queues:
            self._queues[srvid] = anyio.create_memory_object_stream(buffer)
        await self.checked(Opcode.REGISTER_SRVID, srvid=srvid)

    async def deregister_srvid(self, srvid: int) -> None:
        await self.checked(Opcode.DEREGISTER_SRVID, srvid=srvid)
        q = self._queues.pop(srvid, None)
        if q is not None:
            q[0].close()

    async def send_message(self, destnode: int, srvid: int, data: bytes = b"") -> None:
        pkt = packets.ReqMessage(generation=1, destnode=destnode, srcnode=self.pnn, reqid=0, srvid=srvid,
                                 data=bytes(data))
        async with self._send_lock:
            await self._stream.send(packets.pack(pkt))

    async def receive(self, srvid: int, timeout: float | None = None) -> bytes | None:
        """The next message for a registered ``srvid``; None after ``timeout`` seconds."""
        q = self._queues[srvid]
        with anyio.move_on_after(math.inf if timeout is None else timeout):
            return await q[1].receive()
        return None

    async def call(self, db_id: int, key: bytes, *, callid: int = NULL_FUNC, flags: int = IMMEDIATE_MIGRATION,
                   calldata: bytes = b"") -> bytes:
        pkt = packets.ReqCall(generation=0, destnode=CURRENT_NODE, srcnode=self.pnn, reqid=next(self._reqids),
                              flags=flags, db_id=db_id, callid=callid, hopcount=0, key=key, calldata=calldata)
        reply = await self._request(pkt, self.timeout, Opcode.GET_DBMAP)
        if not isinstance(reply, packets.ReplyCall) or reply.status != 0:
            raise ControlError(Opcode.GET_DBMAP, getattr(reply, "status", -1), f"call failed: {reply}")
        return bytes(reply.data)

    # -- databases -----------------------------------------------------------------------

    async def attach(self, name: str, *, persistent: bool = False, replicated: bool = False) -> AsyncClientDb:
        opcode, flags = attach_kind(persistent, replicated)
        db_id = T.unpack_u32((await self.checked(opcode, name.encode() + b"\0")).data)
        path = (await self.checked(Opcode.GETDBPATH, T.pack_u32(db_id))).data.rstrip(b"\0").decode()
        tdb_flags = T.unpack_i32((await self.checked(Opcode.DB_OPEN_FLAGS, T.pack_u32(db_id))).data)
        return AsyncClientDb(self, db_id, name, flags, path, tdb_flags)


class AsyncClientDb:
    def __init__(self, c: AsyncClient, db_id: int, name: str, flags: int, path: str, tdb_flags: int) -> None:
        self.c = c
        self.db_id = db_id
        self.name = name
        self.flags = flags
        self.path = path
        self.tdb = _open_shared(path, tdb_flags)
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _close_shared(self.path)

    @contextlib.asynccontextmanager
    async def fetch_lock(self, key: bytes) -> AsyncIterator[AsyncLockedRecord]:
        """Hold ``key`` locked here, migrating it to this node first when needed.
        Do not await other work on the same database inside the block."""
        for _ in range(1000):
            async with record_lock(self.tdb, key):
                value = self.tdb.fetch(key)
                if value is not None and len(value) >= 24:
                    dmaster, flags = _DMASTER_FLAGS.unpack_from(value, 8)
                    if dmaster == self.c.pnn and not flags & record.RO_FLAGS:
                        yield AsyncLockedRecord(self, key, value[:24], value[24:])
                        return
            await self.c.call(self.db_id, key)
        raise ControlError(Opcode.GET_DBMAP, -1, f"record {key!r} did not arrive after 1000 migrations")

    async def fetch(self, key: bytes) -> bytes | None:
        async with self.fetch_lock(key) as rec:
            return rec.data or None

    async def store(self, key: bytes, data: bytes) -> None:
        async with self.fetch_lock(key) as rec:
            rec.store(data)

    async def traverse(self, *, with_empty: bool = False) -> AsyncIterator[tuple[bytes, LtdbHeader, bytes]]:
        """Every record of the cluster once: (key, header, data)."""
        srvid = self.c.next_srvid()
        await self.c.register_srvid(srvid)
        try:
            start = T.TraverseStartExt(db_id=self.db_id, reqid=0, srvid=srvid, withemptyrecords=with_empty)
            await self.c.checked(Opcode.TRAVERSE_START_EXT, start.pack())
            while True:
                data = await self.c.receive(srvid, timeout=self.c.timeout)
                if data is None:
                    raise ControlTimeout(Opcode.TRAVERSE_START_EXT)
                rec = RecData.unpack(data)
                if not rec.key and not rec.data:
                    return
                rec = RecData.unpack(data, with_header=True)
                assert rec.header is not None
                yield rec.key, rec.header, rec.data
        finally:
            with contextlib.suppress(Exception):
                await self.c.deregister_srvid(srvid)


class AsyncLockedRecord:
    __slots__ = ("db", "key", "_raw_header", "data")

    def __init__(self, db: AsyncClientDb, key: bytes, raw_header: bytes, data: bytes) -> None:
        self.db = db
        self.key = key
        self._raw_header = raw_header
        self.data = data

    @property
    def header(self) -> LtdbHeader:
        return LtdbHeader.unpack(self._raw_header)

    def store(self, data: bytes) -> None:
        self.db.tdb.store(self.key, self._raw_header + data)
        self.data = data
