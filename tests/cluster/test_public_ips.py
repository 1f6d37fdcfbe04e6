"""Public addresses on a 3-node namespace cluster: each address is up on exactly one
node's eth1 (checked in the kernel with `ip addr`), `ctdb ip` agrees, and addresses
move when their holder dies, is disabled or is stopped, and move back."""

from __future__ import annotations


import pytest

from tests.cluster.helpers import ctdb, kernel_holders, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.netns]
ALL = [0, 1, 2]
PUBLIC = ["198.51.100.101", "198.51.100.102", "198.51.100.103"]


def ctdb_ip(lc, pnn: int) -> dict[str, int]:
    rows = [ln.strip("|").split("|") for ln in ctdb(lc, pnn, "-X", "ip").splitlines()[1:] if ln]
    return {r[0]: int(r[1]) for r in rows}


def placed(lc, alive) -> bool:
    k = kernel_holders(lc, PUBLIC, alive)
    if not all(len(v) == 1 for v in k.values()):
        return False
    seen = ctdb_ip(lc, alive[0])
    return all(seen[ip] == k[ip][0] for ip in PUBLIC)


def test_addresses_are_placed_once_and_follow_failures(local_cluster) -> None:
    lc = local_cluster(n=3)
    lc.wait_ok(timeout=30)
    # LCP2 spreads 3 addresses over 3 healthy nodes: one each
    wait_for(lambda: placed(lc, ALL) and sorted(h[0] for h in kernel_holders(lc, PUBLIC).values()) == ALL,
             what="every public address on exactly one node, one per node")
    holders = kernel_holders(lc, PUBLIC)

    victim = holders[PUBLIC[0]][0]
    survivors = [p for p in ALL if p != victim]
    lc.kill(victim)
    wait_for(lambda: all(len(v) == 1 for v in kernel_holders(lc, PUBLIC, survivors).values()),
             what="the dead node's address on a survivor")
    assert placed(lc, survivors)

    lc.start(victim)
    lc.wait_ok(timeout=30)
    # the restarted node gets an address back (LCP2 rebalances onto an empty node)
    wait_for(lambda: placed(lc, ALL) and victim in sum(kernel_holders(lc, PUBLIC).values(), []),
             what="rebalance onto the restarted node")

    ctdb(lc, 1, "disable")
    wait_for(lambda: placed(lc, ALL) and 1 not in sum(kernel_holders(lc, PUBLIC).values(), []),
             what="a disabled node gives up its addresses")
    ctdb(lc, 1, "enable")
    wait_for(lambda: placed(lc, ALL) and 1 in sum(kernel_holders(lc, PUBLIC).values(), []),
             what="an enabled node gets one back")

    ctdb(lc, 2, "stop")
    wait_for(lambda: 2 not in sum(kernel_holders(lc, PUBLIC).values(), []) and placed(lc, [0, 1]),
             what="a stopped node gives up its addresses")
    ctdb(lc, 2, "continue")
    wait_for(lambda: placed(lc, ALL) and 2 in sum(kernel_holders(lc, PUBLIC).values(), []),
             what="a continued node gets one back")


SCENARIOS = ["kill", "kill-leader", "sigstop", "disable", "unhealthy"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_client_is_reset_and_reconnects_when_its_address_moves(local_cluster, tmp_path, scenario) -> None:
    """The client holds a TCP connection to a public address; its holder fails (or is
    disabled): the address moves, the client sees the reset at once and a new
    connection to the same address works."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    plugin_dir = str(Path(__file__).parent / "testplugin")
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    lc = local_cluster(n=3, tunables=(("MonitorInterval", "1"),), enable=("testplugin",),
                       env=(("PYTHONPATH", plugin_dir), ("CTDB_TESTPLUGIN_DIR", str(ctl))))
    lc.wait_ok(timeout=30)
    wait_for(lambda: placed(lc, ALL) and sorted(h[0] for h in kernel_holders(lc, PUBLIC).values()) == ALL,
             what="one address per node")
    leader = int(ctdb(lc, 0, "leader").strip())
    holders = kernel_holders(lc, PUBLIC)
    if scenario == "kill-leader":
        ip = next(a for a in PUBLIC if holders[a][0] == leader)
    else:
        ip = next(a for a in PUBLIC if holders[a][0] != leader)
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
        if scenario in ("kill", "kill-leader"):
            lc.kill(holder)
        elif scenario == "sigstop":
            lc.stop(holder)
        elif scenario == "disable":
            ctdb(lc, holder, "disable")
        elif scenario == "unhealthy":
            (ctl / f"monitor.{holder}").write_text("fail")
        line = client.stdout.readline().split()
        assert line and line[0] == "reset", line
        line2 = client.stdout.readline().split()
        assert line2 and line2[0] == "reconnected", line2
        assert client.wait(timeout=10) == 0
        assert float(line[1]) - t0 < 10  # TCP would take minutes; the tickle or killtcp did it
        wait_for(lambda: len(kernel_holders(lc, PUBLIC, others)[ip]) == 1, timeout=10, what=f"{ip} on exactly one survivor")
    finally:
        if scenario == "sigstop":
            lc.cont(holder)
        for srv in servers:
            srv.kill()
            srv.wait()
        if client is not None and client.poll() is None:
            client.kill()
    if scenario == "disable":
        ctdb(lc, holder, "enable")
    if scenario == "unhealthy":
        (ctl / f"monitor.{holder}").unlink()
    if scenario in ("kill", "kill-leader"):
        lc.start(holder)
    lc.wait_ok(timeout=30)
    # and back again: the node gets an address after it recovers (LCP2 rebalances)
    wait_for(lambda: placed(lc, ALL) and holder in sum(kernel_holders(lc, PUBLIC).values(), []),
             what="rebalanced after recovery")


def test_partition_minority_drops_its_addresses_and_gets_them_back_on_heal(local_cluster) -> None:
    """2|1 partition with the leader on the majority side: the isolated node finds the
    cluster lock held by a node it cannot reach, sees no majority, and lets its
    addresses go at once; the majority waits half a keepalive interval before taking a
    silent node's addresses. At no moment is the address up on two nodes (4.17 leaves
    it on both for RecoveryDropAllIPs, 120 s, which stays at its default here)."""
    import time

    lc = local_cluster(n=3)
    lc.wait_ok(timeout=30)
    wait_for(lambda: placed(lc, ALL) and sorted(h[0] for h in kernel_holders(lc, PUBLIC).values()) == ALL,
             what="one address per node")
    leader = int(ctdb(lc, 0, "leader").strip())
    isolated = next(p for p in ALL if p != leader)
    majority = [p for p in ALL if p != isolated]
    its_ip = next(ip for ip, h in kernel_holders(lc, PUBLIC).items() if h == [isolated])
    lc.partition([majority, [isolated]])
    try:
        most = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            holders = kernel_holders(lc, PUBLIC)
            most = max(most, max(len(h) for h in holders.values()))
            if holders[its_ip] and holders[its_ip] != [isolated] and \
                    isolated not in sum(holders.values(), []):
                break
        assert most == 1, "an address was up on two nodes at once"
        assert holders[its_ip] and isolated not in holders[its_ip], "the majority did not take the address"
        assert isolated not in sum(kernel_holders(lc, PUBLIC).values(), [])
    finally:
        lc.heal()
    lc.wait_ok(timeout=30)
    wait_for(lambda: placed(lc, ALL) and isolated in sum(kernel_holders(lc, PUBLIC).values(), []),
             what="rebalanced after heal")


def test_partition_isolating_the_leader_moves_nothing(local_cluster) -> None:
    """2|1 partition with the leader alone: it still holds the cluster lock, so the
    majority cannot elect anyone and never takes its addresses; the leader sees no
    majority and does not take theirs. Every address stays where it was, never up on
    two nodes (4.17's isolated leader takes them all, the majority keeps its own),
    and the cluster is whole again after the heal."""
    import time

    lc = local_cluster(n=3)
    lc.wait_ok(timeout=30)
    wait_for(lambda: placed(lc, ALL) and sorted(h[0] for h in kernel_holders(lc, PUBLIC).values()) == ALL,
             what="one address per node")
    leader = int(ctdb(lc, 0, "leader").strip())
    others = [p for p in ALL if p != leader]
    before = kernel_holders(lc, PUBLIC)
    lc.partition([others, [leader]])
    try:
        most = 0
        changed = {}
        deadline = time.monotonic() + 8  # several keepalive timeouts and grace periods
        while time.monotonic() < deadline:
            holders = kernel_holders(lc, PUBLIC)
            most = max(most, max(len(h) for h in holders.values()))
            changed.update({ip: h for ip, h in holders.items() if h != before[ip]})
        assert most == 1, "an address was up on two nodes at once"
        assert changed == {}, f"addresses moved during the partition: {changed}"
        assert int(ctdb(lc, leader, "leader").strip()) == leader, "the lock holder stays leader"
    finally:
        lc.heal()
    lc.wait_ok(timeout=30)
    wait_for(lambda: placed(lc, ALL) and sorted(h[0] for h in kernel_holders(lc, PUBLIC).values()) == ALL,
             what="one address per node after heal")


def test_static_mode_nothing_moves(local_cluster) -> None:
    """[failover] disabled: ctdbd never adds, moves or removes public addresses."""
    import time

    lc = local_cluster(n=3)
    lc.wait_ok(timeout=30)
    for p in ALL:
        lc.kill(p)
        lc.run(p, "ip", "addr", "flush", "dev", "eth1", timeout=10)
        conf = lc.node_dir(p) / "ctdb.conf"
        conf.write_text(conf.read_text() + "\n[failover]\n\tdisabled = true\n")
    for p in ALL:
        lc.start(p)
    lc.wait_ok(timeout=30)
    time.sleep(2)
    assert all(h == [] for h in kernel_holders(lc, PUBLIC).values())
    # the administrator puts an address on node 1 by hand; node 1 dies; it stays put
    lc.run(1, "ip", "addr", "add", f"{PUBLIC[0]}/24", "dev", "eth1", timeout=10)
    lc.kill(1)
    wait_for(lambda: "DISCONNECTED" in ctdb(lc, 0, "status"), what="node 1 seen dead")
    time.sleep(2)
    holders = kernel_holders(lc, PUBLIC, [0, 2])
    assert all(h == [] for h in holders.values())


def test_node_whose_takeip_keeps_failing_is_banned(local_cluster, tmp_path) -> None:
    from pathlib import Path

    plugin_dir = str(Path(__file__).parent / "testplugin")
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    lc = local_cluster(n=3, tunables=(("RecoveryBanPeriod", "4"),), enable=("testplugin",),
                       env=(("PYTHONPATH", plugin_dir), ("CTDB_TESTPLUGIN_DIR", str(ctl))))
    lc.wait_ok(timeout=30)
    wait_for(lambda: placed(lc, ALL) and sorted(h[0] for h in kernel_holders(lc, PUBLIC).values()) == ALL,
             what="one address per node")
    victim = 2
    (ctl / f"takeip.{victim}").write_text("fail")
    ctdb(lc, victim, "disable")
    wait_for(lambda: victim not in sum(kernel_holders(lc, PUBLIC).values(), []), what="addresses moved off")
    # Now the leader wants to give it one back, and that fails: the tool reports the
    # failed takeover run (exit 1, as 4.17), the leader blames the node and bans it.
    ctdb(lc, victim, "enable", check=False)
    wait_for(lambda: "BANNED" in ctdb(lc, 0, "status"), timeout=20, what="the failing node banned")
    assert victim not in sum(kernel_holders(lc, PUBLIC).values(), []) and placed(lc, [p for p in ALL if p != victim])
    (ctl / f"takeip.{victim}").unlink()
    wait_for(lambda: "BANNED" not in ctdb(lc, 0, "status"), timeout=20, what="ban expiry")
    lc.wait_ok(timeout=30)
    wait_for(lambda: placed(lc, ALL) and victim in sum(kernel_holders(lc, PUBLIC).values(), []), what="back in service")
