"""The requesting side of the lock server (:mod:`ctdbcore.db.lock_server`): a lock
helper forked by a waiting server instead of a Python process started for each lock.

Each process (the daemon, a client, a test) starts its own server the first time it
needs a helper: the blocking client runs in arbitrary processes, most of which never
meet a busy lock, and in the daemon the first need is its first recovery, where one
start-up replaces a start-up per database. A request is sent whole in one message
on a ``SOCK_SEQPACKET`` socket and is answered on its own socket, so requests from
several threads (the daemon's loop, the blocking client's portal threads) need no
matching of answers, only the lock around choosing and sending.

Whenever the server cannot help -- no pidfds here, it will not start, it died, it
dropped the request -- :meth:`request` or :meth:`ForkedHelper.announced` says so and
the caller spawns a helper itself; the next request starts a fresh server.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import attrs

import ctdbcore
from ctdbcore.db.lock_server import PID

log = logging.getLogger("ctdb.tdb")

SERVER_MODULE = "ctdbcore.db.lock_server"
# False: never ask a server, spawn every helper (benchmarks compare the two ways).
ENABLED = True
# A server that has not forked a helper for a request by then (its own start-up
# included) is not used again; the request falls back to a spawned helper.
ANNOUNCE_TIMEOUT = 3.0
# A retired server's exit is waited for this long (it was sent SIGKILL).
_REAP_TIMEOUT = 1.0


def helper_env() -> dict[str, str]:
    """Environment of helper and server processes: they must run this very code,
    wherever it was imported from."""
    root = str(Path(ctdbcore.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


@functools.cache
def _pidfds_work() -> bool:
    # Without pidfds (Linux < 5.3) a forked helper could not be killed safely: the
    # server reaps it, so its pid may be reused by the time we kill.
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


@attrs.define(eq=False)
class ServerLink:
    """A lock server this process started, and the socket its requests go to."""

    proc: subprocess.Popen[bytes]
    ctl: socket.socket
    live: int = 0  # requests whose helper may still be alive
    retired: bool = False  # no new requests; closed once ``live`` is 0

    @classmethod
    def start(cls) -> ServerLink:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-m", SERVER_MODULE, str(os.getpid())]
        # PR_SET_PDEATHSIG fires when the starting *thread* ends: only a main thread
        # lives as long as its process. Otherwise the end of our socket ends the server.
        if threading.current_thread() is threading.main_thread():
            argv.append("--die-with-parent")
        try:
            proc = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=subprocess.DEVNULL, env=helper_env())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        log.debug("lock server %d started", proc.pid)
        return cls(proc, ours)

    def close(self) -> None:
        """Stop the server; only when no helper of ours depends on it (they die with it)."""
        self.ctl.close()
        if self.proc.poll() is None:
            # It may be stuck rather than reading the end of its socket.
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            try:
                self.proc.wait(_REAP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.error("lock server %d did not exit on SIGKILL", self.proc.pid)


_guard = threading.Lock()
_link: ServerLink | None = None
# Links inherited through os.fork(): kept so that their Popen never reaps (or warns
# about) a process that is not the forked child's.
_inherited: list[ServerLink] = []


def _after_fork_in_child() -> None:
    global _guard, _link
    _guard = threading.Lock()  # another thread may have held it at the fork
    if _link is not None:
        # The server must end with the process that started it, not outlive it here.
        _link.ctl.close()
        _inherited.append(_link)
        _link = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _retire(link: ServerLink) -> None:
    # Under _guard.
    global _link
    if _link is link:
        _link = None
    link.retired = True
    if link.live == 0:
        link.close()


def _current() -> ServerLink:
    """This process's server (under ``_guard``), started if there is none or it died."""
    global _link
    if _link is not None and _link.proc.poll() is not None:
        log.warning("lock server %d exited with %s: starting another", _link.proc.pid, _link.proc.returncode)
        _retire(_link)
    if _link is None:
        _link = ServerLink.start()
    return _link


def _done(link: ServerLink) -> None:
    with _guard:
        link.live -= 1
        if link.retired and link.live == 0:
            link.close()


def retire(link: ServerLink) -> None:
    """Send no more requests to ``link``'s server; stop it once its helpers are done."""
    with _guard:
        _retire(link)


def server_pid() -> int | None:
    """Pid of this process's lock server, if it has a running one."""
    with _guard:
        return _link.proc.pid if _link is not None and _link.proc.poll() is None else None


def stop_server() -> None:
    """Send nothing more to this process's lock server: it is stopped once its helpers
    are done, and the next request starts another."""
    with _guard:
        if _link is not None:
            _retire(_link)


def request(path: str, tdb_flags: int, target: str) -> ForkedHelper | None:
    """Ask this process's lock server for a helper locking ``target`` (key in hex, or
    ``--all``) of ``path``; None when it cannot be asked (spawn one instead)."""
    if not ENABLED or not _pidfds_work():
        return None
    payload = b"\0".join((os.fsencode(path), hex(tdb_flags).encode(), target.encode()))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _guard:
            try:
                link = _current()
            except OSError as e:
                log.error("cannot start a lock server: %s", e)
                ours.close()
                return None
            try:
                socket.send_fds(link.ctl, [payload], [theirs.fileno()], socket.MSG_NOSIGNAL)
            except OSError as e:
                # Dead (the next request starts another), or the request will not fit.
                log.warning("lock server %d did not take a request: %s", link.proc.pid, e)
                ours.close()
                return None
            link.live += 1
    finally:
        theirs.close()  # the message carries its own reference
    ours.setblocking(False)
    return ForkedHelper(ours, link)


@attrs.define(eq=False)
class ForkedHelper:
    """A lock helper forked by the server, driven through its socket and its pidfd.

    The pidfd is what makes killing safe: it names this process only, even once the
    server has reaped it, and it becomes readable only after the process has exited,
    which is after the kernel dropped its fcntl locks and robust mutexes.
    """

    sock: socket.socket
    link: ServerLink
    pid: int = 0
    pidfd: int = -1
    _closed: bool = False

    def _take_pid(self, data: bytes, fds: list[int]) -> bool:
        if len(data) == PID.size and len(fds) == 1:
            (self.pid,) = PID.unpack(data)
            self.pidfd = fds[0]
            return True
        for fd in fds:
            os.close(fd)
        return False

    async def _receive_pid(self) -> bool:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, PID.size, 1)
            except BlockingIOError:
                await anyio.wait_readable(self.sock)
                continue
            return self._take_pid(data, fds)

    async def announced(self) -> bool:
        """Wait until the helper exists and we know its pid. False when the server did
        not fork one (it died, dropped the request, is stuck): this object is then
        closed and the caller spawns a helper instead. Cancelled: nothing is left."""
        try:
            with anyio.move_on_after(ANNOUNCE_TIMEOUT) as scope:
                if await self._receive_pid():
                    return True
        except BaseException:
            await self.kill()
            raise
        if scope.cancelled_caught:
            log.error("lock server %d forked no helper within %ss: not used again", self.link.proc.pid,
                      ANNOUNCE_TIMEOUT)
            retire(self.link)
        await self.kill()
        return False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """What the helper wrote; anyio.EndOfStream once it closed its end."""
        while True:
            try:
                data = self.sock.recv(max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self.sock)
                continue
            if not data:
                raise anyio.EndOfStream
            return data

    async def release(self, timeout: float) -> None:
        """Make the helper unlock and wait for its exit (killed after ``timeout``)."""
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)  # its stdin ends: it unlocks and exits
            with anyio.move_on_after(timeout) as scope:
                await anyio.wait_readable(self.pidfd)
            if scope.cancelled_caught:
                log.error("lock helper %d did not let go within %ss: killed", self.pid, timeout)
            await self.kill()

    async def kill(self) -> None:
        """Kill the helper (if any) and wait until it is gone; then close. Never interrupted."""
        if self._closed:
            return
        with anyio.CancelScope(shield=True):
            # After the shutdown a helper not yet announced cannot announce itself (it
            # exits without locking); one that did is in our queue.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            if self.pidfd < 0:
                with contextlib.suppress(OSError):
                    data, fds, _, _ = socket.recv_fds(self.sock, PID.size, 1)
                    self._take_pid(data, fds)
            if self.pidfd >= 0:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
                await anyio.wait_readable(self.pidfd)
                os.close(self.pidfd)
            self.sock.close()
            self._closed = True
            _done(self.link)
