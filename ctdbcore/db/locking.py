"""Taking a record's chain lock, or a whole database's lock, without blocking the
event loop (4.17 server/ctdb_lock.c).

The fast path is a non-blocking lock in the daemon itself. A record's chain lock that
someone else (smbd) holds is tried again a few times within ``SPIN`` seconds, as smbd
holds them for a moment only; after that a helper process waits for it instead
(4.17's C helper costs about a millisecond, ours a few); once the helper holds it the
daemon *marks* the lock in its own tdb context and reads and writes under the helper's
lock. It has to be another process: fcntl locks belong to a process and robust
mutexes (TDB_MUTEX_LOCKING) to a thread, so neither could be taken by a worker thread
and used by the loop.

Helpers are forked by this process's lock server (:mod:`ctdbcore.db.lock_link`),
which saves the tens of milliseconds of a Python start-up per helper (a recovery
freezes every database at once); when it cannot help, :mod:`ctdbcore.db.lock_helper`
is spawned directly. Both run the same code and speak the same protocol.

libtdb counts locks per context and the daemon has one context per database, so
these locks exclude other processes, not other tasks of this one: a task that awaits
while holding a lock does not keep other tasks out of that chain.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.abc
import attrs

from ctdbcore.db import lock_link
from ctdbcore.db.tdb import Tdb, TdbBusy

if TYPE_CHECKING:
    from ctdbcore.db.dbstats import LockCounters

log = logging.getLogger("ctdb.tdb")

HELPER_MODULE = "ctdbcore.db.lock_helper"
# A helper that was told to let go but has not exited by then is killed.
RELEASE_TIMEOUT = 5.0
# A busy record lock is tried again for this long (pauses doubling from SPIN_FIRST)
# before a helper is started.
SPIN = 0.015
SPIN_FIRST = 0.0005
_MAX_ERROR_TEXT = 4096


class LockHelperError(OSError):
    """The helper process could not take the lock (it could not open the file, died...)."""


@attrs.define
class LockStats:
    """How locks were had; the daemon's lock statistics are built from these."""

    immediate: int = 0  # taken at once in this process
    spun: int = 0  # ... of which after the first try found it busy
    helper: int = 0  # busy: handed to a helper process
    spawned: int = 0  # ... started directly: the lock server could not fork it
    helper_locked: int = 0  # ... which got it
    timeouts: int = 0
    cancelled: int = 0
    failed: int = 0  # helper errors
    waiting: int = 0  # helpers waiting right now
    wait_seconds: float = 0.0  # total time until helpers got their locks
    wait_seconds_max: float = 0.0

    def note_wait(self, seconds: float) -> None:
        self.helper_locked += 1
        self.wait_seconds += seconds
        self.wait_seconds_max = max(self.wait_seconds_max, seconds)


STATS = LockStats()

# The daemon's per-database lock statistics (4.17's ``locks`` counters), by tdb context.
# Only locks that were not had at once are counted, so the fast path never looks here.
_COUNTERS: weakref.WeakKeyDictionary[Tdb, LockCounters] = weakref.WeakKeyDictionary()


def count_locks(tdb: Tdb, counters: LockCounters) -> None:
    """Count the busy locks taken on ``tdb`` from now on in ``counters``."""
    _COUNTERS[tdb] = counters


def helper_command(tdb: Tdb, target: str) -> list[str]:
    """argv of a helper locking ``target`` (a key in hex, or ``--all``) of ``tdb``."""
    return [sys.executable, "-m", HELPER_MODULE, tdb.path, hex(tdb.get_flags()), str(os.getpid()), target]


class Helper(Protocol):
    """A helper process taking a lock for us, however it was started."""

    pid: int

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """What it wrote to its stdout; anyio.EndOfStream at its end."""

    async def release(self, timeout: float) -> None:
        """End its stdin and wait until it has unlocked and exited; kill it after
        ``timeout``. Never interrupted."""

    async def kill(self) -> None:
        """Kill it and wait until it has exited. Never interrupted."""


@attrs.define
class SpawnedHelper:
    """A :mod:`ctdbcore.db.lock_helper` process started by us."""

    proc: anyio.abc.Process

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def receive(self, max_bytes: int = 65536) -> bytes:
        assert self.proc.stdout is not None
        return await self.proc.stdout.receive(max_bytes)

    async def release(self, timeout: float) -> None:
        proc = self.proc
        with anyio.CancelScope(shield=True):
            assert proc.stdin is not None
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await proc.stdin.aclose()
            with anyio.move_on_after(timeout):
                await proc.wait()
            if proc.returncode is None:
                log.error("lock helper %d did not let go within %ss: killed", proc.pid, timeout)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.aclose()  # closes the pipes and waits for the exit
            if proc.returncode != 0:
                log.warning("lock helper %d exited with %s", proc.pid, proc.returncode)

    async def kill(self) -> None:
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.aclose()


async def _start_helper(tdb: Tdb, target: str, stats: LockStats) -> Helper:
    """A helper set to lock ``target`` of ``tdb``: forked by the lock server, or else
    spawned. Cancelled: no helper is left behind."""
    forked = lock_link.request(tdb.path, tdb.get_flags(), target)
    if forked is not None and await forked.announced():
        return forked
    stats.spawned += 1
    # Shielded: a helper started by a cancelled spawn would go on waiting unseen.
    with anyio.CancelScope(shield=True):
        proc = await anyio.open_process(helper_command(tdb, target), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=None, env=lock_link.helper_env())
    return SpawnedHelper(proc)


async def _answer(helper: Helper) -> None:
    try:
        first = await helper.receive(1)
    except anyio.EndOfStream:
        raise LockHelperError(f"lock helper {helper.pid} exited without taking the lock") from None
    if first == b"1":
        return
    text = b""
    with contextlib.suppress(anyio.EndOfStream), anyio.move_on_after(1):
        while len(text) < _MAX_ERROR_TEXT:
            text += await helper.receive()
    raise LockHelperError(text.decode(errors="replace").strip() or f"lock helper answered {first!r}")


@contextlib.asynccontextmanager
async def _helper_holding(tdb: Tdb, target: str, timeout: float | None, stats: LockStats,
                          asked: float | None = None) -> AsyncIterator[None]:
    """A helper that holds ``target``'s lock for the duration of the block. ``asked``:
    when the lock was first tried (the wait counted in its statistics starts there)."""
    start = time.monotonic()
    stats.helper += 1
    stats.waiting += 1
    helper: Helper | None = None
    counters = _COUNTERS.get(tdb)
    if counters is not None:
        counters.requested()
    started = False
    try:
        try:
            with anyio.fail_after(None if timeout is None else max(0.0, start + timeout - time.monotonic())):
                helper = await _start_helper(tdb, target, stats)
                if counters is not None:
                    counters.helper_started()
                started = True
                log.debug("%s of %s is busy: lock helper %d waits for it", target, tdb.path, helper.pid)
                await _answer(helper)
        except BaseException as e:
            if isinstance(e, TimeoutError):
                stats.timeouts += 1
            elif isinstance(e, anyio.get_cancelled_exc_class()):
                stats.cancelled += 1
            else:
                stats.failed += 1
                if counters is not None:
                    counters.failed()
            if helper is not None:
                # Killing frees a lock the helper may have got just now; it was never marked here.
                await helper.kill()
            raise
        finally:
            stats.waiting -= 1
        now = time.monotonic()
        stats.note_wait(now - start)
        if counters is not None:
            counters.locked(now - (start if asked is None else asked))
        assert helper is not None
        try:
            yield
        finally:
            await helper.release(RELEASE_TIMEOUT)
    finally:
        if counters is not None:
            counters.ended(started=started)


@contextlib.asynccontextmanager
async def record_lock(tdb: Tdb, key: bytes, timeout: float | None = None,
                      stats: LockStats = STATS) -> AsyncIterator[None]:
    """Hold ``key``'s chain lock in ``tdb`` for the block.

    Raises TimeoutError after ``timeout`` seconds of waiting (nothing stays locked),
    :class:`LockHelperError` if the helper failed.
    """
    start = time.monotonic()
    spin = SPIN if timeout is None else min(SPIN, timeout)
    pause = SPIN_FIRST
    tries = 0
    while True:
        tries += 1
        try:
            tdb.chainlock_nonblock(key)
        except TdbBusy:
            left = start + spin - time.monotonic()
            if left <= 0:
                break
            await anyio.sleep(min(pause, left))
            pause *= 2
            continue
        stats.immediate += 1
        if tries > 1:
            stats.spun += 1
            # Busy at first: 4.17 would have asked a helper, and counted the wait.
            counters = _COUNTERS.get(tdb)
            if counters is not None:
                counters.locked(time.monotonic() - start)
        try:
            yield
        finally:
            tdb.chainunlock(key)
        return
    left = None if timeout is None else max(0.0, start + timeout - time.monotonic())
    async with helper_record_lock(tdb, key, left, stats, asked=start):
        yield


@contextlib.asynccontextmanager
async def helper_record_lock(tdb: Tdb, key: bytes, timeout: float | None = None,
                             stats: LockStats = STATS, *, asked: float | None = None) -> AsyncIterator[None]:
    """:func:`record_lock` without trying first: a helper process takes the lock and
    this context only marks it. For a thread that found the lock busy and will use the
    record itself once the helper has it (the blocking client's caller thread):
    marking has no owner thread, a lock taken here would belong to the loop's."""
    async with _helper_holding(tdb, key.hex(), timeout, stats, asked):
        tdb.chainlock_mark(key)
        try:
            yield
        finally:
            # Unmark before the helper unlocks: this context must never believe it
            # holds a lock nobody holds.
            tdb.chainlock_unmark(key)


@contextlib.asynccontextmanager
async def db_lock(tdb: Tdb, timeout: float | None = None, stats: LockStats = STATS) -> AsyncIterator[None]:
    """Hold the whole database (recovery's freeze): every chain and the free list.

    Same timeout and error behaviour as :func:`record_lock`.
    """
    try:
        tdb.lockall_nonblock()
    except TdbBusy:
        pass
    else:
        stats.immediate += 1
        try:
            yield
        finally:
            tdb.unlockall()
        return
    async with _helper_holding(tdb, "--all", timeout, stats):
        tdb.lockall_mark()
        try:
            yield
        finally:
            tdb.lockall_unmark()


@contextlib.asynccontextmanager
async def freeze_lock(tdb: Tdb, timeout: float | None = None, stats: LockStats = STATS) -> AsyncIterator[None]:
    """Recovery's freeze: a helper holds the whole-database lock and this process does
    *not* mark it, because libtdb refuses to start a transaction in a context that holds
    locks. Under a freeze the daemon opens the recovery transaction with ``TDB_NOLOCK``
    (as 4.17 does) and writes inside it; it must not take chain locks of its own."""
    async with _helper_holding(tdb, "--all", timeout, stats):
        yield
