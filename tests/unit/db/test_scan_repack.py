"""The vacuum child's repack (4.17's ctdb_vacuum_and_repack_db): the decision on the
free list size against RepackLimit, and the child repacking a real file without losing
a record, or being killed while it waits for a chain smbd holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ctdbcore.db import marshall
from ctdbcore.db.database import tdb_flags_for
from ctdbcore.db.scan import needs_repack, repack_if_needed
from ctdbcore.db.tdb import Tdb, runtime_check_for_robust_mutexes
from ctdbcore.protocol.records import LtdbHeader
from tests.cluster.helpers import waits_for_a_lock

MUTEXES = [False] + ([True] if runtime_check_for_robust_mutexes() else [])
PNN = 0


@pytest.mark.parametrize(("size", "limit", "expected"), [
    (0, 0, False), (50000, 0, False),      # RepackLimit 0 turns repacking off
    (9999, 10000, False), (10000, 10000, True), (10001, 10000, True),
    (0, 1, False), (1, 1, True),
])
def test_repack_decision_is_4_17s(size, limit, expected) -> None:
    assert needs_repack(size, limit) is expected


def _value(rsn: int, data: bytes, dmaster: int = PNN) -> bytes:
    return LtdbHeader(rsn=rsn, dmaster=dmaster).pack() + data


@pytest.fixture(params=MUTEXES, ids=lambda m: "mutex" if m else "fcntl")
def volatile(request, tmp_path):
    """A volatile database's file, held open the way the daemon holds it, with a long free
    list: 3000 records, every other one deleted (so that no two free blocks touch), and
    100 deleted records (header only) that the scan must still list."""
    flags = tdb_flags_for(0, request.param)
    path = str(tmp_path / "repack.tdb.0")
    tdb = Tdb.open(path, hash_size=1031, tdb_flags=flags, open_flags=os.O_RDWR | os.O_CREAT)
    for i in range(3000):
        tdb.store(b"key-%d" % i, _value(1, b"x" * (40 + i % 50)))
    for i in range(0, 3000, 2):
        tdb.delete(b"key-%d" % i)
    for i in range(100):
        tdb.store(b"empty-%d" % i, _value(2, b""))
    # Counting merges adjacent free blocks: settle that first, so that counts compare.
    while tdb.freelist_size() != tdb.freelist_size():
        pass
    yield tdb, flags
    tdb.close()


def _run_child(path: str, flags: int, limit: int | None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "ctdbcore.db.scan", path, str(flags), str(PNN)]
    if limit is not None:
        args.append(str(limit))
    return subprocess.run(args, capture_output=True, timeout=120)


def _intact(tdb: Tdb) -> None:
    for i in range(1, 3000, 2):
        assert tdb.fetch(b"key-%d" % i) == _value(1, b"x" * (40 + i % 50))
    for i in range(0, 3000, 2):
        assert tdb.fetch(b"key-%d" % i) is None
    assert len(tdb) == 1500 + 100
    tdb.check()


def test_child_repacks_a_long_freelist_and_still_lists_the_deleted_records(volatile) -> None:
    tdb, flags = volatile
    before = tdb.freelist_size()
    assert before >= 1000
    done = _run_child(tdb.path, flags, 1000)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.decode().splitlines()
    assert lines == [f"repack {before}", f"repacked {before}"]
    _, found = marshall.unpack(done.stdout)
    assert sorted(k for k, _ in found) == sorted(b"empty-%d" % i for i in range(100))
    after = tdb.freelist_size()
    assert after < 10, after
    _intact(tdb)
    # A transaction never shrinks the file (and this one's commit wrote a recovery area
    # as large as the data), but the space is now in one free block: storing as much
    # again as was deleted does not grow it.
    size = os.path.getsize(tdb.path)
    for i in range(0, 3000, 2):
        tdb.store(b"again-%d" % i, _value(1, b"y" * (40 + i % 50)))
    assert os.path.getsize(tdb.path) == size


@pytest.mark.parametrize("limit", [None, 0, 100000])
def test_child_leaves_a_freelist_below_the_limit_alone(volatile, limit) -> None:
    tdb, flags = volatile
    before = tdb.freelist_size()
    done = _run_child(tdb.path, flags, limit)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert tdb.freelist_size() == before
    _intact(tdb)


def test_a_failed_repack_is_reported_and_the_scan_goes_on(volatile) -> None:
    tdb, _ = volatile
    lines: list[str] = []
    # This context is already in a transaction: libtdb refuses a nested one
    # (DISALLOW_NESTING), as it would fail for any reason inside tdb_repack.
    tdb.transaction_start()
    try:
        n = tdb.freelist_size()
        assert repack_if_needed(tdb, 10, lines.append) == 0
    finally:
        tdb.transaction_cancel()
    assert lines[0] == f"repack {n}"
    assert lines[1].startswith(f"repack failed {n}: ")
    _intact(tdb)




def test_a_repack_waiting_for_a_chain_is_killed_without_harm(volatile) -> None:
    """smbd holds a chain: the repack's transaction waits for the whole-database lock in
    the child (never in the daemon), and killing the child (as a freeze does) leaves the
    file as it was."""
    tdb, flags = volatile
    before = tdb.freelist_size()
    tdb.chainlock(b"key-1")
    try:
        child = subprocess.Popen([sys.executable, "-m", "ctdbcore.db.scan", tdb.path, str(flags), str(PNN), "1000"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            line = child.stderr.readline()
            assert line == f"repack {before}\n".encode()
            while not waits_for_a_lock(child.pid):
                assert child.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            child.kill()
            child.wait()
    finally:
        tdb.chainunlock(b"key-1")
    assert tdb.freelist_size() == before
    _intact(tdb)
    # and the next run repacks
    done = _run_child(tdb.path, flags, 1000)
    assert done.stderr.decode().splitlines()[-1] == f"repacked {before}"
    _intact(tdb)
