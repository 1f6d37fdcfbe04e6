"""Public addresses on a 3-node namespace cluster: each address is up on exactly one
node's eth1 (checked in the kernel with `ip addr`), `ctdb ip` agrees, and addresses
move when their holder dies, is disabled or is stopped, and move back."""

from __future__ import annotations

import json

import pytest

from tests.cluster.helpers import ctdb, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.netns]
ALL = [0, 1, 2]
PUBLIC = ["198.51.100.101", "198.51.100.102", "198.51.100.103"]


def kernel_holders(lc, nodes=ALL) -> dict[str, list[int]]:
    """public address -> the nodes whose eth1 carries it, read from the kernel."""
    out: dict[str, list[int]] = {ip: [] for ip in PUBLIC}
    for p in nodes:
        if not lc.running(p):
            continue
        res = lc.run(p, "ip", "-j", "addr", "show", "dev", "eth1", timeout=10)
        for link in json.loads(res.stdout or "[]"):
            for a in link.get("addr_info", []):
                if a.get("local") in out:
                    out[a["local"]].append(p)
    return out


def ctdb_ip(lc, pnn: int) -> dict[str, int]:
    rows = [ln.strip("|").split("|") for ln in ctdb(lc, pnn, "-X", "ip").splitlines()[1:] if ln]
    return {r[0]: int(r[1]) for r in rows}


def placed(lc, alive) -> bool:
    k = kernel_holders(lc, alive)
    if not all(len(v) == 1 for v in k.values()):
        return False
    seen = ctdb_ip(lc, alive[0])
    return all(seen[ip] == k[ip][0] for ip in PUBLIC)


def test_addresses_are_placed_once_and_follow_failures(local_cluster) -> None:
    lc = local_cluster(n=3)
    lc.wait_ok(timeout=30)
    # LCP2 spreads 3 addresses over 3 healthy nodes: one each
    wait_for(lambda: placed(lc, ALL) and sorted(h[0] for h in kernel_holders(lc).values()) == ALL,
             what="every public address on exactly one node, one per node")
    holders = kernel_holders(lc)

    victim = holders[PUBLIC[0]][0]
    survivors = [p for p in ALL if p != victim]
    lc.kill(victim)
    wait_for(lambda: all(len(v) == 1 for v in kernel_holders(lc, survivors).values()),
             what="the dead node's address on a survivor")
    assert placed(lc, survivors)

    lc.start(victim)
    lc.wait_ok(timeout=30)
    # the restarted node gets an address back (LCP2 rebalances onto an empty node)
    wait_for(lambda: placed(lc, ALL) and victim in sum(kernel_holders(lc).values(), []),
             what="rebalance onto the restarted node")

    ctdb(lc, 1, "disable")
    wait_for(lambda: placed(lc, ALL) and 1 not in sum(kernel_holders(lc).values(), []),
             what="a disabled node gives up its addresses")
    ctdb(lc, 1, "enable")
    wait_for(lambda: placed(lc, ALL) and 1 in sum(kernel_holders(lc).values(), []),
             what="an enabled node gets one back")

    ctdb(lc, 2, "stop")
    wait_for(lambda: 2 not in sum(kernel_holders(lc).values(), []) and placed(lc, [0, 1]),
             what="a stopped node gives up its addresses")
    ctdb(lc, 2, "continue")
    wait_for(lambda: placed(lc, ALL) and 2 in sum(kernel_holders(lc).values(), []),
             what="a continued node gets one back")


def test_client_connection_is_reset_at_once_when_its_node_dies(local_cluster) -> None:
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    here = Path(__file__).parent
    lc = local_cluster(n=3)
    lc.wait_ok(timeout=30)
    wait_for(lambda: placed(lc, ALL), what="addresses placed")
    servers = []
    try:
        for p in ALL:
            env = {**lc.env(p), "PYTHONPATH": str(here.parent.parent)}
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", lc.node_ns(p), sys.executable, "-m", "ctdb_localcluster.echo_server", "7000"],
                env=env, stdout=subprocess.PIPE, text=True))
        for s in servers:
            assert s.stdout.readline().strip() == "listening"
        ip = PUBLIC[0]
        holder = kernel_holders(lc)[ip][0]
        client = subprocess.Popen(["ip", "netns", "exec", lc.client_ns, sys.executable, "-m", "ctdb_localcluster.echo_client", ip, "7000"],
                                  stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().startswith("connected")
        # the holder's ctdbd knows the connection, and tells the others
        wait_for(lambda: "Num connections: 1" in ctdb(lc, [p for p in ALL if p != holder][0], "gettickles", ip),
                 what="tickle list propagated")
        t_kill = time.monotonic()
        lc.kill(holder)
        line = client.stdout.readline().split()
        assert line[0] == "reset", line
        reset_after = float(line[1]) - t_kill
        line2 = client.stdout.readline().split()
        assert line2[0] == "reconnected", line2
        assert client.wait(timeout=10) == 0
        # far below any TCP timeout: the tickle did it
        assert reset_after < 10, reset_after
        survivors = [p for p in ALL if p != holder]
        assert kernel_holders(lc, survivors)[ip] != []
    finally:
        for s in servers:
            s.kill()
            s.wait()
