"""The blocking database client against real daemons: the node-local fast path stays in
the caller's thread (no portal call, no packet), everything else goes through the
portal, and waiting for a chain lock another process holds blocks no other thread."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from ctdbcore.client.db import attach
from ctdbcore.client.sync import Client

pytestmark = pytest.mark.slow


def _count_portal_calls(c: Client) -> list[str]:
    calls: list[str] = []
    real = c.portal.call

    def counting(fn, *args, **kw):
        calls.append(getattr(fn, "__name__", repr(fn)))
        return real(fn, *args, **kw)

    c.portal.call = counting  # type: ignore[method-assign]
    return calls


def test_local_records_never_reach_the_portal_and_others_do(local_cluster) -> None:
    lc = local_cluster(n=2, loopback=True, loopback_base=224)
    lc.wait_ok(timeout=30)
    with Client(lc.socket(0)) as c0, Client(lc.socket(1)) as c1:
        db0, db1 = attach(c0, "facade.tdb"), attach(c1, "facade.tdb")
        db0.store(b"k", b"v0")  # node 0 becomes its data master
        calls = _count_portal_calls(c0)
        for i in range(200):
            with db0.fetch_lock(b"k") as rec:
                rec.store(b"local %d" % i)
        assert calls == []
        # Held by node 1 now: the record comes back through the portal (one REQ_CALL).
        assert db1.fetch(b"k") == b"local 199"
        with db0.fetch_lock(b"k") as rec:
            assert rec.header.dmaster == 0 and rec.data == b"local 199"
        assert calls == ["call"]
        db0.close()
        db1.close()


def test_waiting_for_a_lock_another_process_holds_blocks_no_other_thread(local_cluster) -> None:
    lc = local_cluster(n=2, loopback=True, loopback_base=226)
    lc.wait_ok(timeout=30)
    with Client(lc.socket(0)) as c:
        db = attach(c, "held.tdb")
        db.store(b"busy", b"before")
        holder = subprocess.Popen([sys.executable, "-c", f"""
import os, time
from ctdbcore.db.tdb import Tdb
t = Tdb.open({db.path!r}, tdb_flags={db.tdb.get_flags()}, open_flags=os.O_RDWR)
t.chainlock(b"busy"); print("held", flush=True); time.sleep(1.0); t.chainunlock(b"busy"); time.sleep(5)
"""], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            stop = threading.Event()
            ticks, pings = [], []

            def other_work() -> None:
                # Plain Python work and the same client's controls, meanwhile.
                while not stop.is_set():
                    ticks.append(time.monotonic())
                    pings.append(c.get_pnn())
                    time.sleep(0.02)

            worker = threading.Thread(target=other_work)
            worker.start()
            t0 = time.monotonic()
            with db.fetch_lock(b"busy") as rec:
                waited = time.monotonic() - t0
                rec.store(b"after the wait")
            stop.set()
            worker.join(10)
        finally:
            holder.kill()
            holder.wait()
        assert waited >= 0.5, "the lock was not held elsewhere: the test proves nothing"
        during = [t for t in ticks if t0 <= t <= t0 + waited]
        assert len(during) >= 10, f"other threads stalled while the lock was held elsewhere ({len(during)} ticks)"
        assert set(pings) == {0}
        assert db.fetch(b"busy") == b"after the wait"
        db.close()


def test_traverse_left_early_and_transactions_through_the_facade(local_cluster) -> None:
    lc = local_cluster(n=2, loopback=True, loopback_base=228)
    lc.wait_ok(timeout=30)
    with Client(lc.socket(0)) as c:
        db = attach(c, "walk.tdb")
        for i in range(50):
            db.store(b"k%d" % i, b"v")
        walk = db.traverse()
        assert next(walk).data == b"v"
        walk.close()  # leaving early deregisters the traverse's srvid
        assert not [s for s in c.aio._inboxes if s != 0]
        assert sorted(r.key for r in db.traverse()) == sorted(b"k%d" % i for i in range(50))
        pdb = attach(c, "walkp.tdb", persistent=True)
        with pdb.transaction() as t:
            t.store(b"a", b"1")
        with pytest.raises(RuntimeError), pdb.transaction() as t:
            t.store(b"a", b"never")
            raise RuntimeError
        assert pdb.fetch(b"a") == b"1"
        db.close()
        pdb.close()
