"""Cluster lock holder for a lock file: ``python -m ctdbcore.daemon.mutex_helper FILE [recheck [ping_timeout]]``.

Speaks 4.17's one-byte cluster mutex helper protocol on stdout (reference §4.8): '0' held,
'1' contention, '3' error.  After '0' it keeps the lock until it is killed (SIGTERM is
ctdbd's "release"), its parent dies, or the lock file is removed or replaced; any of
those ends the process, and the EOF on stdout tells ctdbd the lock is gone.

It differs from 4.17's ctdb_mutex_fcntl_helper in one way that matters: it asks the
kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG).  4.17's helper polls its
parent every 5 s, so a SIGKILLed leader keeps the lock for up to 5 s and the next leader
election waits for it.  The periodic parent check stays as a fallback (non-Linux, or a
parent that died before prctl ran).

Stdlib only, and nothing heavy imported: this is started for every lock attempt.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import sys
import time

# 4.17's helper defaults to 5 s; we check more often because a stat() is cheap and a
# replaced lock file means two nodes may believe they are leader.
DEFAULT_RECHECK = 1.0

# The daemon sets this to its own pid so we can tell whether our parent died before we
# got as far as prctl (getppid() alone cannot: after reparenting it is just some pid).
PARENT_ENV = "CTDB_MUTEX_HELPER_PPID"

_PR_SET_PDEATHSIG = 1

PROG = "ctdb_mutex_helper"


class _PingTimeout(Exception):
    pass


def _log(msg: str) -> None:
    # stderr goes to ctdbd's log; the daemon adds its own prefix per helper.
    try:
        os.write(2, f"{PROG}: {msg}\n".encode(errors="replace"))
    except OSError:
        pass


def _send(byte: bytes) -> None:
    # Raw fd 1, not sys.stdout: nothing may be buffered, and fd 1 must stay open while
    # we hold the lock because its EOF is the "lock lost" signal.
    os.write(1, byte)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the periodic parent check below still covers us, only more slowly


def _expected_parent() -> int | None:
    value = os.environ.get(PARENT_ENV)
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _parent_alive(expected: int | None) -> bool:
    ppid = os.getppid()
    if expected is not None:
        return ppid == expected
    # Without the hint, use 4.17's rule: reparented to init means the parent is gone.
    return ppid != 1


def _inode_unchanged(path: str, fd: int) -> str | None:
    """Return why the lock is lost, or None while the file is still ours."""
    try:
        st = os.stat(path)
    except OSError as e:
        return f'lock file "{path}" stat failed ({os.strerror(e.errno or 0)})'
    held = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (held.st_dev, held.st_ino):
        return f'lock file "{path}" inode changed'
    return None


def _ping(fd: int, ping_timeout: int) -> str | None:
    """Take and drop a blocking lock on byte 1, as 4.17 does, to prove the filesystem answers.

    It is the same fd and process that holds byte 0, so this never contends with us and
    unlocking byte 1 leaves byte 0 alone.  (Opening and closing a second fd, as 4.17 does,
    would drop every POSIX lock this process holds on the file if it ever raced.)
    """

    def on_alarm(signum, frame):
        raise _PingTimeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(ping_timeout)  # 0 = wait forever, 4.17's default
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, 1)
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 1)
    except _PingTimeout:
        return f"ping timeout ({ping_timeout}s) on lock file"
    except OSError as e:
        return f"ping lock failed ({os.strerror(e.errno or 0)})"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return None


def _usage() -> int:
    _log("usage: python -m ctdbcore.daemon.mutex_helper FILE [recheck [ping_timeout]]")
    _send(b"3")
    return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 3:
        return _usage()
    path = args[0]
    try:
        recheck = float(args[1]) if len(args) > 1 else DEFAULT_RECHECK
        ping_timeout = int(args[2]) if len(args) > 2 else 0
    except ValueError:
        return _usage()
    if recheck <= 0:
        recheck = DEFAULT_RECHECK

    # A terminal ^C meant for ctdbd should not print a traceback here.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _die_with_parent()
    expected = _expected_parent()
    if not _parent_alive(expected):
        _log("parent gone before lock was taken")
        return 1

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        _log(f'unable to open "{path}" ({os.strerror(e.errno or 0)})')
        _send(b"3")
        return 1
    try:
        # Python's lockf is fcntl(F_SETLK, F_WRLCK) on byte 0, length 1: the same lock
        # 4.17's helper takes, so the two contend with each other.
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EAGAIN):
            _send(b"1")
            return 0
        _log(f'unable to lock "{path}" ({os.strerror(e.errno or 0)})')
        _send(b"3")
        return 1

    _send(b"0")

    while True:
        time.sleep(recheck)
        if not _parent_alive(expected):
            _log("parent gone, releasing lock")
            return 1
        why = _inode_unchanged(path, fd)
        if why is None:
            why = _ping(fd, ping_timeout)
        if why is not None:
            _log(f"lock lost - {why}")
            return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(1)
