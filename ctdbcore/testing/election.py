"""N leader-election state machines on a fake network with a fake clock and a fake
cluster lock, for exhaustive tests of election behaviour without processes or sockets."""

from __future__ import annotations

import heapq
import itertools
import random

import attrs

from ctdbcore.cluster import effects as fx
from ctdbcore.cluster.election import Election

LATENCY = 0.001


@attrs.define
class FakeLock:
    holder: int | None = None
    # pnn -> time until which a dead node's helper still holds the lock
    linger: dict[int, float] = attrs.field(factory=dict)


class ElectionSim:
    def __init__(self, n: int, *, lock: bool = True, leader_timeout: float = 2.0, seed: int = 0,
                 lock_latency: float = 0.002) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self.lock = FakeLock()
        self.lock_latency = lock_latency
        self.alive = set(range(n))
        self.nodes = {p: Election(pnn=p, lock_configured=lock, leader_timeout=leader_timeout) for p in range(n)}
        self.queue: list = []
        self.seq = itertools.count()
        self.partition: dict[int, int] = {}  # pnn -> group; nodes in different groups can't talk
        for p, e in self.nodes.items():
            self.apply(p, e.start(self.now))

    def linked(self, a: int, b: int) -> bool:
        return a in self.alive and b in self.alive and self.partition.get(a, 0) == self.partition.get(b, 0)

    def at(self, t: float, fn) -> None:
        heapq.heappush(self.queue, (t, next(self.seq), fn))

    def apply(self, p: int, effects: list) -> None:
        for e in effects:
            if isinstance(e, fx.BroadcastLeader):
                targets = [e.to] if e.to is not None else list(self.nodes)
                for q in targets:
                    if q != p and self.linked(p, q):
                        self.at(self.now + LATENCY * (1 + self.rng.random()),
                                lambda q=q, l=e.leader: self.deliver(q, lambda n: n.leader_message(p, l, self.now)))
            elif isinstance(e, fx.SendElection):
                for q in self.nodes:
                    if q != p and self.linked(p, q):
                        self.at(self.now + LATENCY * (1 + self.rng.random()),
                                lambda q=q, e=e: self.deliver(
                                    q, lambda n: n.election_message(e.pnn, e.priority_time, e.node_flags, self.now)))
            elif isinstance(e, fx.TryLock):
                self.at(self.now + self.lock_latency * (1 + self.rng.random()), lambda p=p: self.resolve_lock(p))
            elif isinstance(e, fx.ReleaseLock):
                if self.lock.holder == p:
                    self.lock.holder = None

    def deliver(self, q: int, fn) -> None:
        if q in self.alive:
            self.apply(q, fn(self.nodes[q]))

    def lock_free_for(self, p: int) -> bool:
        h = self.lock.holder
        if h is None or h == p:
            return True
        if h in self.alive:
            return False
        return self.now >= self.lock.linger.get(h, 0.0)

    def resolve_lock(self, p: int) -> None:
        if p not in self.alive:
            return
        held = self.lock_free_for(p)
        if held:
            self.lock.holder = p
        self.apply(p, self.nodes[p].lock_result(held, self.now))

    def kill(self, p: int, linger: float = 0.0) -> None:
        self.alive.discard(p)
        if linger:
            self.lock.linger[p] = self.now + linger
        for q in self.alive:
            self.apply(q, self.nodes[q].node_dead(p, self.now))

    def run_until(self, t_end: float) -> None:
        while True:
            next_timer = min(
                (d, p) for p, e in self.nodes.items() if p in self.alive and (d := e.next_deadline()) is not None
            ) if any(e.next_deadline() is not None for p, e in self.nodes.items() if p in self.alive) else (None, None)
            t_msg = self.queue[0][0] if self.queue else None
            candidates = [t for t in (next_timer[0], t_msg) if t is not None]
            if not candidates or min(candidates) > t_end:
                self.now = t_end
                return
            t = min(candidates)
            self.now = max(self.now, t)
            if t_msg is not None and t_msg <= (next_timer[0] if next_timer[0] is not None else t_msg):
                _, _, fn = heapq.heappop(self.queue)
                fn()
            else:
                p = next_timer[1]
                self.apply(p, self.nodes[p].timer(self.now))
            self.check_safety()

    def check_safety(self) -> None:
        # Without a cluster lock 4.17 promises no such thing (candidates call
        # themselves leader while the classic election runs), so only check lock mode.
        claimants = [p for p in self.alive if self.nodes[p].leader == p and self.nodes[p].lock_configured]
        assert len(claimants) <= 1, f"two leaders at t={self.now}: {claimants}"
        for p in claimants:
            if self.nodes[p].lock_configured:
                assert self.lock.holder == p, f"node {p} leads without the lock"

    def agreed_leader(self) -> int | None:
        leaders = {self.nodes[p].leader for p in self.alive}
        if len(leaders) == 1:
            (l,) = leaders
            if l in self.alive:
                return l
        return None
