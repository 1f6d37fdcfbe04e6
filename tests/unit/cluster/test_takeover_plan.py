"""Takeover planning: who must release what, and who takes what."""

from __future__ import annotations

import ipaddress

import pytest

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


# -- per-node pools (4.17's INTEGRATION setup gives one node an empty public_addresses) --

C = ipaddress.ip_address("198.51.100.103")
POOLS = {0: (A, B, C), 1: (A, B), 2: ()}


def pools_nodes(holders=None, flags=None):
    holders = holders or {}
    flags = flags or {}
    return [node(p, {ip: holders.get(ip, -1) for ip in pool}, avail=pool, flags=flags.get(p, 0))
            for p, pool in POOLS.items()]


@pytest.fixture(params=[0, 1, 2], ids=["deterministic", "nondeterministic", "lcp2"])
def allocator(request):
    from ctdbcore.config.tunables import Tunables
    from ctdbcore.daemon.ipalloc_glue import make_allocator

    t = Tunables()
    t.set("IPAllocAlgorithm", request.param)
    return make_allocator(t)


def test_every_address_goes_only_to_a_node_that_has_it_in_its_pool(allocator) -> None:
    p = plan(pools_nodes(), allocator)
    assert set(p.new) == {A, B, C}
    for ip, holder in p.new.items():
        assert ip in POOLS[holder], f"{ip} placed on node {holder}, whose pool is {POOLS[holder]}"
    assert p.new[C] == 0  # only node 0 has C
    # node 2 (empty pool) is never asked to take anything, nor told about releases
    assert all(pnn != 2 for _, pnn in p.takes)
    assert all(2 not in targets for _, _, targets in p.release_targets)


def test_releases_go_to_every_node_that_knows_the_address_but_its_new_holder(allocator) -> None:
    p = plan(pools_nodes(holders={A: 1, B: 0, C: 0}), allocator)
    for ip, new, targets in p.release_targets:
        assert targets == tuple(sorted(set(q for q, pool in POOLS.items() if ip in pool) - {new}))
    assert {ip for ip, _, _ in p.release_targets} == {A, B, C} - {C}  # C: only its holder knows it


def test_holder_of_an_address_only_one_other_node_has_fails(allocator) -> None:
    # node 0 held C and B, node 1 A; node 0 is banned: B goes to node 1, C to nobody
    p = plan(pools_nodes(holders={A: 1, B: 0, C: 0}, flags={0: 0x08}), allocator)
    assert p.new == {A: 1, B: 1, C: -1}
    # node 0 (banned but connected) still gets the releases: it lets B and C go
    assert (C, -1, (0,)) in p.release_targets and (B, 1, (0,)) in p.release_targets
    assert sorted(p.takes) == sorted([(A, 1), (B, 1)])


def test_a_policy_that_places_an_address_where_it_is_unavailable_is_refused() -> None:
    from ctdbcore.cluster.takeover import PlacementError

    with pytest.raises(PlacementError, match=r"198\.51\.100\.103 on node 2, where it is not available"):
        plan(pools_nodes(), lambda cur, nodes: {ip: 2 for ip in cur})
