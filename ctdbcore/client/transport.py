"""The async client's byte pipe to ctdbd's unix socket: an asyncio protocol.

Bytes are handed to the client from the selector's callback as they arrive and
written straight to the socket, so a control costs one wake-up of the waiting task.
(anyio's socket stream re-registers the socket with the selector for every read and
passes through the loop on every send, which doubled a request's CPU cost.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ctdbcore.client.errors import ConnectionClosed

OnData = Callable[[bytes], None]
OnEof = Callable[[], None]


async def open_unix(path: str) -> Connection:
    """Connect to ``path`` (raises OSError)."""
    _, conn = await asyncio.get_running_loop().create_unix_connection(Connection, path)
    return conn


class Connection(asyncio.Protocol):
    """One connection; what arrives goes to ``on_data``, its end to ``on_eof``."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._on_data: OnData | None = None
        self._on_eof: OnEof | None = None
        self._early: list[bytes] = []
        self._lost = False
        self._writable = asyncio.Event()
        self._writable.set()

    def start(self, on_data: OnData, on_eof: OnEof) -> None:
        """Deliver from now on (anything that came before is delivered at once)."""
        self._on_data, self._on_eof = on_data, on_eof
        early, self._early = self._early, []
        for data in early:
            on_data(data)
        if self._lost:
            on_eof()

    def write(self, data: bytes) -> None:
        """Send ``data``, in order with other writes (ConnectionClosed if gone). Never
        waits: what the socket does not take at once asyncio buffers."""
        if self._lost or self._transport is None or self._transport.is_closing():
            raise ConnectionClosed("connection to daemon closed")
        self._transport.write(data)

    async def drain(self) -> None:
        """Wait while asyncio's write buffer is over its high-water mark."""
        if not self._writable.is_set():
            await self._writable.wait()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def fileno(self) -> int:
        assert self._transport is not None
        sock: Any = self._transport.get_extra_info("socket")
        return sock.fileno()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._on_data is None:
            self._early.append(data)
        else:
            self._on_data(data)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._writable.set()  # a waiting writer learns the news
        if self._on_eof is not None:
            self._on_eof()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()
