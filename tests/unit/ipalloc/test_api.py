"""API, distance and lookup tests for ctdb_ipalloc (facts from samba-4.17.12
ctdb/server/ipalloc*.c and ctdb_takeover_helper.c)."""

from __future__ import annotations

import importlib.metadata
from ipaddress import ip_address as A

import pytest

import ctdb_ipalloc as ia
from ctdbcore.plugins.manager import PluginLoadError

NINE = ["192.168.20.249", "192.168.20.250", "192.168.20.251", "192.168.20.252",
        "192.168.20.253", "192.168.20.254", "192.168.21.252", "192.168.21.253",
        "192.168.21.254"]


def nodes(*flags, avail=NINE):
    return [ia.NodeState(pnn=n, flags=f, available=frozenset(A(a) for a in avail))
            for n, f in enumerate(flags)]


# -- distances ---------------------------------------------------------------
def test_ip_key_words():
    assert ia.ip_key("192.168.1.2") == (0, 0, 0, 0xC0A80102)
    assert ia.ip_key("fd00::1:2") == (0xFD000000, 0, 0, 0x00010002)


def test_ip_distance_ipv4():
    assert ia.ip_distance("10.0.0.1", "10.0.0.1") == 128
    assert ia.ip_distance("192.168.20.253", "192.168.20.252") == 127
    assert ia.ip_distance("192.168.20.253", "192.168.21.253") == 96 + 23
    assert ia.ip_distance("0.0.0.0", "128.0.0.0") == 96


def test_ip_distance_ipv6_and_mixed():
    assert ia.ip_distance("fd00::1", "fd00::1") == 128
    # word 0 differs (clz 0) but words 1..3 still count: the loop does not stop
    assert ia.ip_distance("fd00::1", "7d00::1") == 0 + 32 + 32 + 32
    # fd00::1 vs 10.0.0.1: word0 0xfd000000^0 -> 0, words 1,2 equal -> 64,
    # word3 1^0x0a000001 = 0x0a000000 -> clz 4
    assert ia.ip_distance("fd00::1", "10.0.0.1") == 68


def test_distance_sums_match_upstream_logs():
    held = [ia.PublicIP(a, 1) for a in NINE]
    # lcp2.005 DEBUG: " 1 [539166]" then " 1 [-121363] -> 192.168.20.253 -> 0 [+0]"
    assert ia.lcp2_imbalance(held, 1) == 539166
    assert ia.ip_distance_2_sum("192.168.20.253", held, 1) == 121363
    assert ia.ip_distance_2_sum("192.168.21.254", held, 1) == 116718
    assert ia.ip_distance_2_sum("192.168.21.254", held, 0) == 0


# -- merged list -------------------------------------------------------------
def test_merge_order_is_descending_key_ipv6_first():
    merged = ia.merge_known_ips([{A("10.0.0.1"): -1, A("fd00::1"): -1, A("10.0.0.2"): -1}])
    assert [str(p.addr) for p in merged] == ["fd00::1", "10.0.0.2", "10.0.0.1"]


def test_merge_holder_only_if_the_node_itself_claims():
    ip = A("10.0.0.1")
    assert ia.merge_known_ips([{ip: 1}, {}])[0].pnn == -1  # node 0 says 1; 1 doesn't know it
    assert ia.merge_known_ips([{ip: 1}, {ip: 1}])[0].pnn == 1
    assert ia.merge_known_ips([{ip: 0}, {ip: 2}, {ip: 2}])[0].pnn == 2  # last claimant wins
    assert ia.merge_known_ips([{ip: 0}, {ip: -1}])[0].pnn == 0  # an unknown doesn't erase


# -- policies ------------------------------------------------------------------
def test_entry_points_registered():
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="ctdb.ipalloc")}
    for name, alg in (("deterministic", 0), ("nondeterministic", 1), ("lcp2", 2)):
        pol = eps[name].load()
        assert pol.NAME == name and pol.ALGORITHM == alg
        assert eps[name].dist.name == "ctdb-ipalloc"


@pytest.mark.parametrize(("arg", "name"), [
    (0, "deterministic"), (1, "nondeterministic"), (2, "lcp2"), (3, "lcp2"), (-1, "lcp2"),
    ("0", "deterministic"), ("lcp2", "lcp2"), ("det", "deterministic"),
    ("nondet", "nondeterministic"), ("nondeterministic", "nondeterministic")])
def test_policy_for(arg, name):
    assert ia.policy_for(arg).NAME == name
    assert ia.policy_for(ia.policy_for(arg)) is ia.policy_for(arg)


def test_policy_for_missing_names_the_distribution():
    with pytest.raises(ia.PolicyNotFoundError) as exc:
        ia.policy_for("roundrobin")
    assert isinstance(exc.value, LookupError) and isinstance(exc.value, PluginLoadError)
    assert "ctdb-ipalloc" in str(exc.value) and "'roundrobin'" in str(exc.value)
    assert exc.value.group == "ctdb.ipalloc"


def test_det002_worked_example():
    cur = {A(a): -1 for a in NINE}
    out = ia.allocate(0, cur, nodes(0, 2, 0))
    assert list(out) == [A(a) for a in reversed(NINE)]
    assert [out[A(a)] for a in reversed(NINE)] == [0, 0, 2, 0, 2, 2, 0, 0, 2]


def test_all_unhealthy_hosts_nothing():
    cur = {A(a): n % 3 for n, a in enumerate(NINE)}
    for pol in ("lcp2", "deterministic", "nondeterministic"):
        assert set(ia.allocate(pol, cur, nodes(2, 2, 2)).values()) == {-1}


def test_no_ip_failback():
    cur = {A(a): n % 2 for n, a in enumerate(NINE)}  # node 2 just became healthy
    for pol in ("lcp2", "nondeterministic"):
        assert ia.allocate(pol, cur, nodes(0, 0, 0), no_ip_failback=True) == cur
        assert 2 in ia.allocate(pol, cur, nodes(0, 0, 0)).values()
    # deterministic ignores it, with 4.17's warning
    log = []
    out = ia.allocate("deterministic", cur, nodes(0, 0, 0), no_ip_failback=True,
                      log=lambda lvl, m: log.append((lvl, m)))
    assert sorted(out.values()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert (ia.LOG_WARNING, "WARNING: 'NoIPFailback' set but ignored - incompatible with "
            "'Deterministic IPs") in log


def test_no_ip_takeover_keeps_but_never_takes():
    cur = {A(a): (0 if n < 5 else -1) for n, a in enumerate(NINE)}
    for pol in ("lcp2", "nondeterministic"):
        out = ia.allocate(pol, cur, nodes(0, 0, 0), no_ip_takeover=True)
        assert out == cur


def test_lcp2_force_rebalance():
    # lcp2.028's layout stays unbalanced: every node holds something.
    cur = {A("130.216.30.181"): 0, A("130.216.30.180"): 1, A("130.216.30.179"): 2,
           A("130.216.30.178"): 3, A("130.216.30.177"): 0, A("130.216.30.176"): 1,
           A("130.216.30.175"): 0, A("130.216.30.174"): 1, A("130.216.30.173"): 0,
           A("130.216.30.172"): 3, A("130.216.30.171"): 1, A("130.216.30.170"): 3,
           A("10.19.99.253"): 0, A("10.19.99.252"): 1, A("10.19.99.251"): 0,
           A("10.19.99.250"): 3}
    ns = [ia.NodeState(pnn=n, available=frozenset(cur)) for n in range(4)]
    assert ia.allocate("lcp2", cur, ns) == cur
    log = []
    out = ia.allocate("lcp2", cur, ns, force_rebalance=[2, 9],
                      log=lambda lvl, m: log.append((lvl, m)), log_level=ia.LOG_NOTICE)
    assert list(out.values()).count(2) > 1
    assert (ia.LOG_NOTICE, "Forcing rebalancing of IPs to node 2") in log
    assert any(lvl == ia.LOG_ERR and m.endswith("unknown node 9") for lvl, m in log)


def test_runstate_and_flags_remove_availability():
    cur = {A(a): -1 for a in NINE}
    ns = [ia.NodeState(pnn=0, available=frozenset(cur), runstate=ia.RUNSTATE_STARTUP),
          ia.NodeState(pnn=1, flags=ia.BANNED, available=frozenset(cur)),
          ia.NodeState(pnn=2, flags=ia.PERMANENTLY_DISABLED, available=frozenset(cur))]
    assert set(ia.allocate("lcp2", cur, ns).values()) == {-1}
    assert not ia.can_host_ips(cur, ns)
    assert ia.can_host_ips(cur, nodes(0, 2, 2))
    assert ia.can_host_ips({A("10.0.0.1"): 1}, nodes(2, 2))
    assert not ia.can_host_ips({}, nodes(0))


def test_deleted_nodes_count_for_deterministic():
    ips = {A(a): -1 for a in NINE[:4]}
    # pnn 1 is a deleted nodemap entry: addresses still cycle over 3 nodes
    ns = [ia.NodeState(0, available=frozenset(ips)), ia.NodeState(1, flags=ia.DELETED),
          ia.NodeState(2, available=frozenset(ips))]
    out = ia.allocate("deterministic", ips, ns)
    # homes 0,1,2,0; the one homed on 1 goes to the least-covered node (2)
    assert list(out.values()) == [0, 2, 2, 0]


def test_ipv6_and_mixed_lcp2():
    ips = [ia.PublicIP(a) for a in ("fd00::1", "fd00::2", "fd00:1::1", "10.0.0.1", "10.0.0.2",
                                    "10.1.0.1")]
    ns = [ia.NodeState(n, available=frozenset(ip.addr for ip in ips)) for n in range(2)]
    out = ia.allocate("lcp2", ips, ns)
    assert [str(a) for a in out] == ["fd00:1::1", "fd00::2", "fd00::1", "10.1.0.1", "10.0.0.2",
                                     "10.0.0.1"]
    assert sorted(out.values()) == [0, 0, 0, 1, 1, 1]


def test_input_validation():
    with pytest.raises(ValueError):
        ia.allocate("lcp2", [ia.PublicIP("10.0.0.1"), ia.PublicIP("10.0.0.1", 0)], nodes(0))
    with pytest.raises(ValueError):
        ia.allocate("lcp2", [], [ia.NodeState(0), ia.NodeState(0)])
