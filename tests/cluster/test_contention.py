"""Many clients on every node updating the same few volatile records while recoveries
come and go: every update must land exactly once (the records migrate between nodes on
every access, and every recovery moves them all to the leader and back) and no client
may wait for ever (a call lost between two nodes at the end of a recovery hangs it)."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from ctdbcore.client.db import attach
from ctdbcore.client.sync import Client
from tests.cluster.helpers import up
from tests.cluster.test_databases import force_recovery

pytestmark = pytest.mark.slow

KEYS = [b"counter-%d" % i for i in range(6)]
WORKERS = 6  # two clients per node: records also change hands within a node
RECOVERIES = 8


def _increments(socket_path: str, worker: int, stop, out) -> None:
    """Read-modify-write updates under the record lock, round the keys, until told to
    stop; reports how many it made."""
    done = 0
    try:
        with Client(socket_path, timeout=60) as c:
            db = attach(c, "contended.tdb")
            while not stop.is_set():
                key = KEYS[(done + worker) % len(KEYS)]
                with db.fetch_lock(key) as rec:
                    n = int(rec.data or b"0")
                    rec.store(b"%d" % (n + 1))
                done += 1
        out.put((worker, done, ""))
    except Exception as e:  # reported to the test, which fails with it
        out.put((worker, done, f"{type(e).__name__}: {e}"))


def test_every_update_lands_once_across_migrations_and_recoveries(local_cluster) -> None:
    lc = up(local_cluster, 27)
    with Client(lc.socket(0), timeout=20) as c:
        attach(c, "contended.tdb")
    q: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=_increments, args=(lc.socket(w % 3), w, stop, q))
               for w in range(WORKERS)]
    for w in workers:
        w.start()
    try:
        for _ in range(RECOVERIES):
            time.sleep(0.3)
            force_recovery(lc)
    finally:
        stop.set()
    for w in workers:
        w.join(90)
    hung = [w.pid for w in workers if w.is_alive()]
    for w in workers:
        if w.is_alive():
            w.kill()
    results = {}
    while len(results) < WORKERS - len(hung):
        worker, done, error = q.get(timeout=10)
        results[worker] = (done, error)
    assert not hung, f"clients still waiting 90 s after the last recovery: {hung}; {results}"
    assert all(not error for _, error in results.values()), results
    made = sum(done for done, _ in results.values())
    assert all(done > 0 for done, _ in results.values()), results
    with Client(lc.socket(1), timeout=20) as c:
        db = attach(c, "contended.tdb")
        landed = sum(int(db.fetch(key) or b"0") for key in KEYS)
    assert landed == made, f"{landed} updates landed of {made} made"
