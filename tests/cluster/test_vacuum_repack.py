"""Bounded file growth of volatile databases: after the vacuum deleted the records that
were deleted everywhere, a file whose free list reached RepackLimit is repacked (4.17's
vacuum child), on every node, without losing a live record."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctdbcore.client.db import attach
from ctdbcore.db.tdb import TdbFlags
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import Opcode
from tests.cluster.helpers import client, ctdb, vacuum_children, wait_for, waits_for_a_lock

pytestmark = pytest.mark.slow

NODES = [0, 1]
NAME = "repacked.tdb"
LIMIT = 300
# 4.17's DatabaseMaxDead (5) lets each chain keep up to 5 deleted records as dead ones,
# reused for that chain and not on the free list; with the default 100001 chains a test's
# deletions would never reach the free list. Few chains make them overflow there.
HASH_SIZE = 61


def _value(key: bytes) -> bytes:
    return b"value of " + key + b" " + b"x" * (60 + len(key) % 40)


def _files(lc) -> dict[int, str]:
    paths = {}
    for pnn in NODES:
        with client(lc, pnn) as c, attach(c, NAME) as db:
            paths[pnn] = db.tdb.path
    return paths


_COUNT = ("import os, sys; from ctdbcore.db.tdb import Tdb; "
          "print(Tdb.open(sys.argv[1], tdb_flags=int(sys.argv[2]), open_flags=os.O_RDONLY).freelist_size())")


def _freelists(lc) -> dict[int, int]:
    """Each node's free list length, counted by a read-only context: a writable one
    would merge adjacent free blocks as it counts, under a lock that lets the vacuum
    child's own count (and merge) run at the same time."""
    out = {}
    for pnn in NODES:
        with client(lc, pnn) as c, attach(c, NAME) as db:
            path, flags = db.tdb.path, db.tdb.get_flags() & ~TdbFlags.CLEAR_IF_FIRST
        r = subprocess.run([sys.executable, "-c", _COUNT, path, str(flags)],
                           capture_output=True, text=True, timeout=30, check=True)
        out[pnn] = int(r.stdout)
    return out


def _gone(lc, keys: list[bytes]) -> bool:
    """No node's file holds any of keys any more (not even an empty record)."""
    for pnn in NODES:
        with client(lc, pnn) as c, attach(c, NAME) as db:
            if any(db.tdb.fetch(k) is not None for k in keys):
                return False
    return True


def _repacks_logged(lc, pnn: int) -> int:
    log = (Path(lc.node_dir(pnn)) / "log.ctdb").read_text(errors="replace")
    return log.count(f"Repacking {NAME} with ")


def _repacking_children(path: str, limit: int) -> list[int]:
    """Vacuum children of ``path`` that were given RepackLimit ``limit`` (the last
    argument of their command line) and sleep in a lock wait. A child started before
    the test raised the limit may wait on the held chain too, in its traverse only."""
    found = []
    for pid in vacuum_children(path):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[-2:-1] == [str(limit).encode()] and waits_for_a_lock(pid):
            found.append(pid)
    return found


def _repack_timed_out(lc, pnn: int) -> bool:
    log = (Path(lc.node_dir(pnn)) / "log.ctdb").read_text(errors="replace")
    start = log.find(f"Repacking {NAME} with ")
    return start >= 0 and f"Vacuuming child process timed out for db {NAME}" in log[start:]


def _check_files(paths: dict[int, str]) -> None:
    for path in paths.values():
        r = subprocess.run(["tdbtool", path, "check"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "integrity is OK" in r.stdout, (path, r.stdout, r.stderr)


def _cluster(local_cluster, base: int):
    lc = local_cluster(n=2, loopback=True, loopback_base=base,
                       tunables=(("VacuumInterval", "1"), ("RepackLimit", str(LIMIT)),
                                 ("DatabaseHashSize", str(HASH_SIZE))))
    lc.wait_ok(timeout=30)
    return lc


def _fill_and_delete(lc, new: list[bytes], dead: list[bytes]) -> None:
    with client(lc, 0) as c, attach(c, NAME) as db:
        for key in new:
            db.store(key, _value(key))
        for key in dead:
            db.delete(key)


def _vacuumed_and_repacked(lc, dead: list[bytes]) -> None:
    wait_for(lambda: _gone(lc, dead), timeout=60, what="deleted records vacuumed from both files")
    wait_for(lambda: all(n < LIMIT for n in _freelists(lc).values()), timeout=30,
             what=f"free lists repacked below RepackLimit {LIMIT}")


def test_vacuum_repacks_a_long_freelist_on_every_node(local_cluster) -> None:
    lc = _cluster(local_cluster, 44)
    keys = [b"rec-%05d" % i for i in range(4000)]
    dead, alive = keys[::2], keys[1::2]
    _fill_and_delete(lc, keys, dead)
    _vacuumed_and_repacked(lc, dead)
    print("repacks logged:", [_repacks_logged(lc, p) for p in NODES], "free lists:", _freelists(lc))
    assert all(_repacks_logged(lc, p) >= 1 for p in NODES)
    with client(lc, 1) as c, attach(c, NAME) as db:  # read through the other node
        assert all(db.fetch(k) == _value(k) for k in alive)
        assert all(db.fetch(k) is None for k in dead[:50])
    _check_files(_files(lc))


def test_file_size_is_bounded_over_fill_and_delete_cycles(local_cluster) -> None:
    """The same work again and again: after the first cycles have set the file's size
    (live data at its peak, free space, and the recovery area that the first repack's
    transaction adds), the file stays put while the repacks keep its free list short."""
    lc = _cluster(local_cluster, 54)
    paths = _files(lc)
    sizes: list[dict[int, int]] = []
    repacks: list[list[int]] = []
    alive: list[bytes] = []
    for cycle in range(8):
        new = [b"c%d-%05d" % (cycle, i) for i in range(2000)]
        # Last cycle's survivors go, and every other record of this cycle (so that the
        # free blocks do not touch and merge).
        dead = alive + new[::2]
        _fill_and_delete(lc, new, dead)
        alive = new[1::2]
        _vacuumed_and_repacked(lc, dead)
        sizes.append({p: os.path.getsize(paths[p]) for p in NODES})
        repacks.append([_repacks_logged(lc, p) for p in NODES])
    print("file sizes per cycle:", sizes, "repacks logged:", repacks)
    with client(lc, 1) as c, attach(c, NAME) as db:
        assert all(db.fetch(k) == _value(k) for k in alive)
    _check_files(paths)
    for i, pnn in enumerate(NODES):
        assert repacks[-1][i] > repacks[3][i] >= 1, (pnn, repacks)
        assert [s[pnn] for s in sizes[4:]] == [sizes[3][pnn]] * 4, (pnn, sizes)


def test_freeze_aborts_a_repack_waiting_for_a_chain(local_cluster) -> None:
    """The repack's transaction needs the whole-database lock and waits, in the vacuum
    child, for a chain held the way smbd holds one. A recovery's freeze kills the child
    (4.17's ctdb_stop_vacuuming), so the recovery only waits for the chain itself, and
    the file is intact."""
    # A scan that starts between the chain lock and the new limit waits on the chain
    # (with no repack); VacuumMaxRunTime ends it, and the next run repacks.
    lc = local_cluster(n=2, loopback=True, loopback_base=44,
                       tunables=(("VacuumInterval", "1"), ("RepackLimit", "0"), ("VacuumMaxRunTime", "10"),
                                 ("DatabaseHashSize", str(HASH_SIZE))))
    lc.wait_ok(timeout=30)
    keys = [b"rec-%05d" % i for i in range(3000)]
    dead, alive = keys[::2], keys[1::2]
    _fill_and_delete(lc, keys, dead)
    wait_for(lambda: _gone(lc, dead), timeout=60, what="deleted records vacuumed from both files")
    assert _freelists(lc)[0] >= LIMIT
    path = _files(lc)[0]
    held = alive[0]
    with client(lc, 0) as c, attach(c, NAME) as db:
        db.tdb.chainlock(held)
        try:
            ctdb(lc, 0, "setvar", "RepackLimit", str(LIMIT))
            wait_for(lambda: _repacks_logged(lc, 0) >= 1 and _repacking_children(path, LIMIT),
                     timeout=40, what="a repack waiting for the held chain")
            gen = c.get_vnnmap().generation
            c._checked(Opcode.SET_RECMODE, T.pack_u32(1))
            wait_for(lambda: not vacuum_children(path), timeout=10,
                     what="the vacuum child killed when the database froze")
        finally:
            db.tdb.chainunlock(held)
        wait_for(lambda: c.get_vnnmap().generation != gen and c.get_recmode() == 0, timeout=30,
                 what="recovery done once the chain is free")
    log = (Path(lc.node_dir(0)) / "log.ctdb").read_text(errors="replace")
    assert "Aborting vacuuming" in log
    # The killed repack never committed. The recovery rewrote the database (its push
    # wipes the file and stores every record, as 4.17's does), which leaves short free
    # lists too; a repack of node 1 may have come first.
    wait_for(lambda: all(n < LIMIT for n in _freelists(lc).values()), timeout=30,
             what="short free lists after the recovery")
    with client(lc, 1) as c, attach(c, NAME) as db:
        assert all(db.fetch(k) == _value(k) for k in alive)
    _check_files(_files(lc))


def test_a_repack_that_outlasts_vacuum_max_run_time_is_killed(local_cluster) -> None:
    """4.17 kills a vacuum child after VacuumMaxRunTime: a repack waiting on a chain
    that is never released must not stop this database's (and every other's) vacuuming."""
    lc = local_cluster(n=2, loopback=True, loopback_base=54,
                       tunables=(("VacuumInterval", "1"), ("RepackLimit", "0"), ("VacuumMaxRunTime", "2"),
                                 ("DatabaseHashSize", str(HASH_SIZE))))
    lc.wait_ok(timeout=30)
    keys = [b"rec-%05d" % i for i in range(2000)]
    dead, alive = keys[::2], keys[1::2]
    _fill_and_delete(lc, keys, dead)
    wait_for(lambda: _gone(lc, dead), timeout=60, what="deleted records vacuumed from both files")
    with client(lc, 0) as c, attach(c, NAME) as db:
        db.tdb.chainlock(alive[0])
        try:
            ctdb(lc, 0, "setvar", "RepackLimit", "100")
            # A scan started before the new limit may time out first (waiting, with
            # no repack, on the same chain): wait for the timeout of a repack.
            wait_for(lambda: _repack_timed_out(lc, 0), timeout=30, what="the waiting repack timed out")
            assert c.get_recmode() == 0  # no recovery needed for it
        finally:
            db.tdb.chainunlock(alive[0])
    # The next run, with the chain free, repacks.
    wait_for(lambda: _freelists(lc)[0] < 100, timeout=30, what="node 0's file repacked")
    assert _repacks_logged(lc, 0) >= 2
    with client(lc, 1) as c, attach(c, NAME) as db:
        assert all(db.fetch(k) == _value(k) for k in alive)
    _check_files(_files(lc))
