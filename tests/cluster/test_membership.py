"""Three real ctdbd processes in network namespaces: membership, leader, flags.

Every check reads the cluster through `ctdb` on the nodes, as an administrator
would. Times are not asserted here (benchmarks/ measures them); only the outcome.
"""

from __future__ import annotations

import pytest

from tests.cluster.helpers import ctdb, flag, generation, leader_seen_by, leaders, status_rows, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.netns]

ALL = [0, 1, 2]


def up(local_cluster, **opts):
    lc = local_cluster(n=3, **opts)
    lc.wait_ok(timeout=30)
    wait_for(lambda: len(leaders(lc, ALL)) == 1 and "UNKNOWN" not in leaders(lc, ALL), what="one leader")
    return lc


def test_all_ok_with_exactly_one_leader(local_cluster) -> None:
    lc = up(local_cluster)
    (leader,) = leaders(lc, ALL)
    assert int(leader) in ALL
    for p in ALL:
        rows = status_rows(lc, p)
        assert all(r["Disconnected"] == "0" and r["Unhealthy"] == "0" for r in rows.values())
        assert rows[p]["ThisNode"] == "Y"
    # everyone runs the same generation
    assert len({generation(lc, p) for p in ALL}) == 1


def test_sigkill_node_then_restart_rejoins(local_cluster) -> None:
    lc = up(local_cluster)
    (leader,) = leaders(lc, ALL)
    victim = next(p for p in ALL if str(p) != leader)
    others = [p for p in ALL if p != victim]
    gen0 = generation(lc, others[0])
    lc.kill(victim)
    for p in others:
        wait_for(lambda p=p: flag(lc, p, victim, "Disconnected"), what=f"node {victim} DISCONNECTED on {p}")
    wait_for(lambda: generation(lc, others[0]) != gen0, what="new generation")
    assert "Size:2" in ctdb(lc, others[0], "status")
    gen1 = generation(lc, others[0])
    lc.start(victim)
    lc.wait_ok(timeout=30)
    wait_for(lambda: len({generation(lc, p) for p in ALL}) == 1 and generation(lc, victim) != gen1,
             what="rejoined node in a new common generation")
    assert "Size:3" in ctdb(lc, victim, "status")


def test_sigkill_leader_gives_exactly_one_new_leader(local_cluster) -> None:
    lc = up(local_cluster)
    (old,) = leaders(lc, ALL)
    others = [p for p in ALL if str(p) != old]
    lc.kill(int(old))
    wait_for(lambda: len(leaders(lc, others)) == 1 and leaders(lc, others) != {old}
             and "UNKNOWN" not in leaders(lc, others), what="a new leader")
    (new,) = leaders(lc, others)
    assert new != old and int(new) in others


def test_sigstop_node_is_disconnected_and_sigcont_brings_it_back(local_cluster) -> None:
    lc = up(local_cluster)
    (leader,) = leaders(lc, ALL)
    victim = next(p for p in ALL if str(p) != leader)
    observer = int(leader)
    lc.stop(victim)
    try:
        wait_for(lambda: flag(lc, observer, victim, "Disconnected"), what="stopped node DISCONNECTED")
    finally:
        lc.cont(victim)
    lc.wait_ok(timeout=30)
    assert leaders(lc, ALL) == {leader}


def test_partition_2_1_never_two_leaders_and_heal(local_cluster) -> None:
    lc = up(local_cluster)
    (leader,) = leaders(lc, ALL)
    isolated = next(p for p in ALL if str(p) != leader)
    majority = [p for p in ALL if p != isolated]
    lc.partition([majority, [isolated]])
    try:
        wait_for(lambda: flag(lc, int(leader), isolated, "Disconnected"), what="partition seen by the leader")
        wait_for(lambda: all(flag(lc, isolated, p, "Disconnected") for p in majority), what="partition seen by the isolated node")
        # For a few seconds (several leader timeouts) the isolated node must never lead.
        import time

        t_end = time.monotonic() + 5
        while time.monotonic() < t_end:
            assert leader_seen_by(lc, isolated) != str(isolated)
            assert leaders(lc, majority) == {leader}
            time.sleep(0.2)
        # and it cannot finish a recovery of its own: it stays in recovery mode
        assert "Recovery mode:RECOVERY (1)" in ctdb(lc, isolated, "status")
    finally:
        lc.heal()
    lc.wait_ok(timeout=30)
    wait_for(lambda: leaders(lc, ALL) == {leader}, what="one leader after heal")


def test_disable_enable_ban_stop_continue_visible_everywhere(local_cluster) -> None:
    lc = up(local_cluster)
    target = 1

    def everywhere(column: str, value: bool) -> bool:
        return all(flag(lc, p, target, column) == value for p in ALL)

    ctdb(lc, target, "disable")
    wait_for(lambda: everywhere("Disabled", True), what="DISABLED everywhere")
    ctdb(lc, target, "enable")
    wait_for(lambda: everywhere("Disabled", False), what="enabled everywhere")

    # A ban is brief by nature; each node only has to be seen banned once
    # (a slow machine may not catch all three inside one polling round).
    ctdb(lc, target, "ban", "5")
    seen_banned: set[int] = set()

    def banned_seen_everywhere() -> bool:
        seen_banned.update(p for p in ALL if flag(lc, p, target, "Banned"))
        return seen_banned == set(ALL)

    wait_for(banned_seen_everywhere, what="BANNED everywhere")
    wait_for(lambda: everywhere("Banned", False), timeout=20, what="ban expiry")

    ctdb(lc, target, "stop")
    wait_for(lambda: everywhere("Stopped", True), what="STOPPED everywhere")
    wait_for(lambda: "Size:2" in ctdb(lc, 0, "status"), what="stopped node out of the vnnmap")
    ctdb(lc, target, "continue")
    wait_for(lambda: everywhere("Stopped", False), what="continued everywhere")
    lc.wait_ok(timeout=30)
    wait_for(lambda: "Size:3" in ctdb(lc, 0, "status"), what="node back in the vnnmap")
