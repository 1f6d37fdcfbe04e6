"""Async client for ctdbd's unix socket: the one implementation of the client's side of
the protocol (connection, request ids, control replies, messages, calls).

What arrives is routed as it arrives (:mod:`ctdbcore.client.transport`): replies to
their waiters by reqid, messages to per-srvid inboxes, so any number of tasks can share
one connection. Databases (attach, fetch_lock, traverse, transactions) are in
:mod:`ctdbcore.client.aiodb`; the blocking :class:`ctdbcore.client.sync.Client` runs
this very client in a loop thread of its own.

It runs on asyncio -- under anyio, on its asyncio backend (``anyio.run``'s default, and
what ctdbd runs on). Waiting uses asyncio futures with timer timeouts rather than anyio
primitives: a blocking ``ctdb`` command would otherwise pay for importing anyio's
backend at start-up, and a control for two extra passes through the loop. Cancelling
the calling task (an anyio cancel scope does that) cancels the wait.

Use::

    async with await AsyncClient.connect() as c:
        nodemap = await c.get_nodemap()
        db = await c.attach("test.tdb")
        async with db.fetch_lock(b"key") as rec:
            rec.store(b"value")
        async for rec in db.traverse():
            ...
        await c.register_srvid(srvid)
        data = await c.receive(srvid, timeout=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import math
import os
import struct
from typing import TYPE_CHECKING, Any

from ctdbcore.client.aiocontrols import TypedControls, pack_payload
from ctdbcore.client.errors import (
    DEFAULT_TIMEOUT,
    ConnectError,
    ConnectionClosed,
    ControlError,
    ControlReply,
    ControlTimeout,
    DbError,
    control_reply,
)
from ctdbcore.client.inbox import CLOSED, EXPIRED, Inbox, shielded, wait
from ctdbcore.client.paths import default_socket_path
from ctdbcore.client.transport import Connection, open_unix
from ctdbcore.protocol import packets, types
from ctdbcore.protocol.constants import (
    BROADCAST_CONNECTED,
    CTRL_FLAG_NOREPLY,
    CURRENT_NODE,
    IMMEDIATE_MIGRATION,
    NULL_FUNC,
    UNKNOWN_PNN,
    Opcode,
    Srvid,
)
from ctdbcore.protocol.decoder import StreamDecoder

if TYPE_CHECKING:
    from ctdbcore.client.aiodb import AsyncClientDb

__all__ = ["DEFAULT_TIMEOUT", "AsyncClient"]

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_REPLIES = (packets.ReplyControl, packets.ReplyCall, packets.ReplyError)


class AsyncClient(TypedControls):
    """A connection to one ctdbd, shared by any number of tasks.

    Open it with ``async with await AsyncClient.connect(path) as c``; entering learns
    this node's pnn (GET_PNN, as 4.17's client_connect does).
    """

    def __init__(self, conn: Connection, timeout: float = 10.0, *,
                 srvid_base: int | None = None, socket_path: str | None = None) -> None:
        self._conn = conn
        self.socket_path = socket_path
        self.timeout = timeout
        self.pnn = UNKNOWN_PNN
        self._reqid = 0
        self._decoder = StreamDecoder(strict=False)
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._inboxes: dict[int, Inbox] = {}
        base = Srvid.CLIENT_RANGE | ((os.getpid() & 0xFFFF) << 32) if srvid_base is None else srvid_base
        # A C-level counter: the blocking facade calls next_srvid from its caller's thread.
        self._srvids = itertools.count(base + 1)
        self._closed = False
        # g_lock.tdb, attached by the first transaction and kept (see aiodb.transaction).
        self.glock_db: AsyncClientDb | None = None

    @classmethod
    async def connect(cls, socket_path: str | None = None, timeout: float = 10.0, *,
                      srvid_base: int | None = None) -> AsyncClient:
        """Connect to ``socket_path`` ($CTDB_SOCKET or the run dir's by default).
        Raises :class:`ConnectError` (4.17's "connect() failed, errno=N")."""
        path = socket_path or default_socket_path()
        try:
            conn = await open_unix(path)
        except OSError as exc:
            raise ConnectError(path, exc.errno or errno.ECONNREFUSED) from exc
        return cls(conn, timeout, srvid_base=srvid_base, socket_path=path)

    async def __aenter__(self) -> AsyncClient:
        self._conn.start(self._received, self._ended)
        try:
            # 4.17 client_connect.c: the GET_PNN goes out with no timeout; we keep ours.
            self.pnn = await self.get_pnn()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the connection (attached databases' files stay open until closed)."""
        if self.glock_db is not None:
            self.glock_db.close()
            self.glock_db = None
        self._conn.close()
        self._ended()

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self._conn.fileno()

    # -- plumbing ------------------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        """Route what arrived: replies to their waiters, messages to their inboxes."""
        self._decoder.feed(data)
        for ev in self._decoder.events():
            if isinstance(ev, _REPLIES):
                fut = self._waiters.get(ev.reqid)
                if fut is not None and not fut.done():
                    fut.set_result(ev)
            elif isinstance(ev, packets.ReqMessage):
                inbox = self._inboxes.get(ev.srvid)
                if inbox is not None:
                    inbox.put(bytes(ev.data))
            # Anything else (Dropped, stray calls) is of no interest to a client.

    def _ended(self) -> None:
        """The daemon is gone (or we closed): whoever waits learns nothing more comes."""
        self._closed = True
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_result(CLOSED)
        for inbox in self._inboxes.values():
            inbox.close()

    def _next_reqid(self) -> int:
        # 1, 2, 3, ... as 4.17's reqid allocator starts near 1 for a fresh client.
        self._reqid = (self._reqid % 0xFFFFFFFE) + 1
        return self._reqid

    def _timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return math.inf
        return self.timeout if timeout == DEFAULT_TIMEOUT else timeout

    def _write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionClosed("client is closed")
        self._conn.write(data)

    async def _send(self, data: bytes) -> None:
        self._write(data)
        await self._conn.drain()

    async def _request(self, pkt: Any, timeout: float | None, opcode: int) -> Any:
        fut = self._waiters[pkt.reqid] = asyncio.get_running_loop().create_future()
        try:
            await self._send(packets.pack(pkt))
            reply = await wait(fut, self._timeout(timeout))
        finally:
            del self._waiters[pkt.reqid]
        if reply is EXPIRED:
            raise ControlTimeout(opcode)
        if reply is CLOSED:
            raise ConnectionClosed("connection to daemon closed")
        return reply

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (tests of the daemon's handling of bad input)."""
        await self._send(bytes(data))

    # -- controls ------------------------------------------------------------------------

    def _control_packet(self, destnode: int, opcode: int, data: bytes, srvid: int, flags: int) -> packets.ReqControl:
        return packets.ReqControl(generation=0, destnode=destnode, srcnode=self.pnn, reqid=self._next_reqid(),
                                  opcode=opcode, srvid=srvid, client_id=0, flags=flags, data=bytes(data))

    async def control(self, opcode: int, data: bytes = b"", *, destnode: int = CURRENT_NODE, srvid: int = 0,
                      flags: int = 0, timeout: float | None = DEFAULT_TIMEOUT) -> ControlReply:
        """Send one control and wait for its reply, whatever its status (no wait with
        CTRL_FLAG_NOREPLY). Raises :class:`ControlTimeout`, :class:`ConnectionClosed`."""
        pkt = self._control_packet(destnode, opcode, data, srvid, flags)
        if flags & CTRL_FLAG_NOREPLY:
            await self._send(packets.pack(pkt))
            return ControlReply(0)
        return control_reply(await self._request(pkt, timeout, opcode))

    async def checked(self, opcode: int, data: bytes = b"", **kw: Any) -> ControlReply:
        """:meth:`control`, raising :class:`ControlError` on a non-zero status."""
        reply = await self.control(opcode, data, **kw)
        if reply.status != 0:
            raise ControlError(opcode, reply.status, reply.errmsg)
        return reply

    async def control_multi(self, requests: list[tuple[int, int, bytes]], *, flags: int = 0,
                            timeout: float | None = DEFAULT_TIMEOUT) -> list[ControlReply | None]:
        """Send every (destnode, opcode, data) at once, then collect the replies within one
        ``timeout`` (4.17 ``ctdb_client_control_multi``). None marks a control that timed
        out; the order is that of ``requests``."""
        loop = asyncio.get_running_loop()
        pkts = [self._control_packet(d, op, data, 0, flags) for d, op, data in requests]
        futs = [loop.create_future() for _ in pkts]
        self._waiters.update((p.reqid, f) for p, f in zip(pkts, futs))
        try:
            for p in pkts:
                await self._send(packets.pack(p))
            left = self._timeout(timeout)
            if futs:
                await asyncio.wait(futs, timeout=None if left == math.inf else left)
        finally:
            for p in pkts:
                self._waiters.pop(p.reqid, None)
        return [control_reply(f.result()) if f.done() and f.result() is not CLOSED else None for f in futs]

    # -- messages ------------------------------------------------------------------------

    def next_srvid(self) -> int:
        """A fresh srvid of this client's range (4.17 tools/ctdb.c ``next_srvid``)."""
        return next(self._srvids)

    def registered(self, srvid: int) -> bool:
        return srvid in self._inboxes

    async def register_srvid(self, srvid: int, buffer: float = 1000) -> None:
        """Have the daemon pass on messages for ``srvid``; up to ``buffer`` of them wait
        here for :meth:`receive` (``math.inf``: no limit), later ones are dropped."""
        new = srvid not in self._inboxes
        if new:
            self._inboxes[srvid] = Inbox(buffer)
        try:
            await self.checked(Opcode.REGISTER_SRVID, srvid=srvid)
        except BaseException:
            if new:
                self._inboxes.pop(srvid, None)
            raise

    async def deregister_srvid(self, srvid: int) -> None:
        """Stop the messages for ``srvid``; those not received yet are dropped."""
        await self.checked(Opcode.DEREGISTER_SRVID, srvid=srvid)
        self._drop_inbox(srvid)

    async def deregister_quietly(self, srvid: int) -> None:
        """:meth:`deregister_srvid` for clean-up: carried through even in a cancelled
        task, errors ignored (the daemon forgets a client's srvids when it goes)."""
        with contextlib.suppress(ControlError, OSError):
            await shielded(self.deregister_srvid(srvid))
        self._drop_inbox(srvid)

    def _drop_inbox(self, srvid: int) -> None:
        inbox = self._inboxes.pop(srvid, None)
        if inbox is not None:
            inbox.close()

    async def send_message(self, destnode: int, srvid: int, data: bytes = b"") -> None:
        pkt = packets.ReqMessage(generation=1, destnode=destnode, srcnode=self.pnn, reqid=0, srvid=srvid,
                                 data=bytes(data))
        await self._send(packets.pack(pkt))

    async def receive(self, srvid: int, timeout: float | None = None) -> bytes | None:
        """The oldest waiting or the next message for ``srvid``; None after ``timeout``
        seconds (None: no limit), or at once when ``srvid`` is not registered (nothing
        is kept for it). Raises :class:`ConnectionClosed` once the daemon is gone and
        nothing is left."""
        inbox = self._inboxes.get(srvid)
        if inbox is None:
            return None
        got = await inbox.get(math.inf if timeout is None else timeout)
        if got is EXPIRED:
            return None
        if got is CLOSED:
            if self._inboxes.get(srvid) is inbox:
                raise ConnectionClosed("connection to daemon closed")
            return None  # deregistered meanwhile
        return got

    def receive_waiting(self, srvid: int) -> list[bytes]:
        """The messages for ``srvid`` already here, without waiting."""
        inbox = self._inboxes.get(srvid)
        return [] if inbox is None else inbox.take_all()

    async def get_leader(self, timeout: float | None = DEFAULT_TIMEOUT) -> int:
        """Wait for a LEADER broadcast (the leader sends one a second). UNKNOWN_PNN when
        none arrives in ``timeout`` s or while an election is running (0xFFFFFFFF)."""
        if Srvid.LEADER not in self._inboxes:
            await self.register_srvid(Srvid.LEADER)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout(timeout)
        leader = UNKNOWN_PNN
        # Use the newest broadcast already queued, as 4.17's leader_handler keeps the last.
        for data in self.receive_waiting(Srvid.LEADER):
            if len(data) >= 4:
                leader = _U32.unpack_from(data)[0]
        while leader == UNKNOWN_PNN:
            left = deadline - loop.time()
            if left <= 0:
                break
            data = await self.receive(Srvid.LEADER, left)
            if data is None:
                break
            if len(data) >= 4:
                leader = _U32.unpack_from(data)[0]
        return leader

    async def takeover_run(self, timeout: float | None = DEFAULT_TIMEOUT, attempts: int | None = None) -> int:
        """4.17 "ipreallocate": ask the leader for a takeover run and wait for its i32
        answer (the leader's pnn, or negative on failure). Like 4.17 the request is resent
        after each ``timeout``; ``attempts=None`` retries until answered."""
        loop = asyncio.get_running_loop()
        srvid = self.next_srvid()
        await self.register_srvid(srvid)
        msg = pack_payload(types.SrvidMessage(pnn=self.pnn, srvid=srvid))
        try:
            tries = 0
            while attempts is None or tries < attempts:
                tries += 1
                await self.send_message(BROADCAST_CONNECTED, Srvid.TAKEOVER_RUN, msg)
                deadline = loop.time() + self._timeout(timeout)
                while (left := deadline - loop.time()) > 0:
                    data = await self.receive(srvid, left)
                    if data is None:
                        break
                    if len(data) == 4:  # 4.17 ignores anything but sizeof(int)
                        return _I32.unpack(data)[0]
            raise ControlTimeout(Opcode.REGISTER_SRVID)
        finally:
            await self.deregister_quietly(srvid)

    # -- calls and databases -------------------------------------------------------------

    async def call(self, db_id: int, key: bytes, *, callid: int = NULL_FUNC, flags: int = IMMEDIATE_MIGRATION,
                   calldata: bytes = b"", timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
        """One REQ_CALL to the local daemon (by default: bring ``key`` here); the
        REPLY_CALL's data. Raises :class:`DbError` when the call fails."""
        pkt = packets.ReqCall(generation=0, destnode=CURRENT_NODE, srcnode=self.pnn, reqid=self._next_reqid(),
                              flags=flags, db_id=db_id, callid=callid, hopcount=0, key=key, calldata=calldata)
        # No opcode names a call; the timeout's type is what matters.
        reply = await self._request(pkt, timeout, Opcode.GET_DBMAP)
        if not isinstance(reply, packets.ReplyCall) or reply.status != 0:
            raise DbError(f"call on db 0x{db_id:08x} failed: {reply}")
        return bytes(reply.data)

    async def attach(self, name: str, *, persistent: bool = False, replicated: bool = False) -> AsyncClientDb:
        """Attach database ``name`` (see :func:`ctdbcore.client.aiodb.attach`)."""
        # Imported here: the database modules load libtdb, which a CLI command that
        # touches no database should not pay for at start-up.
        from ctdbcore.client.aiodb import attach

        return await attach(self, name, persistent=persistent, replicated=replicated)
