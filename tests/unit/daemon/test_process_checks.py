"""PROCESS_EXISTS and CHECK_PID_SRVID as 4.17 answers them (server/ctdb_daemon.c).

Samba asks these of the node a share-mode or g_lock entry names, to tell a live holder
from a stale one: only processes that are clients of that daemon exist, and a banned or
stopped node disconnects the client it is asked about and answers "no"."""

from __future__ import annotations

import os
import struct
import subprocess
import types

from ctdbcore.daemon.controls import HANDLERS
from ctdbcore.protocol.constants import NodeFlags, Opcode
from ctdbcore.protocol.types import PidSrvid


class FakeConn:
    def __init__(self, pid: int, srvids: set[int] = frozenset()) -> None:
        self.pid = pid
        self.srvids = set(srvids)
        self.dropped = False

    def close(self) -> None:
        self.dropped = True


def daemon(*conns: FakeConn, flags: int = 0):
    return types.SimpleNamespace(server=types.SimpleNamespace(clients={i: c for i, c in enumerate(conns)}),
                                 own_flags=flags)


def call(d, opcode: Opcode, data: bytes):
    return HANDLERS[opcode](d, types.SimpleNamespace(data=data), 0, None)


def exists(d, pid: int):
    return call(d, Opcode.PROCESS_EXISTS, struct.pack("<i", pid))


def test_only_a_connected_client_exists() -> None:
    me = FakeConn(os.getpid())
    d = daemon(me)
    assert exists(d, os.getpid()) == 0
    # a live process that is not a client of this daemon (here: pid 1) does not exist for 4.17
    assert exists(d, 1) == -1
    assert not me.dropped


def test_a_client_whose_process_is_gone_does_not_exist() -> None:
    p = subprocess.Popen(["true"])
    p.wait()  # reaped: the pid is free
    assert exists(daemon(FakeConn(p.pid)), p.pid) == -1


def test_an_inactive_node_disconnects_the_client_asked_about() -> None:
    for flag in (NodeFlags.BANNED, NodeFlags.STOPPED):
        asked, other = FakeConn(os.getpid()), FakeConn(1)
        d = daemon(asked, other, flags=int(flag))
        assert exists(d, os.getpid()) == -1
        assert asked.dropped and not other.dropped
    # a disabled or unhealthy node is still active
    asked = FakeConn(os.getpid())
    assert exists(daemon(asked, flags=int(NodeFlags.PERMANENTLY_DISABLED | NodeFlags.UNHEALTHY)), os.getpid()) == 0
    assert not asked.dropped


def test_process_exists_wants_four_bytes() -> None:
    assert call(daemon(FakeConn(os.getpid())), Opcode.PROCESS_EXISTS, struct.pack("<q", os.getpid())) == -1


def test_check_pid_srvid_needs_that_srvid_on_a_client_with_that_pid() -> None:
    d = daemon(FakeConn(4242, {0xFE00000000000002}), FakeConn(4242, {77}), FakeConn(5353, {88}))

    def check(pid: int, srvid: int) -> int:
        return call(d, Opcode.CHECK_PID_SRVID, PidSrvid(pid, srvid).pack())

    assert check(4242, 77) == 0  # any of the pid's connections
    assert check(4242, 0xFE00000000000002) == 0
    assert check(4242, 88) == -1  # registered, but by another process
    assert check(9999, 77) == -1
    # 4.17 reads the srvid right after the 4-byte pid: 12 bytes, no padding
    assert PidSrvid(4242, 77).pack() == struct.pack("<iQ", 4242, 77)
    # no special case for inactive nodes
    d.own_flags = int(NodeFlags.BANNED)
    assert check(4242, 77) == 0
