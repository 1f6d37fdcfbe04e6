"""Waiting on the event loop for a reply (a future, :func:`wait`) or for the next
message of a srvid (:class:`Inbox`). A timeout is a timer that settles the future, not
a cancellation, so it never mixes with the caller's own cancel scopes; clean-up is
:func:`shielded` from them."""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

EXPIRED: Any = object()
"""What a wait returns when its timeout passed."""
CLOSED: Any = object()
"""What a wait returns when the connection ended."""


def _settle(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


async def wait(fut: asyncio.Future[Any], timeout: float) -> Any:
    """``fut``'s result, or EXPIRED after ``timeout`` seconds (``math.inf``: never)."""
    if fut.done() or timeout == math.inf:
        return await fut
    handle = asyncio.get_running_loop().call_later(max(timeout, 0.0), _settle, fut, EXPIRED)
    try:
        return await fut
    finally:
        handle.cancel()


async def shielded(aw: Awaitable[T]) -> T:
    """Await ``aw`` to its end even if the calling task is cancelled meanwhile (the
    caller then gets CancelledError while ``aw`` finishes in the background): clean-up
    that must not be cut short, such as deregistering a srvid or a g_lock."""
    return await asyncio.shield(asyncio.ensure_future(aw))


class Inbox:
    """Messages of one srvid, oldest first. Up to ``limit`` wait to be read; later ones
    are dropped (a listener that does not read loses messages, as with 4.17)."""

    __slots__ = ("_items", "_limit", "_getters", "closed")

    def __init__(self, limit: float = math.inf) -> None:
        self._items: collections.deque[bytes] = collections.deque()
        self._limit = limit
        self._getters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.closed = False

    def put(self, data: bytes) -> None:
        if self.closed:
            return
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(data)
                return
        if len(self._items) < self._limit:
            self._items.append(data)

    def close(self) -> None:
        """No more messages: waiting and later readers get CLOSED once the rest is read."""
        self.closed = True
        while self._getters:
            _settle(self._getters.popleft(), CLOSED)

    def take_all(self) -> list[bytes]:
        """What is here now, without waiting."""
        out = list(self._items)
        self._items.clear()
        return out

    async def get(self, timeout: float) -> Any:
        """The next message; EXPIRED after ``timeout`` s, CLOSED once closed and empty."""
        if self._items:
            return self._items.popleft()
        if self.closed:
            return CLOSED
        fut = asyncio.get_running_loop().create_future()
        self._getters.append(fut)
        try:
            return await wait(fut, timeout)
        except BaseException:
            # Cancelled just as a message was handed over: keep it for the next reader.
            if fut.done() and not fut.cancelled() and isinstance(fut.result(), bytes):
                self._items.appendleft(fut.result())
            raise
