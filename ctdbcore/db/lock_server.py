"""Fork server for lock helpers: a lock helper in about a millisecond instead of a
Python start-up (tens of milliseconds) per lock.

    python -m ctdbcore.db.lock_server PARENT_PID [--die-with-parent]

fd 0 is a ``SOCK_SEQPACKET`` unix socket to the process that started us (the daemon,
or any process using :mod:`ctdbcore.db.locking`). Each message on it is one request:
``PATH \\0 TDB_FLAGS \\0 (KEYHEX | --all)`` with one file descriptor attached (a
``SOCK_STREAM`` unix socket). For each request we fork; the child makes that socket
its stdin and stdout, sends its pid (:data:`PID` bytes) with a pidfd of itself attached,
then does exactly what :mod:`ctdbcore.db.lock_helper` does. The pid comes first,
before any waiting, so that the requester can kill a child blocked in the lock; the
pidfd lets it do so, and wait for the exit, without ever mistaking a reused pid for
its helper. We keep no copy of the socket after the fork, so the child sees end of
file when the requester lets go or dies.

Death: we exit when the requester's end of fd 0 closes (it died: the kernel closes
its descriptors whichever of its threads started us), and with ``--die-with-parent``
also by PR_SET_PDEATHSIG -- only asked for by a main thread, as the kernel sends it
when the starting *thread* ends. Every child asks to be killed when we die, so a
requester's death never leaves a lock held.

Nothing here may open a tdb: libtdb would refuse the children's opens of the same file.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import sys
import traceback
from typing import NoReturn

from ctdbcore.db import lock_helper

PID = struct.Struct("=i")
# A request larger than this is dropped (the requester spawns a helper itself).
MAX_REQUEST = 1 << 16
_PROG = "ctdb_lock_server"


def _log(msg: str) -> None:
    # stderr is the requester's: the daemon's log.
    with contextlib.suppress(OSError):
        os.write(2, f"{_PROG}[{os.getpid()}]: {msg}\n".encode(errors="replace"))


def _reap(_signum: int, _frame: object) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        # SIGKILL is the requester's timeout or cancel; a failed lock is reported to it.
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        if sig and sig != signal.SIGKILL:
            _log(f"lock helper {pid} died of {signal.Signals(sig).name}")


def parse(msg: bytes, fds: list[int], msg_flags: int) -> tuple[str, str, str]:
    """The request's (path, flags, target); ValueError if malformed."""
    if msg_flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        raise ValueError("request truncated")
    if len(fds) != 1:
        raise ValueError(f"request with {len(fds)} descriptors")
    fields = msg.split(b"\0")
    if len(fields) != 3:
        raise ValueError(f"request with {len(fields)} fields")
    path, flags, target = fields
    return os.fsdecode(path), flags.decode("ascii"), target.decode("ascii")


def _announce() -> None:
    """Tell the requester our pid, with a pidfd of ourselves attached."""
    me = os.getpid()
    pidfd = os.pidfd_open(me)
    try:
        out = socket.socket(fileno=1)
        try:
            socket.send_fds(out, [PID.pack(me)], [pidfd], socket.MSG_NOSIGNAL)
        finally:
            out.detach()
    finally:
        os.close(pidfd)


def _child(ctl: socket.socket, fd: int, request: tuple[str, str, str], server_pid: int) -> NoReturn:
    status = 1
    try:
        ctl.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(fd, 0)
        os.dup2(fd, 1)
        os.close(fd)
        lock_helper.die_with_parent(server_pid)
        try:
            _announce()
        except OSError:
            os._exit(1)  # the requester gave up on this one: lock nothing
        status = lock_helper.hold(*request)
    except BaseException:  # noqa: BLE001 -- whatever it was, this child must not return
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        # Never back into the server's loop, and nothing of the server's to flush.
        os._exit(status)


def _hung_up(ctl: socket.socket) -> bool:
    # An empty read is either an empty message (malformed, ignored) or the end.
    p = select.poll()
    p.register(ctl, select.POLLHUP | select.POLLRDHUP)
    return bool(p.poll(0))


def serve(ctl: socket.socket) -> None:
    """Fork a child for each request on ``ctl`` until its other end closes."""
    me = os.getpid()
    while True:
        msg, fds, msg_flags, _ = socket.recv_fds(ctl, MAX_REQUEST, 1, socket.MSG_CMSG_CLOEXEC)
        try:
            if not msg and not fds and _hung_up(ctl):
                return
            try:
                request = parse(msg, fds, msg_flags)
            except ValueError as e:
                # Closing the descriptors tells the requester: it spawns a helper itself.
                _log(f"malformed request dropped: {e}")
                continue
            try:
                pid = os.fork()
            except OSError as e:
                _log(f"cannot fork a lock helper: {e}")
                continue
            if pid == 0:
                _child(ctl, fds[0], request, me)
        finally:
            for fd in fds:
                os.close(fd)


def main(argv: list[str]) -> int:
    die_with_parent = argv[1:] == ["--die-with-parent"]
    if len(argv) != 1 + die_with_parent or not argv[0].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    parent = int(argv[0])
    # SIGINT from a terminal belongs to the requester, which ends us by closing fd 0.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if die_with_parent:
        lock_helper.die_with_parent(parent)
    elif os.getppid() != parent:
        return 1
    lock_helper.preload()  # what a spawned helper spends its start-up on, once for all children
    # After the preload: finding libtdb runs ldconfig, whose exit is not ours to reap.
    signal.signal(signal.SIGCHLD, _reap)
    serve(socket.socket(fileno=0))
    return 0


if __name__ == "__main__":
    # Children still holding locks die with us (PR_SET_PDEATHSIG).
    os._exit(main(sys.argv[1:]))
