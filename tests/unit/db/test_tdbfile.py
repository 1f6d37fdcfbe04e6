"""The direct reader of TDB files (recovery's pull) against libtdb's own traverse."""

from __future__ import annotations

import os
import random

import pytest

from ctdbcore.db import tdbfile
from ctdbcore.db.tdb import Tdb

VOLATILE = 0x1C41 & ~0x1  # 4.17's volatile flags (mutexes, jenkins hash), as reopened
PERSISTENT = 0


@pytest.mark.parametrize("flags", [VOLATILE, PERSISTENT, 0x800])
@pytest.mark.parametrize("hash_size", [7, 10007])
def test_reads_what_libtdb_traverses(tmp_path, flags: int, hash_size: int) -> None:
    rnd = random.Random(hash_size + flags)
    path = str(tmp_path / "t.tdb")
    want: dict[bytes, bytes] = {}
    with Tdb.open(path, hash_size=hash_size, tdb_flags=flags, open_flags=os.O_RDWR | os.O_CREAT) as t:
        for _ in range(2):
            # stores, overwrites (records move and leave free space) and deletes
            for _ in range(1500):
                k = b"k%d" % rnd.randrange(2000)
                if rnd.random() < 0.3 and k in want:
                    t.delete(k)
                    del want[k]
                else:
                    want[k] = os.urandom(rnd.randrange(0, 200))
                    t.store(k, want[k])
            # a committed transaction leaves a recovery area in the file
            t.transaction_start()
            for i in range(200):
                want[b"t%d" % i] = b"in a transaction %d" % i
                t.store(b"t%d" % i, want[b"t%d" % i])
            t.transaction_commit()
            got = tdbfile.live_records(t.fd())
            assert got is not None
            assert len(got) == len(want)
            assert dict(got) == want == dict(t.traverse())
            buf = tdbfile.read(t.fd())
            spans = tdbfile.live_spans(buf)
            assert [(buf[o:o + kl], buf[o + kl:o + kl + dl]) for o, kl, dl in spans] == got
        t.wipe_all()
        t.store(b"after wipe", b"x")
        assert tdbfile.live_records(t.fd()) == [(b"after wipe", b"x")]


def test_unfamiliar_files_are_refused(tmp_path) -> None:
    path = str(tmp_path / "t.tdb")
    with Tdb.open(path, hash_size=31, tdb_flags=VOLATILE, open_flags=os.O_RDWR | os.O_CREAT) as t:
        for i in range(50):
            t.store(b"k%d" % i, b"v" * i)
    buf = open(path, "rb").read()
    assert tdbfile.parse(buf) is not None
    assert tdbfile.parse(buf[:-10]) is None  # cut short
    assert tdbfile.parse(b"not a tdb" + buf[9:]) is None
    # a record whose magic is none of tdb's
    recs = buf.index((tdbfile.TDB_MAGIC).to_bytes(4, "little"))
    bad = buf[:recs] + b"\x01\x02\x03\x04" + buf[recs + 4:]
    assert tdbfile.parse(bad) is None


def test_reading_keeps_the_process_locks(tmp_path) -> None:
    """Closing any descriptor of a file drops the process's fcntl locks on it: the
    reader must use libtdb's own descriptor, and then a lock this process holds is
    still held."""
    import subprocess
    import sys

    path = str(tmp_path / "t.tdb")
    with Tdb.open(path, hash_size=31, tdb_flags=PERSISTENT, open_flags=os.O_RDWR | os.O_CREAT) as t:
        t.store(b"k", b"v")
        t.chainlock(b"k")
        try:
            assert tdbfile.live_records(t.fd()) == [(b"k", b"v")]
            probe = ("import os, sys; from ctdbcore.db.tdb import Tdb, TdbBusy\n"
                     "t = Tdb.open(sys.argv[1], tdb_flags=0, open_flags=os.O_RDWR)\n"
                     "try:\n    t.chainlock_nonblock(b'k')\nexcept TdbBusy:\n    sys.exit(3)\n")
            r = subprocess.run([sys.executable, "-c", probe, path], capture_output=True, text=True, timeout=30)
            assert r.returncode == 3, r.stderr
        finally:
            t.chainunlock(b"k")
