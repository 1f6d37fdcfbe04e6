"""The TCP node transport (`ctdb.transport` plugin "tcp"), 4.17's layout.

Two TCP connections per pair of nodes, as in 4.17 (tcp/tcp_connect.c): a node sends
to X on the connection it opened to X (bound to its own node address) and receives
from X on the connection X opened to it; inbound connections are mapped to a node
by the peer's IP alone. A peer counts as connected when both exist.

Unlike 4.17 we act on a reset or EOF on either connection at once (4.17 notices a
dead outbound connection immediately too, but a half-open inbound one only through
keepalives), and a new inbound connection from a peer replaces the old one instead
of being refused, because it means the peer restarted.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

import anyio
import attrs
from anyio.abc import SocketAttribute, SocketStream

from ctdbcore.daemon.transport import TransportHost
from ctdbcore.protocol.decoder import StreamDecoder
from ctdbcore.protocol.errors import ProtocolError

CONNECT_TIMEOUT = 1.0  # 4.17 abandons a connect attempt after 1 s
BACKOFF_MIN = 0.05
BACKOFF_MAX = 1.0
QUEUE_LEN = 10000


@attrs.define(eq=False)
class _Peer:
    pnn: int
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address
    inbound: SocketStream | None = None
    outbound: SocketStream | None = None
    queue: anyio.abc.ObjectSendStream | None = None
    connected: bool = False


def _shutdown(stream: SocketStream | None) -> None:
    if stream is None:
        return
    try:
        stream.extra(SocketAttribute.raw_socket).shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class TcpTransport:
    def __init__(self, *, own_pnn, addresses, port, host: TransportHost, logger: logging.Logger) -> None:
        self.own_pnn = own_pnn
        self.own_addr = addresses[own_pnn]
        self.port = port
        self.host = host
        self.log = logger
        self.peers = {pnn: _Peer(pnn, a) for pnn, a in addresses.items() if pnn != own_pnn}
        self._by_ip = {a: pnn for pnn, a in addresses.items()}

    # -- Transport API ----------------------------------------------------------

    def send(self, pnn: int, data: bytes) -> bool:
        peer = self.peers.get(pnn)
        if peer is None or peer.queue is None:
            return False
        try:
            peer.queue.send_nowait(data)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.drop(pnn, "send queue overflow")
            return False
        return True

    def drop(self, pnn: int, reason: str) -> None:
        peer = self.peers.get(pnn)
        if peer is None:
            return
        _shutdown(peer.inbound)
        _shutdown(peer.outbound)
        self._lost(peer, reason)

    def is_connected(self, pnn: int) -> bool:
        peer = self.peers.get(pnn)
        return bool(peer and peer.connected)

    async def serve(self, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host=str(self.own_addr), local_port=self.port)
        self.log.log(25, "Listening on %s:%d", self.own_addr, self.port)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, self._accept)
                for peer in self.peers.values():
                    tg.start_soon(self._outbound_loop, peer)
                task_status.started()
        finally:
            # Closed now, not when the process exits: a ctdbd restarted right after a
            # shutdown binds the same port.
            with anyio.CancelScope(shield=True):
                await listener.aclose()
                for peer in self.peers.values():
                    _shutdown(peer.inbound)
                    _shutdown(peer.outbound)

    # -- internals ----------------------------------------------------------------

    def _check_connected(self, peer: _Peer) -> None:
        if not peer.connected and peer.inbound is not None and peer.outbound is not None:
            peer.connected = True
            self.host.peer_connected(peer.pnn)

    def _lost(self, peer: _Peer, reason: str) -> None:
        if peer.connected:
            peer.connected = False
            self.host.peer_lost(peer.pnn, reason)

    async def _accept(self, stream: SocketStream) -> None:
        try:
            ip = ipaddress.ip_address(stream.extra(SocketAttribute.remote_address)[0])
        except (ValueError, OSError):
            await stream.aclose()
            return
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        pnn = self._by_ip.get(ip)
        peer = self.peers.get(pnn) if pnn is not None else None
        if peer is None:
            self.log.warning("Refused connection from unknown node %s", ip)
            await stream.aclose()
            return
        sock = stream.extra(SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if peer.inbound is not None:
            # A second inbound connection means the peer restarted.
            old, peer.inbound = peer.inbound, None
            _shutdown(old)
            self._lost(peer, "peer reconnected")
            _shutdown(peer.outbound)
        peer.inbound = stream
        self._check_connected(peer)
        decoder = StreamDecoder(strict=True)
        reason = "connection closed"
        try:
            while True:
                data = await stream.receive(65536)
                decoder.feed(data)
                for ev in decoder.events():
                    if hasattr(ev, "OPERATION"):
                        self.host.packet_received(peer.pnn, ev)
                    else:
                        self.log.warning("Dropped packet from node %d: %s", peer.pnn, ev.error)
        except ProtocolError as e:
            reason = f"protocol error: {e}"
            self.log.error("Node %d sent garbage (%s), dropping its connection", peer.pnn, e)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            if peer.inbound is stream:
                peer.inbound = None
                _shutdown(peer.outbound)
                self._lost(peer, reason)
            await stream.aclose()

    async def _outbound_loop(self, peer: _Peer) -> None:
        backoff = BACKOFF_MIN
        while True:
            try:
                with anyio.fail_after(CONNECT_TIMEOUT):
                    stream = await anyio.connect_tcp(str(peer.addr), self.port, local_host=str(self.own_addr))
            except (OSError, TimeoutError):
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_MIN
            sock = stream.extra(SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            send_q, recv_q = anyio.create_memory_object_stream(QUEUE_LEN)
            peer.outbound, peer.queue = stream, send_q
            self._check_connected(peer)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, stream, recv_q, tg.cancel_scope)
                try:
                    # 4.17: anything read on the outbound connection means trouble.
                    await stream.receive(1)
                except Exception:
                    pass
                tg.cancel_scope.cancel()
            if peer.outbound is stream:
                peer.outbound, peer.queue = None, None
                _shutdown(peer.inbound)
                self._lost(peer, "outbound connection closed")
            send_q.close()
            await stream.aclose()
            await anyio.sleep(BACKOFF_MIN)

    async def _writer(self, stream: SocketStream, queue, scope) -> None:
        try:
            async with queue:
                async for data in queue:
                    await stream.send(data)
        except Exception:
            pass
        scope.cancel()


@attrs.frozen
class _TcpPlugin:
    NAME: str = "tcp"

    def create(self, **kwargs) -> TcpTransport:
        return TcpTransport(**kwargs)


plugin = _TcpPlugin()
