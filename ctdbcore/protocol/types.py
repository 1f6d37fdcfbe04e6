"""Control and message payloads of CTDB 4.17 (protocol/protocol_types.c, §1.7 of the digest).

Every type is a frozen attrs class with ``pack() -> bytes`` and ``unpack(buf) -> Self``. Layouts
are the x86_64 C structs, host byte order, with alignment holes written as zeros. Fixed-size types
carry ``SIZE`` so the daemon can do 4.17's exact-size checks (CHECK_CONTROL_DATA_SIZE).

Decoding follows 4.17's pull functions: a buffer shorter than the fields it announces raises
``Truncated``; trailing bytes are ignored.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar, Self

import attrs

# The payload types live in modules by theme; this module is the one place to import them from.
from .addresses import (
    AF_INET,
    AF_INET6,
    AddrInfo,
    Connection,
    Iface,
    IfaceList,
    PublicIp,
    PublicIpInfo,
    PublicIpList,
    SockAddr,
    TickleList,
)
from .basic import (
    _U32,
    _U32X2,
    CString,
    Float64,
    Int32,
    IPAddress,
    StringN,
    Timeval,
    UInt32,
    UInt64,
    _bool,
    _count,
    _cstr,
    _need,
    _raw,
    _text,
    _unpack_stringn_from,
    _view,
    pack_i32,
    pack_string,
    pack_stringn,
    pack_u32,
    pack_u64,
    unpack_i32,
    unpack_string,
    unpack_stringn,
    unpack_u32,
    unpack_u64,
)
from .errors import BadPayload, Truncated
from .records import EchoData, KeyData, LtdbHeader, NotifyData, PidSrvid, RecBuffer, RecData
from .statistics import (
    MAX_HOT_KEYS,
    DbStatistics,
    HotKey,
    LatencyCounter,
    Statistics,
    StatisticsList,
)

_UPTIME = struct.Struct("<8q")


@attrs.frozen
class Uptime:
    current_time: Timeval = Timeval()
    ctdbd_start_time: Timeval = Timeval()
    last_recovery_started: Timeval = Timeval()
    last_recovery_finished: Timeval = Timeval()
    SIZE: ClassVar[int] = 64

    def pack(self) -> bytes:
        return b"".join(
            t.pack()
            for t in (
                self.current_time,
                self.ctdbd_start_time,
                self.last_recovery_started,
                self.last_recovery_finished,
            )
        )

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 64, "uptime")
        v = _UPTIME.unpack_from(buf)
        return cls(*(Timeval(v[i], v[i + 1]) for i in range(0, 8, 2)))


# --- nodes, vnn map, databases ----------------------------------------------------------------


@attrs.frozen
class NodeAndFlags:
    pnn: int
    flags: int
    addr: SockAddr
    SIZE: ClassVar[int] = 36

    def pack(self) -> bytes:
        return _U32X2.pack(self.pnn, self.flags) + self.addr.pack()

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        return cls._unpack_from(_view(buf), 0)

    @classmethod
    def _unpack_from(cls, buf: memoryview, offset: int) -> Self:
        _need(buf, offset + 36, "node_and_flags")
        pnn, flags = _U32X2.unpack_from(buf, offset)
        return cls(pnn, flags, SockAddr._unpack_from(buf, offset + 8))


@attrs.frozen
class NodeMap:
    nodes: tuple[NodeAndFlags, ...] = attrs.field(default=(), converter=tuple)

    def pack(self) -> bytes:
        return b"".join([_U32.pack(len(self.nodes))] + [n.pack() for n in self.nodes])

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        num = _count(view, 0, 36, "node_map")
        return cls(tuple(NodeAndFlags._unpack_from(view, 4 + 36 * i) for i in range(num)))


@attrs.frozen
class VnnMap:
    generation: int
    map: tuple[int, ...] = attrs.field(default=(), converter=tuple)

    def pack(self) -> bytes:
        return _U32X2.pack(self.generation, len(self.map)) + struct.pack(
            f"<{len(self.map)}I", *self.map
        )

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        _need(view, 8, "vnn_map")
        (generation,) = _U32.unpack_from(view, 0)
        num = _count(view, 4, 4, "vnn_map")
        return cls(generation, struct.unpack_from(f"<{num}I", view, 8))


_DBID = struct.Struct("<IB3x")


@attrs.frozen
class DbidMapEntry:
    db_id: int
    flags: int = 0
    SIZE: ClassVar[int] = 8

    def pack(self) -> bytes:
        return _DBID.pack(self.db_id, self.flags)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 8, "dbid")
        return cls(*_DBID.unpack_from(buf))


@attrs.frozen
class DbidMap:
    dbs: tuple[DbidMapEntry, ...] = attrs.field(default=(), converter=tuple)

    def pack(self) -> bytes:
        return b"".join([_U32.pack(len(self.dbs))] + [d.pack() for d in self.dbs])

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        num = _count(view, 0, 8, "dbid_map")
        return cls(tuple(DbidMapEntry(*_DBID.unpack_from(view, 4 + 8 * i)) for i in range(num)))


_BAN = _U32X2


@attrs.frozen
class BanState:
    pnn: int
    time: int
    SIZE: ClassVar[int] = 8

    def pack(self) -> bytes:
        return _BAN.pack(self.pnn, self.time)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 8, "ban_state")
        return cls(*_BAN.unpack_from(buf))


_FLAG_CHANGE = struct.Struct("<3I")


@attrs.frozen
class NodeFlagChange:
    pnn: int
    new_flags: int
    old_flags: int
    SIZE: ClassVar[int] = 12

    def pack(self) -> bytes:
        return _FLAG_CHANGE.pack(self.pnn, self.new_flags, self.old_flags)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 12, "node_flag_change")
        return cls(*_FLAG_CHANGE.unpack_from(buf))


# --- tunables ---------------------------------------------------------------------------------

# Order of ``struct ctdb_tunable_list`` (= index into GET_ALL_TUNABLES' 62 u32s, §7.4).
TUNABLE_LIST_ORDER: tuple[str, ...] = (
    "MaxRedirectCount", "SeqnumInterval", "ControlTimeout", "TraverseTimeout",
    "KeepaliveInterval", "KeepaliveLimit", "RecoverTimeout", "RecoverInterval",
    "ElectionTimeout", "TakeoverTimeout", "MonitorInterval", "TickleUpdateInterval",
    "EventScriptTimeout", "MonitorTimeoutCount", "EventScriptUnhealthyOnTimeout",
    "RecoveryGracePeriod", "RecoveryBanPeriod", "DatabaseHashSize", "DatabaseMaxDead",
    "RerecoveryTimeout", "EnableBans", "DeterministicIPs", "ReclockPingPeriod",
    "NoIPFailback", "DisableIPFailover", "VerboseMemoryNames", "RecdPingTimeout",
    "RecdFailCount", "LogLatencyMs", "RecLockLatencyMs", "RecoveryDropAllIPs",
    "VerifyRecoveryLock", "VacuumInterval", "VacuumMaxRunTime", "RepackLimit", "VacuumLimit",
    "MaxQueueDropMsg", "AllowUnhealthyDBRead", "StatHistoryInterval", "DeferredAttachTO",
    "VacuumFastPathCount", "LCP2PublicIPs", "AllowClientDBAttach", "RecoverPDBBySeqNum",
    "DeferredRebalanceOnNodeAdd", "FetchCollapse", "HopcountMakeSticky", "StickyDuration",
    "StickyPindown", "NoIPTakeover", "DBRecordCountWarn", "DBRecordSizeWarn", "DBSizeWarn",
    "PullDBPreallocation", "NoIPHostOnAllDisabled", "Samba3AvoidDeadlocks", "TDBMutexEnabled",
    "LockProcessesPerDB", "RecBufferSizeLimit", "QueueBufferSize", "IPAllocAlgorithm",
    "AllowMixedVersions",
)  # fmt: skip
NUM_TUNABLES = len(TUNABLE_LIST_ORDER)
_TUNABLES = struct.Struct(f"<{NUM_TUNABLES}I")


def _tunable_count(instance: Any, attribute: Any, value: tuple[int, ...]) -> None:
    if len(value) != NUM_TUNABLES:
        raise ValueError(f"tunable_list needs {NUM_TUNABLES} values, got {len(value)}")


@attrs.frozen
class TunableList:
    values: tuple[int, ...] = attrs.field(converter=tuple, validator=_tunable_count)
    SIZE: ClassVar[int] = 4 * NUM_TUNABLES

    def pack(self) -> bytes:
        return _TUNABLES.pack(*self.values)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, cls.SIZE, "tunable_list")
        return cls(_TUNABLES.unpack_from(buf))


@attrs.frozen
class VarList:
    """LIST_TUNABLES reply: ``u32 len`` then the names joined by ':' and a NUL (len counts it)."""

    names: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def pack(self) -> bytes:
        if not self.names:
            return _U32.pack(0)
        raw = _raw(":".join(self.names)) + b"\0"
        return _U32.pack(len(raw)) + raw

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        _need(view, 4, "var_list")
        (size,) = _U32.unpack_from(view, 0)
        _need(view, 4 + size, f"var_list of length {size}")
        text = _text(_cstr(view[4 : 4 + size]))
        return cls(tuple(text.split(":")) if text else ())


@attrs.frozen
class SetTunable:
    """SET_TUNABLE request: ``u32 value`` then the name as stringn."""

    name: str
    value: int

    def pack(self) -> bytes:
        return _U32.pack(self.value) + pack_stringn(self.name)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        _need(view, 4, "tunable")
        (value,) = _U32.unpack_from(view, 0)
        name, _ = _unpack_stringn_from(view, 4, "tunable name")
        return cls(name, value)


# --- recovery daemon messages -----------------------------------------------------------------

_ELECTION = struct.Struct("<I4xqqII")


@attrs.frozen
class ElectionMessage:
    num_connected: int
    priority_time: Timeval
    pnn: int
    node_flags: int
    SIZE: ClassVar[int] = 32

    def pack(self) -> bytes:
        t = self.priority_time
        return _ELECTION.pack(self.num_connected, t.sec, t.usec, self.pnn, self.node_flags)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 32, "election_message")
        num, sec, usec, pnn, flags = _ELECTION.unpack_from(buf)
        return cls(num, Timeval(sec, usec), pnn, flags)


_SRVID_MSG = struct.Struct("<I4xQ")


@attrs.frozen
class SrvidMessage:
    """TAKEOVER_RUN and friends: who to answer. srvid 0 means "no reply wanted"."""

    pnn: int
    srvid: int
    SIZE: ClassVar[int] = 16

    def pack(self) -> bytes:
        return _SRVID_MSG.pack(self.pnn, self.srvid)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 16, "srvid_message")
        return cls(*_SRVID_MSG.unpack_from(buf))


_DISABLE_MSG = struct.Struct("<I4xQI4x")


@attrs.frozen
class DisableMessage:
    pnn: int
    srvid: int
    timeout: int
    SIZE: ClassVar[int] = 24

    def pack(self) -> bytes:
        return _DISABLE_MSG.pack(self.pnn, self.srvid, self.timeout)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 24, "disable_message")
        return cls(*_DISABLE_MSG.unpack_from(buf))


# --- traverse, recovery pulls -----------------------------------------------------------------

_TRAVERSE_START = struct.Struct("<IIQ")
_TRAVERSE_START_EXT = struct.Struct("<IIQB7x")
_TRAVERSE_ALL = struct.Struct("<4IQ")
_TRAVERSE_ALL_EXT = struct.Struct("<4IQB7x")


@attrs.frozen
class TraverseStart:
    db_id: int
    reqid: int
    srvid: int
    SIZE: ClassVar[int] = 16

    def pack(self) -> bytes:
        return _TRAVERSE_START.pack(self.db_id, self.reqid, self.srvid)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 16, "traverse_start")
        return cls(*_TRAVERSE_START.unpack_from(buf))


@attrs.frozen
class TraverseStartExt:
    db_id: int
    reqid: int
    srvid: int
    withemptyrecords: bool = False
    SIZE: ClassVar[int] = 24

    def pack(self) -> bytes:
        return _TRAVERSE_START_EXT.pack(self.db_id, self.reqid, self.srvid, self.withemptyrecords)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 24, "traverse_start_ext")
        db_id, reqid, srvid, empty = _TRAVERSE_START_EXT.unpack_from(buf)
        return cls(db_id, reqid, srvid, _bool(empty, "traverse_start_ext.withemptyrecords"))


@attrs.frozen
class TraverseAll:
    db_id: int
    reqid: int
    pnn: int
    client_reqid: int
    srvid: int
    SIZE: ClassVar[int] = 24

    def pack(self) -> bytes:
        return _TRAVERSE_ALL.pack(self.db_id, self.reqid, self.pnn, self.client_reqid, self.srvid)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 24, "traverse_all")
        return cls(*_TRAVERSE_ALL.unpack_from(buf))


@attrs.frozen
class TraverseAllExt:
    db_id: int
    reqid: int
    pnn: int
    client_reqid: int
    srvid: int
    withemptyrecords: bool = False
    SIZE: ClassVar[int] = 32

    def pack(self) -> bytes:
        return _TRAVERSE_ALL_EXT.pack(
            self.db_id, self.reqid, self.pnn, self.client_reqid, self.srvid, self.withemptyrecords
        )

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 32, "traverse_all_ext")
        *head, empty = _TRAVERSE_ALL_EXT.unpack_from(buf)
        return cls(*head, withemptyrecords=_bool(empty, "traverse_all_ext.withemptyrecords"))


_PULLDB_EXT = struct.Struct("<IIQ")


@attrs.frozen
class PulldbExt:
    db_id: int
    lmaster: int
    srvid: int
    SIZE: ClassVar[int] = 16

    def pack(self) -> bytes:
        return _PULLDB_EXT.pack(self.db_id, self.lmaster, self.srvid)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 16, "pulldb_ext")
        return cls(*_PULLDB_EXT.unpack_from(buf))


@attrs.frozen
class TransDb:
    db_id: int
    tid: int
    SIZE: ClassVar[int] = 8

    def pack(self) -> bytes:
        return _U32X2.pack(self.db_id, self.tid)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 8, "transdb")
        return cls(*_U32X2.unpack_from(buf))


_DB_VACUUM = struct.Struct("<IB")


@attrs.frozen
class DbVacuum:
    db_id: int
    full_vacuum_run: bool = False
    SIZE: ClassVar[int] = 5

    def pack(self) -> bytes:
        return _DB_VACUUM.pack(self.db_id, self.full_vacuum_run)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 5, "db_vacuum")
        db_id, full = _DB_VACUUM.unpack_from(buf)
        return cls(db_id, _bool(full, "db_vacuum.full_vacuum_run"))


__all__ = [
    "AF_INET",
    "AF_INET6",
    "AddrInfo",
    "BadPayload",
    "BanState",
    "CString",
    "Connection",
    "DbStatistics",
    "DbVacuum",
    "DbidMap",
    "DbidMapEntry",
    "DisableMessage",
    "EchoData",
    "ElectionMessage",
    "Float64",
    "HotKey",
    "IPAddress",
    "Iface",
    "IfaceList",
    "Int32",
    "KeyData",
    "LatencyCounter",
    "LtdbHeader",
    "MAX_HOT_KEYS",
    "NUM_TUNABLES",
    "NodeAndFlags",
    "NodeFlagChange",
    "NodeMap",
    "NotifyData",
    "PidSrvid",
    "PublicIp",
    "PublicIpInfo",
    "PublicIpList",
    "PulldbExt",
    "RecBuffer",
    "RecData",
    "SetTunable",
    "SockAddr",
    "SrvidMessage",
    "Statistics",
    "StatisticsList",
    "StringN",
    "TUNABLE_LIST_ORDER",
    "TickleList",
    "Timeval",
    "TransDb",
    "TraverseAll",
    "TraverseAllExt",
    "TraverseStart",
    "TraverseStartExt",
    "Truncated",
    "TunableList",
    "UInt32",
    "UInt64",
    "Uptime",
    "VarList",
    "VnnMap",
    "pack_i32",
    "pack_string",
    "pack_stringn",
    "pack_u32",
    "pack_u64",
    "unpack_i32",
    "unpack_string",
    "unpack_stringn",
    "unpack_u32",
    "unpack_u64",
]
