"""What the cluster state machines ask the I/O shell to do.

The state machines never touch a socket, a process or a clock: they return these
records and the daemon carries them out (and feeds the outcome back in, e.g. the
result of a lock attempt).
"""

from __future__ import annotations

import attrs


@attrs.frozen
class BroadcastLeader:
    """Send a LEADER message (u32 pnn, UNKNOWN_PNN = election underway)."""

    leader: int
    # None = BROADCAST_CONNECTED; a pnn = only that node (a newcomer that must not
    # wait a whole broadcast period to learn who leads).
    to: int | None = None


@attrs.frozen
class SendElection:
    """Broadcast a 4.17 classic ELECTION message (used only without a cluster lock)."""

    num_connected: int
    priority_time: float
    pnn: int
    node_flags: int


@attrs.frozen
class TryLock:
    """Race for the cluster lock; answer with Election.lock_result()."""


@attrs.frozen
class ReleaseLock:
    """Give the cluster lock up (this node can no longer lead)."""


@attrs.frozen
class LeaderChanged:
    old: int
    new: int


@attrs.frozen
class NodeDead:
    """A peer has been silent for too long: tear its connections down."""

    pnn: int


@attrs.frozen
class SendKeepalive:
    pnn: int


Effect = BroadcastLeader | SendElection | TryLock | ReleaseLock | LeaderChanged | NodeDead | SendKeepalive
