"""Hypothesis strategies for every packet and payload type of ctdbcore.protocol."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from ctdbcore.protocol import packets as P
from ctdbcore.protocol import types as T

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
i32 = st.integers(-(2**31), 2**31 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
blob = st.binary(max_size=64)
# C strings: no NUL inside (it would end them on the wire).
cbytes = st.binary(max_size=40).filter(lambda b: b"\0" not in b)
ctext = st.text(max_size=20).filter(lambda s: "\0" not in s)
name = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"),
    min_size=1,
    max_size=16,
)
finite = st.floats(allow_nan=False)

ips = st.one_of(
    st.builds(ipaddress.IPv4Address, u32),
    st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1)),
)
sockaddrs = st.builds(T.SockAddr, ip=ips, port=u16)
timevals = st.builds(T.Timeval, i64, i64)
latencies = st.builds(T.LatencyCounter, i32, finite, finite, finite)
buckets = st.lists(u32, min_size=16, max_size=16).map(tuple)
ifaces = st.builds(
    T.Iface, st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=17), u16, u32
)
public_ips = st.builds(T.PublicIp, u32, sockaddrs)
connections = st.builds(T.Connection, sockaddrs, sockaddrs)
ltdb_headers = st.builds(T.LtdbHeader, u64, u32, u32)
rec_data_plain = st.builds(T.RecData, u32, blob, blob)
rec_data_header = st.builds(T.RecData, u32, blob, blob, ltdb_headers)


def tup(s, max_size=5):
    return st.lists(s, max_size=max_size).map(tuple)


def _stats_kwargs():
    import attrs

    fields = {}
    for f in attrs.fields(T.Statistics):
        if f.type in ("LatencyCounter",):
            fields[f.name] = latencies
        elif f.type == "Timeval":
            fields[f.name] = timevals
        elif f.type == "tuple[int, ...]":
            fields[f.name] = buckets
        else:
            fields[f.name] = u32
    return fields


statistics = st.builds(T.Statistics, **_stats_kwargs())

# (strategy, unpack keyword arguments) for every payload type.
PAYLOADS = {
    "UInt32": st.builds(T.UInt32, u32),
    "Int32": st.builds(T.Int32, i32),
    "UInt64": st.builds(T.UInt64, u64),
    "Float64": st.builds(T.Float64, finite),
    "CString": st.builds(T.CString, ctext),
    "StringN": st.builds(T.StringN, ctext),
    "SockAddr": sockaddrs,
    "Timeval": timevals,
    "Connection": connections,
    "TickleList": st.builds(T.TickleList, sockaddrs, tup(connections)),
    "Uptime": st.builds(T.Uptime, timevals, timevals, timevals, timevals),
    "NodeAndFlags": st.builds(T.NodeAndFlags, u32, u32, sockaddrs),
    "NodeMap": st.builds(T.NodeMap, tup(st.builds(T.NodeAndFlags, u32, u32, sockaddrs))),
    "VnnMap": st.builds(T.VnnMap, u32, tup(u32, 10)),
    "DbidMapEntry": st.builds(T.DbidMapEntry, u32, u8),
    "DbidMap": st.builds(T.DbidMap, tup(st.builds(T.DbidMapEntry, u32, u8))),
    "BanState": st.builds(T.BanState, u32, u32),
    "NodeFlagChange": st.builds(T.NodeFlagChange, u32, u32, u32),
    "PublicIp": public_ips,
    "PublicIpList": st.builds(T.PublicIpList, tup(public_ips)),
    "Iface": ifaces,
    "IfaceList": st.builds(T.IfaceList, tup(ifaces)),
    "PublicIpInfo": st.builds(T.PublicIpInfo, public_ips, u32, tup(ifaces)),
    "AddrInfo": st.builds(T.AddrInfo, sockaddrs, u32, ctext),
    "TunableList": st.builds(T.TunableList, st.lists(u32, min_size=62, max_size=62)),
    "VarList": st.builds(T.VarList, tup(name, 8)),
    "SetTunable": st.builds(T.SetTunable, ctext, u32),
    "ElectionMessage": st.builds(T.ElectionMessage, u32, timevals, u32, u32),
    "SrvidMessage": st.builds(T.SrvidMessage, u32, u64),
    "DisableMessage": st.builds(T.DisableMessage, u32, u64, u32),
    "TraverseStart": st.builds(T.TraverseStart, u32, u32, u64),
    "TraverseStartExt": st.builds(T.TraverseStartExt, u32, u32, u64, st.booleans()),
    "TraverseAll": st.builds(T.TraverseAll, u32, u32, u32, u32, u64),
    "TraverseAllExt": st.builds(T.TraverseAllExt, u32, u32, u32, u32, u64, st.booleans()),
    "PulldbExt": st.builds(T.PulldbExt, u32, u32, u64),
    "TransDb": st.builds(T.TransDb, u32, u32),
    "DbVacuum": st.builds(T.DbVacuum, u32, st.booleans()),
    "LtdbHeader": ltdb_headers,
    "RecData": rec_data_plain,
    "RecBuffer": st.builds(T.RecBuffer, u32, tup(rec_data_plain)),
    "KeyData": st.builds(T.KeyData, u32, ltdb_headers, blob),
    "PidSrvid": st.builds(T.PidSrvid, i32, u64),
    "EchoData": st.builds(T.EchoData, u32, blob),
    "NotifyData": st.builds(T.NotifyData, u64, blob),
    "Statistics": statistics,
    "StatisticsList": st.builds(T.StatisticsList, tup(statistics, 3)),
    "DbStatistics": st.builds(
        T.DbStatistics,
        locks_num_calls=u32,
        locks_latency=latencies,
        locks_buckets=buckets,
        vacuum_latency=latencies,
        db_ro_revokes=u32,
        hop_count_bucket=buckets,
        hot_keys=tup(st.builds(T.HotKey, u32, blob), 10),
    ),
}

_header = {"generation": u32, "destnode": u32, "srcnode": u32, "reqid": u32}

PACKETS = {
    "ReqCall": st.builds(
        P.ReqCall,
        flags=u32,
        db_id=u32,
        callid=u32,
        hopcount=u32,
        key=blob,
        calldata=blob,
        **_header,
    ),
    "ReplyCall": st.builds(P.ReplyCall, status=i32, data=blob, **_header),
    "ReqDmaster": st.builds(
        P.ReqDmaster,
        db_id=u32,
        rsn=u64,
        dmaster=u32,
        key=blob,
        data=blob,
        record_flags=u32,
        **_header,
    ),
    "ReplyDmaster": st.builds(
        P.ReplyDmaster, db_id=u32, rsn=u64, key=blob, data=blob, record_flags=u32, **_header
    ),
    "ReplyError": st.builds(P.ReplyError, status=i32, msg=cbytes, **_header),
    "ReqMessage": st.builds(P.ReqMessage, srvid=u64, data=blob, **_header),
    "ReqControl": st.builds(
        P.ReqControl, opcode=u32, srvid=u64, client_id=u32, flags=u32, data=blob, **_header
    ),
    "ReplyControl": st.builds(P.ReplyControl, status=i32, data=blob, errmsg=cbytes, **_header),
    "ReqKeepalive": st.builds(P.ReqKeepalive, version=u32, uptime=u32, **_header),
    "ReqTunnel": st.builds(P.ReqTunnel, tunnel_id=u64, flags=u32, data=blob, **_header),
}

packets = st.one_of(*PACKETS.values())
