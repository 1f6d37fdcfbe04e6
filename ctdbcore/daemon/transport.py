"""The node transport interface: what a `ctdb.transport` plugin provides.

A transport moves whole packets between ctdbd processes and says when a peer
becomes reachable or is lost. The daemon never sees sockets.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Protocol

from ctdbcore.protocol.packets import Packet


class TransportHost(Protocol):
    """Callbacks the daemon gives the transport (all called from the event loop)."""

    def peer_connected(self, pnn: int) -> None: ...
    def peer_lost(self, pnn: int, reason: str) -> None: ...
    def packet_received(self, pnn: int, packet: Packet) -> None: ...


class Transport(Protocol):
    async def serve(self, task_status) -> None:
        """Listen and keep connections to all peers until cancelled; when cancelled,
        close the listener and the connections before returning (the daemon cancels
        the transport at shutdown and expects the port free afterwards)."""

    def send(self, pnn: int, data: bytes) -> bool:
        """Queue one packed packet for a peer; False when it is not connected."""

    def drop(self, pnn: int, reason: str) -> None:
        """Tear down the connections to a peer (it is dead) and start reconnecting."""

    def is_connected(self, pnn: int) -> bool: ...


class TransportPlugin(Protocol):
    NAME: str

    def create(
        self,
        *,
        own_pnn: int,
        addresses: dict[int, ipaddress.IPv4Address | ipaddress.IPv6Address],
        port: int,
        host: TransportHost,
        logger: logging.Logger,
    ) -> Transport: ...
