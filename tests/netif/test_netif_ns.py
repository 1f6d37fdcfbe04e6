"""netif against real kernels: addresses, gratuitous ARP/NA, tickles and killtcp in namespaces."""

from __future__ import annotations

import ipaddress
import json
import logging
import select
import socket
import time

import attrs
import pytest

from ctdbcore.config.public_addresses import PublicAddress
from ctdbcore.netif import addresses as A
from ctdbcore.netif import plugin
from ctdbcore.netif.garp import send_gratuitous
from ctdbcore.netif.tickle import kill_connections, open_capture, parse_frame, send_tickle_ack
from ctdbcore.plugins import EventContext

pytestmark = pytest.mark.netns

V4 = {"server": "198.51.100.1", "client": "198.51.100.2", "other": "198.51.100.3", "public": "198.51.100.100", "bits": 24}
V6 = {"server": "2001:db8::1", "client": "2001:db8::2", "other": "2001:db8::3", "public": "2001:db8::100", "bits": 64}
PORT = 4000


def addrs(lan, host: int, dev: str = "eth0") -> set[str]:
    out = json.loads(lan.ip(host, "-j", "addr", "show", "dev", dev).stdout)
    return {f"{a['local']}/{a['prefixlen']}" for link in out for a in link.get("addr_info", ())}


def mac(lan, host: int, dev: str = "eth0") -> str:
    return json.loads(lan.ip(host, "-j", "link", "show", "dev", dev).stdout)[0]["address"]


def plumb(lan, net: dict) -> None:
    """Static (non-public) addresses: server on host 0, client on host 1, other on host 2."""
    extra = ["nodad"] if ":" in net["server"] else []
    for host, role in ((0, "server"), (1, "client"), (2, "other")):
        lan.ip(host, "addr", "add", f"{net[role]}/{net['bits']}", "dev", "eth0", *extra)


# --- addresses ----------------------------------------------------------------------------------


def test_add_and_delete_ipv4_and_ipv6(lan):
    with lan.ns(0):
        assert set(A.list_ifaces()) >= {"lo", "eth0"}
        assert A.link_state("eth0") is True
        A.add_ip("eth0", "198.51.100.10", 24)
        A.add_ip("eth0", "2001:db8::10", 64)
        assert {"198.51.100.10/24", "2001:db8::10/64"} <= addrs(lan, 0)
        assert A.has_ip("198.51.100.10") == "eth0"
        assert A.has_ip("2001:db8::10") == "eth0"
        assert A.ip_maskbits_iface("2001:db8::10") == (64, "eth0")
        v6 = A.find_ip("2001:db8::10")
        assert v6 is not None and not v6.tentative  # nodad: usable at once
        brd = json.loads(lan.ip(0, "-j", "-4", "addr", "show", "dev", "eth0").stdout)[0]["addr_info"][0]
        assert brd.get("broadcast") == "198.51.100.255"  # brd +
        with pytest.raises(A.NetifError) as err:
            A.add_ip("eth0", "198.51.100.10", 24)
        assert err.value.stderr and err.value.returncode
        A.del_ip("eth0", "198.51.100.10", 24)
        A.del_ip("eth0", "2001:db8::10", 64)
        assert not {"198.51.100.10/24", "2001:db8::10/64"} & addrs(lan, 0)
        assert A.has_ip("198.51.100.10") is None
        with pytest.raises(A.NetifError) as err:
            A.del_ip("eth0", "198.51.100.10", 24)
        assert "Cannot assign" in err.value.stderr or err.value.stderr
    # nothing leaked into the test process's own namespace
    assert A.has_ip("198.51.100.10") is None


def test_ipv6_dad_wait_like_4_17(lan):
    with lan.ns(0):
        lan.ip(0, "link", "set", "eth0", "up")
        t0 = time.monotonic()
        A.add_ip("eth0", "2001:db8::20", 64, nodad=False)
        assert time.monotonic() - t0 < 6
        found = A.find_ip("2001:db8::20")
        assert found is not None and not found.tentative


def test_deleting_primary_keeps_secondaries(lan):
    with lan.ns(0):
        # Without promote_secondaries the kernel drops the secondaries with the primary ...
        lan.second_iface(0, "d0")
        with open("/proc/sys/net/ipv4/conf/d0/promote_secondaries", "w") as fh:
            fh.write("0\n")
        for a in ("203.0.113.1/24", "203.0.113.2/24"):
            lan.ip(0, "addr", "add", a, "dev", "d0")
        lan.ip(0, "addr", "del", "203.0.113.1/24", "dev", "d0")
        assert not {a for a in addrs(lan, 0, "d0") if a.startswith("203.")}
        # ... del_ip sets it first, as 4.17's delete_ip_from_iface does.
        for a in ("198.51.100.10", "198.51.100.11", "198.51.100.12"):
            A.add_ip("eth0", a, 24)
        before = {a.ip: a.secondary for a in A.list_addresses("eth0") if a.ip.version == 4}
        assert before[ipaddress.ip_address("198.51.100.10")] is False
        A.del_ip("eth0", "198.51.100.10", 24)
        assert {"198.51.100.11/24", "198.51.100.12/24"} <= addrs(lan, 0)
        assert "198.51.100.10/24" not in addrs(lan, 0)
        with open("/proc/sys/net/ipv4/conf/eth0/promote_secondaries") as fh:
            assert fh.read().strip() == "1"
        promoted = [a for a in A.list_addresses("eth0") if a.ip.version == 4 and not a.secondary]
        assert len(promoted) == 1


def test_interface_problem_reports_missing_and_unplugged(lan):
    with lan.ns(0):
        assert A.interface_problem("eth0") is None
        assert A.interface_problem("lo") is None
        assert "does not exist" in A.interface_problem("nosuch0")
        lan.unplug(0)
        assert A.link_state("eth0") is False
        assert A.interface_problem("eth0") == "ERROR: No link on the public network interface eth0"


# --- gratuitous ARP / NA -------------------------------------------------------------------------


def _capture(lan, host: int, ethertype: int) -> socket.socket:
    with lan.ns(host):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
        s.bind(("eth0", ethertype))
    s.settimeout(0.2)
    return s


def _frames(s: socket.socket, want: int, timeout: float = 3.0) -> list[bytes]:
    out: list[bytes] = []
    end = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < end:
        try:
            out.append(s.recv(2048))
        except TimeoutError:
            pass
    return out


def _neigh_mac(lan, host: int, ip: str) -> str | None:
    entries = json.loads(lan.ip(host, "-j", "neigh", "show", ip).stdout or "[]")
    return entries[0].get("lladdr") if entries else None


def test_gratuitous_arp_is_seen_and_updates_neighbours(lan):
    from scapy.layers.l2 import ARP, Ether

    plumb(lan, V4)
    pub = V4["public"]
    # The address lives on host 2 first; the client learns host 2's MAC for it.
    lan.ip(2, "addr", "add", f"{pub}/24", "dev", "eth0")
    lan.ip(1, "neigh", "replace", pub, "lladdr", mac(lan, 2), "dev", "eth0", "nud", "stale")
    assert _neigh_mac(lan, 1, pub) == mac(lan, 2)
    lan.ip(2, "addr", "del", f"{pub}/24", "dev", "eth0")
    cap = _capture(lan, 2, 0x0806)
    try:
        with lan.ns(0):
            A.add_ip("eth0", pub, 24)
            assert send_gratuitous("eth0", pub) is True
        frames = [Ether(f) for f in _frames(cap, 2)]
    finally:
        cap.close()
    own = mac(lan, 0)
    arps = [f[ARP] for f in frames if ARP in f and f[ARP].psrc == pub]
    assert [a.op for a in arps] == [1, 2]
    for f in frames:
        assert f.dst == "ff:ff:ff:ff:ff:ff" and f.src == own
    req, rep = arps
    assert (req.hwsrc, req.pdst, req.hwdst) == (own, pub, "00:00:00:00:00:00")
    assert (rep.hwsrc, rep.pdst, rep.hwdst) == (own, pub, own)
    # The client's stale entry now points at host 0 (retry past the neighbour locktime).
    for _ in range(4):
        if _neigh_mac(lan, 1, pub) == own:
            break
        time.sleep(1.1)
        with lan.ns(0):
            send_gratuitous("eth0", pub)
    assert _neigh_mac(lan, 1, pub) == own


def test_unsolicited_neighbour_advertisement(lan):
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import Ether

    plumb(lan, V6)
    pub = V6["public"]
    lan.ip(1, "neigh", "replace", pub, "lladdr", mac(lan, 2), "dev", "eth0", "nud", "stale")
    cap = _capture(lan, 2, 0x86DD)
    try:
        with lan.ns(0):
            A.add_ip("eth0", pub, 64)
            send_gratuitous("eth0", pub)
        deadline = time.monotonic() + 3
        na = None
        while na is None and time.monotonic() < deadline:
            for raw in _frames(cap, 1, 0.5):
                f = Ether(raw)
                if ICMPv6ND_NA in f and f[ICMPv6ND_NA].tgt == pub:
                    na = f
    finally:
        cap.close()
    assert na is not None
    own = mac(lan, 0)
    assert (na.dst, na.src) == ("33:33:00:00:00:01", own)
    assert (na[IPv6].src, na[IPv6].dst, na[IPv6].hlim) == (pub, "ff02::1", 255)
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (0, 0, 1)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == own
    for _ in range(4):
        if _neigh_mac(lan, 1, pub) == own:
            break
        time.sleep(1.1)
        with lan.ns(0):
            send_gratuitous("eth0", pub)
    assert _neigh_mac(lan, 1, pub) == own


def test_gratuitous_on_loopback_is_skipped(lan):
    with lan.ns(0):
        assert send_gratuitous("lo", "127.0.0.1") is False
        with pytest.raises(A.NetifError):
            send_gratuitous("nosuch0", "198.51.100.9")


# --- TCP: tickles and killtcp --------------------------------------------------------------------


@attrs.define
class Conn:
    listener: socket.socket
    client: socket.socket
    server: socket.socket
    client_ep: tuple[str, int]
    server_ep: tuple[str, int]

    def close(self) -> None:
        for s in (self.listener, self.client, self.server):
            s.close()


def connect(lan, net: dict) -> Conn:
    fam = socket.AF_INET6 if ":" in net["public"] else socket.AF_INET
    with lan.ns(0):
        listener = socket.socket(fam, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((net["public"], PORT))
        listener.listen(4)
    with lan.ns(1):
        client = socket.socket(fam, socket.SOCK_STREAM)
        client.settimeout(5)
        client.connect((net["public"], PORT))
    listener.settimeout(5)
    server, _ = listener.accept()
    server.settimeout(5)
    # move the sequence numbers away from anything trivial
    client.sendall(b"hello" * 100)
    assert server.recv(1000)
    server.sendall(b"world" * 50)
    assert client.recv(1000)
    cep = client.getsockname()[:2]
    return Conn(listener, client, server, (cep[0], cep[1]), (net["public"], PORT))


def assert_reset(sock: socket.socket, within: float = 2.0) -> None:
    sock.settimeout(within)
    t0 = time.monotonic()
    with pytest.raises(ConnectionResetError):
        sock.recv(100)
    assert time.monotonic() - t0 < within


@pytest.mark.parametrize("net", [V4, V6], ids=["ipv4", "ipv6"])
def test_tickle_ack_makes_the_client_answer(lan, net):
    plumb(lan, net)
    with lan.ns(0):
        A.add_ip("eth0", net["public"], net["bits"])
    conn = connect(lan, net)
    try:
        with lan.ns(0):
            cap = open_capture("eth0")
            try:
                send_tickle_ack(conn.server_ep, conn.client_ep)
                seen = None
                end = time.monotonic() + 2
                while seen is None and time.monotonic() < end:
                    select.select([cap], [], [], 0.2)
                    while True:
                        try:
                            seg = parse_frame(cap.recv(256))
                        except BlockingIOError:
                            break
                        if seg and (str(seg.src[0]), seg.src[1]) == conn.client_ep and seg.window != 1234:
                            seen = seg
            finally:
                cap.close()
        assert seen is not None, "the client did not answer the tickle"
        assert seen.seq != 0 and seen.ack != 0 and not seen.rst
        # the connection is unharmed
        conn.client.sendall(b"x")
        assert conn.server.recv(10) == b"x"
    finally:
        conn.close()


@pytest.mark.parametrize("net", [V4, V6], ids=["ipv4", "ipv6"])
def test_kill_resets_the_client_after_the_address_is_gone(lan, net):
    plumb(lan, net)
    with lan.ns(0):
        A.add_ip("eth0", net["public"], net["bits"])
    conn = connect(lan, net)
    try:
        with lan.ns(0):
            A.del_ip("eth0", net["public"], net["bits"])
            t0 = time.monotonic()
            killed = kill_connections([(conn.client_ep, conn.server_ep)], "eth0", timeout=5)
            assert time.monotonic() - t0 < 3
        assert killed == 1
        assert_reset(conn.client, 1.0)
    finally:
        conn.close()


def test_kill_gives_up_within_its_timeout(lan):
    plumb(lan, V4)
    with lan.ns(0):
        t0 = time.monotonic()
        # nobody has this address: no answer at all, bounded time
        assert kill_connections([(("198.51.100.77", 5555), ("198.51.100.1", 6666))], "eth0", timeout=0.5) == 0
        assert time.monotonic() - t0 < 1.5
        # a host that forgot the connection answers with an RST (seq = 0, window 0): as in
        # ctdb_killtcp that answer is taken and counted, the connection is gone either way
        assert kill_connections([(("198.51.100.2", 5555), ("198.51.100.1", 6666))], "eth0", timeout=2) == 1


# --- the plugin ----------------------------------------------------------------------------------


@attrs.frozen
class FakeConfig:
    public_addresses: tuple


def make_ctx(tmp_path, event: str, net: dict, ifaces=("eth0",)) -> EventContext:
    pa = PublicAddress(ip=ipaddress.ip_address(net["public"]), prefixlen=net["bits"], ifaces=tuple(ifaces))
    return EventContext(pnn=0, event=event, config=FakeConfig((pa,)), logger=logging.getLogger("test.netif"), rundir=tmp_path)


@pytest.mark.parametrize("net", [V4, V6], ids=["ipv4", "ipv6"])
def test_plugin_takeip_releaseip(lan, tmp_path, net, caplog):
    plumb(lan, net)
    ip, bits = net["public"], net["bits"]
    with lan.ns(0):
        assert plugin.ctdb_takeip(ctx=make_ctx(tmp_path, "takeip", net), iface="eth0", ip=ip, maskbits=bits) is None
    assert f"{ip}/{bits}" in addrs(lan, 0)
    conn = connect(lan, net)
    try:
        caplog.set_level(logging.INFO, logger="test.netif")
        with lan.ns(0):
            t0 = time.monotonic()
            assert plugin.ctdb_releaseip(ctx=make_ctx(tmp_path, "releaseip", net), iface="eth0", ip=ip, maskbits=bits) is None
            assert time.monotonic() - t0 < 4
        assert f"{ip}/{bits}" not in addrs(lan, 0)
        assert f"{net['server']}/{bits}" in addrs(lan, 0)
        # both ends reset, as 4.17 does for ports other than 139/445
        assert_reset(conn.client, 1.0)
        assert_reset(conn.server, 1.0)
        assert f"Killed 1/1 TCP connections to released IP {ip}" in caplog.text
    finally:
        conn.close()
    with lan.ns(0):
        out = plugin.ctdb_releaseip(ctx=make_ctx(tmp_path, "releaseip", net), iface="eth0", ip=ip, maskbits=bits)
    assert out == f"ERROR: Unable to determine interface for IP {ip}"


def test_plugin_updateip_moves_the_address(lan, tmp_path):
    plumb(lan, V4)
    lan.second_iface(0, "d0")
    ctx = make_ctx(tmp_path, "takeip", V4, ifaces=("eth0", "d0"))
    with lan.ns(0):
        assert plugin.ctdb_takeip(ctx=ctx, iface="eth0", ip=V4["public"], maskbits=24) is None
        assert plugin.ctdb_updateip(ctx=ctx, old_iface="eth0", new_iface="d0", ip=V4["public"], maskbits=24) is None
        assert A.has_ip(V4["public"]) == "d0"
        # redundant
        assert plugin.ctdb_updateip(ctx=ctx, old_iface="eth0", new_iface="d0", ip=V4["public"], maskbits=24) is None
        assert A.has_ip(V4["public"]) == "d0"


def test_plugin_monitor_reports_a_downed_interface(lan, tmp_path, monkeypatch):
    ctx = make_ctx(tmp_path, "monitor", V4)
    with lan.ns(0):
        assert plugin.ctdb_monitor(ctx=ctx) is None
        lan.unplug(0)
        out = plugin.ctdb_monitor(ctx=ctx)
    assert out == "ERROR: No link on the public network interface eth0"
    lan.second_iface(0, "d0")
    ctx2 = make_ctx(tmp_path, "monitor", V4, ifaces=("eth0", "d0"))
    with lan.ns(0):
        assert "eth0" in plugin.ctdb_monitor(ctx=ctx2)
        # CTDB_PARTIALLY_ONLINE_INTERFACES=yes reaches the plugin as its setting
        partial = attrs.evolve(ctx2, settings=plugin.Settings(partially_online_interfaces=True))
        assert plugin.ctdb_monitor(ctx=partial) is None
