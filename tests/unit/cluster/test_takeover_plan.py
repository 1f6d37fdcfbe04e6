"""Takeover planning: who must release what, and who takes what."""

from __future__ import annotations

import ipaddress

from ctdbcore.cluster.takeover import NodeIPs, plan

A, B = ipaddress.ip_address("198.51.100.101"), ipaddress.ip_address("198.51.100.102")
RUNNING = 5


def keep_or_first(current, nodes):
    """A trivial allocator for the planner's own tests: keep holders that can host,
    give the rest to the first node that can."""
    out = {}
    for ip, holder in current.items():
        can = [n.pnn for n in nodes if ip in n.available]
        out[ip] = holder if holder in can else (can[0] if can else -1)
    return out


def node(pnn, known, avail=(A, B), flags=0, runstate=RUNNING):
    return NodeIPs(pnn, flags, runstate, dict(known), frozenset(avail))


def test_moves_release_before_take() -> None:
    nodes = [node(0, {A: 1, B: 0}), node(1, {A: 1, B: 0}, avail=())]  # node 1 can no longer host
    p = plan(nodes, keep_or_first)
    assert p.new == {A: 0, B: 0}
    assert p.releases == [(A, 0)]
    assert p.takes == [(A, 0), (B, 0)]


def test_double_claim_after_a_hung_node_resumes_is_released() -> None:
    # node 1 was SIGSTOPped, node 0 took A; node 1 resumes still claiming A
    nodes = [node(0, {A: 0, B: 0}), node(1, {A: 1, B: 0})]
    p = plan(nodes, keep_or_first)
    assert p.new[A] in (0, 1)
    loser = 1 - p.new[A]
    assert (A, p.new[A]) in p.releases and loser in p.claims[A]


def test_inactive_or_starting_nodes_host_nothing_and_their_claims_do_not_count() -> None:
    nodes = [node(0, {A: -1, B: -1}), node(1, {A: 1, B: 1}, flags=0x20), node(2, {A: -1, B: -1}, runstate=3)]
    p = plan(nodes, keep_or_first)
    assert p.current == {A: -1, B: -1} and p.new == {A: 0, B: 0}
