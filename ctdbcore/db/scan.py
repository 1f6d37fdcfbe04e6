"""List a database's deleted records held by one node, in a child process.

    python -m ctdbcore.db.scan PATH TDB_FLAGS PNN

Writes a marshall buffer (db_id 0) of the empty records (header only) whose data master
is PNN and that carry no read-only flags. A traverse takes every chain's lock in turn
and would wait for any smbd holding one; 4.17's vacuumer forks for the same reason, so
that the daemon's event loop never waits.
"""

from __future__ import annotations

import os
import sys

from ctdbcore.db import marshall, record
from ctdbcore.db.tdb import Tdb, TdbFlags


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, flags, pnn = argv[0], int(argv[1], 0), int(argv[2])
    flags &= ~(TdbFlags.CLEAR_IF_FIRST | TdbFlags.NOLOCK)
    found = []
    with Tdb.open(path, tdb_flags=flags, open_flags=os.O_RDWR) as tdb:
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
