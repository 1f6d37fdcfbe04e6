"""Input types and the working state shared by every policy.

Python port of the facts in samba-4.17.12 ctdb/server/ipalloc.c (merged list,
availability bitmaps), ipalloc_common.c (coverage, find_takeover_node,
unassign_unsuitable_ips, basic_allocate_unassigned, ip_key) and the distance
functions of ipalloc_lcp2.c.  No I/O: the only side channel is the optional
``log`` callable, which receives the same messages, at the same levels, that
4.17 writes with DEBUG() so that the upstream test vectors can check them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Union

import attrs

IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

#: ``CTDB_UNKNOWN_PNN`` as this API spells it.
UNASSIGNED = -1

# Node flags (protocol/protocol.h).
DISCONNECTED = 0x01
UNHEALTHY = 0x02
PERMANENTLY_DISABLED = 0x04
BANNED = 0x08
DELETED = 0x10
STOPPED = 0x20
DISABLED = UNHEALTHY | PERMANENTLY_DISABLED
INACTIVE = DELETED | DISCONNECTED | BANNED | STOPPED

#: enum ctdb_runstate: UNKNOWN 0, INIT 1, SETUP 2, FIRST_RECOVERY 3, STARTUP 4,
#: RUNNING 5, SHUTDOWN 6.  Only a RUNNING node reports available addresses.
RUNSTATE_STARTUP = 4
RUNSTATE_RUNNING = 5

# ctdb common/logging.h level names, in increasing verbosity.
LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG = range(5)
LOG_LEVELS = {"ERR": LOG_ERR, "ERROR": LOG_ERR, "WARNING": LOG_WARNING, "NOTICE": LOG_NOTICE,
              "INFO": LOG_INFO, "DEBUG": LOG_DEBUG}

Log = Callable[[int, str], None]

_M32 = 0xFFFFFFFF


def _addr(value: object) -> IP:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    return ipaddress.ip_address(value)  # type: ignore[arg-type]


def _pnn(value: int) -> int:
    return UNASSIGNED if value < 0 or value == _M32 else int(value)


@attrs.frozen
class PublicIP:
    """One public address and its holder (``UNASSIGNED`` = -1 for none)."""

    addr: IP = attrs.field(converter=_addr)
    pnn: int = attrs.field(default=UNASSIGNED, converter=_pnn)


@attrs.frozen
class NodeState:
    """One nodemap entry as the takeover run sees it.

    ``available`` is the set of public addresses the node can host now (4.17:
    GET_PUBLIC_IPS with ONLY_AVAILABLE); pools need not agree between nodes.  A
    node whose flags have any INACTIVE or DISABLED bit, or whose runstate is not
    RUNNING, hosts nothing whatever ``available`` says, as 4.17's
    ``ctdb_vnn_available`` and the takeover helper arrange.  Include deleted
    nodemap entries (flags DELETED): the deterministic policy counts them.
    """

    pnn: int
    flags: int = 0
    available: frozenset[IP] = attrs.field(default=frozenset(),
                                           converter=lambda s: frozenset(_addr(a) for a in s))
    runstate: int = RUNSTATE_RUNNING

    @property
    def can_host_ips(self) -> bool:
        return not self.flags & (INACTIVE | DISABLED) and self.runstate == RUNSTATE_RUNNING


def ip_key(addr: object) -> tuple[int, int, int, int]:
    """4.17 ``ip_key``: four host-order u32 words; IPv4 is ``(0, 0, 0, addr)``.

    Compared word by word this is the same order as ``int(addr)``, which is what
    the code below uses (so IPv6 sorts above IPv4, and ``::a.b.c.d`` has the key
    of ``a.b.c.d``).
    """
    k = int(_addr(addr))
    return ((k >> 96) & _M32, (k >> 64) & _M32, (k >> 32) & _M32, k & _M32)


def _key_distance(a: int, b: int) -> int:
    x = a ^ b
    if x <= _M32:  # the upper three words agree: 96 + clz32(low word) (32 if 0)
        return 128 - x.bit_length()
    return (128 - ((x >> 96) & _M32).bit_length() - ((x >> 64) & _M32).bit_length()
            - ((x >> 32) & _M32).bit_length() - (x & _M32).bit_length())


def ip_distance(a: object, b: object) -> int:
    """4.17 LCP2 ``ip_distance``: for each of the 4 key words add 32 if equal, else
    the leading zeros of the XOR.  The loop does not stop at the first differing
    word, so two IPv4 addresses are 96 + common-prefix-length apart."""
    return _key_distance(int(_addr(a)), int(_addr(b)))


def ip_distance_2_sum(ip: object, ips: Iterable[PublicIP], pnn: int) -> int:
    """4.17 ``ip_distance_2_sum``: sum of squared distances from ``ip`` to every
    address held by ``pnn`` other than ``ip`` itself, in u32 arithmetic."""
    a = _addr(ip)
    k = int(a)
    total = 0
    for t in ips:
        if t.pnn != pnn or t.addr == a:
            continue
        d = _key_distance(k, int(t.addr))
        total += d * d
    return total & _M32


def lcp2_imbalance(ips: Sequence[PublicIP], pnn: int) -> int:
    """4.17 ``lcp2_imbalance``: sum over unordered pairs of ``pnn``'s addresses of
    distance squared (u32)."""
    mine = [int(t.addr) for t in ips if t.pnn == pnn]
    total = 0
    for i, a in enumerate(mine):
        for b in mine[i + 1:]:
            d = _key_distance(a, b)
            total += d * d
    return total & _M32


def merge_known_ips(known: Sequence[Mapping[object, int] | Iterable[PublicIP]]) -> list[PublicIP]:
    """4.17 ``create_merged_ip_list``: the union of every node's known addresses.

    ``known[n]`` is node n's GET_PUBLIC_IPS answer: each address with the holder
    that node believes in.  An address's holder is n only if node n itself
    reports holding it ("do not use information about IP addresses hosted on
    other nodes"); when several nodes claim it the highest pnn wins.  The result is
    in 4.17's list order, descending ``ip_key`` (an rb-tree traversed in ascending
    order, each entry prepended).
    """
    tree: dict[int, PublicIP] = {}
    for n, node_ips in enumerate(known):
        entries = ([PublicIP(a, p) for a, p in node_ips.items()] if isinstance(node_ips, Mapping)
                   else [e if isinstance(e, PublicIP) else PublicIP(*e) for e in node_ips])
        for e in entries:
            new = PublicIP(e.addr, n if e.pnn == n else UNASSIGNED)
            k = int(new.addr)
            old = tree.get(k)
            if old is not None and new.pnn == UNASSIGNED:  # add_ip_callback
                new = PublicIP(new.addr, old.pnn)
            tree[k] = new
    return [tree[k] for k in sorted(tree, reverse=True)]


class IPAllocState:
    """The mutable working state of one allocation (4.17 ``struct ipalloc_state``
    plus ``all_ips``), with the helpers of ipalloc_common.c.

    Addresses are kept in 4.17's list order (descending key) and referred to by
    index.  Coverage counts, and for LCP2 the per-node distance sums, are kept up
    to date on every change of holder, so the policies never rescan the list.
    """

    def __init__(self, ips: Sequence[PublicIP], nodes: Sequence[NodeState], *,
                 no_ip_takeover: bool = False, track_distances: bool = False,
                 log: Log | None = None, log_level: int = LOG_DEBUG):
        pnns = [n.pnn for n in nodes]
        if len(set(pnns)) != len(pnns):
            raise ValueError(f"duplicate node pnn in {pnns}")
        if any(p < 0 for p in pnns):
            raise ValueError(f"negative node pnn in {pnns}")
        #: ``ipalloc_state->num``: nodemap size, deleted entries included.
        self.num = max(pnns, default=-1) + 1
        ordered = sorted(ips, key=lambda p: int(p.addr), reverse=True)
        self.addrs: list[IP] = [p.addr for p in ordered]
        if len(set(self.addrs)) != len(self.addrs):
            raise ValueError("duplicate public address in the input list")
        self.keys = [int(a) for a in self.addrs]
        index = {a: i for i, a in enumerate(self.addrs)}
        #: bit n set = node n can host the address (``available_on``).
        self.available_on = [0] * len(ordered)
        for node in nodes:
            if not node.can_host_ips:
                continue
            for a in node.available:
                i = index.get(a)
                if i is not None:
                    self.available_on[i] |= 1 << node.pnn
        self.no_ip_takeover = no_ip_takeover
        self._log = log
        self.log_level = log_level if log is not None else -1
        self.pnn: list[int] = [UNASSIGNED] * len(ordered)
        self.coverage = [0] * self.num
        self._dsum: list[list[int]] | None = None
        for i, p in enumerate(ordered):
            self.set_pnn(i, p.pnn)
        if track_distances:
            self._init_distances()

    # -- logging ---------------------------------------------------------------
    def logs(self, level: int) -> bool:
        return level <= self.log_level

    def log(self, level: int, msg: str) -> None:
        if self._log is not None and level <= self.log_level:
            self._log(level, msg)

    # -- holders -----------------------------------------------------------------
    def set_pnn(self, i: int, new: int) -> None:
        old = self.pnn[i]
        if old == new:
            return
        self.pnn[i] = new
        if 0 <= old < self.num:
            self.coverage[old] -= 1
        if 0 <= new < self.num:
            self.coverage[new] += 1
        if self._dsum is not None:
            k = self.keys[i]
            keys = self.keys
            oldok = 0 <= old < self.num
            newok = 0 <= new < self.num
            for t, row in enumerate(self._dsum):
                if t == i:
                    continue
                d = _key_distance(keys[t], k)
                d *= d
                if oldok:
                    row[old] -= d
                if newok:
                    row[new] += d

    def _init_distances(self) -> None:
        n = self.num
        keys = self.keys
        rows = [[0] * n for _ in keys]
        held = [(u, keys[u], p) for u, p in enumerate(self.pnn) if 0 <= p < n]
        for t, kt in enumerate(keys):
            row = rows[t]
            for u, ku, p in held:
                if u != t:
                    d = _key_distance(kt, ku)
                    row[p] += d * d
        self._dsum = rows

    def dsum(self, i: int, pnn: int) -> int:
        """``ip_distance_2_sum(addr i, all_ips, pnn)`` (u32)."""
        if self._dsum is not None:
            return self._dsum[i][pnn] & _M32
        k = self.keys[i]
        total = 0
        for t, p in enumerate(self.pnn):
            if p == pnn and t != i:
                d = _key_distance(k, self.keys[t])
                total += d * d
        return total & _M32

    def imbalance(self, pnn: int) -> int:
        """``lcp2_imbalance`` (u32)."""
        if self._dsum is not None:
            return (sum(self._dsum[i][pnn] for i, p in enumerate(self.pnn) if p == pnn) // 2) & _M32
        return lcp2_imbalance(self.result(), pnn)

    # -- ipalloc_common.c --------------------------------------------------------
    def can_host(self, pnn: int, i: int) -> bool:
        return 0 <= pnn < self.num and bool(self.available_on[i] >> pnn & 1)

    def can_takeover(self, pnn: int, i: int) -> bool:
        return not self.no_ip_takeover and self.can_host(pnn, i)

    def find_takeover_node(self, i: int) -> bool:
        """Least-covered node that can take address i, lowest pnn on ties."""
        best = UNASSIGNED
        low = 0
        for n in range(self.num):
            if not self.can_takeover(n, i):
                continue
            c = self.coverage[n]
            if best == UNASSIGNED or c < low:
                best, low = n, c
        if best == UNASSIGNED:
            self.log(LOG_WARNING, "../../ctdb/server/ipalloc_common.c:110 Could not find node "
                     f"to take over public address '{self.addrs[i]}'")
            return False
        self.set_pnn(i, best)
        return True

    def basic_allocate_unassigned(self) -> None:
        for i, p in enumerate(self.pnn):
            if p == UNASSIGNED and not self.find_takeover_node(i):
                self.log(LOG_WARNING, f"Failed to find node to cover ip {self.addrs[i]}")

    def unassign_unsuitable_ips(self) -> None:
        for i, p in enumerate(self.pnn):
            if p == UNASSIGNED:
                continue
            if not self.can_host(p, i):
                self.log(LOG_DEBUG, f"Unassign IP: {self.addrs[i]} from {p}")
                self.set_pnn(i, UNASSIGNED)

    # -- output ------------------------------------------------------------------
    def result(self) -> list[PublicIP]:
        return [PublicIP(a, p) for a, p in zip(self.addrs, self.pnn)]
