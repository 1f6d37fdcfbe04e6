"""netif without privileges: packet bytes, output parsing, plugin decisions."""

from __future__ import annotations

import ipaddress
import logging
import subprocess

import attrs
import pytest

from ctdbcore.config.public_addresses import PublicAddress
from ctdbcore.netif import addresses as A
from ctdbcore.netif import plugin, tickle
from ctdbcore.netif.garp import build_arp_frames, build_na_frame
from ctdbcore.plugins import EventContext, make_plugin_manager, plugin_order

MAC = bytes.fromhex("020000000001")


# --- packets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rst", [False, True])
def test_tcp_packet_ipv4_matches_4_17(rst):
    from scapy.layers.inet import IP, TCP

    raw = tickle.build_tcp(("198.51.100.2", 40000), ("198.51.100.100", 445), 0x01020304, 0xA0B0C0D0, rst)
    pkt = IP(raw)
    assert len(raw) == 40
    assert (pkt.src, pkt.dst, pkt.ttl, pkt.proto) == ("198.51.100.100", "198.51.100.2", 255, 6)
    t = pkt[TCP]
    assert (t.sport, t.dport, t.seq, t.ack, t.window, t.dataofs) == (445, 40000, 0x01020304, 0xA0B0C0D0, 1234, 5)
    assert str(t.flags) == ("RA" if rst else "A")
    # checksums are right: scapy recomputes the same values
    again = IP(raw)
    del again.chksum, again[TCP].chksum
    assert IP(bytes(again))[TCP].chksum == t.chksum and IP(bytes(again)).chksum == pkt.chksum


def test_tcp_packet_ipv6_and_mapped_addresses():
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6

    raw = tickle.build_tcp(("2001:db8::2", 40000), ("2001:db8::100", 2049), 0, 0, False)
    pkt = IPv6(raw)
    assert (pkt.src, pkt.dst, pkt.hlim, pkt.nh, pkt.plen) == ("2001:db8::100", "2001:db8::2", 64, 6, 20)
    again = IPv6(raw)
    del again[TCP].chksum
    assert IPv6(bytes(again))[TCP].chksum == pkt[TCP].chksum
    assert (pkt[TCP].seq, pkt[TCP].ack, pkt[TCP].window, str(pkt[TCP].flags)) == (0, 0, 1234, "A")
    # v4-mapped addresses are canonicalised to IPv4
    assert len(tickle.build_tcp(("::ffff:198.51.100.2", 1), ("198.51.100.1", 2), 0, 0, False)) == 40
    with pytest.raises(ValueError):
        tickle.build_tcp(("2001:db8::2", 1), ("198.51.100.1", 2), 0, 0, False)


def test_arp_frames_are_request_then_reply():
    from scapy.layers.l2 import ARP, Ether

    req, rep = build_arp_frames("198.51.100.100", MAC)
    assert len(req) == len(rep) == 64
    r, p = Ether(req), Ether(rep)
    for f in (r, p):
        assert (f.dst, f.src, f.type) == ("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", 0x0806)
        assert f[ARP].psrc == f[ARP].pdst == "198.51.100.100"
        assert f[ARP].hwsrc == "02:00:00:00:00:01"
    assert (r[ARP].op, r[ARP].hwdst) == (1, "00:00:00:00:00:00")
    assert (p[ARP].op, p[ARP].hwdst) == (2, "02:00:00:00:00:01")


def test_neighbour_advertisement_frame():
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import Ether

    raw = build_na_frame("2001:db8::100", MAC)
    assert len(raw) == 86
    f = Ether(raw)
    assert (f.dst, f[IPv6].dst, f[IPv6].src, f[IPv6].hlim) == ("33:33:00:00:00:01", "ff02::1", "2001:db8::100", 255)
    na = f[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (0, 0, 1, "2001:db8::100")
    assert f[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:01"


def test_parse_frame_reads_what_killtcp_needs():
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    f = Ether() / IP(src="198.51.100.2", dst="198.51.100.100") / TCP(sport=1, dport=2, seq=7, ack=9, flags="A", window=500)
    seg = tickle.parse_frame(bytes(f))
    assert seg == tickle.CapturedSegment(
        (ipaddress.ip_address("198.51.100.2"), 1), (ipaddress.ip_address("198.51.100.100"), 2), 7, 9, False, 500
    )
    f6 = Ether() / IPv6(src="2001:db8::2", dst="2001:db8::1") / TCP(flags="R", seq=3)
    assert tickle.parse_frame(bytes(f6)).rst is True
    assert tickle.parse_frame(bytes(Ether() / IP() / UDP())) is None
    assert tickle.parse_frame(b"short") is None


def test_kill_nothing_opens_nothing():
    assert tickle.kill_connections([], "nosuch0") == 0


# --- command output ----------------------------------------------------------------------------


def test_run_errors_carry_stderr():
    with pytest.raises(A.NetifError) as err:
        A.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert (err.value.returncode, err.value.stderr) == (3, "oops")
    assert "oops" in str(err.value)
    with pytest.raises(A.NetifError, match="not found"):
        A.run(["/nonexistent/ip"])
    with pytest.raises(A.NetifError, match="timed out"):
        A.run(["sleep", "5"], timeout=0.1)


def _fake_run(stdout: str):
    def run(argv, *, timeout=A.COMMAND_TIMEOUT, check=True):
        return subprocess.CompletedProcess(argv, 0, stdout, "")

    return run


def test_connections_for_ip_parses_ss(monkeypatch):
    out = (
        "0      0      198.51.100.100:445     198.51.100.2:40000\n"
        "0      0      [::ffff:198.51.100.100]:2049 [::ffff:198.51.100.3]:700\n"
        "0      0      [2001:db8::100]:445    [2001:db8::2]:51000\n"
    )
    monkeypatch.setattr(tickle, "run", _fake_run(out))
    conns = tickle.connections_for_ip("198.51.100.100")
    assert conns == [
        tickle.TcpConnection(("198.51.100.100", 445), ("198.51.100.2", 40000)),
        tickle.TcpConnection(("198.51.100.100", 2049), ("198.51.100.3", 700)),
        tickle.TcpConnection(("2001:db8::100", 445), ("2001:db8::2", 51000)),
    ]


def test_list_addresses_parses_ip_json(monkeypatch):
    out = """[{"ifname":"eth0","flags":["UP","LOWER_UP"],"addr_info":[
      {"family":"inet","local":"198.51.100.1","prefixlen":24},
      {"family":"inet","local":"198.51.100.100","prefixlen":24,"secondary":true},
      {"family":"inet6","local":"2001:db8::100","prefixlen":64,"tentative":true}]}]"""
    monkeypatch.setattr(A, "run", _fake_run(out))
    got = A.list_addresses("eth0")
    assert [(str(a.ip), a.prefixlen, a.secondary, a.tentative) for a in got] == [
        ("198.51.100.1", 24, False, False),
        ("198.51.100.100", 24, True, False),
        ("2001:db8::100", 64, False, True),
    ]
    assert A.link_state("eth0") is True


BOND_OK = """Bonding Mode: fault-tolerance (active-backup)
Currently Active Slave: eth1
MII Status: up
MII Polling Interval (ms): 100

Slave Interface: eth1
MII Status: up
"""


def test_bond_checks_like_4_17():
    assert A._bond_problem(BOND_OK, "bond0") is None
    assert "No active slaves" in A._bond_problem(BOND_OK.replace("Active Slave: eth1", "Active Slave: None"), "bond0")
    assert "is down" in A._bond_problem(BOND_OK.replace("MII Status: up", "MII Status: down"), "bond0")
    lacp = BOND_OK.replace("fault-tolerance (active-backup)", "IEEE 802.3ad Dynamic link aggregation")
    assert A._bond_problem(lacp, "bond0") is None
    assert "802.ad" in A._bond_problem(lacp.replace("Interface: eth1\nMII Status: up", "Interface: eth1\nMII Status: down"), "bond0")


# --- plugin ---------------------------------------------------------------------------------------


@attrs.frozen
class FakeConfig:
    public_addresses: tuple


def ctx_for(*ifaces_per_ip, event="monitor"):
    pas = tuple(
        PublicAddress(ip=ipaddress.ip_address(f"198.51.100.{100 + i}"), prefixlen=24, ifaces=tuple(ifaces))
        for i, ifaces in enumerate(ifaces_per_ip)
    )
    return EventContext(pnn=0, event=event, config=FakeConfig(pas), logger=logging.getLogger("test.netif"))


def test_plugin_registers_with_order_10():
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register_checked(plugin, "interface")
    assert plugin_order(plugin) == 10
    for name in ("ctdb_takeip", "ctdb_releaseip", "ctdb_updateip", "ctdb_monitor", "ctdb_init", "ctdb_shutdown"):
        assert any(impl.plugin is plugin for impl in getattr(pm.hook, name).get_hookimpls())


def test_plugin_does_nothing_without_public_addresses(monkeypatch):
    monkeypatch.setattr(A, "interface_problem", lambda iface: pytest.fail("must not be called"))
    ctx = EventContext(pnn=0, event="monitor", config=FakeConfig(()))
    assert plugin.ctdb_monitor(ctx=ctx) is None
    assert plugin.ctdb_monitor(ctx=EventContext(pnn=0, event="monitor")) is None


@pytest.mark.parametrize(
    ("down", "partial", "expect"),
    [
        (set(), "", None),
        ({"eth1"}, "", "ERROR: eth1 down"),
        ({"eth1"}, "yes", None),
        ({"eth0", "eth1"}, "yes", "ERROR: eth0 down\nERROR: eth1 down"),
    ],
)
def test_plugin_monitor_policy(monkeypatch, down, partial, expect):
    monkeypatch.setattr(A, "interface_problem", lambda iface: f"ERROR: {iface} down" if iface in down else None)
    ctx = attrs.evolve(ctx_for(("eth0",), ("eth1", "eth0")),
                       settings=plugin.Settings(partially_online_interfaces=partial == "yes"))
    assert plugin.ctdb_monitor(ctx=ctx) == expect


def test_kill_tcp_connections_pairs_like_4_17(monkeypatch):
    conns = [
        tickle.TcpConnection(("198.51.100.100", 445), ("198.51.100.2", 40000)),
        tickle.TcpConnection(("198.51.100.100", 2049), ("198.51.100.3", 700)),
    ]
    calls = []
    state = {"n": 0}

    def fake_conns(ip):
        state["n"] += 1
        return conns if state["n"] == 1 else conns[1:]

    monkeypatch.setattr(plugin, "connections_for_ip", fake_conns)
    monkeypatch.setattr(plugin, "kill_connections", lambda pairs, iface, timeout: calls.append((pairs, iface)) or 2)
    text = plugin.kill_tcp_connections(ctx_for(("eth0",)), "eth0", "198.51.100.100")
    (pairs, iface), = calls
    assert iface == "eth0"
    assert pairs == [
        (("198.51.100.100", 445), ("198.51.100.2", 40000)),  # SMB: local side only
        (("198.51.100.100", 2049), ("198.51.100.3", 700)),
        (("198.51.100.3", 700), ("198.51.100.100", 2049)),
    ]
    assert text.splitlines() == [
        "Killed 1/2 TCP connections to released IP 198.51.100.100",
        "Remaining connections:",
        "  198.51.100.100:2049 198.51.100.3:700",
    ]


def test_plugin_in_test_mode_touches_nothing(monkeypatch):
    """CTDB_TEST_MODE: the hooks succeed without one call into the system (4.17's local
    daemons: no address added, removed or checked, no ARP, no killtcp)."""
    def forbidden(*a, **k):
        pytest.fail("test mode must not touch the system")

    for name in ("add_ip", "del_ip", "drop_ip", "ip_maskbits_iface", "block_ip", "unblock_ip",
                 "flush_route_cache", "interface_problem"):
        monkeypatch.setattr(A, name, forbidden)
    for name in ("send_gratuitous", "connections_for_ip", "kill_connections", "send_tickle_ack"):
        monkeypatch.setattr(plugin, name, forbidden)
    ctx = attrs.evolve(ctx_for(("lo",), ("lo",)), test_mode=True)
    ip = "198.51.100.100"
    assert plugin.ctdb_init(ctx=ctx) is None
    assert plugin.ctdb_startup(ctx=ctx) is None
    assert plugin.ctdb_monitor(ctx=ctx) is None
    assert plugin.ctdb_takeip(ctx=ctx, iface="lo", ip=ip, maskbits=24) is None
    assert plugin.ctdb_updateip(ctx=ctx, old_iface="lo", new_iface="lo", ip=ip, maskbits=24) is None
    assert plugin.ctdb_releaseip(ctx=ctx, iface="lo", ip=ip, maskbits=24) is None
    assert plugin.ctdb_shutdown(ctx=ctx) is None
