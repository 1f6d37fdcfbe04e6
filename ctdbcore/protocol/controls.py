"""What each control carries (§1.4, §1.6), so daemon and client decode payloads one way.

``request``/``reply`` name a payload type from ``types`` (``None`` = no data). With
``status_is_result`` the reply's status is the answer (a pnn, a pid, 0/-1 for "exists") rather
than an error code, so a client must not turn a non-zero status into an error.
Obsolete opcodes are left out on purpose: 4.17 answers them with -1 whatever they carry.
"""

from __future__ import annotations

from typing import Any

import attrs

from .constants import Opcode
from .errors import BadPayload
from .types import (
    AddrInfo,
    BanState,
    Connection,
    CString,
    DbidMap,
    DbStatistics,
    DbVacuum,
    EchoData,
    Float64,
    Iface,
    IfaceList,
    Int32,
    KeyData,
    NodeFlagChange,
    NodeMap,
    NotifyData,
    PidSrvid,
    PublicIp,
    PublicIpInfo,
    PublicIpList,
    PulldbExt,
    RecBuffer,
    RecData,
    SetTunable,
    SockAddr,
    Statistics,
    StatisticsList,
    StringN,
    TickleList,
    TransDb,
    TraverseAll,
    TraverseAllExt,
    TraverseStart,
    TraverseStartExt,
    TunableList,
    UInt32,
    UInt64,
    Uptime,
    VarList,
    VnnMap,
)


@attrs.frozen
class ControlSpec:
    request: type | None
    reply: type | None
    status_is_result: bool = False


_ = None  # "no data", to keep the table readable
S = ControlSpec

CONTROLS: dict[Opcode, ControlSpec] = {
    Opcode.PROCESS_EXISTS: S(Int32, _, True),  # pid_t; status 0 = exists, -1 = not
    Opcode.STATISTICS: S(_, Statistics),
    Opcode.PING: S(_, _, True),  # status = number of clients
    Opcode.GETDBPATH: S(UInt32, CString),
    Opcode.GETVNNMAP: S(_, VnnMap),
    Opcode.SETVNNMAP: S(VnnMap, _),
    Opcode.GET_DEBUG: S(_, Int32),
    Opcode.SET_DEBUG: S(Int32, _),
    Opcode.GET_DBMAP: S(_, DbidMap),
    Opcode.GET_RECMODE: S(_, _, True),  # status = RecMode
    Opcode.SET_RECMODE: S(UInt32, _),
    Opcode.STATISTICS_RESET: S(_, _),
    Opcode.DB_ATTACH: S(CString, UInt32),
    Opcode.TRAVERSE_START: S(TraverseStart, _),
    Opcode.TRAVERSE_ALL: S(TraverseAll, _),
    Opcode.TRAVERSE_DATA: S(RecData, _),
    Opcode.REGISTER_SRVID: S(_, _),  # the srvid travels in the control header
    Opcode.DEREGISTER_SRVID: S(_, _),
    Opcode.GET_DBNAME: S(UInt32, CString),
    Opcode.ENABLE_SEQNUM: S(UInt32, _),
    Opcode.UPDATE_SEQNUM: S(UInt32, _),
    Opcode.DUMP_MEMORY: S(_, CString),
    Opcode.GET_PID: S(_, _, True),  # status = pid
    Opcode.FREEZE: S(_, _),
    Opcode.GET_PNN: S(_, _, True),  # status = pnn
    Opcode.SHUTDOWN: S(_, _),
    Opcode.TCP_CLIENT: S(Connection, _),
    Opcode.TCP_ADD: S(Connection, _),
    Opcode.TCP_REMOVE: S(Connection, _),
    Opcode.STARTUP: S(_, _),
    Opcode.SET_TUNABLE: S(SetTunable, _, True),  # 0 ok, -1 unknown, 1 obsolete tunable
    Opcode.GET_TUNABLE: S(StringN, UInt32),  # status -EINVAL for an unknown name
    Opcode.LIST_TUNABLES: S(_, VarList),
    Opcode.MODIFY_FLAGS: S(NodeFlagChange, _),
    Opcode.GET_ALL_TUNABLES: S(_, TunableList),
    Opcode.GET_TCP_TICKLE_LIST: S(SockAddr, TickleList),
    Opcode.SET_TCP_TICKLE_LIST: S(TickleList, _),
    Opcode.DB_ATTACH_PERSISTENT: S(CString, UInt32),
    Opcode.UPDATE_RECORD: S(RecBuffer, _),
    Opcode.SEND_GRATUITOUS_ARP: S(AddrInfo, _),
    Opcode.WIPE_DATABASE: S(TransDb, _),
    Opcode.UPTIME: S(_, Uptime),
    Opcode.START_RECOVERY: S(_, _),
    Opcode.END_RECOVERY: S(_, _),
    Opcode.RELOAD_NODES_FILE: S(_, _),
    Opcode.TRY_DELETE_RECORDS: S(RecBuffer, RecBuffer),
    Opcode.ADD_PUBLIC_IP: S(AddrInfo, _),
    Opcode.DEL_PUBLIC_IP: S(AddrInfo, _),
    Opcode.GET_CAPABILITIES: S(_, UInt32),
    Opcode.RECD_PING: S(_, _),
    Opcode.RELEASE_IP: S(PublicIp, _),
    Opcode.TAKEOVER_IP: S(PublicIp, _),
    Opcode.GET_PUBLIC_IPS: S(_, PublicIpList),  # flags may carry ONLY_AVAILABLE
    Opcode.GET_NODEMAP: S(_, NodeMap),
    Opcode.TRAVERSE_KILL: S(TraverseStart, _),
    Opcode.RECD_RECLOCK_LATENCY: S(Float64, _),
    Opcode.GET_RECLOCK_FILE: S(_, CString),  # empty data = no cluster lock
    Opcode.STOP_NODE: S(_, _),
    Opcode.CONTINUE_NODE: S(_, _),
    Opcode.SET_LMASTERROLE: S(UInt32, _),
    Opcode.SET_RECMASTERROLE: S(UInt32, _),
    Opcode.SET_BAN_STATE: S(BanState, _),
    Opcode.GET_BAN_STATE: S(_, BanState),
    Opcode.REGISTER_NOTIFY: S(NotifyData, _),
    Opcode.DEREGISTER_NOTIFY: S(UInt64, _),
    Opcode.TRANS3_COMMIT: S(RecBuffer, _),  # status 0, -1, 1 timeout, 2 ended by recovery
    Opcode.GET_DB_SEQNUM: S(UInt64, UInt64),  # request is u32 db_id + u32 pad
    Opcode.DB_SET_HEALTHY: S(UInt32, _),
    Opcode.DB_GET_HEALTH: S(UInt32, CString),  # empty = healthy
    Opcode.GET_PUBLIC_IP_INFO: S(SockAddr, PublicIpInfo),
    Opcode.GET_IFACES: S(_, IfaceList),
    Opcode.SET_IFACE_LINK_STATE: S(Iface, _),
    Opcode.TCP_ADD_DELAYED_UPDATE: S(Connection, _),
    Opcode.GET_STAT_HISTORY: S(_, StatisticsList),
    Opcode.SCHEDULE_FOR_DELETION: S(KeyData, _),
    Opcode.SET_DB_READONLY: S(UInt32, _),
    Opcode.TRAVERSE_START_EXT: S(TraverseStartExt, _),
    Opcode.GET_DB_STATISTICS: S(UInt32, DbStatistics),
    Opcode.SET_DB_STICKY: S(UInt32, _),
    Opcode.RELOAD_PUBLIC_IPS: S(_, _),
    Opcode.TRAVERSE_ALL_EXT: S(TraverseAllExt, _),
    Opcode.IPREALLOCATED: S(_, _),
    Opcode.GET_RUNSTATE: S(_, UInt32),
    Opcode.DB_DETACH: S(UInt32, _),
    Opcode.GET_NODES_FILE: S(_, NodeMap),
    Opcode.DB_FREEZE: S(UInt32, _),
    Opcode.DB_THAW: S(UInt32, _),
    Opcode.DB_TRANSACTION_START: S(TransDb, _),
    Opcode.DB_TRANSACTION_COMMIT: S(TransDb, _),
    Opcode.DB_TRANSACTION_CANCEL: S(UInt32, _),
    Opcode.DB_PULL: S(PulldbExt, UInt32),  # reply = number of records sent as messages
    Opcode.DB_PUSH_START: S(PulldbExt, _),
    Opcode.DB_PUSH_CONFIRM: S(UInt32, UInt32),
    Opcode.DB_OPEN_FLAGS: S(UInt32, Int32),
    Opcode.DB_ATTACH_REPLICATED: S(CString, UInt32),
    Opcode.CHECK_PID_SRVID: S(PidSrvid, _, True),  # status 0 = registered, -1 = not
    Opcode.TUNNEL_REGISTER: S(_, _),  # tunnel id in srvid
    Opcode.TUNNEL_DEREGISTER: S(_, _),
    Opcode.VACUUM_FETCH: S(RecBuffer, _),
    Opcode.DB_VACUUM: S(DbVacuum, _),
    Opcode.ECHO_DATA: S(EchoData, EchoData),
    Opcode.DISABLE_NODE: S(_, _),
    Opcode.ENABLE_NODE: S(_, _),
}
del _, S


def _decode(opcode: int, data: bytes, which: str) -> Any:
    try:
        spec = CONTROLS[Opcode(opcode)]
    except (ValueError, KeyError):
        raise BadPayload(f"no payload layout for control {opcode}") from None
    kind = getattr(spec, which)
    if kind is None:
        return None
    return kind.unpack(data)


def decode_request(opcode: int, data: bytes) -> Any:
    """The typed request payload of a control, or ``None`` for a control without data."""
    return _decode(opcode, data, "request")


def decode_reply(opcode: int, data: bytes) -> Any:
    """The typed reply payload of a control, or ``None`` for a control without data."""
    return _decode(opcode, data, "reply")
