"""Leader election on a fake network with a fake clock and a fake cluster lock.

Every scenario checks the safety rule after every step (never two nodes that call
themselves leader, and a self-declared leader always holds the lock) and the
liveness rule at the end (all live nodes agree on one live leader).
"""

from __future__ import annotations

import pytest

from ctdbcore.cluster import effects as fx
from ctdbcore.cluster.election import Election, election_win
from ctdbcore.testing import ElectionSim as Sim
from ctdbcore.protocol.constants import UNKNOWN_PNN

def test_cold_start_elects_exactly_one_leader() -> None:
    sim = Sim(3)
    sim.run_until(3.0)
    assert sim.agreed_leader() is not None
    assert sim.lock.holder == sim.agreed_leader()


@pytest.mark.parametrize("seed", range(20))
def test_two_candidates_at_once(seed: int) -> None:
    # All nodes start at the same instant and race for the lock together.
    sim = Sim(4, seed=seed)
    sim.run_until(0.6)
    assert sim.agreed_leader() is not None


def test_dead_leader_is_replaced_quickly_without_waiting_for_the_timeout() -> None:
    sim = Sim(3, leader_timeout=5.0)
    sim.run_until(2.0)
    old = sim.agreed_leader()
    assert old is not None
    sim.kill(old)
    t0 = sim.now
    sim.run_until(t0 + 0.1)
    new = sim.agreed_leader()
    assert new is not None and new != old


def test_leader_dies_during_election() -> None:
    sim = Sim(3, leader_timeout=1.0, lock_latency=0.05)
    sim.run_until(2.0)
    first = sim.agreed_leader()
    sim.kill(first)
    # Someone wins the race; kill the winner before everyone has heard of it.
    for _ in range(1000):
        sim.run_until(sim.now + 0.001)
        if sim.lock.holder not in (None, first):
            break
    winner = sim.lock.holder
    assert winner is not None and winner != first
    sim.kill(winner)
    sim.run_until(sim.now + 3.0)
    survivor = sim.agreed_leader()
    assert survivor is not None and survivor not in (first, winner)


def test_lock_held_by_a_dead_nodes_helper() -> None:
    # 4.17's fcntl helper outlives a SIGKILLed ctdbd by up to 5 s: nobody may lead
    # until it lets go, then someone must.
    sim = Sim(3, leader_timeout=1.0)
    sim.run_until(2.0)
    old = sim.agreed_leader()
    sim.kill(old, linger=3.0)
    t_kill = sim.now
    sim.run_until(t_kill + 2.5)
    assert all(sim.nodes[p].leader != p for p in sim.alive), "a node led while the dead helper held the lock"
    sim.run_until(t_kill + 6.0)
    assert sim.agreed_leader() is not None


def test_partition_never_two_leaders_and_minority_does_not_lead() -> None:
    sim = Sim(3, leader_timeout=1.0)
    sim.run_until(2.0)
    leader = sim.agreed_leader()
    isolated = next(p for p in range(3) if p != leader)
    sim.partition = {isolated: 1}
    sim.apply(leader, sim.nodes[leader].node_dead(isolated, sim.now))
    sim.apply(isolated, sim.nodes[isolated].node_dead(leader, sim.now))
    sim.run_until(sim.now + 10.0)  # check_safety runs at every step
    assert sim.nodes[isolated].leader != isolated
    sim.partition = {}
    sim.run_until(sim.now + 3.0)
    assert sim.agreed_leader() == leader


def test_node_that_cannot_lead_gives_up_the_lock_and_others_take_over() -> None:
    sim = Sim(3, leader_timeout=5.0)
    sim.run_until(2.0)
    old = sim.agreed_leader()
    sim.apply(old, sim.nodes[old].set_can_lead(False, 0x20, sim.now))  # STOPPED
    sim.run_until(sim.now + 0.2)
    new = sim.agreed_leader()
    assert new is not None and new != old


def test_new_peer_learns_the_leader_on_connect() -> None:
    e = Election(pnn=0, lock_configured=True, leader_timeout=2.0)
    e.start(0.0)
    e.lock_result(True, 0.1)
    assert e.node_connected(2, 0.2) == [fx.BroadcastLeader(0, to=2)]


def test_classic_election_without_lock_oldest_priority_wins() -> None:
    sim = Sim(3, lock=False, leader_timeout=2.0)
    # node 1 has been up the longest
    sim.nodes[1].priority_time = -10.0
    sim.run_until(5.0)
    assert sim.agreed_leader() == 1


def test_election_win_rules() -> None:
    assert not election_win(False, 0, 5, 10, 1, 0)
    assert election_win(True, 10, 0, 0, 1, 0x08)  # they are banned
    assert election_win(True, 1, 0, 2, 1, 0)  # my priority time is older
    assert not election_win(True, 2, 0, 1, 1, 0)
    assert election_win(True, 1, 2, 1, 1, 0)  # tie: higher pnn
    assert UNKNOWN_PNN == 0xFFFFFFFF
