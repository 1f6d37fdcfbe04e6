"""91.lvs as a plugin: the decisions and the exact ipvsadm/ip commands of each event
and role with a recording runner (this kernel has no IPVS)."""

from __future__ import annotations

import ipaddress
import sys
import types

import pytest

from ctdbcore.builtin import common, lvs
from ctdbcore.plugins import service

NODESTATUS = (sys.executable, "-m", "ctdbcore.tools.ctdb", "-X", "nodestatus", "all")
X_HEADER = "|Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|PartiallyOnline|ThisNode|\n"


def x_table(*rows: tuple[int, str, str]) -> str:
    out = [X_HEADER]
    for pnn, ip, f in rows:
        d, u = ("d" in f), ("u" in f)
        out.append(f"|{pnn}|{ip}|{int(d)}|0|0|0|{int(u)}|0|{int(d)}|0|N|\n")
    return "".join(out)


@pytest.fixture
def env(tmp_path, monkeypatch):
    proc = tmp_path / "proc"
    for sub in ("sys/net/ipv4/conf/all", "sys/net/ipv4/route", "sys/net/ipv6/route"):
        (proc / sub).mkdir(parents=True)
    for f in ("sys/net/ipv4/conf/all/arp_ignore", "sys/net/ipv4/conf/all/arp_announce",
              "sys/net/ipv4/route/flush", "sys/net/ipv6/route/flush"):
        (proc / f).write_text("0\n")
    monkeypatch.setattr(common, "PROC_DIR", str(proc))
    monkeypatch.setattr(service, "missing_program", lambda p, pkg: None)
    killed, garps = [], []
    monkeypatch.setattr(lvs, "kill_tcp_connections", lambda ctx, iface, ip, oneway=False: killed.append((iface, ip, oneway)) or "")
    monkeypatch.setattr(lvs, "send_gratuitous", lambda iface, ip: garps.append((iface, ip)))
    nodes = tmp_path / "lvs_nodes"
    nodes.write_text("10.0.0.1\n10.0.0.2\n10.0.0.3 follower-only\n")
    return types.SimpleNamespace(proc=proc, killed=killed, garps=garps, nodes=nodes)


@pytest.fixture
def make(plugin_harness, env):
    def build(pnn: int = 0, table: str | None = None, **settings):
        base = {"nodes": str(env.nodes), "public_ip": "192.168.1.99", "public_iface": "eth1", **settings}
        config = types.SimpleNamespace(
            nodes=[types.SimpleNamespace(pnn=p, address=ipaddress.ip_address(f"10.0.0.{p + 1}")) for p in range(3)])
        h = plugin_harness(lvs, "lvs", settings=base, config=config, pnn=pnn)
        h.runner.respond(NODESTATUS, stdout=table or x_table((0, "10.0.0.1", ""), (1, "10.0.0.2", ""),
                                                              (2, "10.0.0.3", "")))
        return h

    return build


def cmds(h) -> list[str]:
    return [" ".join(c) for c in h.runner.calls if c[0] in ("ip", "ipvsadm")]


def test_leader_sets_up_the_virtual_service(make, env) -> None:
    h = make(pnn=0)
    assert h.output("ipreallocated") == (0, "")
    assert cmds(h) == [
        "ipvsadm -D -t 192.168.1.99",
        "ipvsadm -D -u 192.168.1.99",
        "ip addr del 192.168.1.99/32 dev lo",
        "ip addr add 192.168.1.99/32 dev lo",
        "ipvsadm -A -t 192.168.1.99 -p 1999999 -s lc",
        "ipvsadm -A -u 192.168.1.99 -p 1999999 -s lc",
        # every other usable node, follower-only ones too
        "ipvsadm -a -t 192.168.1.99 -r 10.0.0.2 -g",
        "ipvsadm -a -u 192.168.1.99 -r 10.0.0.2 -g",
        "ipvsadm -a -t 192.168.1.99 -r 10.0.0.3 -g",
        "ipvsadm -a -u 192.168.1.99 -r 10.0.0.3 -g",
        "ipvsadm -a -t 192.168.1.99 -r 127.0.0.1",
        "ipvsadm -a -u 192.168.1.99 -r 127.0.0.1",
    ]
    assert env.killed == [("eth1", "192.168.1.99", True)]
    assert env.garps == [("eth1", "192.168.1.99")]
    assert (env.proc / "sys/net/ipv4/route/flush").read_text() == "1\n"


def test_unhealthy_nodes_are_left_out_while_healthy_ones_exist(make) -> None:
    h = make(pnn=0, table=x_table((0, "10.0.0.1", ""), (1, "10.0.0.2", "u"), (2, "10.0.0.3", "")))
    h.run("ipreallocated")
    reals = [c for c in cmds(h) if " -r " in c and "127.0.0.1" not in c]
    assert reals == ["ipvsadm -a -t 192.168.1.99 -r 10.0.0.3 -g", "ipvsadm -a -u 192.168.1.99 -r 10.0.0.3 -g"]


def test_non_leader_keeps_the_address_with_scope_host(make, env) -> None:
    h = make(pnn=1)
    assert h.output("ipreallocated") == (0, "")
    assert cmds(h) == [
        "ipvsadm -D -t 192.168.1.99",
        "ipvsadm -D -u 192.168.1.99",
        "ip addr del 192.168.1.99/32 dev lo",
        "ip addr add 192.168.1.99/32 dev lo scope host",
    ]
    assert env.garps == []


def test_leader_moves_when_the_first_node_is_unhealthy(make) -> None:
    table = x_table((0, "10.0.0.1", "u"), (1, "10.0.0.2", ""), (2, "10.0.0.3", ""))
    h1 = make(pnn=1, table=table)
    h1.run("ipreallocated")
    assert "ipvsadm -A -t 192.168.1.99 -p 1999999 -s lc" in cmds(h1)
    h0 = make(pnn=0, table=table)
    h0.run("ipreallocated")
    assert not any(c.startswith("ipvsadm -A") for c in cmds(h0))


def test_no_usable_leader_means_scope_host(make) -> None:
    h = make(pnn=0, table=x_table((0, "10.0.0.1", "d"), (1, "10.0.0.2", "d"), (2, "10.0.0.3", "")))
    assert h.output("ipreallocated") == (0, "")
    assert cmds(h)[-1] == "ip addr add 192.168.1.99/32 dev lo scope host"


def test_startup_and_shutdown(make, env) -> None:
    h = make(pnn=2, public_iface="")
    assert h.output("startup") == (0, "")
    assert cmds(h) == ["ipvsadm -D -t 192.168.1.99", "ipvsadm -D -u 192.168.1.99",
                       "ip addr add 192.168.1.99/32 dev lo scope host"]
    assert (env.proc / "sys/net/ipv4/conf/all/arp_ignore").read_text() == "3\n"
    assert (env.proc / "sys/net/ipv4/conf/all/arp_announce").read_text() == "2\n"
    h.runner.clear()
    assert h.output("shutdown") == (0, "")
    assert cmds(h) == ["ipvsadm -D -t 192.168.1.99", "ipvsadm -D -u 192.168.1.99",
                       "ip addr del 192.168.1.99/32 dev lo"]


@pytest.mark.parametrize(("settings", "pnn", "message"), [
    ({"public_ip": ""}, 2, "Invalid configuration: CTDB_LVS_PUBLIC_IP not set"),
    ({"public_iface": ""}, 0, "Invalid configuration: CTDB_LVS_PUBLIC_IFACE not set"),
    ({"nodes": "/no/such"}, 0, "error: CTDB_LVS_NODES=/no/such unreadable"),
])
def test_config_checks(make, settings, pnn, message) -> None:
    h = make(pnn=pnn, **settings)
    for event in ("setup", "startup", "ipreallocated", "shutdown", "monitor"):
        assert h.output(event) == (1, message)


def test_without_ipvsadm_every_event_succeeds_doing_nothing(make, monkeypatch, caplog) -> None:
    monkeypatch.setattr(service, "missing_program", lambda p, pkg: f"ERROR: {p} is not installed")
    h = make(pnn=0, public_ip="")
    caplog.set_level("WARNING", logger="ctdb.plugins")
    for event in ("setup", "startup", "ipreallocated", "shutdown", "monitor"):
        assert h.output(event) == (0, "")
    assert h.runner.calls == []
    assert "LVS configured but ipvsadm not found" in caplog.text


def test_nothing_without_lvs_nodes(plugin_harness) -> None:
    h = plugin_harness(lvs, "lvs")
    for event in ("setup", "startup", "ipreallocated", "shutdown", "monitor"):
        assert h.output(event) == (0, "")
    assert h.runner.calls == []


def test_monitor_checks_the_interface(make, monkeypatch) -> None:
    monkeypatch.setattr(lvs, "interface_problem", lambda i: f"ERROR: Monitored interface {i} does not exist")
    assert make(pnn=0).output("monitor") == (1, "ERROR: Monitored interface eth1 does not exist")
    monkeypatch.setattr(lvs, "interface_problem", lambda i: None)
    assert make(pnn=0).output("monitor") == (0, "")
