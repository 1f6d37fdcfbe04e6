"""The public-IP commands end to end against the fake daemon (tests/unit/client/
fake_ctdbd.py, which models 4.17's tests/src/fake_ctdbd.c for public IPs).

Expectations come from samba-4.17.12 ctdb/tests/UNIT/tool/*.sh (file named per test) and
ctdb/tools/ctdb.c; where Debian's /usr/bin/ctdb (4.17.12) is installed, ``test_real_*``
run it against a twin fake and require identical stdout, stderr, exit code and the same
controls and messages on the wire.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys

import pytest

from ctdbcore.protocol import packets, types
from ctdbcore.protocol.constants import (
    BROADCAST_CONNECTED,
    CURRENT_NODE,
    PUBLIC_IP_FLAGS_ONLY_AVAILABLE,
    Opcode,
    Srvid,
)
from ctdbcore.tools.ctdb import Tool
from fake_ctdbd import FakeCtdbd

BLOCK = """
0       192.168.20.41   0x0     CURRENT RECMASTER
1       192.168.20.42   0x0
2       192.168.20.43   0x0
"""
# ctdb.ip.003.sh
IPS_003 = """
10.0.0.31  0
10.0.0.32  1
10.0.0.33  2
"""
# ctdb.ip.004.sh / ctdb.ip.005.sh
IPS_004 = """
10.0.0.31  0 0,1,2
10.0.0.32  1 0,1,2
10.0.0.33  2 1,2
"""
# ctdb.ip.007.sh
IPS_007 = """
10.0.0.31  0
fd00::5357:5f01 2
10.0.0.32  -1
fd00::5357:5f02 1
10.0.0.33  2
fd00::5357:5f03 0
"""
USAGE_HEAD = "Usage: [-?YXv] [-?|--help] [--usage] [-d|--debug=STRING]\n"


@pytest.fixture
def ipd(run_ctdb, monkeypatch):
    """run_ctdb with public IPs: ``ipd.start(ips_block)``; stdin via ``ipd.stdin``."""
    monkeypatch.setattr(Tool, "retry_interval", 0.0)

    fakes = []

    def start(ips: str | None = IPS_007, block: str = BLOCK) -> FakeCtdbd:
        d = run_ctdb.start(block)
        if ips is not None:
            d.set_public_ips(ips)
        fakes.append(d)
        return d

    def run(*argv: str) -> tuple[int, str, str]:
        result = run_ctdb(*argv)
        for d in fakes:
            d.wait_idle()  # messages sent just before exit are in d.received
        return result

    def stdin(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))

    run.start_ips = start  # type: ignore[attr-defined]
    run.stdin = stdin  # type: ignore[attr-defined]
    return run


# ctdb.ip.001.sh, ctdb.ip.002.sh
def test_ip_001_002(ipd):
    ipd.start_ips(None)
    assert ipd("ip") == (0, "Public IPs on node 0\n", "")
    assert ipd("ip", "all") == (0, "Public IPs on ALL nodes\n", "")


# ctdb.ip.003.sh
def test_ip_003(ipd):
    d = ipd.start_ips(IPS_003)
    assert ipd("ip") == (0, "Public IPs on node 0\n10.0.0.31 0\n10.0.0.32 1\n10.0.0.33 2\n", "")
    ops = d.opcodes()
    # 4.17 control_ip asks for each IP's details even without -v
    assert ops.count(Opcode.GET_PUBLIC_IP_INFO) == 3
    assert d.controls(Opcode.GET_PUBLIC_IPS)[0].flags == 0


# ctdb.ip.004.sh, ctdb.ip.005.sh
def test_ip_004_005(ipd):
    d = ipd.start_ips(IPS_004)
    assert ipd("ip") == (0, "Public IPs on node 0\n10.0.0.31 0\n10.0.0.32 1\n", "")
    d.received.clear()
    assert ipd("ip", "all") == (
        0, "Public IPs on ALL nodes\n10.0.0.31 0\n10.0.0.32 1\n10.0.0.33 2\n", "")
    assert [p.destnode for p in d.controls(Opcode.GET_PUBLIC_IPS)] == [0, 1, 2]


def test_ip_all_skips_inactive_nodes(ipd):
    d = ipd.start_ips(IPS_003, block=BLOCK.replace("192.168.20.43   0x0", "192.168.20.43   0x20"))
    rc, out, _ = ipd("ip", "all")
    # node 2 is STOPPED: not asked, so nobody claims 10.0.0.33
    assert rc == 0 and out.endswith("10.0.0.33 -1\n")
    assert [p.destnode for p in d.controls(Opcode.GET_PUBLIC_IPS)] == [0, 1]


# ctdb.ip.006.sh, ctdb.ip.007.sh
def test_ip_006_007_verbose(ipd):
    ipd.start_ips(IPS_007)
    rc, out, err = ipd("ip", "-v", "all")
    assert rc == 0 and err == "" and out == (
        "Public IPs on ALL nodes\n"
        "10.0.0.31 node[0] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
        "10.0.0.32 node[-1] active[] available[] configured[]\n"
        "10.0.0.33 node[2] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
        "fd00::5357:5f01 node[2] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
        "fd00::5357:5f02 node[1] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
        "fd00::5357:5f03 node[0] active[eth2] available[eth2,eth1] configured[eth2,eth1]\n"
    )
    rc, out, _ = ipd("-X", "ip", "-v")
    assert out.splitlines()[:3] == [
        "|Public IP|Node|ActiveInterfaces|AvailableInterfaces|ConfiguredInterfaces|",
        "|10.0.0.31|0|eth2|eth2,eth1|eth2,eth1|",
        "|10.0.0.32|-1|eth2|eth2,eth1|eth2,eth1|",  # without "all": ipinfo from this node
    ]
    rc, out, _ = ipd("ip", "bogus")
    assert rc == 1 and out.startswith(USAGE_HEAD) and out.endswith(
        "  ip              [all]                        show public ips\n")


def test_ip_json(ipd):
    ipd.start_ips(IPS_007)
    rc, out, _ = ipd("--json", "ip", "all", "-v")
    obj = json.loads(out)
    assert rc == 0 and obj["all"] is True and len(obj["ips"]) == 6
    assert obj["ips"][1] == {"address": "10.0.0.32", "pnn": None, "active": None,
                             "available": [], "configured": []}
    rc, out, _ = ipd("--json", "ipinfo", "10.0.0.33")
    assert json.loads(out)["pnn"] == 2
    rc, out, _ = ipd("--json", "ifaces")
    assert json.loads(out)["interfaces"][1] == {"name": "eth1", "link_up": True, "references": 4}


# ctdb.ipinfo.001.sh
def test_ipinfo_001(ipd):
    ipd.start_ips(None)
    assert ipd("ipinfo", "10.0.0.31") == (
        1, "Node 0 does not know about IP 10.0.0.31\n", "Control GET_PUBLIC_IP_INFO failed, ret=-1\n")
    assert ipd("ipinfo", "10.0.0.300") == (1, "", "Invalid IP address 10.0.0.300\n")


# ctdb.ipinfo.002.sh, ctdb.ipinfo.003.sh
def test_ipinfo_002_003(ipd):
    ipd.start_ips(IPS_007)
    assert ipd("ipinfo", "10.0.0.33") == (0, (
        "Public IP[10.0.0.33] info on node 0\n"
        "IP:10.0.0.33\n"
        "CurrentNode:2\n"
        "NumInterfaces:2\n"
        "Interface[1]: Name:eth2 Link:up References:2 (active)\n"
        "Interface[2]: Name:eth1 Link:up References:4\n"), "")
    rc, out, _ = ipd("ipinfo", "fd00::5357:5f02")
    assert rc == 0 and out.startswith(
        "Public IP[fd00::5357:5f02] info on node 0\nIP:fd00::5357:5f02\nCurrentNode:1\n")


# ctdb.ifaces.001.sh
def test_ifaces_001(ipd):
    d = ipd.start_ips(None)
    assert ipd("ifaces") == (0, (
        "Interfaces on node 0\n"
        "name:eth2 link:up references:2\n"
        "name:eth1 link:up references:4\n"), "")
    assert ipd("-X", "ifaces") == (0, "|Name|LinkStatus|References|\n|eth2|1|2|\n|eth1|1|4|\n", "")
    d.state.ifaces = []
    assert ipd("-n", "2", "ifaces") == (0, "No interfaces configured on node 2\n", "")


SETIFACELINK_STEPS = [  # ctdb.setifacelink.001.sh: (args, eth2 link, eth1 link)
    (("eth1", "down"), "up", "down"),
    (("eth1", "up"), "up", "up"),
    (("eth1", "down"), "up", "down"),
    (("eth2", "down"), "down", "down"),
    (("eth1", "up"), "down", "up"),
]


# ctdb.setifacelink.001.sh
def test_setifacelink_001(ipd):
    d = ipd.start_ips(None)
    d.state.ifaces = [types.Iface(name="eth2", link_state=1, references=2),
                      types.Iface(name="eth1", link_state=0, references=4)]
    for args, eth2, eth1 in SETIFACELINK_STEPS:
        assert ipd("setifacelink", *args) == (0, "", "")
        assert ipd("ifaces") == (0, (
            "Interfaces on node 0\n"
            f"name:eth2 link:{eth2} references:2\n"
            f"name:eth1 link:{eth1} references:4\n"), "")
    sent = types.Iface.unpack(d.controls(Opcode.SET_IFACE_LINK_STATE)[-1].data)
    assert sent == types.Iface(name="eth1", link_state=1, references=0)


# ctdb.setifacelink.002.sh
def test_setifacelink_002(ipd):
    ipd.start_ips(None)
    assert ipd("setifacelink", "eth0", "down") == (1, "Interface eth0 not configured on node 0\n", "")
    assert ipd("setifacelink", "a" * 17, "up") == (1, "", f"Interface name '{'a' * 17}' too long\n")
    rc, out, _ = ipd("setifacelink", "eth1", "sideways")
    assert rc == 1 and out.endswith("  setifacelink    <iface> up|down              set interface link status\n")


def test_moveip_flow(ipd):
    d = ipd.start_ips(IPS_003)
    d.received.clear()
    assert ipd("-t", "7", "moveip", "10.0.0.31", "2") == (0, "", "")
    msg = d.messages(Srvid.DISABLE_IP_CHECK)
    assert msg[0].destnode == BROADCAST_CONNECTED and msg[0].data == struct.pack("<I", 14)
    assert [p.destnode for p in d.controls(Opcode.GET_PUBLIC_IPS)] == [2]
    rel = d.controls(Opcode.RELEASE_IP)
    assert [p.destnode for p in rel] == [0, 1]
    assert types.PublicIp.unpack(rel[0].data) == types.PublicIp(
        pnn=2, addr=types.SockAddr.parse("10.0.0.31"))
    assert [p.destnode for p in d.controls(Opcode.TAKEOVER_IP)] == [2]
    rc, out, _ = ipd("ip", "all")
    assert out == "Public IPs on ALL nodes\n10.0.0.31 2\n10.0.0.32 1\n10.0.0.33 2\n"


def test_moveip_errors(ipd):
    d = ipd.start_ips(IPS_004)
    assert ipd("moveip", "10.0.0.31", "x") == (1, "", "Invalid PNN x\n")
    assert ipd("moveip", "10.0.0.31", "4294967295") == (1, "", "Invalid PNN 4294967295\n")
    assert ipd("moveip", "10.0.0.3x", "1") == (1, "", "Invalid IP address 10.0.0.3x\n")
    assert ipd("-n", "1", "moveip", "10.0.0.31", "1") == (
        1, "", "Node cannot be specified for command moveip\n")
    d.received.clear()
    # 4.17: five attempts (3 s apart), each one reporting, then the summary
    assert ipd("moveip", "10.0.0.33", "0") == (
        1, "", "Node 0 CANNOT host IP address 10.0.0.33\n" * 5
        + "Failed to move IP 10.0.0.33 to node 0\n")
    assert len(d.messages(Srvid.DISABLE_IP_CHECK)) == 5
    # a RELEASE_IP refused by some node fails the attempt (ctdb_client_control_multi)
    d.hooks[Opcode.RELEASE_IP] = lambda req: (-1, b"")
    rc, out, err = ipd("moveip", "10.0.0.32", "0")
    assert rc == 1 and err == "Failed to release IP on nodes\n" * 5 + (
        "Failed to move IP 10.0.0.32 to node 0\n")


def test_moveip_single_active_node(ipd):
    ipd.start_ips(IPS_003, block="""
0       192.168.20.41   0x0     CURRENT RECMASTER
1       192.168.20.42   0x20
""")
    rc, out, err = ipd("moveip", "10.0.0.31", "0")
    assert rc == 1 and err == "Memory allocation error\n" * 5 + "Failed to move IP 10.0.0.31 to node 0\n"


def test_addip_delip(ipd):
    d = ipd.start_ips(IPS_003)
    d.received.clear()
    assert ipd("-n", "1", "addip", "10.0.0.40/24", "eth1") == (0, "", "")
    info = types.AddrInfo.unpack(d.controls(Opcode.ADD_PUBLIC_IP)[0].data)
    assert (str(info.addr), info.mask, info.iface) == ("10.0.0.40", 24, "eth1")
    assert d.controls(Opcode.ADD_PUBLIC_IP)[0].destnode == 1
    reb = d.messages(Srvid.REBALANCE_NODE)
    assert reb[0].destnode == BROADCAST_CONNECTED and reb[0].data == struct.pack("<I", 1)
    assert not d.messages(Srvid.TAKEOVER_RUN)
    assert ipd("-n", "1", "addip", "10.0.0.40/24", "eth1") == (
        0, "", "Node already knows about IP 10.0.0.40\n")
    assert ipd("addip", "10.0.0.40", "eth1") == (1, "", "Invalid IP/Mask 10.0.0.40\n")
    assert ipd("-n", "1", "ip").__getitem__(1).endswith("10.0.0.40 -1\n")
    d.received.clear()
    assert ipd("-n", "1", "delip", "10.0.0.40") == (0, "", "")
    sent = d.controls(Opcode.DEL_PUBLIC_IP)[0].data
    assert sent[28:] == bytes(8)  # mask 0, iface NULL (a stringn of length 0)
    assert not d.messages(Srvid.TAKEOVER_RUN)  # 4.17 delip does no takeover run
    assert ipd("-n", "1", "delip", "10.0.0.40") == (
        0, "", "Node does not know about IP address 10.0.0.40\n")
    assert ipd("delip", "nope") == (1, "", "Invalid IP address nope\n")


def test_addip_retries(ipd):
    d = ipd.start_ips(IPS_003)
    d.hooks[Opcode.ADD_PUBLIC_IP] = lambda req: (-1, b"")
    assert ipd("addip", "10.0.0.40/24", "eth1") == (1, "", (
        "Control ADD_PUBLIC_IP failed, ret=-1\n" * 5
        + "Failed to add public IP to node 0. Giving up\n"))


def test_reloadips_flow(ipd):
    d = ipd.start_ips(IPS_003, block=BLOCK.replace("192.168.20.43   0x0", "192.168.20.43   0x20"))
    d.state.reload_ips[1] = [types.PublicIp(pnn=0xFFFFFFFF, addr=types.SockAddr.parse("10.0.0.50"))]
    d.received.clear()
    assert ipd("-t", "5", "reloadips", "all") == (0, "", "")
    dis = d.messages(Srvid.DISABLE_TAKEOVER_RUNS)
    assert [m.destnode for m in dis] == [0, 1, 2, 0, 1, 2]  # connected nodes, twice
    assert [types.DisableMessage.unpack(m.data).timeout for m in dis] == [10] * 3 + [0] * 3
    # only active nodes reload: node 2 is STOPPED (inactive) but connected
    assert [p.destnode for p in d.controls(Opcode.RELOAD_PUBLIC_IPS)] == [0, 1]
    assert len(d.messages(Srvid.TAKEOVER_RUN)) == 1
    assert ipd("-n", "1", "ip") == (0, "Public IPs on node 1\n10.0.0.50 -1\n", "")
    d.received.clear()
    assert ipd("reloadips") == (0, "", "")
    assert [p.destnode for p in d.controls(Opcode.RELOAD_PUBLIC_IPS)] == [0]
    assert ipd("reloadips", "5") == (1, "", "Node 5 does not exist\n")
    assert ipd("-n", "1", "reloadips") == (1, "", "Node cannot be specified for command reloadips\n")


def test_reloadips_failures(ipd):
    d = ipd.start_ips(IPS_003)
    d.hooks[Opcode.RELOAD_PUBLIC_IPS] = lambda req: (-1, b"")
    assert ipd("reloadips", "all") == (0, "", "Failed to reload IPs on some nodes.\n")
    d.hooks.clear()
    real_message = d._message

    def no_disable(pkt):
        if pkt.srvid != Srvid.DISABLE_TAKEOVER_RUNS:
            real_message(pkt)

    d._message = no_disable  # type: ignore[method-assign]
    assert ipd("-t", "1", "reloadips") == (62, "", (
        "Timed out waiting to disable takeover runs\nFailed to disable takeover runs\n"))


def test_ipreallocate(ipd):
    d = ipd.start_ips(None)
    assert ipd("ipreallocate") == (0, "", "")
    msg = d.messages(Srvid.TAKEOVER_RUN)[-1]
    assert msg.destnode == BROADCAST_CONNECTED
    assert types.SrvidMessage.unpack(msg.data).pnn == 0
    rc, out, _ = ipd("sync", "now")
    assert rc == 1 and out.endswith("  ipreallocate                                 run ip reallocation\n")


def test_tickles(ipd):
    d = ipd.start_ips(IPS_007)
    assert ipd("gettickles", "10.0.0.31") == (0, "Connections for IP: 10.0.0.31\nNum connections: 0\n", "")
    assert ipd("addtickle", "192.168.1.5:4000", "10.0.0.31:445") == (0, "", "")
    assert ipd("addtickle", "192.168.1.6:4001", "10.0.0.31:2049") == (0, "", "")
    assert ipd("addtickle", "[fd00::9]:5000", "[fd00::5357:5f01]:2049") == (0, "", "")
    assert ipd("addtickle", "192.168.1.5:4000", "10.0.0.99:445") == (
        1, "", "Control TCP_ADD_DELAYED_UPDATE failed, ret=-1\nFailed to register connection\n")
    assert ipd("addtickle", "192.168.1.5", "10.0.0.31:445") == (1, "", "Invalid IP address 192.168.1.5\n")
    ipd.stdin("192.168.1.7:1 10.0.0.31:445\n# comment\n\n192.168.1.8:2 10.0.0.31:445\n")
    assert ipd("addtickle") == (0, "", "")
    ipd.stdin("192.168.1.7:1 10.0.0.99:445\n192.168.1.8:2 10.0.0.98:445\n")
    assert ipd("addtickle") == (1, "", "Failed to add 2 tickles\n")
    ipd.stdin("garbage\n")
    assert ipd("addtickle") == (22, "", "")
    assert ipd("gettickles", "10.0.0.31", "445") == (0, (
        "Connections for IP: 10.0.0.31\nNum connections: 3\n"
        "SRC: 192.168.1.5:4000   DST: 10.0.0.31:445\n"
        "SRC: 192.168.1.7:1   DST: 10.0.0.31:445\n"
        "SRC: 192.168.1.8:2   DST: 10.0.0.31:445\n"), "")
    req = types.SockAddr.unpack(d.controls(Opcode.GET_TCP_TICKLE_LIST)[-1].data)
    assert req == types.SockAddr.parse("10.0.0.31", 445)
    assert ipd("-X", "gettickles", "fd00::5357:5f01") == (
        0, "|Source IP|Port|Destiation IP|Port|\n|fd00::9|5000|fd00::5357:5f01|2049|\n", "")
    assert ipd("gettickles", "10.0.0.99") == (
        1, "", "Control GET_TCP_TICKLE_LIST failed, ret=1\nFailed to get list of connections\n")
    assert ipd("gettickles", "10.0.0.31", "abc") == (22, "", "")
    assert ipd("deltickle", "192.168.1.5:4000", "10.0.0.31:445") == (0, "", "")
    ipd.stdin("192.168.1.7:1 10.0.0.31:445\n")
    assert ipd("deltickle") == (0, "", "")
    rc, out, _ = ipd("gettickles", "10.0.0.31")
    assert out.splitlines()[1:] == [
        "Num connections: 2",
        "SRC: 192.168.1.8:2   DST: 10.0.0.31:445",  # 4.17 moves the last entry into the hole
        "SRC: 192.168.1.6:4001   DST: 10.0.0.31:2049",
    ]
    rc, out, _ = ipd("--json", "gettickles", "10.0.0.31", "2049")
    assert json.loads(out)["connections"] == [
        {"src": "192.168.1.6", "src_port": 4001, "dst": "10.0.0.31", "dst_port": 2049}]


def test_client_helpers(ipd):
    from ctdbcore.client.sync import Client, ControlError

    d = ipd.start_ips(IPS_004)
    with Client(d.path) as c:
        assert [str(i.addr) for i in c.get_public_ips(destnode=2).ips] == [
            "10.0.0.31", "10.0.0.32", "10.0.0.33"]
        d.state.nodes[0] = (0, "192.168.20.41", 0x4)
        assert c.get_public_ips(destnode=0, only_available=True).ips == ()
        assert d.controls(Opcode.GET_PUBLIC_IPS)[-1].flags == PUBLIC_IP_FLAGS_ONLY_AVAILABLE
        a31 = types.SockAddr.parse("10.0.0.31")
        assert c.get_public_ip_info(a31, destnode=1).ip.pnn == 0
        c.release_ip(types.PublicIp(pnn=1, addr=a31), destnode=0)
        c.takeover_ip(types.PublicIp(pnn=1, addr=a31), destnode=1)
        assert c.get_public_ips(destnode=0).ips[0].pnn == 1
        c.set_iface_link_state(types.Iface(name="eth2", link_state=0), destnode=0)
        assert c.get_ifaces().ifaces[0].link_state == 0
        c.add_public_ip(types.AddrInfo(addr=types.SockAddr.parse("10.0.0.9"), mask=8, iface="eth1"))
        c.del_public_ip(types.AddrInfo(addr=types.SockAddr.parse("10.0.0.9"), mask=0))
        c.reload_public_ips(destnode=1)
        conn = types.Connection(src=types.SockAddr.parse("1.2.3.4", 9),
                                dst=types.SockAddr.parse("10.0.0.31", 445))
        c.tcp_add_delayed_update(conn)
        assert c.get_tickle_list(a31).conns == (conn,)
        c.tcp_remove(conn)
        assert c.get_tickle_list(types.SockAddr.parse("10.0.0.31", 445)).conns == ()
        with pytest.raises(ControlError) as exc:
            c.get_public_ip_info(types.SockAddr.parse("10.9.9.9"))
        assert exc.value.status == -1
        replies = c.control_multi([(0, Opcode.GET_PUBLIC_IPS, b""), (9, Opcode.PING, b"")])
        assert replies[0].status == 0 and replies[1] is not None


# -- Debian's /usr/bin/ctdb against the same fake ------------------------------------------

REAL = "/usr/bin/ctdb"
needs_real = pytest.mark.skipif(not os.access(REAL, os.X_OK), reason="needs Debian's ctdb")
interop = pytest.mark.interop


def _wire(d: FakeCtdbd) -> list[tuple]:
    """What the tool sent, with its own srvids (tool range) blanked and CURRENT_NODE
    spelled as the pnn it means (4.17 addresses REGISTER_SRVID to its own pnn)."""
    out = []
    for p in d.received:
        if isinstance(p, packets.ReqControl):
            srvid = p.srvid if p.srvid >> 56 != 0xCE else "tool"
            dest = d.state.current if p.destnode == CURRENT_NODE else p.destnode
            out.append(("control", Opcode(p.opcode).name, dest, p.flags, srvid, p.data))
        elif isinstance(p, packets.ReqMessage):
            data = p.data
            if p.srvid == Srvid.TAKEOVER_RUN:
                data = types.SrvidMessage.unpack(data).pnn
            elif p.srvid == Srvid.DISABLE_TAKEOVER_RUNS:
                m = types.DisableMessage.unpack(data)
                data = (m.pnn, m.timeout)
            out.append(("message", hex(p.srvid), p.destnode, data))
    return out


@pytest.fixture
def twins(tmp_path, monkeypatch):
    """Two identical fakes: /usr/bin/ctdb runs against one, ours against the other."""
    from ctdbcore.tools.ctdb import main

    monkeypatch.setattr(Tool, "retry_interval", 0.0)
    monkeypatch.delenv("CTDB_TIMEOUT", raising=False)
    fakes = []

    def start(ips: str | None = IPS_007, block: str = BLOCK) -> None:
        for name in ("real", "ours"):
            (tmp_path / name).mkdir()
            d = FakeCtdbd.from_block(str(tmp_path / name / "ctdbd.socket"), block)
            if ips is not None:
                d.set_public_ips(ips)
            fakes.append(d)

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        real_d, our_d = fakes
        real_d.received.clear()
        our_d.received.clear()
        env = dict(os.environ, CTDB_SOCKET=real_d.path)
        env.pop("CTDB_TIMEOUT", None)
        r = subprocess.run([REAL, *argv], env=env, input=stdin, capture_output=True,
                           text=True, timeout=60)
        monkeypatch.setenv("CTDB_SOCKET", our_d.path)
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        try:
            rc = main(list(argv))
        finally:
            monkeypatch.setattr(sys, "stdout", sys.__stdout__)
            monkeypatch.setattr(sys, "stderr", sys.__stderr__)
        ours = (rc, out.getvalue(), err.getvalue())
        real_d.wait_idle()
        our_d.wait_idle()
        assert ours == (r.returncode, r.stdout, r.stderr), argv
        assert _wire(our_d) == _wire(real_d), argv
        return ours

    run.start = start  # type: ignore[attr-defined]
    run.fakes = fakes  # type: ignore[attr-defined]
    yield run
    for d in fakes:
        d.close()


@interop
@needs_real
def test_real_ip_commands(twins):
    twins.start(IPS_007)
    for argv in (
        ("ip",), ("ip", "all"), ("ip", "-v"), ("ip", "all", "-v"), ("-X", "ip"),
        ("-X", "ip", "-v"), ("-X", "ip", "all", "-v"), ("-Y", "-x", ":", "ip", "all"),
        ("-n", "1", "ip"), ("ip", "foo"), ("-n", "5", "ip"),
        ("ipinfo", "10.0.0.32"), ("ipinfo", "fd00::5357:5f02"), ("ipinfo", "10.0.0.99"),
        ("ipinfo", "garbage"), ("ipinfo",),
        ("ifaces",), ("-X", "ifaces"), ("-n", "2", "ifaces"),
        ("setifacelink", "eth1", "down"), ("ifaces",), ("ip", "all", "-v"),
        ("setifacelink", "eth0", "down"), ("setifacelink", "eth1", "sideways"),
        ("setifacelink", "a" * 17, "up"), ("setifacelink", "eth1", "up"),
    ):
        twins(*argv)


@interop
@needs_real
def test_real_ip_004_005(twins):
    twins.start(IPS_004)
    twins("ip")
    twins("ip", "all", "-v")
    twins("ipinfo", "10.0.0.33")


@interop
@needs_real
def test_real_ip_none(twins):
    twins.start(None)
    twins("ip")
    twins("ip", "all")
    twins("ipinfo", "10.0.0.31")
    twins("gettickles", "10.0.0.31")


@interop
@needs_real
def test_real_move_add_del_reload(twins):
    twins.start(IPS_007)
    for argv in (
        ("moveip", "10.0.0.31", "1"), ("ip", "all"), ("moveip", "10.0.0.31", "abc"),
        ("moveip", "10.0.0.31", "4294967295"), ("moveip", "bogus", "1"),
        ("moveip", "10.0.0.31"), ("-n", "1", "moveip", "10.0.0.31", "2"),
        ("moveip", "10.0.0.31", "1x"),
        ("addip", "10.0.0.40/24", "eth1"), ("addip", "10.0.0.40/24", "eth1"),
        ("addip", "10.0.0.40", "eth1"), ("addip", "10.0.0.41/2x", "eth1"),
        ("-n", "2", "addip", "fd00::40/64", "eth2"), ("-n", "2", "ip", "-v"),
        ("ip",), ("delip", "10.0.0.40"), ("delip", "10.0.0.40"), ("delip", "nope"), ("ip",),
        ("reloadips",), ("reloadips", "all"), ("reloadips", "1,2"), ("reloadips", "7"),
        ("reloadips", "x"), ("ipreallocate",), ("sync",), ("ipreallocate", "x"),
    ):
        twins(*argv)


@interop
@needs_real
def test_real_tickles(twins):
    twins.start(IPS_007)
    for argv, stdin in (
        (("gettickles", "10.0.0.31"), ""),
        (("addtickle", "192.168.1.5:4000", "10.0.0.31:445"), ""),
        (("addtickle", "[fd00::9]:5000", "[fd00::5357:5f01]:2049"), ""),
        (("addtickle", "192.168.1.6:4001", "10.0.0.31:2049"), ""),
        (("addtickle", "192.168.1.5:4000", "10.0.0.99:445"), ""),
        (("addtickle", "192.168.1.5", "10.0.0.31:445"), ""),
        (("addtickle", "192.168.1.5:4000"), ""),
        (("addtickle",), "192.168.1.7:1 10.0.0.31:445\n#c\n\n192.168.1.8:2 10.0.0.31:445\n"
                         "192.168.1.9:3 10.0.0.31:445"),
        (("addtickle",), "192.168.1.7:1 10.0.0.99:445\n192.168.1.8:2 10.0.0.98:445\n"),
        (("addtickle",), "garbage\n"),
        (("addtickle",), "192.168.1.7:1 [fd00::1]:445\n"),
        (("addtickle",), ""),
        (("gettickles", "10.0.0.31"), ""),
        (("-X", "gettickles", "10.0.0.31"), ""),
        (("gettickles", "10.0.0.31", "445"), ""),
        (("gettickles", "fd00::5357:5f01", "2049", "-Y"), ""),
        (("gettickles", "10.0.0.99"), ""),
        (("gettickles", "10.0.0.31", "abc"), ""),
        (("gettickles", "bad"), ""),
        (("deltickle", "192.168.1.5:4000", "10.0.0.31:445"), ""),
        (("deltickle",), "192.168.1.7:1 10.0.0.31:445\n"),
        (("gettickles", "10.0.0.31"), ""),
        (("deltickle", "x", "y"), ""),
        (("gettickles",), ""),
    ):
        twins(*argv, stdin=stdin)


@interop
@needs_real
def test_real_moveip_cannot_host(twins):
    """Five attempts 3 s apart in 4.17 (about 15 s for the real tool)."""
    twins.start(IPS_004)
    rc, _, err = twins("moveip", "10.0.0.33", "0")
    assert rc == 1 and err.count("CANNOT host") == 5
