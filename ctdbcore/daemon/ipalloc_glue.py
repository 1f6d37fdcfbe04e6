"""Connects the takeover planner to the configured `ctdb.ipalloc` policy plugin.

The policy is chosen by the IPAllocAlgorithm tunable (0 deterministic,
1 nondeterministic, 2 LCP2, as 4.17) and looked up by name through the entry-point
group, so a third party can add one; a missing policy stops the daemon with the
name of the distribution to install.
"""

from __future__ import annotations

from ctdbcore.cluster.takeover import UNASSIGNED, NodeIPs

ALGORITHMS = {0: "deterministic", 1: "nondeterministic", 2: "lcp2"}


def policy_name(tunables) -> str:
    n = int(tunables.get("IPAllocAlgorithm"))
    return ALGORITHMS.get(n, "lcp2")


def make_allocator(tunables, *, name: str | None = None):
    """Return allocate(current, nodes) -> new assignment, reading the tunables that
    matter (NoIPFailback, NoIPTakeover, IPAllocAlgorithm) at every run."""
    from ctdbcore.plugins.manager import load_named

    # Load now so that a missing plugin is an error at start, not at the first run.
    for n in {name or policy_name(tunables)}:
        load_named("ctdb.ipalloc", n)

    def allocate(current, nodes: list[NodeIPs]):
        import ctdb_ipalloc as ia

        policy = load_named("ctdb.ipalloc", name or policy_name(tunables))
        ips = [ia.PublicIP(addr=ip, pnn=pnn) for ip, pnn in current.items()]
        states = [ia.NodeState(pnn=n.pnn, flags=n.flags, available=n.available, runstate=n.runstate) for n in nodes]
        out = ia.allocate(policy, ips, states,
                          no_ip_failback=bool(tunables.get("NoIPFailback")),
                          no_ip_takeover=bool(tunables.get("NoIPTakeover")))
        return {ip: (UNASSIGNED if p in (-1, 0xFFFFFFFF) else p) for ip, p in out.items()}

    return allocate
