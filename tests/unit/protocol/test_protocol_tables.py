"""Constants, the control table and the hash."""

from __future__ import annotations

import pytest

from ctdbcore import protocol as p
from ctdbcore.protocol import types as T


def test_opcode_numbering():
    assert len(p.Opcode) == 159 - len([2, 12, 28, 38, 39, 40, 41, 68, 73, 92, 93, 94, 95, 106])
    assert max(p.Opcode) == p.Opcode.ENABLE_NODE == 158
    assert p.Opcode.GET_NODEMAP == 91 and p.Opcode.GET_PNN == 35 and p.Opcode.CHECK_PID_SRVID == 151
    assert p.Opcode.GET_RECMASTER in p.OBSOLETE_OPCODES
    assert p.Opcode.GET_PNN not in p.OBSOLETE_OPCODES


def test_control_table_covers_every_live_opcode():
    assert set(p.CONTROLS) == set(p.Opcode) - p.OBSOLETE_OPCODES
    for spec in p.CONTROLS.values():
        for kind in (spec.request, spec.reply):
            assert kind is None or (hasattr(kind, "pack") and hasattr(kind, "unpack"))


def test_status_in_status_controls():
    result = {op for op, spec in p.CONTROLS.items() if spec.status_is_result}
    assert result == {
        p.Opcode.PROCESS_EXISTS, p.Opcode.PING, p.Opcode.GET_RECMODE, p.Opcode.GET_PID,
        p.Opcode.GET_PNN, p.Opcode.SET_TUNABLE, p.Opcode.CHECK_PID_SRVID,
    }  # fmt: skip


def test_decode_helpers():
    assert p.decode_request(p.Opcode.GETDBPATH, T.pack_u32(5)) == T.UInt32(5)
    assert p.decode_reply(p.Opcode.GET_PNN, b"") is None
    nm = T.NodeMap((T.NodeAndFlags(0, 0, T.SockAddr.parse("10.0.0.1")),))
    assert p.decode_reply(p.Opcode.GET_NODEMAP, nm.pack()) == nm
    with pytest.raises(p.BadPayload, match="control 2"):
        p.decode_request(2, b"")
    with pytest.raises(p.BadPayload):
        p.decode_request(p.Opcode.THAW, b"")


def test_flags_and_constants():
    assert p.DISABLED == 0x06 and p.INACTIVE == 0x39
    assert (
        p.Capability.RECMASTER
        | p.Capability.LMASTER
        | p.Capability.PARALLEL_RECOVERY
        | (p.Capability.FRAGMENTED_CONTROLS)
        == p.DEFAULT_CAPABILITIES
    )
    assert p.Srvid.TOOL_RANGE == 0xCE00000000000000
    assert p.Srvid.ALL == 2**64 - 1
    assert p.ReqControl(opcode=999).opcode == 999  # unknown opcodes still decode
    assert p.Runstate.RUNNING == 5 and p.RecMode.ACTIVE == 1


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"", 0xDEADBEEF),
        (b"k1", 0xEB04426D),
        (b"k2", 0x5A4AC072),
        (b"Four score and seven years ago", 0x17770551),  # lookup3's own self-test vector
    ],
)
def test_jenkins_hash(data, value):
    assert p.jenkins_hash(data) == value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("locking.tdb", 0x7A19D84D),
        ("brlock.tdb", 0x4E66C2B2),
        ("g_lock.tdb", 0x4D2A432B),
        ("secrets.tdb", 0x7132C184),
        ("registry.tdb", 0x6CF2837D),
        ("ctdb.tdb", 0x6645C6C4),
        ("test.tdb", 0xC445C6AB),
    ],
)
def test_db_id(name, value):
    assert p.db_id(name) == value
