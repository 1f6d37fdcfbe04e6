"""The vacuum child: repack a database whose free list grew long, then list its
deleted records held by one node.

    python -m ctdbcore.db.scan PATH TDB_FLAGS PNN [REPACK_LIMIT]

Writes a marshall buffer (db_id 0) of the empty records (header only) whose data master
is PNN and that carry no read-only flags. A traverse takes every chain's lock in turn
and would wait for any smbd holding one; 4.17's vacuumer forks for the same reason, so
that the daemon's event loop never waits.

With REPACK_LIMIT (the RepackLimit tunable) the child first counts the free list
(``tdb_freelist_size``, which also merges adjacent free blocks) and, when it holds at
least REPACK_LIMIT entries, repacks the file (``tdb_repack``: one transaction that
copies the live records out, wipes the file and writes them back, so that the free
space becomes one block). 0 turns this off, as in 4.17. The repack's transaction waits
for the whole-database lock, i.e. for any smbd holding a chain: here it only holds up
this child, which a freeze kills like a waiting scan; a commit cut short is replayed
from the transaction's recovery area by the next process to lock the file.

The deletions of one vacuum run are made by the daemon after this child ends, so they
are repacked by the next run's child (4.17's child deletes, then repacks).

What the repack did goes to stderr, one line each, for the daemon to log:
``repack N`` before repacking a free list of N entries, then ``repacked N`` or
``repack failed N: why``. A failed repack does not fail the scan.
"""

from __future__ import annotations

import os
import sys

from ctdbcore.db import marshall, record
from ctdbcore.db.tdb import Tdb, TdbError, TdbFlags


def needs_repack(freelist_size: int, repack_limit: int) -> bool:
    """4.17's decision: a limit of 0 never repacks; otherwise repack from the limit on."""
    return repack_limit > 0 and freelist_size >= repack_limit


def repack_if_needed(tdb: Tdb, repack_limit: int, report) -> int:
    """Repack ``tdb`` when its free list reached ``repack_limit``, calling ``report``
    with the lines described above; return the free list size that was repacked (0 when
    nothing was done or the repack failed)."""
    if repack_limit <= 0:
        return 0
    try:
        size = tdb.freelist_size()
    except TdbError as e:
        report(f"repack failed 0: {e}")
        return 0
    if not needs_repack(size, repack_limit):
        return 0
    report(f"repack {size}")
    try:
        tdb.repack()
    except TdbError as e:
        report(f"repack failed {size}: {e}")
        return 0
    report(f"repacked {size}")
    return size


def _report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    path, flags, pnn = argv[0], int(argv[1], 0), int(argv[2])
    repack_limit = int(argv[3]) if len(argv) == 4 else 0
    flags &= ~(TdbFlags.CLEAR_IF_FIRST | TdbFlags.NOLOCK)
    found = []
    with Tdb.open(path, tdb_flags=flags, open_flags=os.O_RDWR) as tdb:
        repack_if_needed(tdb, repack_limit, _report)
        for key, value in tdb.traverse_read():
            if len(value) != record.HEADER_SIZE:
                continue
            _, dmaster = marshall.rsn_dmaster(value)
            if dmaster == pnn and not marshall.flags_of(value) & record.RO_FLAGS:
                found.append((key, value))
    sys.stdout.buffer.write(marshall.pack(0, found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
