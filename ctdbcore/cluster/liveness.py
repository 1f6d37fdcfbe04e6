"""Keepalives and dead-peer detection, without I/O.

4.17 counts whole KeepaliveInterval ticks without traffic and declares a peer dead
after KeepaliveLimit of them (25 s by default). We keep both tunables and their
meaning — a peer is dead after KeepaliveInterval x KeepaliveLimit seconds of silence —
but measure the silence continuously instead of on ticks, and send a keepalive
KEEPALIVES_PER_INTERVAL times per interval so that one late keepalive never kills a
healthy peer. A reset connection does not wait for any of this: the transport
reports it and the node is dead at once.
"""

from __future__ import annotations

import attrs

from ctdbcore.cluster.effects import Effect, NodeDead, SendKeepalive

KEEPALIVES_PER_INTERVAL = 5


@attrs.define
class Liveness:
    interval: float
    limit: int
    #: pnn -> time of the last packet received, for connected peers only
    last_rx: dict[int, float] = attrs.field(factory=dict)
    _next_send: float | None = None

    @property
    def dead_after(self) -> float:
        return self.interval * max(self.limit, 1)

    @property
    def send_period(self) -> float:
        return self.interval / KEEPALIVES_PER_INTERVAL

    def connected(self, pnn: int, now: float) -> list[Effect]:
        self.last_rx[pnn] = now
        if self._next_send is None:
            self._next_send = now
        # Greet at once: the peer's silence clock starts now too.
        return [SendKeepalive(pnn)]

    def disconnected(self, pnn: int) -> None:
        self.last_rx.pop(pnn, None)
        if not self.last_rx:
            self._next_send = None

    def received(self, pnn: int, now: float) -> None:
        if pnn in self.last_rx:
            self.last_rx[pnn] = now

    def timer(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        for pnn, seen in list(self.last_rx.items()):
            if now - seen >= self.dead_after:
                del self.last_rx[pnn]
                out.append(NodeDead(pnn))
        if self._next_send is not None and now >= self._next_send:
            out += [SendKeepalive(pnn) for pnn in sorted(self.last_rx)]
            self._next_send = now + self.send_period if self.last_rx else None
        return out

    def next_deadline(self) -> float | None:
        times = [seen + self.dead_after for seen in self.last_rx.values()]
        if self._next_send is not None:
            times.append(self._next_send)
        return min(times) if times else None
