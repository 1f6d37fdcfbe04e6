"""The cluster mutex (4.17's "cluster lock", formerly "recovery lock"), reference §4.8.

With a cluster lock configured, the leader election is a race for this mutex and only
the holder may be leader (§4.2, §4.7).  Both kinds are run by a helper process that
answers one byte on a pipe, because that is 4.17's protocol for `!cmd` helpers and
because a lock call on a hung cluster filesystem then hangs a child, not ctdbd:

* ``cluster lock = /path`` -> :data:`fcntl_plugin`: our own holder,
  ``python -m ctdbcore.daemon.mutex_helper FILE 1`` (dies with us at once, see there);
* ``cluster lock = !cmd args`` -> :data:`helper_plugin`: any 4.17 helper, e.g. Debian's
  ``/usr/libexec/ctdb/ctdb_mutex_fcntl_helper``, etcd or ceph.

A helper is spawned from the event-loop thread with ``subprocess.Popen`` and then owned
by one daemon thread that reads its stdout and stderr and reaps it.  A thread, rather
than a task, because the API has no task group to put a watcher in, yet `lost` must be
set while nobody is awaiting anything; the thread hands results back to the loop with
``anyio.from_thread.run_sync``, so all mutex state is changed in the loop thread only.
"""

from __future__ import annotations

import enum
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, ClassVar, Protocol

import anyio
import anyio.from_thread
import anyio.lowlevel
import attrs

from ctdbcore.daemon.mutex_helper import DEFAULT_RECHECK, PARENT_ENV

# Time between SIGTERM and SIGKILL for a helper that does not go quietly.
KILL_GRACE = 5.0


class MutexResult(enum.Enum):
    HELD = "0"
    CONTENTION = "1"
    TIMEOUT = "2"
    ERROR = "3"


class LostEvent(Protocol):
    def is_set(self) -> bool: ...
    async def wait(self) -> None: ...


class ClusterMutex(Protocol):
    held: bool
    last_latency: float | None

    @property
    def lost(self) -> LostEvent: ...

    async def acquire(self, timeout: float) -> MutexResult: ...

    async def release(self) -> None: ...


def _result_for(byte: bytes) -> MutexResult:
    # EOF before a byte, or a byte outside the protocol, is an error as in 4.17.
    try:
        return MutexResult(byte.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return MutexResult.ERROR


@attrs.define(eq=False)
class _Helper:
    """One helper process plus the thread that watches it.

    Fields without a leading underscore are written in the loop thread only (by the
    callbacks the thread sends there).  ``_stop_at`` is the one value the loop hands to
    the thread; the wake-up pipe makes the thread look at it.
    """

    proc: subprocess.Popen
    label: str
    logger: logging.Logger
    token: anyio.lowlevel.EventLoopToken
    on_gone: Callable[[_Helper], None]
    first: bytes | None = None
    got_first: anyio.Event = attrs.field(factory=anyio.Event)
    exited: anyio.Event = attrs.field(factory=anyio.Event)
    gone: bool = False
    releasing: bool = False
    _stop_at: float | None = None
    _wake: tuple[int, int] = attrs.field(factory=os.pipe)

    @classmethod
    def spawn(cls, argv: list[str], *, label: str, logger: logging.Logger, on_gone) -> _Helper:
        # Popen runs here, in the loop thread, on purpose: PR_SET_PDEATHSIG fires when
        # the *thread* that forked the child exits, and anyio's worker threads come and go.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, PARENT_ENV: str(os.getpid())},
            # Own process group: a ^C for ctdbd does not reach it, and stop() can take
            # down children a shell-script helper left holding the pipe.
            start_new_session=True,
        )
        helper = cls(proc, label, logger, anyio.lowlevel.current_token(), on_gone)
        threading.Thread(target=helper._watch, name=f"mutex-{proc.pid}", daemon=True).start()
        return helper

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, grace: float) -> None:
        """SIGTERM now (4.17's release), SIGKILL after `grace`; never blocks."""
        if self.exited.is_set() or self._stop_at is not None:
            return
        self._stop_at = time.monotonic() + grace
        self._signal(signal.SIGTERM)
        try:
            os.write(self._wake[1], b"x")
        except OSError:
            pass

    def _signal(self, sig: int) -> None:
        # While the group has a member its id cannot be reused, so this cannot hit a
        # stranger; ESRCH just means everyone is gone already.
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # -- loop-thread callbacks ------------------------------------------------------

    def _deliver_first(self, byte: bytes) -> None:
        self.first = byte
        self.got_first.set()

    def _deliver_gone(self) -> None:
        if not self.gone:
            self.gone = True
            self.on_gone(self)

    def _deliver_exit(self, returncode: int | None) -> None:
        self._close_wake()
        if self.first is None:
            self._deliver_first(b"")  # EOF before a byte
        self._deliver_gone()
        self.exited.set()

    def _close_wake(self) -> None:
        for fd in self._wake:
            os.close(fd)

    # -- watcher thread -------------------------------------------------------------

    def _to_loop(self, func, *args) -> bool:
        try:
            anyio.from_thread.run_sync(func, *args, token=self.token)
        except Exception:
            return False  # the event loop is gone; nobody is left to tell
        return True

    def _watch(self) -> None:
        proc = self.proc
        state = {"sent_first": False, "errbuf": bytearray()}

        def on_stdout(sel, fd):
            data = os.read(fd, 4096)
            if not state["sent_first"]:
                state["sent_first"] = True
                self._to_loop(self._deliver_first, data[:1])
            if not data:
                sel.unregister(fd)
                self._to_loop(self._deliver_gone)  # after '0' this is "lock lost"

        def on_stderr(sel, fd):
            data = os.read(fd, 4096)
            if not data:
                sel.unregister(fd)
            state["errbuf"] = self._log_lines(state["errbuf"] + data, final=not data)

        def on_wake(sel, fd):
            os.read(fd, 64)

        sel = selectors.DefaultSelector()
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ, on_stdout)
        sel.register(proc.stderr.fileno(), selectors.EVENT_READ, on_stderr)
        sel.register(self._wake[0], selectors.EVENT_READ, on_wake)
        # A pidfd turns "the helper exited" into a readable fd.  Exit must be noticed
        # even if stdout stays open (a script's orphaned child can keep it open).
        try:
            pidfd = os.pidfd_open(proc.pid)
            sel.register(pidfd, selectors.EVENT_READ, None)
        except (AttributeError, OSError):
            pidfd = None
        killed = False
        final_passes = 16
        try:
            while True:
                exited = proc.poll() is not None
                if exited:
                    # Read what it wrote before it died, but do not wait for EOF
                    # from a straggler that inherited the pipes.
                    timeout = 0.0
                else:
                    timeout = None if pidfd is not None else 0.2
                    if self._stop_at is not None and not killed:
                        left = max(0.0, self._stop_at - time.monotonic())
                        timeout = left if timeout is None else min(timeout, left)
                readable = [key for key, _ in sel.select(timeout) if key.data is not None]
                for key in readable:
                    key.data(sel, key.fd)
                if exited:
                    final_passes -= 1
                    if not readable or final_passes == 0:
                        break
                elif self._stop_at is not None and not killed and time.monotonic() >= self._stop_at:
                    self.logger.warning("%s (pid %d) ignored SIGTERM, sending SIGKILL", self.label, proc.pid)
                    self._signal(signal.SIGKILL)
                    killed = True
            self._log_lines(state["errbuf"], final=True)
        except Exception:
            self.logger.exception("watching %s (pid %d) failed", self.label, proc.pid)
            self._signal(signal.SIGKILL)
            proc.wait()
        finally:
            sel.close()
            if pidfd is not None:
                os.close(pidfd)
            proc.stdout.close()
            proc.stderr.close()
        # The wake-up pipe is closed in the loop thread (_deliver_exit), where stop()
        # runs, so stop() can never write into a reused fd number.
        if not self._to_loop(self._deliver_exit, proc.returncode):
            self._close_wake()

    def _log_lines(self, buf: bytearray, *, final: bool) -> bytearray:
        *lines, rest = bytes(buf).split(b"\n")
        if final and rest:
            lines.append(rest)
            rest = b""
        for line in lines:
            if line.strip():
                # Helpers name themselves (4.17 copies their stderr to the log as is).
                self.logger.warning("cluster mutex helper[%d]: %s", self.proc.pid, line.decode(errors="replace").rstrip())
        return bytearray(rest)


@attrs.define(eq=False)
class HelperMutex:
    """A cluster mutex held by a helper process speaking 4.17's one-byte protocol.

    `lost` is replaced by a fresh event when an acquire starts after a loss, so read it
    after `acquire` returns HELD.  A voluntary `release` does not set it.
    """

    argv: list[str]
    logger: logging.Logger
    kill_grace: float = KILL_GRACE
    held: bool = attrs.field(default=False, init=False)
    last_latency: float | None = attrs.field(default=None, init=False)
    _lost: anyio.Event | None = attrs.field(default=None, init=False)
    _helper: _Helper | None = attrs.field(default=None, init=False)

    @property
    def lost(self) -> anyio.Event:
        if self._lost is None:
            self._lost = anyio.Event()
        return self._lost

    @property
    def helper_pid(self) -> int | None:
        return None if self._helper is None else self._helper.pid

    async def acquire(self, timeout: float) -> MutexResult:
        if self.held:
            return MutexResult.HELD  # 4.17: a leader that holds the lock keeps it
        await self.release()  # a helper from a cancelled attempt, if any
        if self._lost is None or self._lost.is_set():
            self._lost = anyio.Event()
        # "python -m pkg.mod" is better known by its module name.
        label = self.argv[2].rpartition(".")[2] if self.argv[1:2] == ["-m"] else os.path.basename(self.argv[0])
        start = time.monotonic()
        try:
            helper = _Helper.spawn(self.argv, label=label, logger=self.logger, on_gone=self._helper_gone)
        except OSError as e:
            self.last_latency = time.monotonic() - start
            self.logger.error("Unable to run cluster mutex helper %r: %s", self.argv[0], e)
            return MutexResult.ERROR
        self._helper = helper
        try:
            with anyio.move_on_after(timeout):
                await helper.got_first.wait()
        except BaseException:
            self._helper = None
            helper.stop(self.kill_grace)
            raise
        self.last_latency = time.monotonic() - start
        if helper.first is None:
            # 4.17 reports '2' from its own timer; helpers need not implement it.
            result = MutexResult.TIMEOUT
            self.logger.error("Cluster mutex helper %s timed out after %.1fs", label, timeout)
        else:
            result = _result_for(helper.first)
            if helper.first == b"":
                self.logger.error("Cluster mutex helper %s exited without answering", label)
            elif result is MutexResult.ERROR and helper.first != b"3":
                self.logger.error("Cluster mutex helper %s answered %r", label, helper.first)

        if result is MutexResult.HELD:
            self.held = True
            if helper.gone:  # said '0' and went away before we got here
                self._helper_gone(helper)
            return result
        await self.release()
        return result

    async def release(self) -> None:
        helper, self._helper = self._helper, None
        self.held = False
        if helper is None:
            return
        helper.releasing = True
        helper.stop(self.kill_grace)
        # Waiting for the exit means the lock is free when we return.  Bounded, because
        # SIGKILL cannot end a process stuck in a hung filesystem; the thread reaps it.
        with anyio.move_on_after(self.kill_grace + 1.0):
            await helper.exited.wait()

    def _helper_gone(self, helper: _Helper) -> None:
        if helper is not self._helper or helper.releasing or not self.held:
            return
        self.logger.error("Cluster lock helper %s (pid %d) terminated: lock lost", helper.label, helper.pid)
        self.held = False
        self._helper = None
        helper.stop(self.kill_grace)
        self.lost.set()


def fcntl_helper_argv(path: str, recheck: float = DEFAULT_RECHECK) -> list[str]:
    # 4.17 lets $CTDB_CLUSTER_MUTEX_HELPER replace the helper for a plain lock file.
    override = os.environ.get("CTDB_CLUSTER_MUTEX_HELPER")
    if override:
        return [override, path]
    return [sys.executable, "-m", "ctdbcore.daemon.mutex_helper", path, f"{recheck:g}"]


def split_helper_spec(spec: str) -> list[str]:
    """``!cmd arg…`` -> argv, split on spaces and tabs as 4.17's strv_split does."""
    if not spec.startswith("!"):
        raise ValueError(f"not a helper specification: {spec!r}")
    argv = [a for a in re.split(r"[ \t]+", spec[1:]) if a]
    if not argv:
        raise ValueError(f"cluster lock helper specification has no command: {spec!r}")
    return argv


@attrs.frozen
class FcntlPlugin:
    NAME: ClassVar[str] = "fcntl"

    def create(self, spec: str, logger: logging.Logger, *, recheck: float = DEFAULT_RECHECK) -> HelperMutex:
        if not spec or spec.startswith("!"):
            raise ValueError(f"not a cluster lock file: {spec!r}")
        return HelperMutex(fcntl_helper_argv(spec, recheck), logger)


@attrs.frozen
class HelperPlugin:
    NAME: ClassVar[str] = "helper"

    def create(self, spec: str, logger: logging.Logger) -> HelperMutex:
        return HelperMutex(split_helper_spec(spec), logger)


fcntl_plugin = FcntlPlugin()
helper_plugin = HelperPlugin()


def make_cluster_mutex(spec: str, *, logger: logging.Logger) -> ClusterMutex:
    """Pick the implementation from a ``[cluster] cluster lock`` value."""
    spec = spec.strip()
    if not spec:
        raise ValueError("empty cluster lock specification")
    plugin = helper_plugin if spec.startswith("!") else fcntl_plugin
    return plugin.create(spec, logger)
