"""Record traffic for a peer whose connection is not up yet: a restarted node is in the
cluster (the leader sees it) a moment before its connection to each peer is up; a call
sent to a peer then must wait for the connection, not be lost (no recovery follows to
resend it). A peer that dies takes what waited for it along (the recovery resends)."""

from __future__ import annotations

import ipaddress

from ctdbcore.config.nodes import NodeEntry
from ctdbcore.config.tunables import Tunables
from ctdbcore.daemon.node import Daemon
from ctdbcore.protocol import packets as P


class FakeTransport:
    def __init__(self) -> None:
        self.up: set[int] = set()
        self.sent: list[tuple[int, object]] = []

    def send(self, pnn: int, data: bytes) -> bool:
        if pnn not in self.up:
            return False
        self.sent.append((pnn, P.unpack(data)))
        return True

    def is_connected(self, pnn: int) -> bool:
        return pnn in self.up


class FakeTransportPlugin:
    @staticmethod
    def create(**_kw) -> FakeTransport:
        return FakeTransport()


def daemon(tmp_path) -> tuple[Daemon, FakeTransport]:
    d = Daemon(pnn=0, nodes=[NodeEntry(i, ipaddress.ip_address(f"127.0.0.{90 + i}"), False) for i in range(3)],
               tunables=Tunables(), socket_path=str(tmp_path / "sock"), cluster_lock=None, leader_timeout=2,
               transport_plugin=FakeTransportPlugin)
    return d, d.transport


def call(reqid: int) -> P.ReqCall:
    return P.ReqCall(reqid=reqid, flags=0, db_id=1, callid=0, hopcount=0, key=b"k", calldata=b"")


def test_a_call_to_a_peer_not_yet_connected_goes_out_when_it_connects(tmp_path) -> None:
    d, t = daemon(tmp_path)
    assert not d.send_node(2, call(7))
    assert not d.send_node(2, P.ReqDmaster(db_id=1, rsn=3, dmaster=1, key=b"k", data=b"v", record_flags=0, reqid=8))
    assert t.sent == []
    t.up.add(2)
    d.peer_connected(2)
    got = [(p, type(pkt).__name__, pkt.reqid) for p, pkt in t.sent if isinstance(pkt, (P.ReqCall, P.ReqDmaster))]
    assert got == [(2, "ReqCall", 7), (2, "ReqDmaster", 8)]
    t.sent.clear()
    d.peer_connected(2)  # sent once only
    assert [pkt for _, pkt in t.sent if isinstance(pkt, P.ReqCall)] == []


def test_a_dead_peer_takes_its_waiting_calls_along(tmp_path) -> None:
    d, t = daemon(tmp_path)
    d.send_node(2, call(7))
    d.peer_lost(2, "connection closed")
    t.up.add(2)
    d.peer_connected(2)
    assert [pkt for _, pkt in t.sent if isinstance(pkt, P.ReqCall)] == []


def test_other_traffic_to_a_peer_not_connected_is_not_kept(tmp_path) -> None:
    d, t = daemon(tmp_path)
    d.send_node(2, P.ReqMessage(srvid=5, data=b"x"))
    t.up.add(2)
    d.peer_connected(2)
    assert [pkt for _, pkt in t.sent if isinstance(pkt, P.ReqMessage)] == []
