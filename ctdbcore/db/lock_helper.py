"""Hold a tdb lock on behalf of the daemon (4.17's ctdb_lock_helper).

    python -m ctdbcore.db.lock_helper PATH TDB_FLAGS PARENT_PID (KEYHEX | --all)

Opens PATH (O_RDWR, never creating it), waits for the chain lock of the key (or for
the whole-database lock with ``--all``) and writes ``1`` to stdout once it holds it.
It keeps the lock until stdin reaches end of file -- the daemon is done, or died --
then unlocks and exits 0. If it cannot lock it writes ``0`` and a message, and exits 1.

Meanwhile the daemon only *marks* the lock as held in its own tdb context. The lock
has to live here because it cannot be handed over: fcntl locks belong to the process
that took them and robust mutexes (TDB_MUTEX_LOCKING) to the thread.

This program is the fallback: helpers are normally forked by the lock server
(:mod:`ctdbcore.db.lock_server`), whose children run :func:`hold` as well.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys

from ctdbcore.db import tdb as _tdb
from ctdbcore.db.tdb import Tdb, TdbError, TdbFlags

_PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> ctypes.CDLL:
    # Cached: the lock server's children inherit it instead of loading it each.
    return ctypes.CDLL(None, use_errno=True)


def preload() -> None:
    """Load what :func:`hold` and :func:`die_with_parent` need: a fork server does it
    once, and its children inherit it."""
    _tdb.load()
    # libtdb tests robust mutexes (forking a child) the first time a process opens a
    # TDB_MUTEX_LOCKING file and keeps the answer: asked here, every child inherits it.
    _tdb.runtime_check_for_robust_mutexes()
    _libc()


def die_with_parent(parent_pid: int) -> None:
    """Be killed when the process that started us dies (or exit now if it already has)."""
    # While blocked in fcntl()/pthread_mutex_lock() nothing else runs here, so an
    # orphaned helper would only notice on getting the lock; let the kernel kill it.
    # (The kernel's parent is the thread that started us: the daemon's event-loop
    # thread, or the lock server's only thread.)
    if sys.platform.startswith("linux"):
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(1)


def _answer(data: bytes) -> None:
    os.write(1, data)  # one write: the daemon reads the first byte as the answer


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, flags_s, parent_s, target = argv
    # SIGINT from a terminal belongs to the daemon, which ends us by closing stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        die_with_parent(int(parent_s))
    except ValueError as e:
        return _refuse(e)
    return hold(path, flags_s, target)


def _refuse(e: Exception) -> int:
    with contextlib.suppress(OSError):
        _answer(b"0" + str(e).encode(errors="replace"))
    return 1


def hold(path: str, flags_s: str, target: str) -> int:
    """Lock ``target`` of ``path``, answer on fd 1, hold until fd 0 ends, unlock; the
    exit status. The body of both this program and the lock server's children."""
    try:
        # Never wipe (the daemon has the file open, but be sure) and always lock.
        flags = int(flags_s, 0) & ~(TdbFlags.CLEAR_IF_FIRST | TdbFlags.NOLOCK)
        key = None if target == "--all" else bytes.fromhex(target)
        tdb = Tdb.open(path, tdb_flags=flags, open_flags=os.O_RDWR)
        if key is None:
            tdb.lockall()
        else:
            tdb.chainlock(key)
    except (TdbError, ValueError) as e:
        return _refuse(e)
    try:
        _answer(b"1")
        while os.read(0, 4096):
            pass
    except OSError:
        pass  # the daemon is gone: give the lock back all the same
    # Unlock explicitly rather than by exiting: a mutex released by a dead owner makes
    # the next locker go through robust-mutex recovery.
    if key is None:
        tdb.unlockall()
    else:
        tdb.chainunlock(key)
    tdb.close()
    return 0


if __name__ == "__main__":
    # os._exit: nothing to flush, and the daemon waits for this exit on every release.
    os._exit(main(sys.argv[1:]))
