"""Hold a tdb lock on behalf of the daemon (4.17's ctdb_lock_helper).

    python -m ctdbcore.db.lock_helper PATH TDB_FLAGS PARENT_PID (KEYHEX | --all)

Opens PATH (O_RDWR, never creating it), waits for the chain lock of the key (or for
the whole-database lock with ``--all``) and writes ``1`` to stdout once it holds it.
It keeps the lock until stdin reaches end of file -- the daemon is done, or died --
then unlocks and exits 0. If it cannot lock it writes ``0`` and a message, and exits 1.

Meanwhile the daemon only *marks* the lock as held in its own tdb context. The lock
has to live here because it cannot be handed over: fcntl locks belong to the process
that took them and robust mutexes (TDB_MUTEX_LOCKING) to the thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

from ctdbcore.db.tdb import Tdb, TdbError, TdbFlags

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    # While blocked in fcntl()/pthread_mutex_lock() nothing else runs here, so an
    # orphaned helper would only notice on getting the lock; let the kernel kill it.
    # (The kernel's parent is the spawning thread: the daemon's event-loop thread.)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
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
        _die_with_parent(int(parent_s))
        # Never wipe (the daemon has the file open, but be sure) and always lock.
        flags = int(flags_s, 0) & ~(TdbFlags.CLEAR_IF_FIRST | TdbFlags.NOLOCK)
        key = None if target == "--all" else bytes.fromhex(target)
        tdb = Tdb.open(path, tdb_flags=flags, open_flags=os.O_RDWR)
        if key is None:
            tdb.lockall()
        else:
            tdb.chainlock(key)
    except (TdbError, ValueError) as e:
        with contextlib.suppress(OSError):
            _answer(b"0" + str(e).encode(errors="replace"))
        return 1
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
