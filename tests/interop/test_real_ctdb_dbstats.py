"""Debian's real 4.17 `ctdb dbstatistics` and `ctdb statistics` against our daemons,
once there is something to show: lock waits, hops, hot keys and vacuum runs. Our
`ctdb dbstatistics` prints exactly what the real tool prints."""

from __future__ import annotations

import os
import re
import threading
import time

import pytest

from ctdbcore.client.db import attach
from tests.cluster.helpers import client, wait_for
from tests.cluster.test_dbstatistics import DB, attach_everywhere, key_with_lmaster, store_on
from tests.interop.test_real_ctdb_db import REAL, both, real

pytestmark = [pytest.mark.slow, pytest.mark.interop,
              pytest.mark.skipif(not os.path.exists(REAL), reason="Debian's ctdb package is not installed")]


def same(lc, pnn: int, *args: str) -> bool:
    theirs, mine = both(lc, pnn, *args)
    assert theirs.returncode == 0, theirs.stderr
    return (mine.stdout, mine.stderr, mine.returncode) == (theirs.stdout, theirs.stderr, theirs.returncode)


def test_real_tool_shows_our_db_statistics(local_cluster) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=57, tunables=(("VacuumInterval", "1"),))
    lc.wait_ok(timeout=30)
    key = key_with_lmaster(lc, 2)
    attach_everywhere(lc)
    store_on(lc, 0, key, b"on 0")
    with client(lc, 0) as c0:
        db0 = attach(c0, DB)
        db0.tdb.chainlock(key)
        try:
            t = threading.Thread(target=store_on, args=(lc, 1, key, b"on 1"), daemon=True)
            t.start()
            wait_for(lambda: re.search(r"^\s+num_current\s+1$", real(lc, 0, "dbstatistics", DB), re.M),
                     timeout=15, what="a lock helper waiting on node 0")
            time.sleep(0.2)  # a wait of some length
        finally:
            db0.tdb.chainunlock(key)
            db0.close()
        t.join(30)
    for _ in range(3):
        store_on(lc, 0, key, b"0")
        store_on(lc, 1, key, b"1")
    wait_for(lambda: " sec out of 0\n" not in real(lc, 1, "dbstatistics", DB).split("vacuum_latency")[1],
             timeout=20, what="a vacuum run counted")
    on0 = real(lc, 0, "dbstatistics", DB)
    on1 = real(lc, 1, "dbstatistics", DB)
    assert re.search(r"^\s+num_calls\s+[1-9]", on0, re.M)
    assert f" Key:{key.hex()}\n" in on1 and "Num Hot Keys:     10\n" in on1
    # a vacuum run may land between the two tools' reads: they agree soon enough
    for pnn in (0, 1, 2):
        wait_for(lambda: same(lc, pnn, "dbstatistics", DB), timeout=20, what=f"same dbstatistics on node {pnn}")
    # the node-wide lock counters in the real `ctdb statistics`
    st = real(lc, 0, "statistics")
    assert re.search(r"^\s+num_calls\s+[1-9]\d*$", st, re.M), st
    assert re.search(r"^ max_hop_count\s+1$", st, re.M), st
