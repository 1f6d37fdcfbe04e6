"""The unix-socket server for local clients (the ctdb tool, smbd, recovery tools).

4.17 rules kept here: the socket is mode 0700 (root only, or a configured group
gets 0770), the peer pid comes from SO_PEERCRED, packets need no padding, a packet
shorter than a header or with a bad magic is dropped without closing the
connection, and a zero length field ends it.

Every control a client sends passes here twice, so a connection is an asyncio
protocol (the daemon runs on anyio's asyncio backend, as the client library's
transport does): packets are decoded in ``data_received`` as the bytes come, and a
reply is handed to the socket at once by ``transport.write``, with no task per
connection waking up for each read and each write.
"""

from __future__ import annotations

import asyncio
import collections
import grp
import logging
import os
import socket
import struct
from typing import Callable

import anyio
import attrs

from ctdbcore.protocol.decoder import StreamDecoder
from ctdbcore.protocol.errors import ProtocolError

# 4.17 hands out client ids from reqid_init(INT_MAX-200); the first one seen live is
# 0x7fffff38.
FIRST_CLIENT_ID = 0x7FFFFF38
QUEUE_LEN = 100000  # packets a client has not read yet before it is dropped
BACKLOG = 65536  # as anyio's listeners (the kernel caps it at somaxconn)


@attrs.define(eq=False)
class ClientConn:
    client_id: int
    pid: int
    transport: asyncio.Transport
    srvids: set[int] = attrs.field(factory=set)
    closed: bool = False
    unsent: int = 0  # packets written while the socket had not taken earlier ones
    waiting: int = 0  # controls of this client whose tasks have not started
    stats: collections.Counter[str] | None = None  # the daemon's client_packets_sent

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self.stats is not None:
            self.stats["client_packets_sent"] += 1
        t = self.transport
        if t.is_closing():
            self.closed = True  # gone; connection_lost tells the daemon
            return
        if t.get_write_buffer_size():
            self.unsent += 1
            if self.unsent > QUEUE_LEN:
                # 4.17 drops a client whose queue exceeds MaxQueueDropMsg.
                self.close()
                return
        else:
            self.unsent = 0
        t.write(data)

    def close(self) -> None:
        self.closed = True
        self.transport.abort()


class _Connection(asyncio.Protocol):
    def __init__(self, server: ClientServer) -> None:
        self.server = server
        self.client: ClientConn | None = None
        self.decoder = StreamDecoder(strict=False)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.client = self.server._connected(transport)

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None or client.closed:
            return
        server = self.server
        decoder = self.decoder
        decoder.feed(data)
        try:
            for ev in decoder.events():
                if hasattr(ev, "OPERATION"):
                    server.on_packet(client, ev)
                    if client.closed:
                        return
                else:
                    server.log.warning("client pid %d: dropped packet: %s", client.pid, ev.error)
        except ProtocolError as e:
            server.log.error("client pid %d: %s, closing its connection", client.pid, e)
            client.close()

    def eof_received(self) -> bool:
        return False  # close the connection

    def connection_lost(self, exc: Exception | None) -> None:
        client, self.client = self.client, None
        if client is not None:
            self.server._gone(client)


class ClientServer:
    def __init__(
        self,
        path: str,
        *,
        on_packet: Callable[[ClientConn, object], None],
        on_close: Callable[[ClientConn], None],
        logger: logging.Logger,
        group: str | None = None,
        stats: collections.Counter[str] | None = None,
    ) -> None:
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._ino = 0
        self.stats = stats
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
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        server = await asyncio.get_running_loop().create_unix_server(lambda: _Connection(self), sock=sock)
        self._server, self._ino = server, os.stat(self.path).st_ino
        try:
            if self.group:
                os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)
                os.chmod(self.path, 0o770)
            else:
                os.chmod(self.path, 0o700)
            task_status.started()
            await anyio.sleep_forever()
        finally:
            self.stop_listening()
            for client in list(self.clients.values()):
                client.close()
                self._gone(client)

    def stop_listening(self) -> None:
        """Stop accepting clients and remove the socket, if it is still ours (a new
        daemon may already have put its own there); connected clients stay."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        try:
            if os.stat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        except OSError:
            pass

    def _connected(self, transport: asyncio.Transport) -> ClientConn:
        sock = transport.get_extra_info("socket")
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid = struct.unpack("3i", creds)[0]
        except OSError:
            pid = 0
        client_id = self._next_id
        self._next_id = self._next_id + 1 if self._next_id < 0x7FFFFFFF else FIRST_CLIENT_ID
        client = ClientConn(client_id, pid, transport, stats=self.stats)
        self.clients[client_id] = client
        return client

    def _gone(self, client: ClientConn) -> None:
        if self.clients.pop(client.client_id, None) is not client:
            return  # already told
        client.closed = True
        self.on_close(client)
