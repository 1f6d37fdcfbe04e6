"""Hypothesis properties of the 4.17 policies."""

from __future__ import annotations

from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

import ctdb_ipalloc as ia

POOL = ([ip_address(f"192.168.{n}.{h}") for n in (20, 21) for h in range(1, 9)]
        + [ip_address(f"10.0.{h}.1") for h in range(4)]
        + [ip_address(f"fd00::{h:x}") for h in range(1, 5)])
FLAGS = [0, 0, 0, 0, ia.UNHEALTHY, ia.DISCONNECTED, ia.BANNED, ia.STOPPED,
         ia.PERMANENTLY_DISABLED, ia.DELETED]
POLICIES = ["lcp2", "deterministic", "nondeterministic"]


@st.composite
def clusters(draw, *, healthy=False, full=False):
    addrs = draw(st.lists(st.sampled_from(POOL), unique=True, max_size=14))
    num = draw(st.integers(1, 5))
    nodes = []
    for n in range(num):
        flags = 0 if healthy else draw(st.sampled_from(FLAGS))
        runstate = (ia.RUNSTATE_RUNNING if healthy
                    else draw(st.sampled_from([ia.RUNSTATE_RUNNING] * 4 + [ia.RUNSTATE_STARTUP])))
        avail = frozenset(addrs) if full else frozenset(draw(st.sets(st.sampled_from(addrs)))
                                                         if addrs else set())
        nodes.append(ia.NodeState(pnn=n, flags=flags, available=avail, runstate=runstate))
    ips = [ia.PublicIP(a, draw(st.integers(-1, num - 1))) for a in addrs]
    return ips, nodes


tunables = st.fixed_dictionaries({"no_ip_failback": st.booleans(), "no_ip_takeover": st.booleans()})


@settings(max_examples=300, deadline=None)
@given(clusters(), st.sampled_from(POLICIES), tunables)
def test_each_ip_once_and_only_on_a_node_that_can_host_it(cluster, policy, tun):
    ips, nodes = cluster
    out = ia.allocate(policy, ips, nodes, **tun)
    assert set(out) == {ip.addr for ip in ips} and len(out) == len(ips)
    by_pnn = {n.pnn: n for n in nodes}
    for addr, pnn in out.items():
        if pnn == ia.UNASSIGNED:
            continue
        node = by_pnn[pnn]
        # 4.17: never on an unhealthy/disabled/inactive node, even if all are so
        assert node.can_host_ips and addr in node.available


@settings(max_examples=300, deadline=None)
@given(clusters(), st.sampled_from(POLICIES), st.booleans())
def test_nothing_left_unassigned_that_someone_could_host(cluster, policy, no_ip_failback):
    ips, nodes = cluster
    out = ia.allocate(policy, ips, nodes, no_ip_failback=no_ip_failback)
    for addr, pnn in out.items():
        if pnn == ia.UNASSIGNED:
            assert not any(n.can_host_ips and addr in n.available for n in nodes)


@settings(max_examples=200, deadline=None)
@given(clusters(), st.sampled_from(["lcp2", "nondeterministic"]), st.booleans())
def test_no_ip_takeover_only_keeps_or_drops(cluster, policy, no_ip_failback):
    ips, nodes = cluster
    out = ia.allocate(policy, ips, nodes, no_ip_takeover=True, no_ip_failback=no_ip_failback)
    by_pnn = {n.pnn: n for n in nodes}
    for ip in ips:
        node = by_pnn.get(ip.pnn)
        still_ok = node is not None and node.can_host_ips and ip.addr in node.available
        assert out[ip.addr] == (ip.pnn if still_ok else ia.UNASSIGNED)


def _counts(out, nodes):
    return [sum(1 for p in out.values() if p == n.pnn) for n in nodes]


@settings(max_examples=200, deadline=None)
@given(clusters(healthy=True, full=True))
def test_nondeterministic_balanced_within_one(cluster):
    ips, nodes = cluster
    c = _counts(ia.allocate("nondeterministic", ips, nodes), nodes)
    assert max(c) - min(c) <= 1


@settings(max_examples=200, deadline=None)
@given(clusters(healthy=True, full=True))
def test_deterministic_is_modulo_when_all_healthy(cluster):
    ips, nodes = cluster
    out = ia.allocate("deterministic", ips, nodes)
    assert list(out.values()) == [i % len(nodes) for i in range(len(ips))]
    c = _counts(out, nodes)
    assert max(c) - min(c) <= 1


@settings(max_examples=200, deadline=None)
@given(clusters(), st.data())
def test_deterministic_ignores_current_holders(cluster, data):
    ips, nodes = cluster
    other = [ia.PublicIP(ip.addr, data.draw(st.integers(-1, len(nodes) - 1))) for ip in ips]
    assert ia.allocate("deterministic", ips, nodes) == ia.allocate("deterministic", other, nodes)


@settings(max_examples=300, deadline=None)
@given(clusters(), tunables)
def test_lcp2_idempotent(cluster, tun):
    ips, nodes = cluster
    first = ia.allocate("lcp2", ips, nodes, **tun)
    assert ia.allocate("lcp2", first, nodes, **tun) == first


@settings(max_examples=300, deadline=None)
@given(clusters(), st.sampled_from(POLICIES), tunables)
def test_output_in_4_17_list_order(cluster, policy, tun):
    ips, nodes = cluster
    out = ia.allocate(policy, ips, nodes, **tun)
    keys = [int(a) for a in out]
    assert keys == sorted(keys, reverse=True)


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_incremental_distance_sums_match_direct_formula(cluster):
    ips, nodes = cluster
    state = ia.IPAllocState(ips, nodes, track_distances=True)
    plain = ia.IPAllocState(ips, nodes)
    res = state.result()
    for n in range(state.num):
        assert state.imbalance(n) == ia.lcp2_imbalance(res, n) == plain.imbalance(n)
        for i, addr in enumerate(state.addrs):
            assert state.dsum(i, n) == ia.ip_distance_2_sum(addr, res, n) == plain.dsum(i, n)
