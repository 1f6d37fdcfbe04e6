"""`ctdb dbstatistics` on a live three-node cluster: a record that hops to its data
master, waits there for a chain lock the test holds (as smbd might), and becomes a hot
key on the node it migrates to -- counted as 4.17's ctdbd counts them."""

from __future__ import annotations

import re
import threading
import time

import pytest

from ctdbcore.client.db import attach
from ctdbcore.db import record
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import Opcode
from tests.cluster.helpers import client, ctdb, wait_for

pytestmark = pytest.mark.slow

DB = "stats.tdb"


def dbstats(lc, pnn: int) -> str:
    return ctdb(lc, pnn, "dbstatistics", DB)


def counter(text: str, name: str) -> int:
    m = re.search(rf"^\s+{name}\s+(\d+)$", text, re.M)
    assert m, f"no {name} in\n{text}"
    return int(m.group(1))


def buckets(text: str, name: str) -> list[int]:
    m = re.search(rf"^ {name}:((?: \d+){{16}})$", text, re.M)
    assert m, f"no {name} in\n{text}"
    return [int(b) for b in m.group(1).split()]


def key_with_lmaster(lc, lmaster: int) -> bytes:
    with client(lc, 0) as c:
        vnn_map = c.get_vnnmap().map
    return next(k for k in (b"hot key %d" % i for i in range(1000)) if record.lmaster(k, vnn_map) == lmaster)


def store_on(lc, pnn: int, key: bytes, value: bytes) -> None:
    with client(lc, pnn) as c:
        db = attach(c, DB)
        try:
            with db.fetch_lock(key) as rec:
                rec.store(value)
        finally:
            db.close()


def attach_everywhere(lc) -> None:
    for pnn in (0, 1, 2):
        with client(lc, pnn) as c:
            attach(c, DB).close()


def test_dbstatistics_counts_lock_waits_hops_and_hot_keys(local_cluster) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=47)
    lc.wait_ok(timeout=30)
    key = key_with_lmaster(lc, 2)
    attach_everywhere(lc)
    fresh = dbstats(lc, 0)
    assert counter(fresh, "num_calls") == 0 and "Num Hot Keys:     10\n" in fresh

    store_on(lc, 0, key, b"on 0")  # node 0 holds it now; its lmaster is node 2
    done: list[bytes] = []

    def fetch_on_1() -> None:
        store_on(lc, 1, key, b"on 1")
        done.append(key)

    fetch = threading.Thread(target=fetch_on_1, daemon=True)
    with client(lc, 0) as c0:
        db0 = attach(c0, DB)
        db0.tdb.chainlock(key)
        try:
            fetch.start()
            # node 1 -> lmaster 2 -> data master 0 (one hop), where a lock helper waits
            wait_for(lambda: counter(dbstats(lc, 0), "num_current") == 1, timeout=15,
                     what="a lock helper waiting on node 0")
            waiting = dbstats(lc, 0)
            assert counter(waiting, "num_calls") == 0 and counter(waiting, "num_pending") == 0
            assert not done
            # the node-wide statistics see it too
            st = T.Statistics.unpack(c0._checked(Opcode.STATISTICS).data)
            assert st.locks_num_current == 1
            time.sleep(0.3)  # a wait that lands in the 100 ms - 1 s bucket (or above)
        finally:
            db0.tdb.chainunlock(key)
            db0.close()
        fetch.join(30)
        assert done == [key]
        wait_for(lambda: counter(dbstats(lc, 0), "num_current") == 0, timeout=10, what="the helper gone")
        st = T.Statistics.unpack(c0._checked(Opcode.STATISTICS).data)

    on0 = dbstats(lc, 0)
    calls = counter(on0, "num_calls")
    assert calls >= 1 and counter(on0, "num_failed") == 0 and counter(on0, "num_pending") == 0
    lock_buckets = buckets(on0, "lock_buckets")
    assert sum(lock_buckets) == calls
    assert sum(lock_buckets[3:]) >= 1  # the wait of 0.3 s or more
    m = re.search(r"^ locks_latency      MIN/AVG/MAX     [\d.]+/[\d.]+/([\d.]+) sec out of (\d+)$", on0, re.M)
    assert m and float(m.group(1)) >= 0.3 and int(m.group(2)) == calls
    assert (st.locks_num_calls, st.locks_latency.num, sum(st.locks_buckets)) == (calls, calls, calls)
    # node 0 served node 1's call that hopped once (via the lmaster); node 2 only passed it on
    assert buckets(on0, "hop_count_buckets")[1] == 1
    assert st.max_hop_count == 1 and st.hop_count_bucket[1] == 1
    assert buckets(dbstats(lc, 2), "hop_count_buckets")[1:] == [0] * 15

    # the record arrived on node 1 for its own call: a hot key there, count 1
    on1 = dbstats(lc, 1)
    assert "Num Hot Keys:     10\n" in on1
    assert f"     Count:1 Key:{key.hex()}\n" in on1
    assert on1.count("     Count:0 Key:\n") == 9
    # back and forth within a second: the counts of the window grow
    for _ in range(4):
        store_on(lc, 0, key, b"0")
        store_on(lc, 1, key, b"1")
    hot = int(re.search(rf"^     Count:(\d+) Key:{key.hex()}$", dbstats(lc, 1), re.M).group(1))
    assert hot >= 2
    assert re.search(rf"^     Count:[1-9]\d* Key:{key.hex()}$", dbstats(lc, 0), re.M)
