"""11.natgw as a plugin: configuration checks, the exact ip/iptables commands of each
role, the saved state (nothing changes when neither the configuration nor the leader
did), shutdown and monitor, with a recording runner."""

from __future__ import annotations

import ipaddress
import sys
import types

import pytest

from ctdbcore.builtin import common, natgw

X_HEADER = "|Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|PartiallyOnline|ThisNode|\n"


def x_table(*rows: tuple[int, str, str]) -> str:
    """rows of (pnn, ip, flags) with flags a string of letters: d(isconnected) u(nhealthy) s(topped)."""
    out = [X_HEADER]
    for pnn, ip, f in rows:
        d, u, s = ("d" in f), ("u" in f), ("s" in f)
        out.append(f"|{pnn}|{ip}|{int(d)}|0|0|0|{int(u)}|{int(s)}|{int(d or s)}|0|N|\n")
    return "".join(out)


NODESTATUS = (sys.executable, "-m", "ctdbcore.tools.ctdb", "-X", "nodestatus", "all")


@pytest.fixture
def proc(tmp_path, monkeypatch):
    d = tmp_path / "proc"
    for sub in ("sys/net/ipv4/conf/all", "sys/net/ipv4/conf/eth1", "sys/net/ipv4/route"):
        (d / sub).mkdir(parents=True)
    monkeypatch.setattr(common, "PROC_DIR", str(d))
    return d


@pytest.fixture
def make(plugin_harness, tmp_path, proc):
    nodes_file = tmp_path / "natgw_nodes"
    nodes_file.write_text("10.0.0.1\n10.0.0.2\n10.0.0.3 follower-only\n")
    pub = tmp_path / "public_addresses"
    pub.write_text("192.168.1.50/24 eth1\n")

    def build(pnn: int = 0, **settings):
        base = {"nodes": str(nodes_file), "public_ip": "192.168.1.10/24", "public_iface": "eth1",
                "private_network": "10.0.0.0/24", "default_gateway": "192.168.1.1"}
        base.update(settings)
        config = types.SimpleNamespace(
            nodes=[types.SimpleNamespace(pnn=p, address=ipaddress.ip_address(f"10.0.0.{p + 1}")) for p in range(3)],
            paths=types.SimpleNamespace(public_addresses=str(pub)))
        h = plugin_harness(natgw, "natgw", settings={k: v for k, v in base.items() if v is not None},
                           config=config, pnn=pnn)
        h.runner.respond(NODESTATUS, stdout=x_table((0, "10.0.0.1", ""), (1, "10.0.0.2", ""), (2, "10.0.0.3", "")))
        return h

    build.nodes_file = nodes_file
    build.pub = pub
    return build


def commands(h) -> list[str]:
    return [" ".join(c) for c in h.runner.calls if c[0] in ("ip", "iptables")]


LEADER_SETUP = [
    # clear first (no saved state: the current configuration)
    "ip addr del 192.168.1.10/24 dev eth1",
    "ip route del 0.0.0.0/0 metric 10",
    "iptables -D POSTROUTING -t nat -s 10.0.0.0/24 ! -d 10.0.0.0/24 -j MASQUERADE",
    "iptables -D INPUT -p tcp --syn -d 192.168.1.10/32 -j REJECT",
    # then lead
    "iptables -A POSTROUTING -t nat -s 10.0.0.0/24 ! -d 10.0.0.0/24 -j MASQUERADE",
    "iptables -D INPUT -p tcp --syn -d 192.168.1.10/32 -j REJECT",
    "iptables -I INPUT -p tcp --syn -d 192.168.1.10/32 -j REJECT",
    "ip addr add 192.168.1.10/24 dev eth1",
    "ip route add 0.0.0.0/0 metric 10 via 192.168.1.1",
]


def test_nothing_without_natgw_nodes(plugin_harness) -> None:
    h = plugin_harness(natgw, "natgw")
    for event in ("setup", "startup", "ipreallocated", "monitor", "shutdown"):
        assert h.output(event) == (0, "")
    assert h.runner.calls == []


def test_leader_commands(make, proc) -> None:
    h = make(pnn=0)
    assert h.output("ipreallocated") == (0, "")
    assert commands(h) == LEADER_SETUP
    assert (proc / "sys/net/ipv4/ip_forward").read_text() == "1\n"
    assert (proc / "sys/net/ipv4/route/flush").read_text() == "1\n"
    assert (proc / "sys/net/ipv4/conf/eth1/promote_secondaries").read_text() == "1\n"


def test_follower_commands(make) -> None:
    h = make(pnn=1, static_routes="10.9.0.0/16@192.168.1.254 0.0.0.0/0")
    assert h.output("ipreallocated") == (0, "")
    assert commands(h) == [
        "ip addr del 192.168.1.10/24 dev eth1",
        "ip route del 10.9.0.0/16 metric 10",
        "ip route del 0.0.0.0/0 metric 10",
        "iptables -D POSTROUTING -t nat -s 10.0.0.0/24 ! -d 10.0.0.0/24 -j MASQUERADE",
        "iptables -D INPUT -p tcp --syn -d 192.168.1.10/32 -j REJECT",
        "ip route add 10.9.0.0/16 via 10.0.0.1 metric 10",
        "ip route add 0.0.0.0/0 via 10.0.0.1 metric 10",
    ]


def test_leader_static_routes_use_their_own_gateway_or_the_default(make) -> None:
    h = make(pnn=0, static_routes="10.9.0.0/16@192.168.1.254 10.8.0.0/16", default_gateway="")
    h.run("ipreallocated")
    adds = [c for c in commands(h) if c.startswith("ip route add")]
    # no default gateway: the route without its own gateway is skipped
    assert adds == ["ip route add 10.9.0.0/16 metric 10 via 192.168.1.254"]


def test_nothing_changes_when_config_and_leader_stay(make) -> None:
    h = make(pnn=1)
    h.run("ipreallocated")
    h.runner.clear()
    assert h.output("ipreallocated") == (0, "")
    assert commands(h) == []
    assert h.runner.calls == [NODESTATUS]


def test_a_new_leader_moves_the_routes(make) -> None:
    h = make(pnn=2)
    h.run("ipreallocated")
    h.runner.clear()
    h.runner.respond(NODESTATUS, stdout=x_table((0, "10.0.0.1", "u"), (1, "10.0.0.2", ""), (2, "10.0.0.3", "")))
    h.run("ipreallocated")
    assert commands(h)[-1] == "ip route add 0.0.0.0/0 via 10.0.0.2 metric 10"
    assert (h.plugin_ctx.state_dir / "leader_old").read_text() == "1\n"


def test_a_config_change_clears_the_old_setup(make) -> None:
    h = make(pnn=0)
    h.run("ipreallocated")
    h2 = make(pnn=0, public_ip="192.168.1.20/24")
    h2.runner.clear()
    h2.run("ipreallocated")
    cmds = commands(h2)
    assert cmds[0] == "ip addr del 192.168.1.10/24 dev eth1"  # the old address
    assert "ip addr add 192.168.1.20/24 dev eth1" in cmds


def test_no_leader_fails(make) -> None:
    h = make(pnn=1)
    h.runner.respond(NODESTATUS, stdout=x_table((0, "10.0.0.1", "d"), (1, "10.0.0.2", "d"), (2, "10.0.0.3", "")))
    assert h.output("ipreallocated") == (1, "There is no NATGW leader node")
    h.runner.respond(NODESTATUS, returncode=1, stdout="")
    assert h.output("ipreallocated") == (1, "There is no NATGW leader node")


def test_shutdown_clears_what_was_set_up(make) -> None:
    h = make(pnn=0)
    h.run("ipreallocated")
    h.runner.clear()
    assert h.output("shutdown") == (0, "")
    assert commands(h) == LEADER_SETUP[:4]


@pytest.mark.parametrize(("settings", "pnn", "message"), [
    ({"public_ip": ""}, 0, "Invalid configuration: CTDB_NATGW_PUBLIC_IP not set"),
    ({"public_iface": ""}, 0, "Invalid configuration: CTDB_NATGW_PUBLIC_IFACE not set"),
    ({"private_network": ""}, 2, "Invalid configuration: CTDB_NATGW_PRIVATE_NETWORK not set"),
    ({"nodes": "/no/such/file"}, 0, "error: CTDB_NATGW_NODES=/no/such/file unreadable"),
])
def test_config_checks(make, settings, pnn, message) -> None:
    h = make(pnn=pnn, **settings)
    for event in ("setup", "startup", "ipreallocated", "monitor", "shutdown"):
        assert h.output(event) == (1, message)


def test_follower_only_node_needs_no_public_address(make) -> None:
    h = make(pnn=2, public_ip="", public_iface="")
    assert h.output("setup") == (0, "")


def test_startup_refuses_a_public_address_and_sets_arp_announce(make, proc) -> None:
    h = make(pnn=0, public_ip="192.168.1.50/24")
    assert h.output("startup") == (1, "ERROR: CTDB_NATGW_PUBLIC_IP same as a public address")
    h = make(pnn=0)
    h.run("startup")
    assert (proc / "sys/net/ipv4/conf/all/arp_announce").read_text() == "2\n"


def test_startup_of_a_possible_leader_needs_iptables(make, monkeypatch) -> None:
    from ctdbcore.plugins import service

    monkeypatch.setattr(service, "missing_program", lambda p, pkg: f"ERROR: {p} is not installed (apt-get install {pkg})")
    assert make(pnn=0).output("startup") == (1, "ERROR: iptables is not installed (apt-get install iptables)")
    assert make(pnn=2, public_ip="", public_iface="").output("startup") == (0, "")


def test_monitor_checks_the_public_interface(make, monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(natgw, "interface_problem", lambda iface: seen.append(iface) or None)
    h = make(pnn=0)
    assert h.output("monitor") == (0, "")
    monkeypatch.setattr(natgw, "interface_problem", lambda iface: f"ERROR: No link on the public network interface {iface}")
    assert h.output("monitor") == (1, "ERROR: No link on the public network interface eth1")
    assert seen == ["eth1"]


def test_saved_config_is_4_17s_format(make) -> None:
    h = make(pnn=0)
    h.run("ipreallocated")
    text = (h.plugin_ctx.state_dir / "cfg_old").read_text()
    assert text.splitlines() == [
        f'CTDB_NATGW_NODES="{make.nodes_file}"',
        'CTDB_NATGW_PUBLIC_IP="192.168.1.10/24"',
        'CTDB_NATGW_PUBLIC_IFACE="eth1"',
        'CTDB_NATGW_DEFAULT_GATEWAY="192.168.1.1"',
        'CTDB_NATGW_PRIVATE_NETWORK="10.0.0.0/24"',
        'CTDB_NATGW_STATIC_ROUTES="0.0.0.0/0"',
    ]
    assert natgw.NatgwConfig.from_text(text).public_ip == "192.168.1.10/24"
