"""The three 4.17 policies, ``allocate`` and ``policy_for``.

Ported from samba-4.17.12 ctdb/server/ipalloc_deterministic.c,
ipalloc_nondeterministic.c and ipalloc_lcp2.c; the algorithm numbers are the
``IPAllocAlgorithm`` tunable values of ctdb_takeover_helper.c
``determine_algorithm`` (0, 1, 2; any other value means LCP2).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from ._state import (
    IP,
    LOG_DEBUG,
    LOG_ERR,
    LOG_INFO,
    LOG_NOTICE,
    LOG_WARNING,
    UNASSIGNED,
    IPAllocState,
    Log,
    NodeState,
    PublicIP,
)

try:  # the daemon reports every plugin lookup failure with this type
    from ctdbcore.plugins.manager import PluginLoadError as _Base
except Exception:  # pragma: no cover - ctdb-core is a dependency, but stay importable
    class _Base(Exception):  # type: ignore[no-redef]
        def __init__(self, message: str, *, name: str, group: str, cause: BaseException | None = None):
            super().__init__(message)
            self.name, self.group, self.cause = name, group, cause

GROUP = "ctdb.ipalloc"
DISTRIBUTION = "ctdb-ipalloc"
_M32 = 0xFFFFFFFF


def _s32(v: int) -> int:
    """A u32 printed with %d."""
    v &= _M32
    return v - (1 << 32) if v & 0x80000000 else v


class IPAllocPolicy:
    """Base of a policy object: ``NAME`` (entry-point name), ``ALGORITHM``
    (IPAllocAlgorithm value, or None for a third-party policy) and ``place``,
    which changes the holders in an :class:`IPAllocState`."""

    NAME: ClassVar[str]
    ALGORITHM: ClassVar[int | None] = None
    #: Whether ``place`` uses ``state.dsum``/``state.imbalance`` (keeps them cheap).
    USES_DISTANCES: ClassVar[bool] = False

    def place(self, state: IPAllocState, *, no_ip_failback: bool,
              force_rebalance: Sequence[int]) -> None:
        raise NotImplementedError

    def allocate(self, ips: Any, nodes: Sequence[NodeState], **kw: Any) -> dict[IP, int]:
        return allocate(self, ips, nodes, **kw)

    def __repr__(self) -> str:
        return f"<ipalloc policy {self.NAME!r} (IPAllocAlgorithm={self.ALGORITHM})>"


class DeterministicPolicy(IPAllocPolicy):
    """IPAllocAlgorithm 0: address i of the list (descending order) goes home to
    node ``i % num_nodes``; those that cannot stay there go to the least-loaded
    node.  No failback, NoIPFailback ignored."""

    NAME = "deterministic"
    ALGORITHM = 0

    def place(self, state: IPAllocState, *, no_ip_failback: bool,
              force_rebalance: Sequence[int]) -> None:
        state.log(LOG_NOTICE, "Deterministic IPs enabled. Resetting all ip allocations")
        for i in range(len(state.addrs)):
            state.set_pnn(i, i % state.num if state.num else UNASSIGNED)
        if no_ip_failback:
            state.log(LOG_WARNING, "WARNING: 'NoIPFailback' set but ignored - "
                      "incompatible with 'Deterministic IPs")
        state.unassign_unsuitable_ips()
        state.basic_allocate_unassigned()


class NondeterministicPolicy(IPAllocPolicy):
    """IPAllocAlgorithm 1: keep what can stay, give the rest to the least-loaded
    node, then (unless NoIPFailback) move addresses off the most-loaded node
    until no node serving an address has 2 more than another that could."""

    NAME = "nondeterministic"
    ALGORITHM = 1

    def place(self, state: IPAllocState, *, no_ip_failback: bool,
              force_rebalance: Sequence[int]) -> None:
        num_ips = len(state.addrs)
        state.unassign_unsuitable_ips()
        state.basic_allocate_unassigned()
        if no_ip_failback:
            return
        self._basic_failback(state, num_ips)

    @staticmethod
    def _basic_failback(state: IPAllocState, num_ips: int) -> None:
        retries = 0
        cov = state.coverage
        while True:
            restart = False
            for i in range(num_ips):
                if state.pnn[i] == UNASSIGNED:
                    continue
                maxnode = minnode = UNASSIGNED
                maxnum = minnum = 0
                for n in range(state.num):
                    if not state.can_takeover(n, i):
                        continue
                    c = cov[n]
                    if maxnode == UNASSIGNED or c > maxnum:
                        maxnode, maxnum = n, c
                    if minnode == UNASSIGNED or c < minnum:
                        minnode, minnum = n, c
                if maxnode == UNASSIGNED:
                    state.log(LOG_WARNING, "../../ctdb/server/ipalloc_nondeterministic.c:96 Could "
                              f"not find maxnode. May not be able to serve ip '{state.addrs[i]}'")
                    continue
                if maxnum > minnum + 1 and retries < num_ips + 5:
                    # Reassign the first of maxnode's addresses (it still counts
                    # in maxnode's coverage while the new node is chosen).
                    for j in range(num_ips):
                        if state.pnn[j] == maxnode:
                            state.find_takeover_node(j)
                            retries += 1
                            restart = True
                            break
                    if restart:
                        break
            if not restart:
                return


class LCP2Policy(IPAllocPolicy):
    """IPAllocAlgorithm 2 (default): minimise each node's sum of squared
    "longest common prefix" distances between the addresses it holds; failback
    only onto nodes that held nothing (or were forced with REBALANCE_NODE)."""

    NAME = "lcp2"
    ALGORITHM = 2
    USES_DISTANCES = True

    def place(self, state: IPAllocState, *, no_ip_failback: bool,
              force_rebalance: Sequence[int]) -> None:
        state.unassign_unsuitable_ips()
        num = state.num
        imb = [state.imbalance(n) for n in range(num)]
        candidates = [True] * num
        for p in state.pnn:
            if p != UNASSIGNED:
                candidates[p] = False
        for p in force_rebalance:
            if not 0 <= p < num:
                state.log(LOG_ERR, f"../../ctdb/server/ipalloc_lcp2.c:183unknown node {p & _M32}")
                continue
            state.log(LOG_NOTICE, f"Forcing rebalancing of IPs to node {p}")
            candidates[p] = True
        self._allocate_unassigned(state, imb)
        if no_ip_failback:
            return
        if not any(candidates):
            return
        self._failback(state, imb, candidates)

    @staticmethod
    def _allocate_unassigned(state: IPAllocState, imb: list[int]) -> None:
        debug = state.logs(LOG_DEBUG)
        pnn = state.pnn
        have_unassigned = True  # as 4.17: the first pass always runs (and logs)
        should_loop = True
        while have_unassigned and should_loop:
            should_loop = False
            if debug:
                state.log(LOG_DEBUG, " ----------------------------------------")
                state.log(LOG_DEBUG, " CONSIDERING MOVES (UNASSIGNED)")
            minnode = UNASSIGNED
            mindsum = minimbl = 0
            minip = -1
            for i, p in enumerate(pnn):
                if p != UNASSIGNED:
                    continue
                for dst in range(state.num):
                    if not state.can_takeover(dst, i):
                        continue
                    dstdsum = state.dsum(i, dst)
                    dstimbl = (imb[dst] + dstdsum) & _M32
                    if debug:
                        state.log(LOG_DEBUG, f" {state.addrs[i]} -> {dst} "
                                  f"[+{_s32(dstimbl - imb[dst])}]")
                    if minnode == UNASSIGNED or dstdsum < mindsum:
                        minnode, minimbl, mindsum, minip = dst, dstimbl, dstdsum, i
                        should_loop = True
            if debug:
                state.log(LOG_DEBUG, " ----------------------------------------")
            if minnode != UNASSIGNED:
                state.set_pnn(minip, minnode)
                imb[minnode] = minimbl
                state.log(LOG_INFO, f" {state.addrs[minip]} -> {minnode} [+{_s32(mindsum)}]")
            have_unassigned = UNASSIGNED in pnn
        if have_unassigned:
            for i, p in enumerate(pnn):
                if p == UNASSIGNED:
                    state.log(LOG_WARNING, f"Failed to find node to cover ip {state.addrs[i]}")

    @staticmethod
    def _failback_candidate(state: IPAllocState, src: int, imb: list[int],
                            candidates: list[bool]) -> bool:
        debug = state.logs(LOG_DEBUG)
        minip = -1
        minsrcimbl = mindstimbl = 0
        mindst = UNASSIGNED
        if debug:
            state.log(LOG_DEBUG, " ----------------------------------------")
            state.log(LOG_DEBUG, f" CONSIDERING MOVES FROM {src} [{_s32(imb[src])}]")
        for i, p in enumerate(state.pnn):
            if p != src:
                continue
            srcdsum = state.dsum(i, src)
            srcimbl = (imb[src] - srcdsum) & _M32
            for dst in range(state.num):
                if not candidates[dst] or not state.can_takeover(dst, i):
                    continue
                dstdsum = state.dsum(i, dst)
                dstimbl = (imb[dst] + dstdsum) & _M32
                if debug:
                    state.log(LOG_DEBUG, f" {src} [{_s32(-srcdsum)}] -> {state.addrs[i]} -> "
                              f"{dst} [+{_s32(dstdsum)}]")
                if (dstimbl < imb[src] and dstdsum < srcdsum
                        and (mindst == UNASSIGNED
                             or ((srcimbl + dstimbl) & _M32) < ((minsrcimbl + mindstimbl) & _M32))):
                    minip, minsrcimbl, mindst, mindstimbl = i, srcimbl, dst, dstimbl
        if debug:
            state.log(LOG_DEBUG, " ----------------------------------------")
        if mindst == UNASSIGNED:
            return False
        state.log(LOG_INFO, f"{src} [{_s32(minsrcimbl - imb[src])}] -> {state.addrs[minip]} -> "
                  f"{mindst} [+{_s32(mindstimbl - imb[mindst])}]")
        imb[src] = minsrcimbl
        imb[mindst] = mindstimbl
        state.set_pnn(minip, mindst)
        return True

    @classmethod
    def _failback(cls, state: IPAllocState, imb: list[int], candidates: list[bool]) -> None:
        while True:
            if state.logs(LOG_DEBUG):
                state.log(LOG_DEBUG, "+++++++++++++++++++++++++++++++++++++++++")
                state.log(LOG_DEBUG, "Selecting most imbalanced node from:")
                for n in range(state.num):
                    state.log(LOG_DEBUG, f" {n} [{_s32(imb[n])}]")
            # glibc 2.36 (Debian 12) qsort is a merge sort: stable, so equal
            # imbalances keep pnn order.
            order = sorted(range(state.num), key=lambda n: imb[n], reverse=True)
            moved = False
            for n in order:
                if imb[n] == 0:  # every remaining node holds 0 or 1 address
                    break
                if cls._failback_candidate(state, n, imb, candidates):
                    moved = True
                    break
            if not moved:
                return


deterministic = DeterministicPolicy()
nondeterministic = NondeterministicPolicy()
lcp2 = LCP2Policy()

BUILTIN: dict[str, IPAllocPolicy] = {p.NAME: p for p in (deterministic, nondeterministic, lcp2)}
#: IPAllocAlgorithm value -> policy name; other values select LCP2 (4.17 default case).
ALGORITHMS: dict[int, str] = {0: "deterministic", 1: "nondeterministic", 2: "lcp2"}
#: Spellings of ctdb_takeover_tests' CTDB_IP_ALGORITHM.
ALIASES: dict[str, str] = {"det": "deterministic", "nondet": "nondeterministic"}


class PolicyNotFoundError(_Base, LookupError):
    """No ``ctdb.ipalloc`` entry point (and no built-in policy) has this name."""


def _entry_points(name: str) -> list[importlib.metadata.EntryPoint]:
    return [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.name == name]


def policy_for(name_or_number: str | int | IPAllocPolicy) -> IPAllocPolicy:
    """Resolve a policy name (entry-point name in ``ctdb.ipalloc``) or an
    IPAllocAlgorithm value (0, 1, 2; anything else is LCP2 as in 4.17)."""
    if isinstance(name_or_number, IPAllocPolicy):
        return name_or_number
    if isinstance(name_or_number, bool):
        raise TypeError("IPAllocAlgorithm must be an int or a policy name")
    if isinstance(name_or_number, int):
        name = ALGORITHMS.get(name_or_number, "lcp2")
    else:
        name = name_or_number.strip()
        if name.lstrip("-").isdigit():
            name = ALGORITHMS.get(int(name), "lcp2")
        name = ALIASES.get(name, name)
    eps = _entry_points(name)
    if eps:
        try:
            obj = eps[0].load()
        except Exception as exc:
            raise PolicyNotFoundError(
                f"The IP allocation policy {name!r} (entry point {eps[0].value!r}) could not be "
                f"loaded: {exc}", name=name, group=GROUP, cause=exc) from exc
        return obj
    if name in BUILTIN:
        return BUILTIN[name]
    available = sorted({ep.name for ep in importlib.metadata.entry_points(group=GROUP)} | set(BUILTIN))
    raise PolicyNotFoundError(
        f"The IP allocation policy {name!r} can't be found, is the plugin installed? "
        f"{DISTRIBUTION} provides {', '.join(sorted(BUILTIN))}; install the distribution that "
        f"provides {name!r} into the {GROUP} group (available: {', '.join(available)})",
        name=name, group=GROUP)


def _as_list(ips: Iterable[PublicIP] | Mapping[Any, int]) -> list[PublicIP]:
    if isinstance(ips, Mapping):
        return [PublicIP(a, p) for a, p in ips.items()]
    return [ip if isinstance(ip, PublicIP) else PublicIP(*ip) for ip in ips]


def allocate_list(policy: str | int | IPAllocPolicy, ips: Iterable[PublicIP] | Mapping[Any, int],
                  nodes: Sequence[NodeState], *, no_ip_failback: bool = False,
                  no_ip_takeover: bool = False, force_rebalance: Iterable[int] = frozenset(),
                  log: Log | None = None, log_level: int = LOG_DEBUG) -> list[PublicIP]:
    """Like :func:`allocate`, returning the list in 4.17's order (descending key)
    as ``ctdb_takeover_tests ipalloc`` prints it."""
    pol = policy_for(policy)
    state = IPAllocState(_as_list(ips), nodes, no_ip_takeover=no_ip_takeover,
                         track_distances=pol.USES_DISTANCES, log=log, log_level=log_level)
    pol.place(state, no_ip_failback=no_ip_failback, force_rebalance=tuple(force_rebalance))
    return state.result()


def allocate(policy: str | int | IPAllocPolicy, ips: Iterable[PublicIP] | Mapping[Any, int],
             nodes: Sequence[NodeState], *, no_ip_failback: bool = False,
             no_ip_takeover: bool = False, force_rebalance: Iterable[int] = frozenset(),
             log: Log | None = None, log_level: int = LOG_DEBUG) -> dict[IP, int]:
    """Run one 4.17 IP allocation: new holder per address (-1 = unassigned).

    ``ips`` is the merged list (every address any connected node knows, with its
    current holder, see :func:`merge_known_ips`); ``nodes`` is the nodemap with
    what each node can host.  The dict is in 4.17's list order.
    ``force_rebalance`` is the takeover helper's rebalance-node list
    (REBALANCE_NODE / ``ctdb addip``), used by LCP2 only.  ``log(level, message)``
    receives 4.17's DEBUG() messages up to ``log_level``.
    """
    return {ip.addr: ip.pnn for ip in allocate_list(
        policy, ips, nodes, no_ip_failback=no_ip_failback, no_ip_takeover=no_ip_takeover,
        force_rebalance=force_rebalance, log=log, log_level=log_level)}


def can_host_ips(ips: Iterable[PublicIP] | Mapping[Any, int], nodes: Sequence[NodeState]) -> bool:
    """4.17 ``ipalloc_can_host_ips``: false only when there are no addresses at
    all, or none is held and no node can host anything (the takeover helper then
    skips straight to IPREALLOCATED)."""
    lst = _as_list(ips)
    if not lst:
        return False
    if any(ip.pnn != UNASSIGNED for ip in lst):
        return True
    return any(n.can_host_ips and n.available for n in nodes)
