"""Tickle lists without a network: connections registered by local clients (smbd's
TCP_CLIENT) are pushed to the other nodes, and leave the lists as 4.17 has them leave:
when their client goes away on the holder, and when a node takes the address over;
the holder then pushes the new list (SET_TCP_TICKLE_LIST) at the next update."""

from __future__ import annotations

import ipaddress

import anyio

from ctdbcore.config.public_addresses import parse_public_addresses_text
from ctdbcore.daemon.publicips import PublicIPs
from ctdbcore.daemon.tickles import Tickles
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import Opcode

IP = "198.51.100.1"


class FakeDaemon:
    pnn = 1
    test_mode = False

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, bytes]] = []
        self.public_ips = PublicIPs(self, parse_public_addresses_text(f"{IP}/24 nosuch0\n", "pa"))
        self.tickles = Tickles(self)

    def connected_pnns(self) -> list[int]:
        return [0, 2]

    def send_control_noreply(self, pnn: int, opcode: int, data: bytes) -> None:
        self.sent.append((pnn, opcode, data))

    def pushed_lists(self) -> list[tuple[int, T.TickleList]]:
        return [(p, T.TickleList.unpack(d)) for p, op, d in self.sent if op == Opcode.SET_TCP_TICKLE_LIST]


class Client:
    def __init__(self, client_id: int) -> None:
        self.client_id = client_id


def conn(port: int) -> T.Connection:
    return T.Connection(src=T.SockAddr(ip="198.51.100.200", port=port), dst=T.SockAddr(ip=IP, port=445))


def listed(d: FakeDaemon) -> list[int]:
    return sorted(c.src.port for c in d.tickles.list_for(T.SockAddr(ip=IP)).conns)


def test_a_closed_connection_leaves_the_holders_list_and_the_others_learn_it() -> None:
    d = FakeDaemon()
    d.public_ips.find(IP).pnn = d.pnn  # held here
    a, b = Client(7), Client(8)
    d.tickles.client_connection(a, conn(1001))
    d.tickles.client_connection(b, conn(1002))
    assert listed(d) == [1001, 1002]
    assert [(p, op) for p, op, _ in d.sent] == [(0, Opcode.TCP_ADD), (2, Opcode.TCP_ADD)] * 2
    d.tickles.push_updates()
    assert d.pushed_lists() == []  # nothing removed: TCP_ADD told them all
    d.tickles.client_gone(a)  # smbd's process for that SMB connection exited
    assert listed(d) == [1002]
    d.tickles.push_updates()
    assert [(p, [c.src.port for c in tl.conns]) for p, tl in d.pushed_lists()] == [(0, [1002]), (2, [1002])]
    d.sent.clear()
    d.tickles.push_updates()  # only when changed
    assert d.pushed_lists() == []


def test_a_client_gone_after_its_address_moved_away_keeps_the_connection() -> None:
    d = FakeDaemon()
    v = d.public_ips.find(IP)
    v.pnn = d.pnn
    a = Client(7)
    d.tickles.client_connection(a, conn(1001))
    v.pnn = 2  # released to node 2, which tickles the connection
    d.tickles.client_gone(a)
    assert listed(d) == [1001]
    d.tickles.push_updates()
    assert d.pushed_lists() == []  # not ours to announce


def test_taking_an_address_over_tickles_the_known_list_and_starts_afresh(monkeypatch) -> None:
    import ctdbcore.netif.garp as garp
    import ctdbcore.netif.tickle as tickle

    tickled: list[tuple] = []
    monkeypatch.setattr(garp, "send_gratuitous", lambda iface, ip: None)
    monkeypatch.setattr(tickle, "send_tickle_ack", lambda src, dst: tickled.append((src, dst)))
    monkeypatch.setattr("ctdbcore.daemon.tickles.ANNOUNCE_AT", (0.0,))
    d = FakeDaemon()
    d.tickles.add(conn(1001))  # learnt from the old holder (TCP_ADD)
    v = d.public_ips.find(IP)
    v.pnn, v.active_iface = d.pnn, "nosuch0"
    anyio.run(d.tickles.announce, ipaddress.ip_address(IP), "nosuch0")
    assert tickled == [((IP, 445), ("198.51.100.200", 1001))]
    assert listed(d) == []
    d.tickles.push_updates()
    assert [(p, tl.conns) for p, tl in d.pushed_lists()] == [(0, ()), (2, ())]


def test_test_mode_sends_nothing_and_keeps_the_list(monkeypatch) -> None:
    """CTDB_TEST_MODE (4.17: do_checkpublicip off): no gratuitous ARP, no tickle ACK,
    and the tickle list is not moved into an announcement."""
    import ctdbcore.netif.garp as garp
    import ctdbcore.netif.tickle as tickle

    sent: list[tuple] = []
    monkeypatch.setattr(garp, "send_gratuitous", lambda iface, ip: sent.append(("arp", iface, ip)))
    monkeypatch.setattr(tickle, "send_tickle_ack", lambda src, dst: sent.append(("ack", src, dst)))
    monkeypatch.setattr("ctdbcore.daemon.tickles.ANNOUNCE_AT", (0.0,))
    d = FakeDaemon()
    d.test_mode = True
    d.tickles.add(conn(1001))
    v = d.public_ips.find(IP)
    v.pnn, v.active_iface = d.pnn, "nosuch0"
    anyio.run(d.tickles.announce, ipaddress.ip_address(IP), "nosuch0")
    assert sent == []
    assert listed(d) == [1001]


def test_a_connection_to_an_address_held_elsewhere_is_refused() -> None:
    """4.17: TCP_CLIENT for a public address another node holds fails (smbd then drops
    that connection) and nothing is recorded or sent; a non-public address is ignored."""
    d = FakeDaemon()
    d.public_ips.find(IP).pnn = 0  # held by node 0
    assert d.tickles.client_connection(Client(7), conn(1001)) == -1
    assert listed(d) == [] and d.sent == []
    other = T.Connection(src=T.SockAddr(ip="198.51.100.200", port=1), dst=T.SockAddr(ip="192.0.2.9", port=445))
    assert d.tickles.client_connection(Client(7), other) == 0
    assert d.sent == []
    d.public_ips.find(IP).pnn = d.pnn
    assert d.tickles.client_connection(Client(7), conn(1001)) == 0
    assert listed(d) == [1001]
