"""11.natgw for real in a namespace cluster: the leader has the MASQUERADE rule, the
REJECT rule and the NAT gateway address, the followers route through the leader's
private address; when the leader is disabled, the role moves and the old leader's
setup is undone."""

from __future__ import annotations

import shutil

import pytest

from tests.cluster.helpers import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.netns,
    pytest.mark.skipif(shutil.which("iptables") is None, reason="needs iptables (apt-get install iptables)"),
]

PUBLIC_IP = "198.51.100.50"


def nat_rules(lc, pnn: int) -> str:
    return lc.run(pnn, "iptables", "-t", "nat", "-S", "POSTROUTING", timeout=10).stdout


def is_leader(lc, pnn: int) -> bool:
    return ("-A POSTROUTING -s 192.0.2.0/24 ! -d 192.0.2.0/24 -j MASQUERADE" in nat_rules(lc, pnn)
            and f"{PUBLIC_IP}/24" in lc.run(pnn, "ip", "addr", "show", "dev", "eth1", timeout=10).stdout
            and f"-d {PUBLIC_IP}/32 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j REJECT"
            in lc.run(pnn, "iptables", "-S", "INPUT", timeout=10).stdout)


def routes_via(lc, pnn: int, gw: str) -> bool:
    return f"default via {gw} dev eth0 metric 10" in lc.run(pnn, "ip", "route", "show", timeout=10).stdout


def test_natgw_roles_in_namespaces(local_cluster, tmp_path) -> None:
    group = tmp_path / "natgw_nodes"
    group.write_text("192.0.2.1\n192.0.2.2\n192.0.2.3 follower-only\n")
    conf = (("natgw", "nodes", str(group)), ("natgw", "public ip", f"{PUBLIC_IP}/24"),
            ("natgw", "public iface", "eth1"), ("natgw", "private network", "192.0.2.0/24"),
            ("natgw", "default gateway", "198.51.100.200"))
    lc = local_cluster(n=3, public_ips=0, enable=("natgw",), plugin_conf=conf)
    lc.wait_ok(timeout=60)
    wait_for(lambda: is_leader(lc, 0) and routes_via(lc, 1, "192.0.2.1") and routes_via(lc, 2, "192.0.2.1"),
             timeout=30, what="node 0 NAT gateway, 1 and 2 routing through it")
    assert "default via 198.51.100.200 dev eth1 metric 10" in lc.run(0, "ip", "route", "show").stdout
    assert lc.run(0, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert "MASQUERADE" not in nat_rules(lc, 1) and "MASQUERADE" not in nat_rules(lc, 2)
    # what our ctdb natgw says agrees
    assert lc.run(2, "ctdb", "natgw", "leader").stdout == "0 192.0.2.1\n"

    lc.run(0, "ctdb", "disable")
    wait_for(lambda: is_leader(lc, 1) and routes_via(lc, 0, "192.0.2.2") and routes_via(lc, 2, "192.0.2.2"),
             timeout=30, what="node 1 NAT gateway after node 0 is disabled")
    assert "MASQUERADE" not in nat_rules(lc, 0)
    assert PUBLIC_IP not in lc.run(0, "ip", "addr", "show", "dev", "eth1").stdout
