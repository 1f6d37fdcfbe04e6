"""IPv6 public addresses end to end, in namespaces: placed once each next to the IPv4
ones, listed by `ctdb ip`, and a real TCP client connected over IPv6 is reset and
reconnects when the node holding its address is killed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.cluster.helpers import ctdb, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.netns]
ALL = [0, 1, 2]
PUBLIC6 = ["2001:db8:100::101", "2001:db8:100::102", "2001:db8:100::103"]


def holders6(lc, nodes=ALL) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {ip: [] for ip in PUBLIC6}
    for p in nodes:
        if not lc.running(p):
            continue
        res = lc.run(p, "ip", "-j", "-6", "addr", "show", "dev", "eth1", timeout=10)
        for link in json.loads(res.stdout or "[]"):
            for a in link.get("addr_info", []):
                if a.get("local") in out:
                    out[a["local"]].append(p)
    return out


def test_ipv6_addresses_fail_over_with_a_client_reset(local_cluster) -> None:
    lc = local_cluster(n=3, ipv6_public=3)
    lc.wait_ok(timeout=30)
    wait_for(lambda: all(len(h) == 1 for h in holders6(lc).values()), what="every IPv6 address on one node")
    listed = ctdb(lc, 0, "ip", "all")
    assert all(ip in listed for ip in PUBLIC6)
    assert "198.51.100.101" in listed  # next to the IPv4 ones

    leader = int(ctdb(lc, 0, "leader").strip())
    holders = holders6(lc)
    ip = next(a for a in PUBLIC6 if holders[a][0] != leader)
    holder = holders[ip][0]
    others = [p for p in ALL if p != holder]
    servers = []
    client = None
    try:
        for p in ALL:
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", lc.node_ns(p), sys.executable, "-m", "ctdb_localcluster.echo_server", "7000"],
                env=lc.env(p), stdout=subprocess.PIPE, text=True))
        for srv in servers:
            assert srv.stdout.readline().strip() == "listening"
        client = subprocess.Popen(
            ["ip", "netns", "exec", lc.client_ns, sys.executable, "-m", "ctdb_localcluster.echo_client", ip, "7000"],
            stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().startswith("connected")
        wait_for(lambda: "Num connections: 1" in ctdb(lc, others[0], "gettickles", ip), what="tickle list propagated")
        t0 = time.monotonic()
        lc.kill(holder)
        line = client.stdout.readline().split()
        assert line and line[0] == "reset", line
        assert float(line[1]) - t0 < 10  # TCP alone would take minutes
        line2 = client.stdout.readline().split()
        assert line2 and line2[0] == "reconnected", line2
        wait_for(lambda: len(holders6(lc, others)[ip]) == 1, timeout=10, what=f"{ip} on exactly one survivor")
    finally:
        for srv in servers:
            srv.kill()
            srv.wait()
        if client is not None and client.poll() is None:
            client.kill()
