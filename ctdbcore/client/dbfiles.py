"""One open libtdb context per database file per process, shared by every client
database of that path.

libtdb refuses to open one file twice in a process (its fcntl locks would clash), so
two clients attaching the same database, or one client attaching it twice, share the
context; it is closed when the last of them lets go. The blocking client opens files
from its portal thread and uses them from the caller's, hence the lock.
"""

from __future__ import annotations

import os
import threading

from ctdbcore.db.tdb import Tdb

_lock = threading.Lock()
_shared: dict[str, list] = {}  # path -> [Tdb, users]


def open_shared(path: str, tdb_flags: int) -> Tdb:
    """The process's context for ``path`` (opened O_RDWR with ``tdb_flags`` if new)."""
    with _lock:
        entry = _shared.get(path)
        if entry is None:
            entry = _shared[path] = [Tdb.open(path, hash_size=0, tdb_flags=tdb_flags, open_flags=os.O_RDWR), 0]
        entry[1] += 1
        return entry[0]


def close_shared(path: str) -> None:
    """One user of ``path`` is done; the last one closes the context."""
    with _lock:
        entry = _shared.get(path)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _shared[path]
    entry[0].close()
