"""Keepalive/dead-peer rules and the leader's recovery decisions, with a fake clock."""

from __future__ import annotations

import random

from ctdbcore.cluster.effects import NodeDead, SendKeepalive
from ctdbcore.cluster.liveness import KEEPALIVES_PER_INTERVAL, Liveness
from ctdbcore.cluster.recovery import NodeView, new_generation, plan_vnnmap, recovery_reason
from ctdbcore.protocol.constants import INVALID_GENERATION, NodeFlags


def test_silent_peer_is_dead_after_interval_times_limit() -> None:
    lv = Liveness(interval=1.0, limit=2)
    assert lv.connected(1, 0.0) == [SendKeepalive(1)]
    lv.connected(2, 0.0)
    t = 0.0
    dead_at = {}
    while t < 3.0:
        t = round(t + 0.05, 2)
        if t <= 1.0:
            lv.received(2, t)  # node 2 keeps talking for a while, node 1 is silent
        for e in lv.timer(t):
            if isinstance(e, NodeDead):
                dead_at[e.pnn] = t
    assert dead_at[1] == 2.0
    assert dead_at[2] == 3.0


def test_keepalives_are_sent_several_times_per_interval() -> None:
    lv = Liveness(interval=1.0, limit=5)
    lv.connected(1, 0.0)
    sent = 0
    t = 0.0
    while t < 1.0 - 1e-9:
        for e in lv.timer(t):
            sent += isinstance(e, SendKeepalive)
        lv.received(1, t)
        t = lv.next_deadline()
    assert sent == KEEPALIVES_PER_INTERVAL


def test_disconnected_peer_is_not_watched() -> None:
    lv = Liveness(interval=1.0, limit=1)
    lv.connected(1, 0.0)
    lv.disconnected(1)
    assert lv.timer(10.0) == []
    assert lv.next_deadline() is None


def v(pnn, flags=0, gen=7, recmode=0, connected=True):
    return NodeView(pnn, connected, flags, gen, recmode)


def test_no_recovery_when_nothing_changed() -> None:
    views = [v(0), v(1), v(2)]
    assert recovery_reason(views, [0, 1, 2], 7, 0) is None


def test_disable_and_unhealthy_do_not_cause_recovery() -> None:
    views = [v(0), v(1, NodeFlags.PERMANENTLY_DISABLED), v(2, NodeFlags.UNHEALTHY)]
    assert recovery_reason(views, [0, 1, 2], 7, 0) is None


def test_dead_stopped_or_banned_node_causes_recovery_and_leaves_vnnmap() -> None:
    for views in ([v(0), v(1), v(2, connected=False)], [v(0), v(1), v(2, NodeFlags.STOPPED)],
                  [v(0), v(1), v(2, NodeFlags.BANNED)]):
        assert recovery_reason(views, [0, 1, 2], 7, 0) is not None
        assert plan_vnnmap(views, 0) == [0, 1]


def test_node_in_recovery_mode_or_other_generation_causes_recovery() -> None:
    assert "recovery mode" in recovery_reason([v(0), v(1, recmode=1)], [0, 1], 7, 0)
    assert "generation" in recovery_reason([v(0), v(1, gen=8)], [0, 1], 7, 0)
    assert recovery_reason([v(0, gen=INVALID_GENERATION)], [0], INVALID_GENERATION, 0)


def test_new_generation_is_never_invalid_or_repeated() -> None:
    rng = random.Random(1)
    for _ in range(1000):
        g = new_generation(rng, avoid=5)
        assert g not in (INVALID_GENERATION, 0, 5) and 0 <= g < 2**32
