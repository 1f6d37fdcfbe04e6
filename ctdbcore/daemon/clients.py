"""The unix-socket server for local clients (the ctdb tool, smbd, recovery tools).

4.17 rules kept here: the socket is mode 0700 (root only, or a configured group
gets 0770), the peer pid comes from SO_PEERCRED, packets need no padding, a packet
shorter than a header or with a bad magic is dropped without closing the
connection, and a zero length field ends it.
"""

from __future__ import annotations

import grp
import logging
import os
import socket
import struct
from typing import Callable

import anyio
import attrs
from anyio.abc import SocketAttribute, SocketStream

from ctdbcore.protocol.decoder import StreamDecoder
from ctdbcore.protocol.errors import ProtocolError

# 4.17 hands out client ids from reqid_init(INT_MAX-200); the first one seen live is
# 0x7fffff38.
FIRST_CLIENT_ID = 0x7FFFFF38
QUEUE_LEN = 100000


@attrs.define(eq=False)
class ClientConn:
    client_id: int
    pid: int
    stream: SocketStream
    queue: anyio.abc.ObjectSendStream
    srvids: set[int] = attrs.field(factory=set)
    closed: bool = False

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.queue.send_nowait(data)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            # 4.17 drops a client whose queue exceeds MaxQueueDropMsg.
            self.drop()

    def drop(self) -> None:
        """Disconnect this client (its reader sees the end and cleans up)."""
        self.closed = True
        try:
            self.stream.extra(SocketAttribute.raw_socket).shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class ClientServer:
    def __init__(
        self,
        path: str,
        *,
        on_packet: Callable[[ClientConn, object], None],
        on_close: Callable[[ClientConn], None],
        logger: logging.Logger,
        group: str | None = None,
    ) -> None:
        self.path = path
        self.on_packet = on_packet
        self.on_close = on_close
        self.log = logger
        self.group = group
        self.clients: dict[int, ClientConn] = {}
        self._next_id = FIRST_CLIENT_ID

    async def serve(self, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        listener = await anyio.create_unix_listener(self.path)
        if self.group:
            os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)
            os.chmod(self.path, 0o770)
        else:
            os.chmod(self.path, 0o700)
        task_status.started()
        try:
            await listener.serve(self._handle)
        finally:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    async def _handle(self, stream: SocketStream) -> None:
        sock = stream.extra(SocketAttribute.raw_socket)
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid = struct.unpack("3i", creds)[0]
        except OSError:
            pid = 0
        client_id = self._next_id
        self._next_id = self._next_id + 1 if self._next_id < 0x7FFFFFFF else FIRST_CLIENT_ID
        send_q, recv_q = anyio.create_memory_object_stream(QUEUE_LEN)
        client = ClientConn(client_id, pid, stream, send_q)
        self.clients[client_id] = client
        decoder = StreamDecoder(strict=False)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, stream, recv_q, tg.cancel_scope)
                try:
                    while True:
                        data = await stream.receive(65536)
                        decoder.feed(data)
                        for ev in decoder.events():
                            if hasattr(ev, "OPERATION"):
                                self.on_packet(client, ev)
                            else:
                                self.log.warning("client pid %d: dropped packet: %s", pid, ev.error)
                except ProtocolError as e:
                    self.log.error("client pid %d: %s, closing its connection", pid, e)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    pass
                tg.cancel_scope.cancel()
        finally:
            client.closed = True
            self.clients.pop(client_id, None)
            send_q.close()
            self.on_close(client)
            await stream.aclose()

    async def _writer(self, stream: SocketStream, queue, scope) -> None:
        try:
            async with queue:
                async for data in queue:
                    await stream.send(data)
        except Exception:
            pass
        scope.cancel()
