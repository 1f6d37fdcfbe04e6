"""Pure formatting and parsing of the public-IP commands (ctdbcore.tools.ctdb_format,
ctdbcore.tools.ctdb_ip), ported from samba-4.17.12 ctdb/tests/UNIT/tool/*.sh (file named
per test) and 4.17's ctdb/tools/ctdb.c / ctdb/protocol/protocol_util.c where no .sh
covers a case.

The .sh files' fake daemon (tests/src/fake_ctdbd.c) answers GET_PUBLIC_IP_INFO with every
interface of its IFACES block and active_idx 0; the inputs below are built the same way.
"""

from __future__ import annotations

import errno

import pytest

from ctdbcore.protocol.constants import UNKNOWN_PNN
from ctdbcore.protocol.types import (
    Connection,
    Iface,
    IfaceList,
    PublicIp,
    PublicIpInfo,
    SockAddr,
    TickleList,
)
from ctdbcore.tools import ctdb_format as fmt
from ctdbcore.tools import ctdb_ip

# IFACES block shared by the .sh files: ":eth2:1:2:" and ":eth1:1:4:"
IFACES = (Iface(name="eth2", link_state=1, references=2), Iface(name="eth1", link_state=1, references=4))


def pip(addr: str, pnn: int) -> PublicIp:
    return PublicIp(pnn=pnn & 0xFFFFFFFF, addr=SockAddr.parse(addr))


def info(ip: PublicIp) -> PublicIpInfo:
    return PublicIpInfo(ip=ip, active_idx=0, ifaces=IFACES)


def show(ips, *, all_nodes, verbose=False, machine=False, sep="|", cmd_pnn=0):
    """control_ip: sort, then ipinfo per IP (none for unassigned with ``all``)."""
    ips = fmt.sort_public_ips(ips)
    infos = [None if all_nodes and ip.pnn == UNKNOWN_PNN else info(ip) for ip in ips]
    return fmt.format_ip(ips, infos, cmd_pnn=cmd_pnn, all_nodes=all_nodes,
                         machine=machine, verbose=verbose, sep=sep)


# ctdb.ip.001.sh, ctdb.ip.002.sh
def test_ip_001_002_no_ips():
    assert show([], all_nodes=False) == "Public IPs on node 0\n"
    assert show([], all_nodes=True) == "Public IPs on ALL nodes\n"


# ctdb.ip.003.sh
def test_ip_003():
    ips = [pip("10.0.0.31", 0), pip("10.0.0.32", 1), pip("10.0.0.33", 2)]
    assert show(ips, all_nodes=False) == (
        "Public IPs on node 0\n10.0.0.31 0\n10.0.0.32 1\n10.0.0.33 2\n")


# ctdb.ip.004.sh, ctdb.ip.005.sh: 10.0.0.33 (owner 2) is known on nodes 1 and 2 only
def test_ip_004_005_merge():
    n0 = [pip("10.0.0.31", 0), pip("10.0.0.32", 1)]
    n12 = n0 + [pip("10.0.0.33", 2)]
    assert show(n0, all_nodes=False) == "Public IPs on node 0\n10.0.0.31 0\n10.0.0.32 1\n"
    merged = fmt.merge_public_ips([(0, n0), (1, n12), (2, n12)])
    assert show(merged, all_nodes=True) == (
        "Public IPs on ALL nodes\n10.0.0.31 0\n10.0.0.32 1\n10.0.0.33 2\n")


def test_merge_owner_only_when_claimed():
    # 4.17 get_all_public_ips: what node 0 believes about node 1 counts for nothing
    # until node 1 claims the IP; an IP nobody claims is unassigned.
    a, b = pip("10.0.0.1", 1), pip("10.0.0.2", 2)
    merged = fmt.merge_public_ips([(0, [a, b]), (1, [a, pip("10.0.0.2", 0)])])
    assert sorted((str(i.addr), i.pnn) for i in merged) == [
        ("10.0.0.1", 1), ("10.0.0.2", UNKNOWN_PNN)]


# ctdb.ip.006.sh
def test_ip_006_verbose():
    ips = [pip("10.0.0.31", 0), pip("10.0.0.32", -1), pip("10.0.0.33", 2)]
    assert show(ips, all_nodes=True, verbose=True) == (
        "Public IPs on ALL nodes\n"
        "10.0.0.31 node[0] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
        "10.0.0.32 node[-1] active[] available[] configured[]\n"
        "10.0.0.33 node[2] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
    )


IP007 = [pip("10.0.0.31", 0), pip("fd00::5357:5f01", 2), pip("10.0.0.32", -1),
         pip("fd00::5357:5f02", 1), pip("10.0.0.33", 2), pip("fd00::5357:5f03", 0)]


# ctdb.ip.007.sh (IPv4 before IPv6, then address bytes)
def test_ip_007_ipv6_sorted():
    assert show(IP007, all_nodes=True, verbose=True) == (
        "Public IPs on ALL nodes\n"
        "10.0.0.31 node[0] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
        "10.0.0.32 node[-1] active[] available[] configured[]\n"
        "10.0.0.33 node[2] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
        "fd00::5357:5f01 node[2] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
        "fd00::5357:5f02 node[1] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
        "fd00::5357:5f03 node[0] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
    )


# print_ip -X / -X -v / -Y -x: (ctdb.c; checked against Debian's /usr/bin/ctdb 4.17.12)
def test_ip_machine():
    assert show(IP007[:3], all_nodes=True, machine=True) == (
        "|Public IP|Node|\n|10.0.0.31|0|\n|10.0.0.32|-1|\n|fd00::5357:5f01|2|\n")
    assert show(IP007[:3], all_nodes=True, machine=True, verbose=True) == (
        "|Public IP|Node|ActiveInterfaces|AvailableInterfaces|ConfiguredInterfaces|\n"
        "|10.0.0.31|0|eth2|eth2,eth1|eth2,eth1|\n"
        "|10.0.0.32|-1||||\n"
        "|fd00::5357:5f01|2|eth2|eth2,eth1|eth2,eth1|\n"
    )
    assert show(IP007[:1], all_nodes=False, machine=True, sep=":") == (
        ":Public IP:Node:\n:10.0.0.31:0:\n")


def test_ip_verbose_link_down_and_active_idx():
    down = PublicIpInfo(ip=pip("10.0.0.31", 1), active_idx=1,
                        ifaces=(IFACES[0], Iface(name="eth1", link_state=0, references=4)))
    out = fmt.format_ip([down.ip], [down], cmd_pnn=0, all_nodes=False, verbose=True)
    assert out.splitlines()[1] == (
        "10.0.0.31 node[1] active[eth1] available[eth2] configured[eth2,eth1]")


def test_sort_order_family_bytes_port():
    addrs = ["fd00::1", "10.0.0.10", "10.0.0.9", "::1", "192.168.0.1", "1.2.3.4"]
    got = [str(i.addr) for i in fmt.sort_public_ips([pip(a, 0) for a in addrs])]
    assert got == ["1.2.3.4", "10.0.0.9", "10.0.0.10", "192.168.0.1", "::1", "fd00::1"]
    # ports compare as the network-order u16 read as a little-endian integer
    keys = sorted([SockAddr.parse("10.0.0.1", 256), SockAddr.parse("10.0.0.1", 1)],
                  key=fmt.sock_addr_key)
    assert [k.port for k in keys] == [256, 1]


# ctdb.ipinfo.002.sh
def test_ipinfo_002():
    assert fmt.format_ipinfo(info(pip("10.0.0.32", 1)), 0) == (
        "Public IP[10.0.0.32] info on node 0\n"
        "IP:10.0.0.32\n"
        "CurrentNode:1\n"
        "NumInterfaces:2\n"
        "Interface[1]: Name:eth2 Link:up References:2 (active)\n"
        "Interface[2]: Name:eth1 Link:up References:4\n"
    )


# ctdb.ipinfo.003.sh
def test_ipinfo_003_ipv6():
    out = fmt.format_ipinfo(info(pip("fd00::5357:5f02", 1)), 0)
    assert out.splitlines()[:3] == [
        "Public IP[fd00::5357:5f02] info on node 0", "IP:fd00::5357:5f02", "CurrentNode:1"]


def test_ipinfo_unassigned_is_unsigned():
    # "CurrentNode:%u": an unassigned IP shows 4294967295 (Debian /usr/bin/ctdb 4.17.12)
    assert "CurrentNode:4294967295\n" in fmt.format_ipinfo(info(pip("10.0.0.32", -1)), 0)


# ctdb.ifaces.001.sh; ctdb.setifacelink.001.sh (link down); -X per control_ifaces
def test_ifaces_001():
    assert fmt.format_ifaces(IfaceList(ifaces=IFACES), 0) == (
        "Interfaces on node 0\n"
        "name:eth2 link:up references:2\n"
        "name:eth1 link:up references:4\n"
    )
    down = IfaceList(ifaces=(IFACES[0], Iface(name="eth1", link_state=0, references=4)))
    assert fmt.format_ifaces(down, 0).splitlines()[2] == "name:eth1 link:down references:4"
    assert fmt.format_ifaces(down, 0, machine=True) == (
        "|Name|LinkStatus|References|\n|eth2|1|2|\n|eth1|0|4|\n")
    assert fmt.format_ifaces(IfaceList(ifaces=()), 2) == "No interfaces configured on node 2\n"


# control_gettickles (4.17's "Destiation" header)
def test_gettickles_format():
    c4 = Connection(src=SockAddr.parse("192.168.1.5", 4000), dst=SockAddr.parse("10.0.0.31", 445))
    c6 = Connection(src=SockAddr.parse("fd00::9", 5000), dst=SockAddr.parse("fd00::1", 2049))
    t4 = TickleList(addr=SockAddr.parse("10.0.0.31"), conns=(c4,))
    assert fmt.format_tickles(t4) == (
        "Connections for IP: 10.0.0.31\nNum connections: 1\n"
        "SRC: 192.168.1.5:4000   DST: 10.0.0.31:445\n")
    assert fmt.format_tickles(t4, machine=True) == (
        "|Source IP|Port|Destiation IP|Port|\n|192.168.1.5|4000|10.0.0.31|445|\n")
    t6 = TickleList(addr=SockAddr.parse("fd00::1", 2049), conns=(c6,))
    assert fmt.format_tickles(t6).splitlines()[2] == "SRC: [fd00::9]:5000   DST: [fd00::1]:2049"
    empty = TickleList(addr=SockAddr.parse("10.0.0.31"))
    assert fmt.format_tickles(empty) == "Connections for IP: 10.0.0.31\nNum connections: 0\n"
    assert fmt.format_tickles(empty, machine=True) == "|Source IP|Port|Destiation IP|Port|\n"


def test_sock_addr_to_string_is_inet_ntop():
    # glibc inet_ntop, not Python's ipaddress spelling
    assert fmt.sock_addr_to_string(SockAddr.parse("::1.2.3.4")) == "::1.2.3.4"
    assert fmt.sock_addr_to_string(SockAddr.parse("fd00::1", 80), True) == "[fd00::1]:80"


def test_json_views():
    ips = fmt.sort_public_ips(IP007[:3])
    infos = [info(ips[0]), None, info(ips[2])]
    obj = fmt.ip_json(ips, infos, cmd_pnn=0, all_nodes=True)
    assert obj["node"] is None and obj["all"] is True
    assert obj["ips"][1] == {"address": "10.0.0.32", "pnn": None, "active": None,
                             "available": [], "configured": []}
    assert obj["ips"][0]["configured"] == ["eth2", "eth1"]
    assert fmt.ip_json(ips, None, cmd_pnn=0, all_nodes=False)["ips"][0] == {
        "address": "10.0.0.31", "pnn": 0}
    assert fmt.ipinfo_json(info(ips[0]), 0)["interfaces"][0] == {
        "name": "eth2", "link_up": True, "references": 2, "active": True}


# -- parsers: 4.17 protocol_util.c and lib/util/smb_strtox.c ------------------------------


@pytest.mark.parametrize("text, want", [
    ("10.0.0.1", ("10.0.0.1", 0)),
    ("fd00::1", ("fd00::1", 0)),
    ("[fd00::1]", ("fd00::1", 0)),
    ("::ffff:10.1.2.3", ("10.1.2.3", 0)),
    ("::ffff:a01:203", None),        # reparsed as IPv4 from after the last ':'
    ("010.0.0.1", None),             # inet_pton: no leading zeros
    ("10.0.0.1/24", None),
    ("fe80::1%eth0", None),
    ("", None),
])
def test_parse_sock_addr(text, want):
    got = ctdb_ip.parse_sock_addr(text)
    assert (None if got is None else (str(got.ip), got.port)) == want


@pytest.mark.parametrize("text, want", [
    ("10.0.0.1:80", ("10.0.0.1", 80)),
    ("[fd00::1]:2049", ("fd00::1", 2049)),
    ("fd00::1:80", ("fd00::1", 80)),  # the last ':' is the port separator
    ("10.0.0.1:65537", ("10.0.0.1", 1)),  # htons() truncation
    ("10.0.0.1: 80", ("10.0.0.1", 80)),  # strtoul skips blanks
    ("10.0.0.1", None),
    ("10.0.0.1:", None),
    ("10.0.0.1:80x", None),
    ("10.0.0.1:-1", None),
])
def test_parse_sock_addr_with_port(text, want):
    got = ctdb_ip.parse_sock_addr(text, True)
    assert (None if got is None else (str(got.ip), got.port)) == want


def test_parse_addr_mask():
    addr, mask = ctdb_ip.parse_addr_mask("10.0.0.40/24")
    assert (str(addr), mask) == ("10.0.0.40", 24)
    assert ctdb_ip.parse_addr_mask("fd00::40/64")[1] == 64
    assert ctdb_ip.parse_addr_mask("10.0.0.40/999")[1] == 999  # not range-checked
    for bad in ("10.0.0.40", "10.0.0.40/", "10.0.0.40/2x", "bad/24"):
        assert ctdb_ip.parse_addr_mask(bad) is None


def test_parse_connection_list():
    text = "192.168.1.7:1 10.0.0.31:445\n#c\n\n192.168.1.8:2\t10.0.0.31:445 extra\nlast 1:2"
    conns, err = ctdb_ip.parse_connection_list(text)
    assert err == 0 and [(c.src.port, str(c.dst)) for c in conns] == [
        (1, "10.0.0.31"), (2, "10.0.0.31")]  # the unterminated last line is not read
    assert ctdb_ip.parse_connection_list("garbage\n")[1] == errno.EINVAL
    assert ctdb_ip.parse_connection_list("10.0.0.1:1 [fd00::1]:2\n")[1] == errno.EINVAL


@pytest.mark.parametrize("text, full, want", [
    ("12", False, (12, 0)), ("12x", False, (12, 0)), ("12x", True, (12, errno.EINVAL)),
    (" +7", False, (7, 0)), ("", False, (0, errno.EINVAL)), ("x", False, (0, errno.EINVAL)),
    ("-1", False, (2**64 - 1, errno.EINVAL)), ("99999999999999999999", False,
                                               (2**64 - 1, errno.ERANGE)),
])
def test_c_strtoul(text, full, want):
    assert ctdb_ip.c_strtoul(text, 10, full=full) == want
