"""Garbage on the node port and on the unix socket: the daemon survives, drops only
the offending connection, and the cluster heals."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from ctdbcore.client import Client
from ctdbcore.protocol import packets as P
from ctdbcore.protocol.constants import CTDB_PORT
from tests.cluster.helpers import ctdb

pytestmark = pytest.mark.slow


@pytest.fixture
def lc(local_cluster):
    lc = local_cluster(n=2, loopback=True, loopback_base=81)
    lc.wait_ok(timeout=30)
    return lc


def test_garbage_from_unknown_address_is_refused(lc) -> None:
    s = socket.create_connection((lc.address(0), CTDB_PORT), source_address=("127.0.0.99", 0), timeout=5)
    try:
        s.sendall(b"\xff" * 64)
        s.settimeout(5)
        assert s.recv(10) == b""  # closed on us
    except (ConnectionResetError, BrokenPipeError):
        pass  # closed on us before or while we wrote
    s.close()
    assert lc.running(0) and "OK (THIS NODE)" in ctdb(lc, 0, "status")


@pytest.mark.parametrize("garbage", [
    b"\x00" * 40,                                              # length below a header
    struct.pack("<8I", 40, 0x12345678, 1, 0, 9, 0, 1, 0) + b"\0" * 8,  # bad magic
    struct.pack("<8I", 36, 0x43544442, 1, 0, 9, 0, 1, 0) + b"\0" * 4,  # not 8-byte aligned
])
def test_garbage_from_a_peer_address_drops_that_connection_and_the_cluster_heals(lc, garbage) -> None:
    # Pretend to be node 1 (loopback lets us bind its address).
    s = socket.create_connection((lc.address(0), CTDB_PORT), source_address=(lc.address(1), 0), timeout=5)
    s.sendall(garbage)
    s.settimeout(5)
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    s.close()
    assert lc.running(0) and lc.running(1)
    lc.wait_ok(timeout=30)


def test_garbage_on_the_unix_socket(lc) -> None:
    sock = lc.socket(0)
    # A packet with a bad magic is dropped, the connection stays usable.
    with Client(sock) as c:
        c.send_raw(struct.pack("<8I", 40, 0xDEADBEEF, 1, 0, 7, 0, 0, 1) + b"\0" * 8)
        assert c.get_pnn() == 0
    # A zero length ends that connection only.
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b"\0" * 32)
    s.settimeout(5)
    assert s.recv(10) == b""
    s.close()
    # An unknown control gets status -1, an unknown operation is ignored.
    with Client(sock) as c:
        assert c.control(200).status == -1
        c.send_raw(struct.pack("<8I", 32, 0x43544442, 1, 0, 77, 0, 0, 2))
        assert c.get_pnn() == 0
    assert "OK (THIS NODE)" in ctdb(lc, 0, "status")


def test_dead_client_mid_request_does_not_hurt(lc) -> None:
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX)
        s.connect(lc.socket(0))
        s.sendall(P.pack(P.ReqControl(opcode=91, destnode=1, reqid=5))[:50])  # half a packet
        s.close()
    time.sleep(0.2)
    assert lc.running(0) and ctdb(lc, 0, "pnn").strip() == "0"
