"""Nodes whose public_addresses differ, one of them empty (every 4.17 INTEGRATION
test is set up so): every address ends on a node that lists it, no takeover run
fails, no node is banned, and every node tells the same holders; when the holder of
an address that only one other node lists dies, the address goes to that node.

Loopback: the nodes share one namespace, so they run in test mode and the addresses
are bookkeeping only (as 4.17's local daemons). Namespace mode: the addresses really
move, checked in the kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.helpers import ctdb, kernel_holders, leader_seen_by, status_rows, wait_for

pytestmark = pytest.mark.slow
PUBLIC = ["198.51.100.101", "198.51.100.102", "198.51.100.103", "198.51.100.104"]
# node 0 lists all four, node 1 the first two, node 2 none (an empty file)
POOLS = ((0, 1, 2, 3), (0, 1), ())
LISTS = {p: {PUBLIC[i] for i in pool} for p, pool in enumerate(POOLS)}


def ip_view(lc, pnn: int, *args: str) -> dict[str, int]:
    """`ctdb -X ip [all]` on node pnn: address -> holder (-1: nobody)."""
    rows = [ln.strip("|").split("|") for ln in ctdb(lc, pnn, "-X", "ip", *args).splitlines()[1:] if ln]
    return {r[0]: int(r[1]) for r in rows}


def agreed_holders(lc, alive: list[int]) -> dict[str, int] | None:
    """The holders when every alive node tells the same ones, else None.

    Each node's `ctdb ip` lists exactly the addresses in its own file; `ctdb ip all`
    merges the lists of the active nodes (4.17 asks only those), so it is the same
    on every node and agrees with each node's own list."""
    views = {p: ip_view(lc, p) for p in alive}
    merged: dict[str, int] = {}
    for p, v in views.items():
        if set(v) != LISTS[p]:
            return None
        for ip, h in v.items():
            if merged.setdefault(ip, h) != h:
                return None
    everything = [ip_view(lc, p, "all") for p in alive]
    if any(e != everything[0] for e in everything) or any(merged[ip] != h for ip, h in everything[0].items()):
        return None
    return merged


def no_ban_and_no_failed_run(lc, pnns) -> None:
    for p in pnns:
        rows = status_rows(lc, p)
        assert all(r["Banned"] == "0" for r in rows.values()), (p, rows)
    for p in range(len(POOLS)):
        log = (Path(lc.node(p).dir) / "log.ctdb").read_text()
        for bad in ("Takeover run failed", "Banning node", "not available on this node",
                    "not in this node's public addresses"):
            assert bad not in log, f"node {p}: {bad!r} in its log"


def check_placed(holders: dict[str, int], alive: list[int]) -> None:
    assert set(holders) == set(PUBLIC)
    for ip, h in holders.items():
        if h != -1:
            assert h in alive and ip in LISTS[h], f"{ip} on node {h}, whose file does not list it"


def run_scenario(lc, holders_of) -> None:
    """holders_of(alive) -> the holders the nodes agree on, or None while they do not."""
    lc.wait_ok(timeout=30)
    alive = [0, 1, 2]
    # every address listed by some node is placed; node 2 hosts nothing; both others host
    wait_for(lambda: (h := holders_of(alive)) is not None and -1 not in h.values()
             and {0, 1} <= set(h.values()), timeout=30, what="every address placed, the nodes agreeing")
    holders = holders_of(alive)
    check_placed(holders, alive)
    assert 2 not in holders.values()
    assert ip_view(lc, 2, "all") == holders  # node 2 lists none, but tells every holder
    no_ban_and_no_failed_run(lc, alive)

    # an address only nodes 0 and 1 list, on one of them: kill that one
    ip = next(a for a in PUBLIC[:2])
    victim = holders[ip]
    other = 1 - victim
    lc.kill(victim)
    alive = [p for p in (0, 1, 2) if p != victim]
    wait_for(lambda: (h := holders_of(alive)) is not None and h[ip] == other, timeout=30,
             what=f"{ip} moved from dead node {victim} to node {other}, the only other node listing it")
    holders = holders_of(alive)
    check_placed(holders, alive)
    # what only node 0 lists has nowhere to go while node 0 is dead
    if victim == 0:
        assert holders[PUBLIC[2]] == holders[PUBLIC[3]] == -1
    else:
        assert all(holders[a] == 0 for a in PUBLIC)
    no_ban_and_no_failed_run(lc, alive)

    lc.start(victim)
    lc.wait_ok(timeout=30)
    alive = [0, 1, 2]
    wait_for(lambda: (h := holders_of(alive)) is not None and -1 not in h.values()
             and {0, 1} <= set(h.values()), timeout=30, what="every address placed again")
    check_placed(holders_of(alive), alive)
    no_ban_and_no_failed_run(lc, alive)

    # The node with the empty file as leader (stopped nodes cannot lead): it places
    # the others' addresses, though it has none of its own; stopped nodes, still
    # connected, are told the holders too.
    ctdb(lc, 0, "stop")
    ctdb(lc, 1, "stop")
    wait_for(lambda: leader_seen_by(lc, 2) == "2", timeout=30, what="node 2 leader")
    wait_for(lambda: (h := holders_of(alive)) is not None and set(h.values()) == {-1}, timeout=30,
             what="nothing placed while only node 2 is active")
    ctdb(lc, 1, "continue")
    wait_for(lambda: (h := holders_of(alive)) is not None
             and h == {PUBLIC[0]: 1, PUBLIC[1]: 1, PUBLIC[2]: -1, PUBLIC[3]: -1},
             timeout=30, what="node 2, as leader, placing node 1's addresses on node 1")
    ctdb(lc, 0, "continue")
    wait_for(lambda: (h := holders_of(alive)) is not None and -1 not in h.values()
             and {0, 1} <= set(h.values()), timeout=30, what="node 2, as leader, placing everything")
    assert leader_seen_by(lc, 0) == "2"
    check_placed(holders_of(alive), alive)
    no_ban_and_no_failed_run(lc, alive)


def test_loopback_pools_differ_and_one_is_empty(local_cluster) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=51, public_ips=4, public_pools=POOLS)
    assert (Path(lc.node(2).dir) / "public_addresses").read_text() == ""
    assert lc.env(0)["CTDB_TEST_MODE"] == "yes"
    run_scenario(lc, lambda alive: agreed_holders(lc, alive))
    # test mode: nothing went onto lo
    out = lc.run(0, "ip", "-o", "addr", "show", "dev", "lo").stdout
    assert not any(a in out for a in PUBLIC), out


@pytest.mark.netns
def test_namespace_pools_differ_and_one_is_empty(local_cluster) -> None:
    lc = local_cluster(n=3, public_ips=4, public_pools=POOLS)
    assert "CTDB_TEST_MODE" not in lc.env(0)

    def holders_of(alive):
        agreed = agreed_holders(lc, alive)
        if agreed is None:
            return None
        k = kernel_holders(lc, PUBLIC, alive)
        # what the nodes tell is what the kernels carry: each placed address on
        # exactly its holder's eth1, an unplaced one nowhere
        for ip, h in agreed.items():
            if k[ip] != ([] if h == -1 else [h]):
                return None
        return agreed

    run_scenario(lc, holders_of)
