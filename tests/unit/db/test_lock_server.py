"""Lock helpers forked by the lock server: where they come from, that a released lock
is free at once, death of the server, of a child and of the requester, timeouts,
the fallback to a spawned helper, malformed requests, several threads at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import anyio
import pytest

from ctdbcore.db import lock_link
from ctdbcore.db.lock_server import PID
from ctdbcore.db.locking import LockHelperError, db_lock, freeze_lock, helper_record_lock, record_lock
from ctdbcore.db.tdb import Tdb, TdbFlags, runtime_check_for_robust_mutexes
from tests.unit.db.lockprocs import (
    ROOT,
    alive,
    forked_helpers,
    lock_servers,
    no_helpers_left,
    parent_of,
    spawned_helpers,
)

VOLATILE = 0x1C41  # 4.17's volatile databases, robust mutexes included
VOLATILE_NO_MUTEX = VOLATILE & ~TdbFlags.MUTEX_LOCKING
KEY = b"locking.tdb key \x00\x01"

needs_mutexes = pytest.mark.skipif(not runtime_check_for_robust_mutexes(), reason="no robust mutexes here")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=[pytest.param(VOLATILE, id="mutex", marks=needs_mutexes),
                        pytest.param(VOLATILE_NO_MUTEX, id="fcntl")])
def flags(request) -> int:
    return request.param


@pytest.fixture
def tdb(tmp_path, flags) -> Iterator[Tdb]:
    t = Tdb.open(str(tmp_path / "locking.tdb.0"), tdb_flags=flags)
    yield t
    t.close()
    assert no_helpers_left(t.path), "a lock helper outlived its test"


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> float:
    """Seconds until ``predicate`` held (fails after ``timeout``)."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - start


def the_forked_helper() -> int:
    """The one helper forked for this process, checked to be its lock server's child."""
    [pid] = forked_helpers()
    server = parent_of(pid)
    assert server == lock_link.server_pid() and parent_of(server) == os.getpid()
    return pid


async def a_waiting_helper(path: str) -> int:
    """The forked helper, once it waits for its lock (it has announced itself and opened
    the file: no longer a request that could fall back to a spawned helper)."""
    with anyio.fail_after(10):
        while not forked_helpers(path=path):
            await anyio.sleep(0.01)
    return the_forked_helper()


# -- through the server ---------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["freeze", "db", "record"])
async def test_locks_come_from_the_server_and_are_free_once_released(tdb, holder, stats, kind):
    locks = {"freeze": lambda: freeze_lock(tdb, stats=stats),  # always through a helper
             "db": lambda: db_lock(tdb, stats=stats),  # the others: busy, so a helper waits
             "record": lambda: helper_record_lock(tdb, KEY, stats=stats)}
    for _ in range(5):
        got = anyio.Event()

        async def locker(got: anyio.Event) -> None:
            async with locks[kind]():
                got.set()
                helper = the_forked_helper()
                assert spawned_helpers(tdb.path) == []
                assert not holder.try_lock(KEY)
                assert not holder.try_lockall()
            # what the next locker (smbd, or our own chain locks after a thaw) finds
            assert holder.try_lock(KEY) and holder.try_lockall()
            assert not alive(helper)

        if kind != "freeze":
            assert holder("chainlock", KEY) == "ok"
        async with anyio.create_task_group() as tg:
            tg.start_soon(locker, got)
            if kind != "freeze":
                await a_waiting_helper(tdb.path)
                assert holder("chainunlock", KEY) == "ok"
            with anyio.fail_after(10):
                await got.wait()
    assert (stats.helper, stats.helper_locked, stats.spawned, stats.failed) == (5, 5, 0, 0)
    tdb.lockall_nonblock()  # nothing marked or locked here either
    tdb.unlockall()


@pytest.mark.anyio
async def test_record_lock_waits_in_a_forked_helper(tdb, holder, stats, monkeypatch):
    from ctdbcore.db import locking

    monkeypatch.setattr(locking, "SPIN", 0.001)
    assert holder("chainlock", KEY) == "ok"
    got = anyio.Event()

    async def locker() -> None:
        async with record_lock(tdb, KEY, stats=stats):
            the_forked_helper()
            tdb.store(KEY, b"under the helper's lock")
            got.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(locker)
        await a_waiting_helper(tdb.path)
        await anyio.sleep(0.2)
        assert not got.is_set()
        assert holder("chainunlock", KEY) == "ok"
    assert holder.try_lock(KEY)
    assert holder("fetch", KEY) == "ok " + b"under the helper's lock".hex()
    assert (stats.helper, stats.helper_locked, stats.spawned) == (1, 1, 0)


# -- deaths ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_killed_server_takes_its_helper_and_lock_along(tdb, holder, stats):
    async with freeze_lock(tdb, stats=stats):
        helper = the_forked_helper()
        server = lock_link.server_pid()
        assert not holder.try_lockall()
        os.kill(server, signal.SIGKILL)
        assert wait_until(lambda: not alive(helper) and holder.try_lockall()) < 2
    assert lock_link.server_pid() is None  # noticed (and reaped)
    async with freeze_lock(tdb, stats=stats):
        the_forked_helper()
        assert lock_link.server_pid() not in (None, server)
    assert holder.try_lockall()
    assert (stats.helper_locked, stats.spawned) == (2, 0)


@pytest.mark.anyio
async def test_server_survives_a_crashed_child(tdb, holder, stats):
    assert holder("lockall") == "ok"
    server = None

    async def crash() -> None:
        nonlocal server
        helper = await a_waiting_helper(tdb.path)
        server = lock_link.server_pid()
        os.kill(helper, signal.SIGTERM)  # not SIGKILL, what we kill with

    async with anyio.create_task_group() as tg:
        tg.start_soon(crash)
        with pytest.raises(LockHelperError, match="exited without taking the lock"):
            async with freeze_lock(tdb, stats=stats):
                pytest.fail("locked what another process holds")
    assert holder("unlockall") == "ok"
    assert alive(server) and lock_link.server_pid() == server
    async with freeze_lock(tdb, stats=stats):
        assert parent_of(the_forked_helper()) == server
    assert (stats.failed, stats.helper_locked, stats.spawned) == (1, 1, 0)


_REQUESTER = textwrap.dedent("""
    import os, sys, threading, anyio
    from ctdbcore.db.locking import freeze_lock
    from ctdbcore.db.tdb import Tdb

    async def main():
        async with freeze_lock(tdb):
            print("locked", flush=True)
            await anyio.sleep_forever()

    tdb = Tdb.open(sys.argv[1], tdb_flags=int(sys.argv[2]) & ~1, open_flags=os.O_RDWR)
    if sys.argv[3] == "main":
        anyio.run(main)
    else:  # the blocking client's way: an event loop in another thread starts the server
        threading.Thread(target=anyio.run, args=(main,)).start()
""")


@pytest.mark.parametrize("thread", ["main", "worker"])
@pytest.mark.parametrize("when", ["waiting", "holding"])
def test_killed_requester_frees_the_lock(tdb, holder, flags, thread, when):
    assert holder("lockall") == "ok"
    requester = subprocess.Popen([sys.executable, "-c", _REQUESTER, tdb.path, str(flags), thread],
                                 stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        wait_until(lambda: forked_helpers(requester.pid, tdb.path))
        [helper] = forked_helpers(requester.pid, tdb.path)
        [server] = lock_servers(requester.pid)
        if when == "holding":
            assert holder("unlockall") == "ok"
            assert requester.stdout.readline() == b"locked\n"
            assert not holder.try_lockall()
        requester.kill()
        requester.wait()
        if when == "holding":
            assert wait_until(holder.try_lockall, timeout=5) < 2
        assert wait_until(lambda: not alive(helper) and not alive(server), timeout=5) < 2
        if when == "waiting":
            assert holder("unlockall") == "ok"
        assert holder.try_lockall()
    finally:
        requester.kill()
        requester.wait()
        requester.stdout.close()


# -- timeouts and cancellation --------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_giving_up_kills_the_waiting_child(tdb, holder, stats, how):
    async with freeze_lock(tdb):  # a server is up: the timeout is not spent starting it
        pass
    assert holder("lockall") == "ok"
    helper = None

    async def watch(scope: anyio.CancelScope) -> None:
        nonlocal helper
        helper = await a_waiting_helper(tdb.path)
        if how == "cancel":
            await anyio.sleep(0.2)
            scope.cancel()

    async with anyio.create_task_group() as tg:
        if how == "timeout":
            tg.start_soon(watch, None)
            with pytest.raises(TimeoutError):
                async with freeze_lock(tdb, timeout=1, stats=stats):
                    pytest.fail("locked what another process holds")
        else:
            with anyio.CancelScope() as scope:
                tg.start_soon(watch, scope)
                async with freeze_lock(tdb, stats=stats):
                    pytest.fail("locked what another process holds")
    assert helper is not None and not alive(helper)  # killed before giving up returned
    assert (stats.timeouts, stats.cancelled, stats.waiting) == ((1, 0, 0) if how == "timeout" else (0, 1, 0))
    assert holder("unlockall") == "ok"
    assert holder.try_lockall() and holder.try_lock(KEY)
    tdb.lockall_nonblock()
    tdb.unlockall()


# -- without a server -----------------------------------------------------------------


@pytest.fixture
def no_server() -> Iterator[None]:
    lock_link.stop_server()
    yield
    lock_link.stop_server()  # whatever the test left


@pytest.mark.anyio
@pytest.mark.parametrize("why", ["disabled", "no pidfds", "start fails", "server exits"])
async def test_falls_back_to_spawning_a_helper(tdb, holder, stats, monkeypatch, no_server, why):
    if why == "disabled":
        monkeypatch.setattr(lock_link, "ENABLED", False)
    elif why == "no pidfds":
        monkeypatch.setattr(lock_link, "_pidfds_work", lambda: False)
    elif why == "start fails":
        def cannot_start() -> lock_link.ServerLink:
            raise OSError(11, "Resource temporarily unavailable")
        monkeypatch.setattr(lock_link.ServerLink, "start", cannot_start)
    else:
        monkeypatch.setattr(lock_link, "SERVER_MODULE", "ctdbcore.db.no_such_module")
    async with freeze_lock(tdb, stats=stats):
        [helper] = spawned_helpers(tdb.path)
        assert parent_of(helper) == os.getpid()
        assert forked_helpers() == []
        assert not holder.try_lockall()
    assert holder.try_lockall()
    assert (stats.spawned, stats.helper_locked) == (1, 1)
    monkeypatch.undo()
    async with freeze_lock(tdb, stats=stats):  # the next need starts a server
        the_forked_helper()
    assert (stats.spawned, stats.helper_locked) == (1, 2)


# -- the server's protocol, spoken directly -------------------------------------------


class Server:
    """A lock server of our own, driven through its control socket."""

    def __init__(self) -> None:
        self.ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen([sys.executable, "-m", "ctdbcore.db.lock_server", str(os.getpid())],
                                     stdin=theirs.fileno(), env=lock_link.helper_env())
        theirs.close()

    def send(self, payload: bytes, nfds: int = 1) -> list[socket.socket]:
        """Send a request with ``nfds`` sockets attached; our ends of them."""
        pairs = [socket.socketpair() for _ in range(nfds)]
        socket.send_fds(self.ctl, [payload], [theirs.fileno() for _, theirs in pairs])
        for _, theirs in pairs:
            theirs.close()
        for ours, _ in pairs:
            ours.settimeout(10)
        return [ours for ours, _ in pairs]

    def close(self) -> None:
        self.ctl.close()
        self.proc.wait(10)


def request(path: str, flags: int, target: str) -> bytes:
    return b"\0".join([path.encode(), hex(flags).encode(), target.encode()])


def announce(sock: socket.socket) -> tuple[int, int]:
    data, fds, _, _ = socket.recv_fds(sock, PID.size, 1)
    assert len(data) == PID.size and len(fds) == 1, (data, fds)
    return PID.unpack(data)[0], fds[0]


def test_malformed_requests_do_not_kill_the_server(tdb, holder, flags):
    server = Server()
    try:
        good = request(tdb.path, flags, "--all")
        dropped = [
            (b"", 0),  # empty
            (good, 0),  # no socket to answer on
            (good, 2),  # two
            (b"only\0two", 1),
            (b"a\0b\0c\0d", 1),
            (tdb.path.encode() + b"\0" + hex(flags).encode() + b"\0\xff", 1),  # not ASCII
            (b"x" * 100_000, 1),  # truncated
        ]
        for payload, nfds in dropped:
            for sock in server.send(payload, nfds):
                assert sock.recv(16) == b"", payload[:40]  # dropped: its socket closed at once
                sock.close()
            assert server.proc.poll() is None
        refused = [request(tdb.path, flags, "zz"), request(tdb.path, flags, "--none"),
                   request(tdb.path + ".missing", flags, "--all"), b"\0\0--all",
                   tdb.path.encode() + b"\0flags\0--all"]
        for payload in refused:  # reach the child, which says why and exits
            [sock] = server.send(payload)
            pid, pidfd = announce(sock)
            assert sock.recv(1) == b"0" and sock.recv(4096)
            os.close(pidfd)
            sock.close()
            assert server.proc.poll() is None
        # and a good one still works: held until our end says so, then really free
        [sock] = server.send(good)
        pid, pidfd = announce(sock)
        assert parent_of(pid) == server.proc.pid
        assert sock.recv(1) == b"1"
        assert not holder.try_lockall()
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""
        wait_until(lambda: not alive(pid))
        assert holder.try_lockall()
        os.close(pidfd)
        sock.close()
    finally:
        server.close()
    assert server.proc.returncode == 0  # it ended because its control socket did


def test_a_request_given_up_before_its_child_announced_leaves_nothing(tdb, holder, flags):
    # The requester's end is shut before the child could announce itself: the child
    # finds nobody to tell its pid to and exits without locking.
    server = Server()
    try:
        [sock] = server.send(request(tdb.path, flags, "--all"))
        sock.shutdown(socket.SHUT_RDWR)
        # requests are served in order: once this one is answered, that one was forked
        [probe] = server.send(request(tdb.path + ".missing", flags, "--all"))
        _, pidfd = announce(probe)
        assert probe.recv(1) == b"0"
        os.close(pidfd)
        probe.close()
        wait_until(lambda: forked_helpers() == [])
        assert holder.try_lockall()
        sock.close()
        assert server.proc.poll() is None
    finally:
        server.close()


# -- several threads ------------------------------------------------------------------


def test_threads_share_one_server(tmp_path, stats):
    # The blocking client runs an event loop per client thread, all in one process.
    n = 4
    tdbs = [Tdb.open(str(tmp_path / f"t{i}.tdb"), tdb_flags=VOLATILE_NO_MUTEX) for i in range(n)]
    errors: list[BaseException] = []
    all_frozen = threading.Barrier(n + 1, timeout=30)

    def client(t: Tdb) -> None:
        async def run() -> None:
            for _ in range(3):
                async with freeze_lock(t, stats=stats):
                    pass
            async with freeze_lock(t, stats=stats):
                all_frozen.wait()  # every thread holds its freeze now
                all_frozen.wait()

        try:
            anyio.run(run)
        except BaseException as e:  # noqa: BLE001 -- reported by the test
            errors.append(e)
            all_frozen.abort()

    threads = [threading.Thread(target=client, args=(t,)) for t in tdbs]
    for t in threads:
        t.start()
    try:
        all_frozen.wait()
        assert len(forked_helpers()) == n and len(lock_servers()) == 1
        all_frozen.wait()
    finally:
        for t in threads:
            t.join(30)
        for t in tdbs:
            t.close()
    assert errors == []
    assert (stats.helper_locked, stats.spawned) == (4 * n, 0)
    assert forked_helpers() == []
