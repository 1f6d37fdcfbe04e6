"""CTDB 4.17 wire format: constants, packets, payload types and a stream decoder. No I/O.

Quick use::

    from ctdbcore import protocol as p

    raw = p.pack(p.ReqControl(opcode=p.Opcode.GET_PNN, destnode=p.CURRENT_NODE, reqid=1))
    dec = p.StreamDecoder(strict=False)
    dec.feed(raw)
    for event in dec.events():
        ...  # Packet subclasses, or Dropped(error, raw)
"""

from .constants import (
    ALIGNMENT,
    BROADCAST_ACTIVE,
    BROADCAST_ALL,
    BROADCAST_CONNECTED,
    CALL_FLAG_VACUUM_MIGRATION,
    CTDB_MAGIC,
    CTDB_PORT,
    CTDB_PROTOCOL,
    CTRL_FLAG_ATTACH_RECOVERY,
    CTRL_FLAG_NOREPLY,
    CTRL_FLAG_OPCODE_SPECIFIC,
    CURRENT_NODE,
    DEFAULT_CAPABILITIES,
    DISABLED,
    FETCH_FUNC,
    FETCH_WITH_HEADER_FUNC,
    HEADER_SIZE,
    IMMEDIATE_MIGRATION,
    INACTIVE,
    INVALID_GENERATION,
    KEEPALIVE_VERSION,
    MULTICAST,
    NULL_FUNC,
    OBSOLETE_OPCODES,
    PUBLIC_IP_FLAGS_ONLY_AVAILABLE,
    UNKNOWN_PNN,
    WANT_READONLY,
    Capability,
    DbFlags,
    NodeFlags,
    Opcode,
    Operation,
    RecMode,
    RecordFlags,
    Runstate,
    Srvid,
)
from .controls import CONTROLS, ControlSpec, decode_reply, decode_request
from .decoder import Dropped, StreamDecoder
from .errors import (
    BadLength,
    BadMagic,
    BadPayload,
    BadVersion,
    ProtocolError,
    Truncated,
    UnknownOperation,
)
from .hash import db_id, jenkins_hash
from .packets import (
    Header,
    Packet,
    ReplyCall,
    ReplyControl,
    ReplyDmaster,
    ReplyError,
    ReqCall,
    ReqControl,
    ReqDmaster,
    ReqKeepalive,
    ReqMessage,
    ReqTunnel,
    pack,
    unpack,
    unpack_header,
    with_header,
)

__all__ = [
    "ALIGNMENT", "BROADCAST_ACTIVE", "BROADCAST_ALL", "BROADCAST_CONNECTED",
    "CALL_FLAG_VACUUM_MIGRATION", "CTDB_MAGIC", "CTDB_PORT", "CTDB_PROTOCOL",
    "CTRL_FLAG_ATTACH_RECOVERY", "CTRL_FLAG_NOREPLY", "CTRL_FLAG_OPCODE_SPECIFIC", "CURRENT_NODE",
    "DEFAULT_CAPABILITIES", "DISABLED", "FETCH_FUNC", "FETCH_WITH_HEADER_FUNC", "HEADER_SIZE",
    "IMMEDIATE_MIGRATION", "INACTIVE", "INVALID_GENERATION", "KEEPALIVE_VERSION", "MULTICAST",
    "NULL_FUNC", "OBSOLETE_OPCODES", "PUBLIC_IP_FLAGS_ONLY_AVAILABLE", "UNKNOWN_PNN",
    "WANT_READONLY", "Capability", "DbFlags", "NodeFlags", "Opcode", "Operation", "RecMode",
    "RecordFlags", "Runstate", "Srvid",
    "CONTROLS", "ControlSpec", "decode_reply", "decode_request",
    "Dropped", "StreamDecoder",
    "BadLength", "BadMagic", "BadPayload", "BadVersion", "ProtocolError", "Truncated",
    "UnknownOperation",
    "db_id", "jenkins_hash",
    "Header", "Packet", "ReplyCall", "ReplyControl", "ReplyDmaster", "ReplyError", "ReqCall",
    "ReqControl", "ReqDmaster", "ReqKeepalive", "ReqMessage", "ReqTunnel", "pack", "unpack",
    "unpack_header", "with_header",
]  # fmt: skip
