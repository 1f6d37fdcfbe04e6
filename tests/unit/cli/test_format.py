"""Formatting of the ctdb tool, ported from samba-4.17.12 ctdb/tests/UNIT/tool/*.sh.

Each test builds the typed inputs (the NODEMAP block of the cited .sh file) by hand and
compares with that file's expected output and exit code.
"""

from __future__ import annotations

import time

import pytest

from ctdbcore.protocol.constants import UNKNOWN_PNN, Runstate
from ctdbcore.protocol.types import NodeAndFlags, NodeMap, SockAddr, Timeval, Uptime, VnnMap
from ctdbcore.tools import ctdb_format as fmt

HDR = "|Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|PartiallyOnline|ThisNode|\n"


def nodemap(*rows: tuple[int, str, int]) -> NodeMap:
    return NodeMap(nodes=[NodeAndFlags(pnn=p, flags=f, addr=SockAddr.parse(ip)) for p, ip, f in rows])


def three(f0: int = 0, f1: int = 0, f2: int = 0) -> NodeMap:
    return nodemap((0, "192.168.20.41", f0), (1, "192.168.20.42", f1), (2, "192.168.20.43", f2))


VNN = VnnMap(generation=654321, map=[0, 1, 2])


# ctdb.status.001.sh
def test_status_001():
    nm = three()
    assert fmt.format_status(nm, 0, VNN, 0, 0) == (
        "Number of nodes:3\n"
        "pnn:0 192.168.20.41    OK (THIS NODE)\n"
        "pnn:1 192.168.20.42    OK\n"
        "pnn:2 192.168.20.43    OK\n"
        "Generation:654321\n"
        "Size:3\n"
        "hash:0 lmaster:0\n"
        "hash:1 lmaster:1\n"
        "hash:2 lmaster:2\n"
        "Recovery mode:NORMAL (0)\n"
        "Leader:0\n"
    )
    assert fmt.format_nodemap_machine(nm, 0) == HDR + (
        "|0|192.168.20.41|0|0|0|0|0|0|0|0|Y|\n"
        "|1|192.168.20.42|0|0|0|0|0|0|0|0|N|\n"
        "|2|192.168.20.43|0|0|0|0|0|0|0|0|N|\n"
    )


# ctdb.status.002.sh
def test_status_002():
    nm = three(f0=0x2)
    out = fmt.format_status(nm, 1, VNN, 0, 1)
    assert out.splitlines()[1:4] == [
        "pnn:0 192.168.20.41    UNHEALTHY",
        "pnn:1 192.168.20.42    OK (THIS NODE)",
        "pnn:2 192.168.20.43    OK",
    ]
    assert out.endswith("Recovery mode:NORMAL (0)\nLeader:1\n")
    assert fmt.format_nodemap_machine(nm, 1) == HDR + (
        "|0|192.168.20.41|0|0|0|0|1|0|0|0|N|\n"
        "|1|192.168.20.42|0|0|0|0|0|0|0|0|Y|\n"
        "|2|192.168.20.43|0|0|0|0|0|0|0|0|N|\n"
    )


# ctdb.status.003.sh: RUNSTATE FIRST_RECOVERY -> remote nodes UNKNOWN
def test_status_003_unknown_while_first_recovery():
    nm = fmt.apply_unknown(three(f0=0x2), Runstate.FIRST_RECOVERY, 1)
    out = fmt.format_status(nm, 1, VNN, 0, 1)
    assert out.splitlines()[1:4] == [
        "pnn:0 192.168.20.41    UNKNOWN",
        "pnn:1 192.168.20.42    OK (THIS NODE)",
        "pnn:2 192.168.20.43    UNKNOWN",
    ]
    assert fmt.format_nodemap_machine(nm, 1) == HDR + (
        "|0|192.168.20.41|0|1|0|0|0|0|0|0|N|\n"
        "|1|192.168.20.42|0|0|0|0|0|0|0|0|Y|\n"
        "|2|192.168.20.43|0|1|0|0|0|0|0|0|N|\n"
    )
    # RUNNING leaves the real flags; disconnected nodes are never UNKNOWN
    assert fmt.apply_unknown(three(f0=2), Runstate.RUNNING, 1) == three(f0=2)
    assert fmt.nodes_of(fmt.apply_unknown(three(f0=1), Runstate.INIT, 1))[0].flags == 1


def test_status_special_values():
    # ctdb-reference §8.1 (verified 4.17.12): deleted nodes, INVALID generation, RECOVERY, UNKNOWN leader
    nm = nodemap((0, "10.0.0.1", 0), (1, "0.0.0.0", 0x10), (2, "10.0.0.3", 0x9))
    out = fmt.format_status(nm, 0, VnnMap(generation=1, map=[0]), 1, UNKNOWN_PNN,
                            partially_online={0})
    assert out == (
        "Number of nodes:3 (including 1 deleted nodes)\n"
        "pnn:0 10.0.0.1         PARTIALLYONLINE (THIS NODE)\n"
        "pnn:2 10.0.0.3         DISCONNECTED|BANNED|INACTIVE\n"
        "Generation:INVALID\n"
        "Size:1\n"
        "hash:0 lmaster:0\n"
        "Recovery mode:RECOVERY (1)\n"
        "Leader:UNKNOWN\n"
    )
    assert fmt.format_nodemap_machine(nm, 0, sep=":", partially_online={0}) == HDR.replace("|", ":") + (
        ":0:10.0.0.1:0:0:0:0:0:0:0:1:Y:\n"
        ":2:10.0.0.3:1:0:1:0:0:0:1:0:N:\n"
    )


NODESTATUS = [
    # (source, flags, this pnn, shown pnns, header, expected text, exit code)
    ("ctdb.nodestatus.001.sh", (0, 0, 0), 2, [0, 1, 2], True,
     "Number of nodes:3\npnn:0 192.168.20.41    OK\npnn:1 192.168.20.42    OK\n"
     "pnn:2 192.168.20.43    OK (THIS NODE)\n", 0),
    ("ctdb.nodestatus.002.sh", (0, 1, 0), 2, [0, 1, 2], True,
     "Number of nodes:3\npnn:0 192.168.20.41    OK\npnn:1 192.168.20.42    DISCONNECTED|INACTIVE\n"
     "pnn:2 192.168.20.43    OK (THIS NODE)\n", 1),
    ("ctdb.nodestatus.003.sh", (2, 0, 0), 2, [0, 1, 2], True,
     "Number of nodes:3\npnn:0 192.168.20.41    UNHEALTHY\npnn:1 192.168.20.42    OK\n"
     "pnn:2 192.168.20.43    OK (THIS NODE)\n", 2),
    ("ctdb.nodestatus.004.sh", (2, 0, 0), 2, [2], False, "pnn:2 192.168.20.43    OK (THIS NODE)\n", 0),
    ("ctdb.nodestatus.005.sh", (2, 0, 0), 2, [0], False, "pnn:0 192.168.20.41    UNHEALTHY\n", 2),
    ("ctdb.nodestatus.006.sh", (0x24, 0, 0), 2, [0], False,
     "pnn:0 192.168.20.41    DISABLED|STOPPED|INACTIVE\n", 36),
    ("ctdb.nodestatus.006.sh", (0x24, 0, 0), 2, [0, 1], False,
     "pnn:0 192.168.20.41    DISABLED|STOPPED|INACTIVE\npnn:1 192.168.20.42    OK\n", 36),
    ("ctdb.nodestatus.006.sh", (0x24, 0, 0), 2, [1, 2], False,
     "pnn:1 192.168.20.42    OK\npnn:2 192.168.20.43    OK (THIS NODE)\n", 0),
    ("ctdb.disable.002.sh", (0, 4, 0), 0, [0, 1, 2], True,
     "Number of nodes:3\npnn:0 192.168.20.41    OK (THIS NODE)\npnn:1 192.168.20.42    DISABLED\n"
     "pnn:2 192.168.20.43    OK\n", 4),
    ("ctdb.ban.001.sh", (8, 0, 0), 0, [0, 1, 2], True,
     "Number of nodes:3\npnn:0 192.168.20.41    BANNED|INACTIVE (THIS NODE)\npnn:1 192.168.20.42    OK\n"
     "pnn:2 192.168.20.43    OK\n", 8),
    ("ctdb.stop.002.sh", (0, 0x20, 0), 0, [0, 1, 2], True,
     "Number of nodes:3\npnn:0 192.168.20.41    OK (THIS NODE)\npnn:1 192.168.20.42    STOPPED|INACTIVE\n"
     "pnn:2 192.168.20.43    OK\n", 32),
]


@pytest.mark.parametrize("src,flags,mypnn,shown,header,expected,code", NODESTATUS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(NODESTATUS)])
def test_nodestatus(src, flags, mypnn, shown, header, expected, code):
    full = three(*flags)
    nm = NodeMap(nodes=[n for n in full.nodes if n.pnn in shown])
    assert fmt.format_nodemap(nm, mypnn, header=header) == expected
    assert fmt.nodestatus_exit_code(nm) == code


# ctdb.nodestatus.007.sh: runstate INIT, exit code 64 (UNKNOWN)
def test_nodestatus_007():
    nm = fmt.apply_unknown(three(f0=2), Runstate.INIT, 2)
    assert fmt.format_nodemap(nm, 2, header=True) == (
        "Number of nodes:3\npnn:0 192.168.20.41    UNKNOWN\npnn:1 192.168.20.42    UNKNOWN\n"
        "pnn:2 192.168.20.43    OK (THIS NODE)\n"
    )
    assert fmt.nodestatus_exit_code(nm) == 64
    assert fmt.format_nodemap_machine(nm, 2) == HDR + (
        "|0|192.168.20.41|0|1|0|0|0|0|0|0|N|\n"
        "|1|192.168.20.42|0|1|0|0|0|0|0|0|N|\n"
        "|2|192.168.20.43|0|0|0|0|0|0|0|0|Y|\n"
    )


# ctdb.listvars.001.sh (first and last lines) / ctdb.getvar.001.sh
def test_var_format():
    assert fmt.format_var("SeqnumInterval", 1000) == "SeqnumInterval             = 1000\n"
    assert fmt.format_var("AllowMixedVersions", 0) == "AllowMixedVersions         = 0\n"
    assert fmt.format_var("monitorinterval", 15) == "monitorinterval            = 15\n"


# ctdb.uptime.001.sh (with its DATE/TIME/DURATION filter) + reference §8.6
def test_uptime():
    start = 1_700_000_000
    up = Uptime(current_time=Timeval(start + 10, 0), ctdbd_start_time=Timeval(start, 0),
                last_recovery_started=Timeval(start + 4, 977061),
                last_recovery_finished=Timeval(start + 5, 0))
    lines = fmt.format_uptime(0, up).splitlines()
    c = time.ctime
    assert lines == [
        f"Current time of node 0        :                {c(start + 10)}",
        f"Ctdbd start time              : (000 00:00:10) {c(start)}",
        f"Time of last recovery/failover: (000 00:00:05) {c(start + 5)}",
        "Duration of last recovery/failover: 0.022939 seconds",
    ]
    up2 = Uptime(current_time=Timeval(start + 90061, 0), ctdbd_start_time=Timeval(start, 0),
                 last_recovery_started=Timeval(start, 0), last_recovery_finished=Timeval(start, 0))
    assert "(001 01:01:01)" in fmt.format_uptime(12, up2).splitlines()[1]
    assert fmt.format_uptime(12, up2).startswith("Current time of node 12       :")


# ctdb.ping.001.sh
def test_ping():
    assert fmt.format_ping(0, 0.000033, 1) == "response from 0 time=0.000033 sec  (1 clients)\n"


# ctdb.getcapabilities.001.sh / .004.sh
def test_getcapabilities():
    assert fmt.format_capabilities(0x30003) == "LEADER: YES\nLMASTER: YES\n"
    assert fmt.format_capabilities(0x30001) == "LEADER: YES\nLMASTER: NO\n"
    assert fmt.format_capabilities(0x30002) == "LEADER: NO\nLMASTER: YES\n"
    assert fmt.format_capabilities(0x30002, machine=True) == "|LEADER|LMASTER|\n|0|1|\n"


# ctdb.runstate.001-005.sh
def test_runstate_names():
    assert fmt.runstate_to_string(5) == "RUNNING"
    assert fmt.runstate_from_string("first_recovery") == Runstate.FIRST_RECOVERY
    assert fmt.runstate_from_string("foobar") == Runstate.UNKNOWN


# ctdb.leader.001.sh / .002.sh, and UNKNOWN (tools/ctdb.c print_pnn)
def test_leader_pnn():
    assert fmt.format_pnn(0) == "0\n"
    assert fmt.format_pnn(2) == "2\n"
    assert fmt.format_pnn(UNKNOWN_PNN) == "UNKNOWN\n"


# ctdb.listnodes.002.sh + reference §7.3 (deleted lines, blanks, whitespace)
def test_nodes_file():
    entries = fmt.parse_nodes_file("192.168.20.41\n192.168.20.42\n192.168.20.43\n")
    assert fmt.format_listnodes(entries, machine=False, sep="|") == (
        "192.168.20.41\n192.168.20.42\n192.168.20.43\n")
    entries = fmt.parse_nodes_file("  10.99.99.1  \n\n#x\n 10.1.1.2\n\n\n")
    assert entries == [(0, "10.99.99.1", 0), (1, "0.0.0.0", 0x10), (2, "10.1.1.2", 0)]
    assert fmt.format_listnodes(entries, machine=True, sep="|") == "|0|10.99.99.1|\n|2|10.1.1.2|\n"
    with pytest.raises(fmt.NodesFileError, match="Invalid IP address garbage"):
        fmt.parse_nodes_file("garbage\n")


def test_flags_text_order():
    assert fmt.pretty_print_flags(0) == "OK"
    assert fmt.pretty_print_flags(0x3) == "DISCONNECTED|UNHEALTHY|INACTIVE"
    assert fmt.pretty_print_flags(0x6) == "DISABLED|UNHEALTHY"


def test_status_json_view():
    view = fmt.status_view(three(f0=2), 1, VnnMap(generation=1, map=[1]), 1, UNKNOWN_PNN)
    obj = fmt.to_json_obj(view)
    assert obj["generation_valid"] is False and obj["leader"] is None
    assert obj["nodes"][0] == {"pnn": 0, "address": "192.168.20.41", "flags": 2,
                               "flags_text": "UNHEALTHY", "partially_online": False,
                               "this_node": False, "unhealthy_reason": None}
