"""The blocking client against an in-test fake ctdbd (tests/unit/client/fake_ctdbd.py)."""

from __future__ import annotations

import errno
import struct
import time

import pytest

from ctdbcore.client import Client, ConnectError, ControlError, ControlTimeout
from ctdbcore.protocol import packets
from ctdbcore.protocol.constants import CURRENT_NODE, UNKNOWN_PNN, NodeFlags, Opcode, Srvid


def test_connect_sends_get_pnn(fake):
    with Client(fake.path) as c:
        assert c.pnn == 0
    first = fake.received[0]
    assert isinstance(first, packets.ReqControl)
    assert first.opcode == Opcode.GET_PNN and first.destnode == CURRENT_NODE
    assert first.reqid == 1 and first.srcnode == UNKNOWN_PNN


def test_connect_error(tmp_path, monkeypatch):
    path = str(tmp_path / "nope.socket")
    with pytest.raises(ConnectError) as info:
        Client(path)
    assert info.value.errno == errno.ENOENT
    assert str(info.value) == "connect() failed, errno=2"
    monkeypatch.setenv("CTDB_SOCKET", path)
    with pytest.raises(ConnectError):
        Client()


def test_control_round_trip_and_typed_helpers(fake):
    with Client(fake.path) as c:
        nm = c.get_nodemap()
        assert [(n.pnn, str(n.addr), n.flags) for n in nm.nodes] == [
            (0, "192.168.20.41", 0), (1, "192.168.20.42", 0), (2, "192.168.20.43", 0)]
        vnn = c.get_vnnmap()
        assert (vnn.generation, list(vnn.map)) == (654321, [0, 1, 2])
        assert c.get_recmode() == 0          # status-in-status
        assert c.get_runstate() == 5
        assert c.get_capabilities() == 0x30003
        assert c.get_reclock_file() is None
        assert c.ping()[1] == 1              # status = number of clients
        assert c.get_pid() > 0
        assert c.list_tunables()[0] == "SeqnumInterval"
        assert c.get_tunable("monitorinterval") == 15
        assert c.set_tunable("MonitorInterval", 20) == 0
        assert c.get_tunable("MonitorInterval") == 20
        assert c.set_tunable("MaxRedirectCount", 1) == 1     # obsolete: status 1
        up = c.uptime()
        assert up.current_time.sec >= up.ctdbd_start_time.sec
        assert [i.name for i in c.get_ifaces().ifaces] == ["eth2", "eth1"]
        reqids = [p.reqid for p in fake.received if isinstance(p, packets.ReqControl)]
        assert reqids == list(range(1, len(reqids) + 1))


def test_control_error_status(fake):
    with Client(fake.path) as c:
        with pytest.raises(ControlError) as info:
            c.get_tunable("NoSuchTunable")
        assert info.value.status == -22 and info.value.opcode == Opcode.GET_TUNABLE
        reply = c.control(Opcode.SHUTDOWN)            # raw API does not raise
        assert reply.status == -1 and reply.errmsg == "not implemented in fake"


def test_control_timeout(fake):
    fake.hooks[Opcode.GET_RECMODE] = lambda req: time.sleep(0.5) or (0, b"")
    with Client(fake.path, timeout=0.1) as c:
        with pytest.raises(ControlTimeout):
            c.get_recmode()


def test_flag_controls(fake):
    with Client(fake.path) as c:
        c.disable_node(destnode=1)
        c.stop_node(destnode=2)
        c.set_ban_state(0, 30)
        flags = {n.pnn: n.flags for n in c.get_nodemap().nodes}
        assert flags == {0: NodeFlags.BANNED, 1: NodeFlags.PERMANENTLY_DISABLED,
                         2: NodeFlags.STOPPED}
        c.enable_node(destnode=1)
        c.continue_node(destnode=2)
        c.set_ban_state(0, 0)
        assert {n.flags for n in c.get_nodemap().nodes} == {0}


def test_messages_queued_while_waiting_for_reply(fake):
    srvid = Srvid.TOOL_RANGE | 0x1234
    with Client(fake.path) as c:
        c.register_srvid(srvid)
        fake.before_reply = [(srvid, b"one"), (srvid, b"two")]
        assert c.get_recmode() == 0
        assert c.wait_message(srvid, 0) == b"one"
        assert c.wait_message(srvid, 0.5) == b"two"
        assert c.wait_message(srvid, 0.05) is None


def test_send_message_loops_back(fake):
    srvid = Srvid.TEST_RANGE | 7
    with Client(fake.path) as c:
        c.register_srvid(srvid)
        c.send_message(0, srvid, b"hello")
        assert c.wait_message(srvid, 1.0) == b"hello"
        c.deregister_srvid(srvid)
        c.send_message(0, srvid, b"again")
        assert c.wait_message(srvid, 0.1) is None


def test_get_leader(fake):
    with Client(fake.path) as c:
        assert c.get_leader(1.0) == 0


def test_get_leader_timeout_and_election(fake):
    fake.state.leader = None
    with Client(fake.path) as c:
        t0 = time.monotonic()
        assert c.get_leader(0.2) == UNKNOWN_PNN
        assert time.monotonic() - t0 >= 0.19
        fake.message(Srvid.LEADER, struct.pack("<I", 0xFFFFFFFF))  # election running
        assert c.get_leader(0.1) == UNKNOWN_PNN


def test_takeover_run(fake):
    fake.state.leader = 2
    with Client(fake.path) as c:
        assert c.takeover_run(timeout=1.0) == 2
        msgs = [p for p in fake.received if isinstance(p, packets.ReqMessage)]
        assert msgs[-1].srvid == Srvid.TAKEOVER_RUN
        assert msgs[-1].destnode == 0xF0000004
        ops = fake.opcodes()
        assert ops[-1] == Opcode.DEREGISTER_SRVID


def test_takeover_run_no_leader(fake):
    fake.state.leader = None
    with Client(fake.path) as c:
        with pytest.raises(ControlTimeout):
            c.takeover_run(timeout=0.05, attempts=2)
