"""Byte-exact checks against captures from a live 4.17.12 cluster (reference digest)."""

from __future__ import annotations

import ipaddress
import struct

import attrs
import pytest

from ctdbcore import protocol as p
from ctdbcore.protocol import types as T


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


def header(length, op, gen=0, dst=0, src=0, reqid=0) -> bytes:
    return struct.pack("<8I", length, 0x43544442, 1, gen, op, dst, src, reqid)


def test_keepalive_capture():
    # §2.2: 28 00 00 00 42 44 54 43 01 00 00 00 <gen> 09 00 00 00 <dst> <src> 00 00 00 00
    #       11 00 04 00 aa 00 00 00
    gen, dst, src = 0x12345678, 1, 0
    wire = h("28000000 42445443 01000000") + gen.to_bytes(4, "little") + h("09000000")
    wire += dst.to_bytes(4, "little") + src.to_bytes(4, "little") + h("00000000 11000400 aa000000")
    pkt = p.ReqKeepalive(generation=gen, destnode=dst, srcnode=src, version=0x00040011, uptime=170)
    assert p.pack(pkt) == wire
    assert p.unpack(wire) == pkt
    assert p.ReqKeepalive().version == p.KEEPALIVE_VERSION


def test_req_dmaster_capture():
    # §1.3: 72 bytes, db_id 0xc445c6ab, pad, rsn 8, dmaster 1, keylen 2, datalen 2, "k1" "v1",
    # flags 0x00010000, then 4 bytes of padding.
    body = h("abc645c4 00000000 0800000000000000 01000000 02000000 02000000") + b"k1v1"
    body += h("00000100 00000000")
    wire = header(72, 2, dst=1) + body
    pkt = p.ReqDmaster(destnode=1, db_id=0xC445C6AB, rsn=8, dmaster=1, key=b"k1", data=b"v1",
                       record_flags=0x00010000)  # fmt: skip
    assert p.pack(pkt) == wire
    assert p.unpack(wire) == pkt
    assert p.db_id("test.tdb") == 0xC445C6AB


def test_dmaster_without_trailing_flags():
    # An unpadded sender that omits the flags: the reader must not invent them.
    wire = (
        header(64, 2) + h("01000000 00000000 0100000000000000 00000000 02000000 02000000") + b"abcd"
    )
    assert len(wire) == 64
    assert p.unpack(wire).record_flags is None
    wire = header(56 + 2, 3) + h("01000000 00000000 0100000000000000 01000000 01000000") + b"ab"
    assert p.unpack(wire).record_flags is None


def test_sockaddr_inet_capture():
    # §1.1: 02 00 11 1b 7f 00 00 01 00... = AF_INET, port 4379, 127.0.0.1
    wire = h("0200 111b 7f000001") + bytes(20)
    addr = T.SockAddr.parse("127.0.0.1", port=4379)
    assert addr.pack() == wire
    assert T.SockAddr.unpack(wire) == addr
    assert str(addr) == "127.0.0.1"


def test_sockaddr_inet6_layout():
    addr = T.SockAddr.parse("fd00::1", 80)
    wire = addr.pack()
    assert len(wire) == 28
    assert wire[:4] == h("0a00 0050")
    assert wire[8:24] == ipaddress.IPv6Address("fd00::1").packed
    assert T.SockAddr.unpack(wire) == addr


def test_sockaddr_v4_mapped_is_canonicalised():
    mapped = T.SockAddr.parse("::ffff:10.0.0.1", 445)
    assert mapped == T.SockAddr.parse("10.0.0.1", 445)
    assert mapped.ip.version == 4
    # Also when it arrives on the wire as AF_INET6.
    wire = h("0a00 01bd 00000000") + ipaddress.IPv6Address("::ffff:10.0.0.1").packed + bytes(4)
    assert T.SockAddr.unpack(wire) == mapped


def test_sockaddr_ignores_garbage_slack():
    # 4.17's TCP_CLIENT did not zero the struct: slack bytes may be anything.
    wire = h("0200 0016 0a000001") + b"\xee" * 20
    assert T.SockAddr.unpack(wire) == T.SockAddr.parse("10.0.0.1", 22)


def test_sockaddr_unknown_family():
    with pytest.raises(p.BadPayload, match="family 7"):
        T.SockAddr.unpack(h("0700") + bytes(26))


def test_leader_broadcast_capture():
    # §4.2: op=5 srvid 0xF101000000000000 datalen 4 data 00000000, sent by ctdbd padded to 48.
    pkt = p.ReqMessage(destnode=p.BROADCAST_CONNECTED, srcnode=0, srvid=p.Srvid.LEADER,
                       data=T.pack_u32(0))  # fmt: skip
    wire = p.pack(pkt)
    assert len(wire) == 48
    assert wire[16:20] == h("05000000")
    assert wire[32:48] == h("00000000000001f1 04000000 00000000")
    assert p.unpack(wire) == pkt
    assert T.unpack_u32(p.unpack(wire).data) == 0


def test_smallest_reply_control_is_48_bytes():
    wire = p.pack(p.ReplyControl(status=0))
    assert len(wire) == 48
    assert wire[:4] == h("30000000")


def test_reply_control_status_is_signed():
    wire = p.pack(p.ReplyControl(status=-1))
    assert wire[32:36] == h("ffffffff")
    assert p.unpack(wire).status == -1


def test_reply_control_both_errorlen_forms():
    # ctdbd: errorlen = strlen; new client library: strlen + 1 and no data.
    daemon = header(44 + 3 + 4, 8) + h("ffffffff 03000000 04000000") + b"abc" + b"oops"
    library = header(44 + 5, 8) + h("ffffffff 00000000 05000000") + b"oops\0"
    assert p.unpack(daemon) == p.ReplyControl(status=-1, data=b"abc", errmsg=b"oops")
    assert p.unpack(library) == p.ReplyControl(status=-1, data=b"", errmsg=b"oops")


def test_unpadded_samba_req_control_parses():
    # Samba: length = 60 + datalen, no padding (source3/lib/ctdbd_conn.c).
    data = b"brlock.tdb\0"
    wire = header(60 + len(data), 7, dst=p.CURRENT_NODE, reqid=7)
    wire += h("12000000 00000000 0000000000000000 00000000 00000000") + len(data).to_bytes(
        4, "little"
    )
    wire += data
    assert len(wire) % 8 != 0
    pkt = p.unpack(wire)
    assert pkt == p.ReqControl(
        destnode=p.CURRENT_NODE, reqid=7, opcode=p.Opcode.DB_ATTACH, data=data
    )
    assert T.CString.unpack(pkt.data).value == "brlock.tdb"
    assert p.decode_request(pkt.opcode, pkt.data) == T.CString("brlock.tdb")


def test_req_call_capture_size():
    # §2.7: node1 -> node0 REQ_CALL for "k1", 64 bytes, flags 1, callid NULL_FUNC.
    pkt = p.ReqCall(flags=p.IMMEDIATE_MIGRATION, db_id=0xC445C6AB, callid=p.NULL_FUNC, key=b"k1")
    assert len(p.pack(pkt)) == 64


def test_reply_error_message():
    pkt = p.ReplyError(status=-1, msg=b"Unknown database in request. db_id==0x12345678")
    wire = p.pack(pkt)
    assert int.from_bytes(wire[36:40], "little") == len(pkt.msg) + 1
    assert p.unpack(wire) == pkt


def test_node_map_layout():
    deleted = T.NodeAndFlags(1, p.NodeFlags.DELETED, T.SockAddr.parse("0.0.0.0"))
    nm = T.NodeMap((T.NodeAndFlags(0, 0, T.SockAddr.parse("127.0.0.1", 4379)), deleted))
    raw = nm.pack()
    assert len(raw) == 4 + 36 * 2
    assert raw[:4] == h("02000000")
    assert raw[12:16] == h("0200111b")


def test_var_list_layout():
    raw = T.VarList(("ControlTimeout", "EnableBans")).pack()
    assert raw == (26).to_bytes(4, "little") + b"ControlTimeout:EnableBans\0"
    assert T.VarList.unpack(T.VarList(()).pack()) == T.VarList(())


def test_set_tunable_and_stringn_layout():
    assert T.pack_stringn("EnableBans") == h("0b000000") + b"EnableBans\0"
    assert T.unpack_stringn(h("0b000000") + b"EnableBans\0") == "EnableBans"
    assert T.SetTunable("EnableBans", 0).pack() == h("00000000 0b000000") + b"EnableBans\0"


def test_strings():
    assert T.pack_string("/var/lib/ctdb/x.tdb") == b"/var/lib/ctdb/x.tdb\0"
    assert T.pack_string(None) == b""
    assert T.unpack_string(b"") == ""
    assert T.unpack_string(b"abc\0junk") == "abc"


def test_pid_srvid_is_12_bytes_unpadded():
    raw = T.PidSrvid(1234, 0xFE00000000000002).pack()
    assert raw == (1234).to_bytes(4, "little") + (0xFE00000000000002).to_bytes(8, "little")


def test_fixed_sizes():
    sizes = {
        T.Connection: 56, T.NodeAndFlags: 36, T.PublicIp: 32, T.Uptime: 64, T.Iface: 24,
        T.BanState: 8, T.NodeFlagChange: 12, T.TraverseStart: 16, T.TraverseStartExt: 24,
        T.TraverseAll: 24, T.TraverseAllExt: 32, T.LtdbHeader: 24, T.ElectionMessage: 32,
        T.SrvidMessage: 16, T.DisableMessage: 24, T.TunableList: 248, T.PulldbExt: 16,
        T.TransDb: 8, T.DbVacuum: 5, T.Statistics: 488, T.PidSrvid: 12,
    }  # fmt: skip
    for cls, size in sizes.items():
        assert cls.SIZE == size, cls


def test_variable_sizes():
    ip = T.PublicIp(0, T.SockAddr.parse("10.0.0.1"))
    assert len(T.PublicIpInfo(ip, 0, (T.Iface("eth0"),)).pack()) == 40 + 24
    assert len(T.AddrInfo(ip.addr, 24, "eth0").pack()) == 36 + 5
    assert len(T.TickleList(ip.addr, (T.Connection(ip.addr, ip.addr),)).pack()) == 32 + 56
    assert len(T.KeyData(1, T.LtdbHeader(), b"key").pack()) == 36 + 3
    assert len(T.DbidMap((T.DbidMapEntry(1, 1),)).pack()) == 12
    assert len(T.VnnMap(5, (0, 1)).pack()) == 16
    assert len(T.DbStatistics().pack()) == 464
    assert len(T.DbStatistics(hot_keys=[T.HotKey(3, b"abc")]).pack()) == 467
    assert len(T.NotifyData(p.Srvid.SAMBA_NOTIFY, b"\0").pack()) == 13
    assert len(T.EchoData(1, b"xy").pack()) == 10
    assert len(T.RecData(0, b"k", b"d", T.LtdbHeader()).pack()) == 16 + 1 + 1 + 24


def test_statistics_offsets():
    # Offsets of §1.7; each field gets a distinct marker so a shifted field shows up.
    lat = T.LatencyCounter(7, 1.5, 2.5, 3.5)
    s = T.Statistics(
        num_clients=1, frozen=2, recovering=3, keepalive_packets_recv=9, node_req_call=10,
        node_req_tunnel=18, client_req_call=19, client_req_tunnel=22, timeouts_call=23,
        timeouts_traverse=25, reclock_ctdbd=lat, reclock_recd=lat, locks_num_calls=26,
        locks_num_failed=29, locks_latency=lat, locks_buckets=range(100, 116), total_calls=30,
        pending_childwrite_calls=33, memory_used=34, max_hop_count=35,
        hop_count_bucket=range(200, 216), call_latency=lat, childwrite_latency=lat,
        num_recoveries=36, statistics_start_time=T.Timeval(37, 38),
        statistics_current_time=T.Timeval(39, 40), total_ro_delegations=41, total_ro_revokes=42,
    )  # fmt: skip
    raw = s.pack()
    assert len(raw) == 488

    def u32(off):
        return int.from_bytes(raw[off : off + 4], "little")

    expect = {0: 1, 4: 2, 8: 3, 32: 9, 36: 10, 68: 18, 72: 19, 84: 22, 88: 23, 96: 25, 168: 26,
              180: 29, 216: 100, 276: 115, 280: 30, 292: 33, 296: 34, 300: 0, 304: 35, 308: 200,
              368: 215, 440: 36, 448: 37, 456: 38, 464: 39, 480: 41, 484: 42}  # fmt: skip
    for off, value in expect.items():
        assert u32(off) == value, off
    for off in (104, 136, 184, 376, 408):
        assert u32(off) == 7, off
        assert struct.unpack_from("<3d", raw, off + 8) == (1.5, 2.5, 3.5), off
    assert T.Statistics.unpack(raw) == s
    assert attrs.evolve(s).pack() == raw


def test_timeval_float():
    tv = T.Timeval.from_float(1700000000.25)
    assert tv == T.Timeval(1700000000, 250000)
    assert tv.to_float() == 1700000000.25
    assert T.Timeval.from_float(1.9999999) == T.Timeval(2, 0)


def test_bool_fields_reject_other_values():
    raw = bytearray(T.TraverseStartExt(1, 2, 3, True).pack())
    raw[16] = 2
    with pytest.raises(p.BadPayload, match="got 2"):
        T.TraverseStartExt.unpack(bytes(raw))
    with pytest.raises(p.BadPayload):
        T.DbVacuum.unpack(b"\1\0\0\0\5")


def test_tunable_list_needs_62():
    with pytest.raises(ValueError):
        T.TunableList((0,) * 61)
    assert len(T.TUNABLE_LIST_ORDER) == 62
    assert T.TUNABLE_LIST_ORDER[61] == "AllowMixedVersions"


def test_iface_name_limit():
    T.Iface("a" * 17)
    with pytest.raises(ValueError):
        T.Iface("a" * 18)
