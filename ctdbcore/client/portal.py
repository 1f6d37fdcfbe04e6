"""The event loop thread behind a blocking client: a portal in the sense of anyio's
blocking portal -- a thread of its own running an asyncio loop, which other threads
hand coroutines to and wait for -- started with the client and stopped with it.

Not ``anyio.from_thread.start_blocking_portal``: importing anyio's asyncio backend
costs a `ctdb` command about a sixth of its start-up, and BlockingPortal.call waits
for the loop twice per call (to spawn the task, then for it), where one hand-off each
way is enough. Code run here may still use anyio: the loop is asyncio's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


async def _await(aw: Awaitable[T]) -> T:
    return await aw


class Portal:
    """Runs coroutines on one event loop for the threads that call :meth:`call`."""

    def __init__(self, name: str = "ctdb-client") -> None:
        self._loop = asyncio.new_event_loop()
        self._closed = False
        # A daemon thread: a client nobody closed must not keep the process alive.
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Whatever still runs (a call whose caller was interrupted) is cancelled
            # and allowed to clean up before the loop goes.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    @property
    def running(self) -> bool:
        return not self._closed

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        """Await ``fn(*args, **kw)`` in the loop and return its result (or raise its
        exception) in the calling thread. An interrupted caller (KeyboardInterrupt)
        cancels the call."""
        if self._closed:
            raise RuntimeError("the portal is closed")
        if threading.current_thread() is self.thread:
            raise RuntimeError("a portal cannot wait for its own thread")
        loop = self._loop
        done = threading.Lock()  # released by the loop when the call is over
        done.acquire()
        box: list[Any] = []

        def start() -> None:
            try:
                aw = fn(*args, **kw)
                task = loop.create_task(aw if asyncio.iscoroutine(aw) else _await(aw))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box.append(exc)
                done.release()
                return
            box.append(task)
            task.add_done_callback(lambda _: done.release())

        loop.call_soon_threadsafe(start)
        try:
            done.acquire()
        except BaseException:
            loop.call_soon_threadsafe(lambda: box and isinstance(box[0], asyncio.Task) and box[0].cancel())
            raise
        got = box[0]
        if isinstance(got, BaseException):
            raise got
        return got.result()

    @contextmanager
    def wrap(self, cm: AbstractAsyncContextManager[T]) -> Iterator[T]:
        """An async context manager used from a thread: entered and left by two calls
        (two tasks), so it must not hold a cancel scope or task group across its
        ``yield``; the client's context managers do not."""
        value = self.call(cm.__aenter__)
        try:
            yield value
        except BaseException as exc:
            if not self.call(cm.__aexit__, type(exc), exc, exc.__traceback__):
                raise
        else:
            self.call(cm.__aexit__, None, None, None)

    def close(self) -> None:
        """Stop the loop (cancelling what still runs) and join its thread. Idempotent."""
        if self._closed:
            return
        if threading.current_thread() is self.thread:
            raise RuntimeError("a portal cannot be closed from its own thread")
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self.thread.join()
