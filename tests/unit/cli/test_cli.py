"""main() end to end against the fake daemon; expectations from samba-4.17.12
ctdb/tests/UNIT/tool/*.sh (file named per test) and Debian's /usr/bin/ctdb 4.17.12."""

from __future__ import annotations

import json

from ctdbcore.protocol.constants import Opcode

BLOCK0 = """
0       192.168.20.41   0x0     CURRENT RECMASTER
1       192.168.20.42   0x0
2       192.168.20.43   0x0
"""


# ctdb.status.001.sh
def test_status_001(run_ctdb):
    d = run_ctdb.start(BLOCK0)
    rc, out, err = run_ctdb("status")
    assert rc == 0 and err == ""
    assert out.endswith("Recovery mode:NORMAL (0)\nLeader:0\n")
    assert out.startswith("Number of nodes:3\npnn:0 192.168.20.41    OK (THIS NODE)\n")
    ops = d.opcodes()
    # §1.8: GET_PNN, REGISTER_SRVID(LEADER), GET_NODEMAP, GET_RUNSTATE, GET_IFACES..., GETVNNMAP, GET_RECMODE
    assert ops[:5] == [Opcode.GET_PNN, Opcode.REGISTER_SRVID, Opcode.GET_NODEMAP,
                       Opcode.GET_RUNSTATE, Opcode.GET_IFACES]
    assert ops[-2:] == [Opcode.GETVNNMAP, Opcode.GET_RECMODE]
    rc, out, _ = run_ctdb("-X", "status")
    assert rc == 0 and out.splitlines()[1] == "|0|192.168.20.41|0|0|0|0|0|0|0|0|Y|"
    rc, out, _ = run_ctdb("status", "-x", ":", "-Y")    # options after the command, as popt
    assert out.splitlines()[3] == ":2:192.168.20.43:0:0:0:0:0:0:0:0:N:"


def test_status_partially_online(run_ctdb):
    from ctdbcore.protocol.types import Iface

    d = run_ctdb.start(BLOCK0)
    d.state.ifaces = [Iface(name="eth2", link_state=0, references=2)]
    rc, out, _ = run_ctdb("status")
    assert "pnn:1 192.168.20.42    PARTIALLYONLINE\n" in out
    rc, out, _ = run_ctdb("-X", "nodestatus")
    assert out.splitlines()[1] == "|0|192.168.20.41|0|0|0|0|0|0|0|1|Y|"


# ctdb.nodestatus.006.sh
def test_nodestatus_006(run_ctdb):
    run_ctdb.start("""
0       192.168.20.41   0x24
1       192.168.20.42   0x0
2       192.168.20.43   0x0     CURRENT RECMASTER
""")
    assert run_ctdb("nodestatus", "0") == (36, "pnn:0 192.168.20.41    DISABLED|STOPPED|INACTIVE\n", "")
    rc, out, _ = run_ctdb("nodestatus", "1,2")
    assert rc == 0 and out == "pnn:1 192.168.20.42    OK\npnn:2 192.168.20.43    OK (THIS NODE)\n"
    assert run_ctdb("nodestatus", "7") == (1, "", "Node 7 does not exist\n")
    rc, out, _ = run_ctdb("--json", "nodestatus", "all")
    assert rc == 36 and json.loads(out)["exit_code"] == 36


# ctdb.disable.002.sh, ctdb.disable.003.sh, ctdb.disable.004.sh, ctdb.enable.002.sh
def test_disable_enable(run_ctdb):
    d = run_ctdb.start(BLOCK0)
    assert run_ctdb("-n", "1", "disable") == (0, "", "")
    ops = d.opcodes()
    assert Opcode.DISABLE_NODE in ops
    rc, out, _ = run_ctdb("nodestatus", "all")
    assert rc == 4 and "pnn:1 192.168.20.42    DISABLED\n" in out
    assert run_ctdb("-n", "1", "disable") == (0, "", "Node 1 is already disabled\n")
    assert run_ctdb("-n", "4", "disable") == (1, "", "Node 4 does not exist\n")
    assert run_ctdb("-n", "1", "enable") == (0, "", "")
    assert run_ctdb("-n", "1", "enable") == (0, "", "Node 1 is not disabled\n")


# ctdb.ban.002.sh, ctdb.ban.003.sh, ctdb.unban.001.sh, ctdb.stop.002.sh, ctdb.continue.001.sh
def test_ban_stop(run_ctdb):
    run_ctdb.start(BLOCK0)
    assert run_ctdb("ban", "60", "-n", "1") == (0, "", "")
    assert run_ctdb("nodestatus", "1")[0] == 8
    assert run_ctdb("ban", "60", "-n", "1") == (0, "", "Node 1 is already banned\n")
    assert run_ctdb("-n", "1", "unban") == (0, "", "")
    assert run_ctdb("ban", "0") == (22, "", "Ban time cannot be zero\n")
    assert run_ctdb("-n", "1", "stop") == (0, "", "")
    assert run_ctdb("nodestatus", "1") == (32, "pnn:1 192.168.20.42    STOPPED|INACTIVE\n", "")
    assert run_ctdb("-n", "1", "continue") == (0, "", "")
    assert run_ctdb("-n", "1", "continue") == (0, "", "Node 1 is not stopped\n")


# ctdb.runstate.001-005.sh
def test_runstate(run_ctdb):
    run_ctdb.start(BLOCK0)
    assert run_ctdb("runstate") == (0, "RUNNING\n", "")
    assert run_ctdb("runstate", "RUNNING") == (0, "RUNNING\n", "")
    assert run_ctdb("runstate", "INIT") == (1, "CTDB not in required run state (got RUNNING)\n", "")
    assert run_ctdb("runstate", "foobar") == (1, "Invalid run state (foobar)\n", "")
    assert run_ctdb("runstate", "STARTUP", "RUNNING") == (0, "RUNNING\n", "")


# ctdb.getvar.002.sh, ctdb.setvar.001.sh, ctdb.setvar.002.sh, ctdb.listvars.001.sh
def test_vars(run_ctdb):
    run_ctdb.start(BLOCK0)
    bad = "TheQuickBrownFoxJumpsOverTheLazyDog"
    assert run_ctdb("getvar", bad) == (1, f"No such tunable {bad}\n", "")
    assert run_ctdb("setvar", bad, "42") == (1, f"No such tunable {bad}\n", "")
    assert run_ctdb("setvar", "allowmixedversions", "1") == (0, "", "")
    assert run_ctdb("getvar", "AllowMixedVersions") == (0, "AllowMixedVersions         = 1\n", "")
    rc, out, _ = run_ctdb("listvars")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 49
    assert lines[0] == "SeqnumInterval             = 1000"
    assert lines[-1] == "AllowMixedVersions         = 1"


# ctdb.getcapabilities.004.sh, ctdb.leader.002.sh, ctdb.pnn.001.sh, ctdb.ping.001.sh, ctdb.getreclock.001/002.sh
def test_small_commands(run_ctdb):
    d = run_ctdb.start("""
0       192.168.20.41   0x0     CURRENT
1       192.168.20.42   0x0	-CTDB_CAP_LMASTER
2       192.168.20.43   0x0	-CTDB_CAP_RECMASTER RECMASTER
""")
    assert run_ctdb("-n", "1", "getcapabilities") == (0, "LEADER: YES\nLMASTER: NO\n", "")
    assert run_ctdb("-n", "2", "getcapabilities") == (0, "LEADER: NO\nLMASTER: YES\n", "")
    assert run_ctdb("leader") == (0, "2\n", "")
    assert run_ctdb("pnn") == (0, "0\n", "")
    assert run_ctdb("-n", "1", "pnn") == (1, "", "Node cannot be specified for command pnn\n")
    rc, out, _ = run_ctdb("ping")
    assert rc == 0 and out.startswith("response from 0 time=") and out.endswith(" sec  (1 clients)\n")
    assert run_ctdb("getreclock") == (0, "", "")
    d.state.reclock = "/some/place/on/shared/storage"
    assert run_ctdb("getreclock") == (0, "/some/place/on/shared/storage\n", "")
    rc, out, _ = run_ctdb("uptime")
    assert rc == 0 and out.startswith("Current time of node 0        :                ")


def test_leader_unknown(run_ctdb):
    d = run_ctdb.start(BLOCK0)
    d.state.leader = None
    assert run_ctdb("-t", "1", "leader") == (0, "UNKNOWN\n", "")


# ctdb.getcapabilities.003.sh (no daemon) and /usr/bin/ctdb 4.17.12
def test_no_daemon(run_ctdb, tmp_path, monkeypatch):
    monkeypatch.setenv("CTDB_BASE", str(tmp_path))
    (tmp_path / "nodes").write_text("192.0.2.41\n192.0.2.42\n")
    sock = str(tmp_path / "ctdbd.socket")
    assert run_ctdb("getcapabilities") == (1, "", (
        "connect() failed, errno=2\n"
        f"Failed to connect to CTDB daemon ({sock})\n"
        "Failed to detect PNN of the current node.\n"
        "Is this node part of CTDB cluster?\n"))
    (tmp_path / "nodes").unlink()
    rc, out, err = run_ctdb("status")
    assert rc == 1 and err.endswith(
        f'Failed to read nodes file "{tmp_path}/nodes"\nIs this node part of CTDB cluster?\n')


# ctdb.listnodes.001.sh, ctdb.listnodes.002.sh
def test_listnodes(run_ctdb, tmp_path, monkeypatch):
    monkeypatch.setenv("CTDB_BASE", str(tmp_path))
    assert run_ctdb("listnodes") == (1, "", f'Failed to read nodes file "{tmp_path}/nodes"\n')
    (tmp_path / "nodes").write_text("192.168.20.41\n#gone\n192.168.20.43\n")
    assert run_ctdb("listnodes") == (0, "192.168.20.41\n192.168.20.43\n", "")
    assert run_ctdb("-X", "listnodes") == (0, "|0|192.168.20.41|\n|2|192.168.20.43|\n", "")
    assert run_ctdb("-n", "1", "listnodes") == (1, "", "Cannot specify node for command listnodes\n")


# /usr/bin/ctdb 4.17.12 (popt messages, usage, unknown command)
def test_usage_and_options(run_ctdb):
    assert run_ctdb("bogus") == (1, "", "Unknown command 'bogus'\n")
    assert run_ctdb("-n", "all", "status") == (1, "", "Invalid option all: invalid numeric value\n")
    assert run_ctdb("--node=abc", "status") == (1, "", "Invalid option --node=abc: invalid numeric value\n")
    assert run_ctdb("-n", "99999999999", "status") == (
        1, "", "Invalid option 99999999999: number too large or too small\n")
    assert run_ctdb("-t") == (1, "", "Invalid option -t: missing argument\n")
    assert run_ctdb("-Xq", "status") == (1, "", "Invalid option -Xq: unknown option\n")
    rc, out, _ = run_ctdb()
    assert rc == 1 and out.startswith("Usage: [OPTION...]\n") and "\nCommands:\n" in out
    assert "  runstate        [setup|first_recovery|startup|running]  get/check runstate of a node\n" in out
    rc, out, _ = run_ctdb("--usage")
    assert rc == 0 and out.startswith("Usage: [-?YXv] [-?|--help] [--usage]")


def test_command_usage(run_ctdb):
    run_ctdb.start(BLOCK0)
    rc, out, err = run_ctdb("status", "extra")
    assert rc == 1 and err == ""
    assert out.endswith("\nCommands:\n  status                                       show node status\n")


def test_json_status(run_ctdb):
    run_ctdb.start(BLOCK0)
    rc, out, _ = run_ctdb("--json", "status")
    obj = json.loads(out)
    assert rc == 0 and obj["num_nodes"] == 3 and obj["leader"] == 0
    assert obj["vnnmap"] == [0, 1, 2] and obj["recovery_mode"] == "NORMAL"
