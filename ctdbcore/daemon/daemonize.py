"""How ctdbd starts and ends as a service, as 4.17's does: the pid file and its lock,
the refusal to start over a running daemon, going into the background, and telling
whoever started us (the parent waiting on a pipe, or systemd) when we are ready.

4.17 (server/ctdbd.c, lib/util/become_daemon.c, lib/util/pidfile.c): without
``-i`` the daemon forks once; outside test mode the child also calls ``setsid``;
stdin, stdout and stderr become /dev/null. The child holds a lock on
``<rundir>/ctdbd.pid`` for its whole life and removes the file at exit.

Where we differ, on purpose: the parent does not return at once but when the daemon
is listening (or has failed), so that a start that cannot work (the port is taken,
the init event fails) is a non-zero exit with the reason, not a silent death in the
background; and stdout/stderr go to the log file when the log is a file, so that
what helper processes write to stderr is not lost.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
import sys
import time

#: How long the parent waits for the daemon to be listening before it returns 0
#: anyway (the daemon goes on; a harness only needs the command to return).
READY_TIMEOUT = 30.0


class AlreadyRunning(Exception):
    """Another ctdbd holds the pid file or listens on the socket."""


class PidFile:
    """``<rundir>/ctdbd.pid``, locked while this daemon runs.

    The lock is an open-file-description lock (F_OFD_SETLK): it survives the fork into
    the background (the child shares the description), and it conflicts with the
    POSIX record lock that 4.17's pidfile code takes, so neither daemon starts over
    the other. A file left by a daemon that was killed is not locked and is reused.
    """

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd
        self._ino = os.fstat(fd).st_ino

    @classmethod
    def acquire(cls, path: str) -> PidFile:
        path = os.path.abspath(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.fcntl(fd, _F_OFD_SETLK, _lock_struct(fcntl.F_WRLCK))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise AlreadyRunning(f"another ctdbd (pid {pid}) is running: it holds the pid file {path}") from None
        return cls(path, fd)

    def write(self, pid: int) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid}\n".encode(), 0)

    def remove(self) -> None:
        """Unlink (only the file we locked: a newer daemon may have replaced it) and unlock."""
        if self.fd < 0:
            return
        try:
            if os.stat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1


_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)  # Linux; Python has the name from 3.9


def _lock_struct(kind: int) -> bytes:
    # struct flock: l_type, l_whence (shorts), l_start, l_len (off_t), l_pid (0 for OFD locks)
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)


def check_socket_free(path: str) -> None:
    """Refuse to start where a daemon answers on our unix socket (starting would unlink
    it and take its clients); a socket file nobody listens on is stale and fine."""
    if not os.path.exists(path):
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
    except OSError:
        return
    finally:
        s.close()
    raise AlreadyRunning(f"another ctdbd is listening on {path}")


class Readiness:
    """The child's end of the start-up pipe: one line, "ok" or the reason it failed."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def _send(self, text: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, text.encode(errors="replace")[:4000] + b"\n")
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def ok(self) -> None:
        self._send("ok")

    def fail(self, why: str) -> None:
        self._send(why.replace("\n", " ") or "failed")


def daemonize(*, test_mode: bool, log_file: str | None) -> Readiness:
    """Fork into the background. Only the child returns; the parent exits with 0 when
    the child reports ready (or does not within READY_TIMEOUT), 1 when it fails."""
    for f in (sys.stdout, sys.stderr):
        f.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        os._exit(_wait_ready(r, pid))
    os.close(r)
    if not test_mode:
        # 4.17 in test mode keeps the session: the harness kills it with the group.
        os.setsid()
        os.chdir("/")
    _redirect_stdio(log_file)
    return Readiness(w)


def _wait_ready(r: int, child: int) -> int:
    deadline = time.monotonic() + READY_TIMEOUT
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            print(f"ctdbd: the daemon (pid {child}) is still starting after {READY_TIMEOUT:g} s; "
                  "going on in the background (see its log)", file=sys.stderr)
            return 0
        ready, _, _ = select.select([r], [], [], left)
        if not ready:
            continue
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\n", 1)[0].decode(errors="replace").strip()
    if line == "ok":
        return 0
    status = ""
    try:
        wpid, st = os.waitpid(child, 0)
        if os.WIFEXITED(st):
            status = f" (exit status {os.WEXITSTATUS(st)})"
        elif os.WIFSIGNALED(st):
            status = f" (killed by signal {os.WTERMSIG(st)})"
    except ChildProcessError:
        pass
    print(f"ctdbd: the daemon failed to start{status}: {line or 'no reason given; see its log'}", file=sys.stderr)
    return 1


def _redirect_stdio(log_file: str | None) -> None:
    """stdin from /dev/null; stdout and stderr to the log file when the log is a file
    (helper processes write there), else /dev/null. The inherited descriptors are
    closed: a harness reading our output through a pipe sees its end."""
    null = os.open(os.devnull, os.O_RDWR)
    out = null
    if log_file:
        try:
            out = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            out = null
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {null, out}:
        if fd > 2:
            os.close(fd)


def sd_notify(state: str, environ=os.environ) -> bool:
    """systemd's sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a path,
    or "@name" for the abstract namespace). False when not started by systemd."""
    addr = environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(addr)
        s.sendall(state.encode())
        return True
    except OSError:
        return False
    finally:
        s.close()
