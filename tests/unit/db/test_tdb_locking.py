"""Chain and whole-database locks against another process, taken without blocking the
event loop: the fast path, the lock helper process, marking, timeouts, cancellation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager

import anyio
import pytest

from ctdbcore.db import locking
from ctdbcore.db.locking import LockHelperError, db_lock, record_lock
from ctdbcore.db.tdb import Tdb, TdbBusy, TdbErrorCode, TdbFlags, runtime_check_for_robust_mutexes
from tests.unit.db.lockprocs import ROOT, alive, helper_pids, no_helpers_left

VOLATILE = 0x1C41  # 4.17's volatile databases, robust mutexes included
VOLATILE_NO_MUTEX = VOLATILE & ~TdbFlags.MUTEX_LOCKING
PERSISTENT = int(TdbFlags.DISALLOW_NESTING)

needs_mutexes = pytest.mark.skipif(not runtime_check_for_robust_mutexes(), reason="no robust mutexes here")

KEY = b"locking.tdb key \x00\x01"
OTHER = b"some other key"  # on another chain than KEY with either hash (the nonblock test checks)

@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=[pytest.param(VOLATILE, id="mutex", marks=needs_mutexes),
                        pytest.param(VOLATILE_NO_MUTEX, id="fcntl"),
                        pytest.param(PERSISTENT, id="persistent")])
def flags(request) -> int:
    return request.param


@pytest.fixture
def tdb(tmp_path, flags) -> Iterator[Tdb]:
    path = str(tmp_path / "locking.tdb.0")
    t = Tdb.open(path, tdb_flags=flags)
    assert t.get_flags() & flags == flags
    yield t
    t.close()
    assert no_helpers_left(path), "a lock helper outlived its test"


LockFactory = Callable[..., AbstractAsyncContextManager[None]]


@pytest.fixture(params=["record", "db"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def lock(kind, stats) -> LockFactory:
    """``lock(tdb, timeout=None)``: record_lock of KEY, or db_lock."""
    if kind == "record":
        return lambda tdb, timeout=None: record_lock(tdb, KEY, timeout=timeout, stats=stats)
    return lambda tdb, timeout=None: db_lock(tdb, timeout=timeout, stats=stats)


async def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


def test_nonblock_is_busy_while_another_process_holds(tdb, holder):
    assert holder("chainlock", KEY) == "ok"
    with pytest.raises(TdbBusy) as exc:
        tdb.chainlock_nonblock(KEY)
    assert exc.value.ecode == TdbErrorCode.LOCK
    assert "Locking error" in str(exc.value)
    with pytest.raises(TdbBusy):
        tdb.lockall_nonblock()
    tdb.chainlock_nonblock(OTHER)
    assert not holder.try_lock(OTHER)
    tdb.chainunlock(OTHER)
    assert holder("chainunlock", KEY) == "ok"
    tdb.chainlock_nonblock(KEY)
    assert not holder.try_lock(KEY)
    tdb.chainunlock(KEY)
    assert holder.try_lock(KEY)


def test_mark_lets_us_write_under_the_other_processes_lock(tdb, holder):
    assert holder("chainlock", KEY) == "ok"
    tdb.chainlock_mark(KEY)
    tdb.store(KEY, b"written under a lock held elsewhere")
    assert tdb.fetch(KEY) == b"written under a lock held elsewhere"
    tdb.chainlock_unmark(KEY)
    with pytest.raises(TdbBusy):  # the mark took nothing
        tdb.chainlock_nonblock(KEY)
    assert holder("chainunlock", KEY) == "ok"
    assert holder("fetch", KEY) == "ok " + b"written under a lock held elsewhere".hex()


@pytest.mark.anyio
async def test_fast_path_needs_no_helper(tdb, holder, lock, stats):
    async with lock(tdb):
        tdb.store(KEY, b"v")
        assert not holder.try_lock(KEY)
    assert holder.try_lock(KEY)
    assert holder("fetch", KEY) == "ok " + b"v".hex()
    assert (stats.immediate, stats.helper) == (1, 0)


@pytest.mark.anyio
async def test_waits_in_a_helper_without_blocking_the_loop(tdb, holder, lock, kind, stats):
    assert holder("chainlock", KEY) == "ok"
    ticks = 0
    acquired = anyio.Event()
    released_at = 0.0
    got_it_at = 0.0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    async def locker() -> None:
        nonlocal got_it_at
        async with lock(tdb):
            got_it_at = time.monotonic()
            acquired.set()
            tdb.store(KEY, b"new value")
            tdb.store(OTHER, b"other value")
            assert tdb.fetch(KEY) == b"new value"
            # the lock really is held, by the helper, against everyone else
            assert not holder.try_lock(KEY)
            assert holder.try_lock(OTHER) is (kind == "record")

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        tg.start_soon(locker)
        await wait_for(lambda: len(helper_pids(tdb.path)) == 1)
        await anyio.sleep(0.5)  # well past the helper's start-up: it is waiting for the lock
        assert not acquired.is_set()
        assert stats.waiting == 1
        assert ticks >= 20, "the event loop was blocked"
        released_at = time.monotonic()
        assert holder("chainunlock", KEY) == "ok"
        with anyio.fail_after(10):
            await acquired.wait()
        assert got_it_at - released_at < 2
        await wait_for(lambda: no_helpers_left(tdb.path))
        tg.cancel_scope.cancel()
    assert holder("fetch", KEY) == "ok " + b"new value".hex()
    assert holder("fetch", OTHER) == "ok " + b"other value".hex()
    assert holder.try_lock(KEY) and holder.try_lock(OTHER)
    tdb.chainlock_nonblock(KEY)  # nothing left marked or locked here either
    tdb.chainunlock(KEY)
    tdb.lockall_nonblock()
    tdb.unlockall()
    assert (stats.immediate, stats.helper, stats.helper_locked, stats.waiting) == (0, 1, 1, 0)
    assert 0.4 < stats.wait_seconds == stats.wait_seconds_max < 10


@pytest.mark.anyio
async def test_record_lock_held_for_a_moment_is_retried_without_a_helper(tdb, holder, stats, monkeypatch):
    # smbd holds a chain lock for a moment only: trying again for a little while is far
    # cheaper than starting a helper process (SPIN widened here: a loaded machine)
    monkeypatch.setattr(locking, "SPIN", 5.0)
    assert holder("chainlock", KEY) == "ok"
    got = anyio.Event()

    async def locker() -> None:
        async with record_lock(tdb, KEY, stats=stats):
            got.set()
            tdb.store(KEY, b"after a short wait")
            assert not holder.try_lock(KEY)

    async with anyio.create_task_group() as tg:
        tg.start_soon(locker)
        await anyio.sleep(0.2)
        assert not got.is_set() and no_helpers_left(tdb.path)
        assert holder("chainunlock", KEY) == "ok"
        with anyio.fail_after(10):
            await got.wait()
    assert holder.try_lock(KEY)
    assert holder("fetch", KEY) == "ok " + b"after a short wait".hex()
    assert (stats.immediate, stats.spun, stats.helper) == (1, 1, 0)


@pytest.mark.anyio
async def test_record_lock_spin_counts_against_the_timeout(tdb, holder, stats, monkeypatch):
    monkeypatch.setattr(locking, "SPIN", 5.0)
    assert holder("chainlock", KEY) == "ok"
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        async with record_lock(tdb, KEY, timeout=0.3, stats=stats):
            pass
    assert time.monotonic() - t0 < 3
    assert stats.immediate == 0 and stats.timeouts == 1
    assert holder("chainunlock", KEY) == "ok"


@pytest.mark.anyio
async def test_timeout_leaves_nothing_locked(tdb, holder, lock, stats):
    assert holder("chainlock", KEY) == "ok"
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        async with lock(tdb, timeout=0.5):
            pytest.fail("got a lock that is held elsewhere")
    assert 0.5 <= time.monotonic() - start < 5
    assert no_helpers_left(tdb.path)
    assert (stats.helper, stats.timeouts, stats.helper_locked, stats.waiting) == (1, 1, 0, 0)
    assert holder("chainunlock", KEY) == "ok"
    assert holder.try_lock(KEY) and holder.try_lock(OTHER)
    tdb.lockall_nonblock()
    tdb.unlockall()


@pytest.mark.anyio
async def test_cancelled_wait_kills_the_helper(tdb, holder, lock, stats):
    assert holder("chainlock", KEY) == "ok"
    entered = False

    async def locker() -> None:
        nonlocal entered
        async with lock(tdb):
            entered = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(locker)
        await wait_for(lambda: len(helper_pids(tdb.path)) == 1)
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    assert not entered
    assert no_helpers_left(tdb.path)  # killed and reaped before the cancel completed
    assert (stats.cancelled, stats.waiting, stats.helper_locked) == (1, 0, 0)
    assert holder("chainunlock", KEY) == "ok"
    assert holder.try_lock(KEY) and holder.try_lock(OTHER)
    async with lock(tdb):  # and the next one takes the fast path
        pass
    assert stats.immediate == 1


@pytest.mark.anyio
async def test_cancelled_while_held_releases(tdb, holder, lock, stats):
    assert holder("chainlock", KEY) == "ok"
    held = anyio.Event()

    async def locker() -> None:
        async with lock(tdb):
            held.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(locker)
        await anyio.sleep(0.3)
        assert holder("chainunlock", KEY) == "ok"
        with anyio.fail_after(10):
            await held.wait()
        assert not holder.try_lock(KEY)
        tg.cancel_scope.cancel()
    assert no_helpers_left(tdb.path)
    assert holder.try_lock(KEY) and holder.try_lock(OTHER)
    assert stats.helper_locked == 1


@pytest.mark.anyio
async def test_waiters_for_one_key_take_turns(tdb, holder, stats):
    assert holder("chainlock", KEY) == "ok"
    order: list[int] = []

    async def locker(n: int) -> None:
        async with record_lock(tdb, KEY, timeout=20, stats=stats):
            tdb.store(KEY, b"%d" % n)
            assert tdb.fetch(KEY) == b"%d" % n
            order.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(locker, n)
        await wait_for(lambda: len(helper_pids(tdb.path)) == 3)
        assert holder("chainunlock", KEY) == "ok"
    assert sorted(order) == [0, 1, 2]
    assert holder("fetch", KEY) == "ok " + (b"%d" % order[-1]).hex()
    assert stats.helper_locked == 3 and stats.waiting == 0


@pytest.mark.anyio
async def test_helper_that_cannot_open_the_file(tdb, holder, lock, stats):
    assert holder("chainlock", KEY) == "ok"
    os.rename(tdb.path, tdb.path + ".moved")  # both of us keep the open file
    try:
        with pytest.raises(LockHelperError, match="No such file or directory"):
            async with lock(tdb):
                pytest.fail("locked a file the helper could not open")
    finally:
        os.rename(tdb.path + ".moved", tdb.path)
    assert (stats.failed, stats.waiting) == (1, 0)
    assert holder("chainunlock", KEY) == "ok"


_DAEMON = textwrap.dedent("""
    import os, sys, anyio
    from ctdbcore.db.locking import record_lock
    from ctdbcore.db.tdb import Tdb

    async def main():
        async with record_lock(tdb, bytes.fromhex(sys.argv[3])):
            print("locked", flush=True)
            await anyio.sleep_forever()

    tdb = Tdb.open(sys.argv[1], tdb_flags=int(sys.argv[2]) & ~1, open_flags=os.O_RDWR)
    anyio.run(main)
""")


@pytest.mark.parametrize("when", ["waiting", "holding"])
def test_helper_does_not_outlive_a_killed_daemon(tdb, holder, flags, when):
    assert holder("chainlock", KEY) == "ok"
    daemon = subprocess.Popen([sys.executable, "-c", _DAEMON, tdb.path, str(flags), KEY.hex()],
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        deadline = time.monotonic() + 10
        # the daemon's helpers, found now: once it is dead nothing says whose they were
        while not (helpers := helper_pids(tdb.path, parent=daemon.pid)):
            assert time.monotonic() < deadline, "no lock helper started"
            time.sleep(0.01)
        if when == "holding":
            assert holder("chainunlock", KEY) == "ok"
            assert daemon.stdout.readline() == b"locked\n"
            assert not holder.try_lock(KEY)
        daemon.kill()
        daemon.wait()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in helpers):
            assert time.monotonic() < deadline, "the lock helper outlived its daemon"
            time.sleep(0.01)
        if when == "waiting":
            assert holder("chainunlock", KEY) == "ok"
        assert holder.try_lock(KEY)
    finally:
        daemon.kill()
        daemon.wait()
        daemon.stdout.close()


def test_helper_gives_up_when_its_parent_is_not_there(tdb):
    # a helper whose parent died before it could ask to die with it
    done = subprocess.run([sys.executable, "-m", "ctdbcore.db.lock_helper", tdb.path, hex(tdb.get_flags()),
                           "1", KEY.hex()], check=False, capture_output=True, timeout=30)
    assert done.returncode == 1 and done.stdout == b""
