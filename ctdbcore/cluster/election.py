"""Leader election, as CTDB 4.17 does it, without I/O.

Rule 1: with a cluster lock, *the lock is the election*. Whoever holds the lock is
the leader; everyone else only learns the leader from its LEADER broadcasts. A node
that cannot take the lock never calls itself leader, so there is no split brain
while the cluster filesystem's locks work.

Rule 2: without a cluster lock the 4.17 classic election runs: every candidate
broadcasts an ELECTION message and the one with the oldest priority time (ties: the
highest pnn) wins once ElectionTimeout passes without a better offer.

Where we differ from 4.17, on purpose (all make failover faster, none changes the
messages on the wire):

* A leader whose node is reported dead (connection reset, keepalive silence)
  triggers an election at once instead of after the leader timeout.
* A leader that stops being able to lead broadcasts "election underway" (LEADER
  UNKNOWN) so that the others race at once instead of waiting for the timeout.
* A new peer is told who leads as soon as it connects.

Transitions (input -> what happens):

==================  ==========================================================
start               leader UNKNOWN; election deadline = start grace period
LEADER(p) from p    leader := p, re-arm the leader timeout
LEADER(UNKNOWN)     election underway: race for the lock (lock mode)
deadline passes     force election: broadcast LEADER(UNKNOWN), race
lock HELD           leader := self, broadcast LEADER(self) at once and every 1 s
lock not HELD       leader stays UNKNOWN, retry when the leader timeout passes
lock lost           leader := UNKNOWN, force election
leader's node dead  force election
can_lead -> False   release the lock; if leader: broadcast LEADER(UNKNOWN)
==================  ==========================================================
"""

from __future__ import annotations

import attrs

from ctdbcore.cluster.effects import (
    BroadcastLeader,
    Effect,
    LeaderChanged,
    ReleaseLock,
    SendElection,
    TryLock,
)
from ctdbcore.protocol.constants import INACTIVE, UNKNOWN_PNN

#: 4.17's leader broadcast period (ctdb_recoverd.c); the `ctdb` tool relies on it.
BROADCAST_INTERVAL = 1.0
#: How long a starting node listens for a leader before it races for the lock itself.
START_GRACE = 0.5
#: 4.17 re-sends a winning ELECTION offer after 0.5 s.
ELECTION_RESEND = 0.5


def election_win(
    my_can_lead: bool,
    my_priority: float,
    my_pnn: int,
    their_priority: float,
    their_pnn: int,
    their_flags: int,
) -> bool:
    """4.17's ctdb_election_win: would my offer beat theirs?"""
    if not my_can_lead:
        return False
    if their_flags & INACTIVE:
        return True
    if my_priority != their_priority:
        return my_priority < their_priority
    return my_pnn > their_pnn


@attrs.define
class Election:
    pnn: int
    lock_configured: bool
    leader_timeout: float
    election_timeout: float = 1.0
    can_lead: bool = True
    leader: int = UNKNOWN_PNN
    holds_lock: bool = False
    lock_pending: bool = False
    in_progress: bool = False
    #: classic election: when this node's node-flags/priority were last reset
    priority_time: float = 0.0
    num_connected: int = 0
    node_flags: int = 0
    _deadline: float | None = None  # leader timeout or classic election timeout
    _next_broadcast: float | None = None
    _resend_at: float | None = None

    # -- inputs ---------------------------------------------------------------

    def start(self, now: float) -> list[Effect]:
        self.priority_time = now
        self._deadline = now + min(START_GRACE, self.leader_timeout)
        return []

    def leader_message(self, src: int, leader: int, now: float) -> list[Effect]:
        """A LEADER broadcast arrived (including our own, looped back)."""
        if src == self.pnn:
            return []
        if leader == UNKNOWN_PNN:
            if self.in_progress:
                return []
            return self._force(now, announce=False)
        if leader == self.pnn:
            return []
        if self.holds_lock:
            # Two claimants can only mean a broken lock: keep ours and say so
            # (the other side sees our broadcast and yields or races).
            return [BroadcastLeader(self.pnn)]
        out = self._set_leader(leader)
        self.in_progress = False
        self._deadline = now + self.leader_timeout
        return out

    def election_message(
        self, src: int, their_priority: float, their_flags: int, now: float
    ) -> list[Effect]:
        """A classic ELECTION offer arrived."""
        if src == self.pnn or self.lock_configured:
            return []
        self.in_progress = True
        self._deadline = now + self.election_timeout
        if election_win(
            self.can_lead, self.priority_time, self.pnn, their_priority, src, their_flags
        ):
            if self._resend_at is None:
                self._resend_at = now + ELECTION_RESEND
            return self._set_leader(self.pnn)
        self._resend_at = None
        return self._set_leader(src)

    def lock_result(self, held: bool, now: float) -> list[Effect]:
        self.lock_pending = False
        self.in_progress = False
        if held:
            if not self.can_lead:
                return [ReleaseLock()]
            self.holds_lock = True
            out = self._set_leader(self.pnn)
            out.append(BroadcastLeader(self.pnn))
            self._next_broadcast = now + BROADCAST_INTERVAL
            self._deadline = None
            return out
        # Someone else holds it: learn who from their broadcasts, and race again
        # if none arrives within the leader timeout.
        self._deadline = now + self.leader_timeout
        return []

    def lock_lost(self, now: float) -> list[Effect]:
        self.holds_lock = False
        out: list[Effect] = []
        if self.leader == self.pnn:
            out += self._set_leader(UNKNOWN_PNN)
        out += self._force(now, announce=True)
        return out

    def node_dead(self, pnn: int, now: float) -> list[Effect]:
        if pnn == self.leader and pnn != self.pnn:
            out = self._set_leader(UNKNOWN_PNN)
            return out + self._force(now, announce=True)
        return []

    def node_connected(self, pnn: int, now: float) -> list[Effect]:
        if self.leader == self.pnn:
            return [BroadcastLeader(self.pnn, to=pnn)]
        return []

    def set_can_lead(self, can_lead: bool, node_flags: int, now: float) -> list[Effect]:
        self.node_flags = node_flags
        if can_lead == self.can_lead:
            return []
        self.can_lead = can_lead
        out: list[Effect] = []
        if not can_lead:
            # 4.17 resets the priority of an inactive node so it loses elections.
            self.priority_time = now
            if self.holds_lock:
                self.holds_lock = False
                out.append(ReleaseLock())
            if self.leader == self.pnn:
                out += self._set_leader(UNKNOWN_PNN)
                self._next_broadcast = None
                out.append(BroadcastLeader(UNKNOWN_PNN))
                self.in_progress = True
                self._deadline = now + self.leader_timeout
        elif self.leader == UNKNOWN_PNN:
            out += self._force(now, announce=False)
        return out

    def timer(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        if self._next_broadcast is not None and now >= self._next_broadcast:
            if self.leader == self.pnn:
                out.append(BroadcastLeader(self.pnn))
                self._next_broadcast = now + BROADCAST_INTERVAL
            else:
                self._next_broadcast = None
        if self._resend_at is not None and now >= self._resend_at:
            self._resend_at = None
            out.append(self._offer(now))
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            if self.lock_configured or not self.in_progress:
                out += self._force(now, announce=True)
            else:
                out += self._classic_done(now)
        return out

    def next_deadline(self) -> float | None:
        times = [t for t in (self._deadline, self._next_broadcast, self._resend_at) if t is not None]
        return min(times) if times else None

    # -- internals -------------------------------------------------------------

    def _set_leader(self, new: int) -> list[Effect]:
        if new == self.leader:
            return []
        old, self.leader = self.leader, new
        return [LeaderChanged(old, new)]

    def _force(self, now: float, *, announce: bool) -> list[Effect]:
        out: list[Effect] = []
        if self.lock_configured:
            if self.holds_lock and self.can_lead:
                # 4.17: the holder stays leader, for stability.
                out += self._set_leader(self.pnn)
                out.append(BroadcastLeader(self.pnn))
                self._next_broadcast = now + BROADCAST_INTERVAL
                self._deadline = None
                self.in_progress = False
                return out
            self.in_progress = True
            if announce:
                out.append(BroadcastLeader(UNKNOWN_PNN))
            if self.leader != UNKNOWN_PNN:
                out += self._set_leader(UNKNOWN_PNN)
            if self.can_lead and not self.lock_pending:
                self.lock_pending = True
                out.append(TryLock())
            # If the race brings no leader, race again after the timeout.
            self._deadline = now + self.leader_timeout
            return out
        # classic election
        self.in_progress = True
        if announce:
            out.append(BroadcastLeader(UNKNOWN_PNN))
        out += self._set_leader(self.pnn if self.can_lead else UNKNOWN_PNN)
        out.append(self._offer(now))
        self._deadline = now + self.election_timeout
        return out

    def _offer(self, now: float) -> SendElection:
        if self.can_lead:
            return SendElection(self.num_connected, self.priority_time, self.pnn, self.node_flags)
        # 4.17: a node that cannot lead "tries to lose".
        return SendElection(0, now, self.pnn, self.node_flags)

    def _classic_done(self, now: float) -> list[Effect]:
        self.in_progress = False
        self._resend_at = None
        out: list[Effect] = []
        if self.leader == self.pnn and self.can_lead:
            out.append(BroadcastLeader(self.pnn))
            self._next_broadcast = now + BROADCAST_INTERVAL
        else:
            self._deadline = now + self.leader_timeout
        return out
