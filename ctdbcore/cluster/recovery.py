"""When the leader must run a recovery, and what the new vnnmap is. No I/O.

4.17's leader polls every node each second and starts a recovery on a long list of
mismatches; it also recovers whenever any node is found in recovery mode. We check
the same facts, but only the ones that mean the set of active nodes or the
database generation really differs, so a flag change that does not alter who is
active (disable, enable, unhealthy) never causes a recovery storm.
"""

from __future__ import annotations

import random

import attrs

from ctdbcore.protocol.constants import INACTIVE, INVALID_GENERATION, Capability, RecMode


@attrs.frozen
class NodeView:
    """What the leader knows about one node (from that node's own answers)."""

    pnn: int
    connected: bool
    flags: int  # the node's own flags, as it reports them
    generation: int
    recmode: int
    capabilities: int = Capability.RECMASTER | Capability.LMASTER

    @property
    def active(self) -> bool:
        return self.connected and not (self.flags & INACTIVE)


def active_nodes(views: list[NodeView]) -> list[int]:
    return sorted(v.pnn for v in views if v.active)


def plan_vnnmap(views: list[NodeView], leader: int) -> list[int]:
    """Active LMASTER-capable nodes in pnn order; the leader alone if none (4.17)."""
    lmasters = [v.pnn for v in sorted(views, key=lambda v: v.pnn) if v.active and v.capabilities & Capability.LMASTER]
    return lmasters or [leader]


def recovery_reason(views: list[NodeView], vnnmap: list[int], generation: int, leader: int) -> str | None:
    """Why a recovery is needed now, or None."""
    if generation == INVALID_GENERATION:
        return "generation is invalid"
    wanted = plan_vnnmap(views, leader)
    if sorted(vnnmap) != wanted:
        return f"vnnmap {sorted(vnnmap)} differs from active lmasters {wanted}"
    for v in views:
        if not v.active:
            continue
        if v.recmode != RecMode.NORMAL:
            return f"node {v.pnn} is in recovery mode"
        if v.generation != generation:
            return f"node {v.pnn} has generation {v.generation}, leader has {generation}"
    return None


def new_generation(rng: random.Random | None = None, avoid: int | None = None) -> int:
    """A random u32 that is neither INVALID_GENERATION nor the current one."""
    rng = rng or random.SystemRandom()
    while True:
        g = rng.getrandbits(32)
        if g not in (INVALID_GENERATION, 0, avoid):
            return g
