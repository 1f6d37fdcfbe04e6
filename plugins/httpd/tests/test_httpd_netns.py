"""Debian's real Apache httpd (apache2) managed by the plugin in a namespace cluster of
our ctdbd.

Three of our daemons run in network namespaces (contrib/localcluster), each with one
public address on eth1 and the plugin enabled, whose start and stop commands run
Debian's apache2 in the node's namespace with a private configuration (its own pid
file, logs, runtime directory and document root, which serves a page naming the node).
curl in the client namespace fetches that page through every public address. Then the
main apache2 process on the holder of one address is SIGKILLed: the plugin's ctdb_watch
makes that node UNHEALTHY at once (its reason in `ctdb scriptstatus`), the address moves
to a healthy node whose apache2 serves it, and the next monitor event, the 2nd failure
by 4.17's count, restarts apache2 (stop, kill -9 of the orphaned workers, start) and the
node is healthy again.

Only traffic inside namespaces the test creates."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from ctdb_localcluster.rigs import APACHE2, httpd_options, httpd_pid
from ctdb_localcluster.observe import Observer, ctdb, ctdbd_log, curl, holder_of, wait_for

CURL = "/usr/bin/curl"
ALL = [0, 1, 2]
PUBLIC = ["198.51.100.101", "198.51.100.102", "198.51.100.103"]

pytestmark = [pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(not os.path.exists(APACHE2), reason="Debian's apache2 package is not installed"),
              pytest.mark.skipif(not os.path.exists(CURL), reason="Debian's curl package is not installed")]



def fetch(lc, ip: str, timeout: float = 10.0) -> str:
    return curl(lc, f"http://{ip}/who.txt", timeout)


@pytest.fixture
def cluster(tmp_path):
    from ctdb_localcluster import netns
    from ctdb_localcluster.cluster import LocalCluster

    reason = netns.available()
    if reason is not None:
        pytest.skip(f"namespace cluster: {reason}")
    # the workers run as www-data: their documents must not be under pytest's 0700 tmp
    docs = Path(tempfile.mkdtemp(prefix="ctdb-httpd-test-"))
    lc = LocalCluster(tmp_path / "cluster", f"www{os.getpid() % 100000}", cleanup_at_exit=True)
    try:
        lc.up(n=3, **httpd_options(lc.root, docs))
        lc.wait_ok(timeout=90)
        wait_for(lambda: sorted(holder_of(lc, ip) for ip in PUBLIC) == ALL, timeout=60,
                 what="one public address on each node")
        yield lc
    finally:
        lc.down()
        shutil.rmtree(docs, ignore_errors=True)


def test_killed_apache_makes_its_node_unhealthy_and_its_address_move(cluster) -> None:
    lc = cluster
    for ip in PUBLIC:
        assert fetch(lc, ip) == f"node {holder_of(lc, ip)}"
    for p in ALL:
        assert re.search(r"^httpd\s+OK", ctdb(lc, p, "scriptstatus"), re.M), ctdb(lc, p, "scriptstatus")

    ip = PUBLIC[0]
    node = holder_of(lc, ip)
    obs = Observer(lc, [p for p in ALL if p != node])
    try:
        pid = httpd_pid(lc, node)
        assert pid is not None
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        wait_for(lambda: obs.unhealthy(node), timeout=15, interval=0.02, what=f"node {node} to be UNHEALTHY")
        t_unhealthy = time.monotonic() - t0
        status = ctdb(lc, node, "scriptstatus")
        recovered = not obs.unhealthy(node)  # a monitor event after the restart may have run already
        moved_to: list[int] = []

        def moved() -> bool:
            h = obs.moved(ip, node)
            if h is not None:
                moved_to.append(h)
            return h is not None
        wait_for(moved, timeout=15, interval=0.02, what=f"{ip} to leave node {node}")
        t_moved = time.monotonic() - t0
        new = moved_to[0]
        assert not obs.unhealthy(new)
        served = fetch(lc, ip)
        assert served in (f"node {new}", f"node {node}"), served
        print(f"\napache2 SIGKILLed on node {node}: UNHEALTHY after {t_unhealthy:.2f} s, "
              f"{ip} moved to node {new} after {t_moved:.2f} s; then served by {served}")
    finally:
        obs.close()
    # the watcher's report made the node unhealthy ...
    assert (f"Node flags changed 0x0 -> 0x2 (monitor: unhealthy (httpd: ERROR: apache2 (pid {pid}) exited))"
            in ctdbd_log(lc, node)), ctdbd_log(lc, node)[-3000:]
    # ... and is what `ctdb scriptstatus` shows, unless the next monitor event has already
    # run (the 2nd failure: it restarted apache2 and succeeded)
    if not recovered:
        assert re.search(r"^httpd\s+ERROR", status, re.M), status
        assert f"OUTPUT: ERROR: apache2 (pid {pid}) exited" in status, status
    else:
        assert "HTTPD is not running. Trying to restart HTTPD." in ctdbd_log(lc, node)
    assert t_unhealthy < 15 and t_moved < 15

    # the next monitor event is the 2nd failure: stop, kill -9 leftovers, start; healthy
    wait_for(lambda: httpd_pid(lc, node) not in (None, pid), timeout=40, what=f"apache2 restarted on node {node}")
    obs = Observer(lc, [node])
    try:
        wait_for(lambda: not obs.unhealthy(node), timeout=40, interval=0.2, what=f"node {node} healthy again")
    finally:
        obs.close()
    print(f"node {node} healthy again after {time.monotonic() - t0:.2f} s")
    assert re.search(r"^httpd\s+OK", ctdb(lc, node, "scriptstatus"), re.M)
    for a in PUBLIC:
        h = holder_of(lc, a)
        assert h is not None and fetch(lc, a) == f"node {h}"
