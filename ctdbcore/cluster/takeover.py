"""A takeover run's plan, without I/O (4.17 server/ctdb_takeover_helper.c).

Input: what every connected node reports (its flags and runstate, the public
addresses it knows with the holder it believes in, the ones it can host now). Output:
the new holder of every address, computed by the configured ipalloc policy, and the
steps: releases first (so that an address is never up on two nodes), then takes.

Pools differ per node (each node's own `public_addresses`, possibly empty), so every
step goes only to nodes that know the address: a node is asked to take an address
only when it is that address's new holder, which it can only be where the address is
available (the policy never places it elsewhere).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import attrs

from ctdbcore.protocol.constants import INACTIVE, Runstate

UNASSIGNED = -1
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@attrs.frozen
class NodeIPs:
    pnn: int
    flags: int
    runstate: int
    known: dict[IP, int]  # address -> holder as this node believes (-1 = none)
    available: frozenset[IP]  # addresses this node could host right now


@attrs.frozen
class Plan:
    current: dict[IP, int]
    new: dict[IP, int]
    #: every active node that says it holds each address (more than one after a
    #: hung node resumes, or a partition heals)
    claims: dict[IP, frozenset[int]] = attrs.field(factory=dict)
    #: the nodes whose GET_PUBLIC_IPS lists each address (4.17's known_on)
    known_on: dict[IP, frozenset[int]] = attrs.field(factory=dict)

    @property
    def releases(self) -> list[tuple[IP, int]]:
        """(address, new holder) for every address some node must give up."""
        out = []
        for ip in sorted(set(self.current) | set(self.claims), key=lambda a: (a.version, a.packed)):
            new = self.new.get(ip, UNASSIGNED)
            holders = set(self.claims.get(ip, ()))
            if self.current.get(ip, UNASSIGNED) != UNASSIGNED:
                holders.add(self.current[ip])
            if holders - {new}:
                out.append((ip, new))
        return out

    @property
    def release_targets(self) -> list[tuple[IP, int, tuple[int, ...]]]:
        """4.17's release step: RELEASE_IP {new holder, address} to every node that
        knows the address and is not its new holder, for every address. The holder
        lets it go; to the others it is a "redundant release" that tells them where
        the address went, which is how `ctdb ip` on any node shows the holder. A node
        that does not know the address is not asked (it has nothing to learn)."""
        out = []
        for ip in sorted(self.known_on, key=lambda a: (a.version, a.packed)):
            new = self.new.get(ip, UNASSIGNED)
            targets = tuple(sorted(self.known_on[ip] - {new}))
            if targets:
                out.append((ip, new, targets))
        return out

    @property
    def takes(self) -> list[tuple[IP, int]]:
        return [(ip, pnn) for ip, pnn in sorted(self.new.items(), key=_key) if pnn != UNASSIGNED]


def _key(item):
    ip = item[0]
    return (ip.version, ip.packed)


def current_holders(nodes: list[NodeIPs]) -> dict[IP, int]:
    """4.17 rule: an address is held by p only if p is active and p itself says so."""
    out: dict[IP, int] = {}
    active = {n.pnn for n in nodes if not n.flags & INACTIVE}
    for n in nodes:
        for ip, holder in n.known.items():
            out.setdefault(ip, UNASSIGNED)
            if holder == n.pnn and n.pnn in active:
                out[ip] = n.pnn
    return out


Allocator = Callable[[dict[IP, int], list[NodeIPs]], dict[IP, int]]


def claims(nodes: list[NodeIPs]) -> dict[IP, frozenset[int]]:
    out: dict[IP, set[int]] = {}
    for n in nodes:
        for ip, holder in n.known.items():
            if holder == n.pnn:
                out.setdefault(ip, set()).add(n.pnn)
    return {ip: frozenset(p) for ip, p in out.items()}


def known_on(nodes: list[NodeIPs]) -> dict[IP, frozenset[int]]:
    out: dict[IP, set[int]] = {}
    for n in nodes:
        for ip in n.known:
            out.setdefault(ip, set()).add(n.pnn)
    return {ip: frozenset(p) for ip, p in out.items()}


def plan(nodes: list[NodeIPs], allocate: Allocator) -> Plan:
    cur = current_holders(nodes)
    hosts = [
        attrs.evolve(n, available=frozenset()) if (n.flags & INACTIVE or n.runstate != Runstate.RUNNING) else n
        for n in nodes
    ]
    new = allocate(dict(cur), hosts)
    for ip in cur:
        new.setdefault(ip, UNASSIGNED)
    # A policy (a third party's plugin too) must not place an address where it is not
    # available: that node would refuse the take and the whole run would fail.
    avail = {n.pnn: n.available for n in hosts}
    bad = {ip: p for ip, p in new.items() if p != UNASSIGNED and ip not in avail.get(p, ())}
    if bad:
        raise PlacementError(
            "the ipalloc policy placed " + ", ".join(f"{ip} on node {p}" for ip, p in sorted(bad.items(), key=_key))
            + ", where it is not available")
    return Plan(cur, new, claims(nodes), known_on(nodes))


class PlacementError(Exception):
    """The allocation put an address on a node that cannot host it."""
