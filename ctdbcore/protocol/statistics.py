"""``ctdb_statistics`` and ``ctdb_db_statistics`` (§1.7), driven by a field layout table
so the 488- and 464-byte C structs are written down once."""

from __future__ import annotations

import struct
from typing import Any, ClassVar, Self

import attrs

from .basic import (
    _I32,
    _U32,
    Timeval,
    _need,
    _view,
)
from .errors import BadPayload

# --- statistics -------------------------------------------------------------------------------

_LATENCY = struct.Struct("<i4xddd")


@attrs.frozen
class LatencyCounter:
    """``ctdb_latency_counter``: i32 num, pad, double min, max, total (32 bytes)."""

    num: int = 0
    min: float = 0.0
    max: float = 0.0
    total: float = 0.0
    SIZE: ClassVar[int] = 32


_LAT = "lat"
_TV = "tv"
_PAD = "pad"
_BUCKETS = 16  # MAX_COUNT_BUCKETS


def _layout_format(layout: tuple[tuple[str, int | str], ...]) -> str:
    parts = ["<"]
    for _name, kind in layout:
        if kind == _LAT:
            parts.append("i4xddd")
        elif kind == _TV:
            parts.append("qq")
        elif kind == _PAD:
            parts.append("4x")
        else:
            parts.append(f"{kind}I")
    return "".join(parts)


def _layout_flatten(obj: Any, layout: tuple[tuple[str, int | str], ...]) -> list[Any]:
    flat: list[Any] = []
    for name, kind in layout:
        if kind == _PAD:
            continue
        value = getattr(obj, name)
        if kind == _LAT:
            flat += [value.num, value.min, value.max, value.total]
        elif kind == _TV:
            flat += [value.sec, value.usec]
        elif kind == 1:
            flat.append(value)
        else:
            if len(value) != kind:
                raise ValueError(f"{name} needs {kind} values, got {len(value)}")
            flat += value
    return flat


def _layout_fields(
    values: tuple[Any, ...], layout: tuple[tuple[str, int | str], ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    for name, kind in layout:
        if kind == _PAD:
            continue
        if kind == _LAT:
            out[name] = LatencyCounter(*values[i : i + 4])
            i += 4
        elif kind == _TV:
            out[name] = Timeval(*values[i : i + 2])
            i += 2
        elif kind == 1:
            out[name] = values[i]
            i += 1
        else:
            out[name] = tuple(values[i : i + kind])  # type: ignore[operator]
            i += kind  # type: ignore[operator]
    return out


_STATS_LAYOUT: tuple[tuple[str, int | str], ...] = (
    ("num_clients", 1), ("frozen", 1), ("recovering", 1),
    ("client_packets_sent", 1), ("client_packets_recv", 1),
    ("node_packets_sent", 1), ("node_packets_recv", 1),
    ("keepalive_packets_sent", 1), ("keepalive_packets_recv", 1),
    ("node_req_call", 1), ("node_reply_call", 1), ("node_req_dmaster", 1),
    ("node_reply_dmaster", 1), ("node_reply_error", 1), ("node_req_message", 1),
    ("node_req_control", 1), ("node_reply_control", 1), ("node_req_tunnel", 1),
    ("client_req_call", 1), ("client_req_message", 1), ("client_req_control", 1),
    ("client_req_tunnel", 1),
    ("timeouts_call", 1), ("timeouts_control", 1), ("timeouts_traverse", 1), ("", _PAD),
    ("reclock_ctdbd", _LAT), ("reclock_recd", _LAT),
    ("locks_num_calls", 1), ("locks_num_current", 1), ("locks_num_pending", 1),
    ("locks_num_failed", 1), ("locks_latency", _LAT), ("locks_buckets", _BUCKETS),
    ("total_calls", 1), ("pending_calls", 1), ("childwrite_calls", 1),
    ("pending_childwrite_calls", 1), ("memory_used", 1),
    ("", _PAD),  # __last_counter: an end marker in the C struct, always 0 on the wire
    ("max_hop_count", 1), ("hop_count_bucket", _BUCKETS), ("", _PAD),
    ("call_latency", _LAT), ("childwrite_latency", _LAT),
    ("num_recoveries", 1), ("", _PAD),
    ("statistics_start_time", _TV), ("statistics_current_time", _TV),
    ("total_ro_delegations", 1), ("total_ro_revokes", 1),
)  # fmt: skip
_STATS = struct.Struct(_layout_format(_STATS_LAYOUT))
assert _STATS.size == 488, _STATS.size

_ZERO_BUCKETS = (0,) * _BUCKETS


def _buckets() -> Any:
    return attrs.field(default=_ZERO_BUCKETS, converter=tuple)


@attrs.frozen(kw_only=True)
class Statistics:
    """``ctdb_statistics`` (488 bytes); field names flatten the C groups with '_'."""

    num_clients: int = 0
    frozen: int = 0
    recovering: int = 0
    client_packets_sent: int = 0
    client_packets_recv: int = 0
    node_packets_sent: int = 0
    node_packets_recv: int = 0
    keepalive_packets_sent: int = 0
    keepalive_packets_recv: int = 0
    node_req_call: int = 0
    node_reply_call: int = 0
    node_req_dmaster: int = 0
    node_reply_dmaster: int = 0
    node_reply_error: int = 0
    node_req_message: int = 0
    node_req_control: int = 0
    node_reply_control: int = 0
    node_req_tunnel: int = 0
    client_req_call: int = 0
    client_req_message: int = 0
    client_req_control: int = 0
    client_req_tunnel: int = 0
    timeouts_call: int = 0
    timeouts_control: int = 0
    timeouts_traverse: int = 0
    reclock_ctdbd: LatencyCounter = LatencyCounter()
    reclock_recd: LatencyCounter = LatencyCounter()
    locks_num_calls: int = 0
    locks_num_current: int = 0
    locks_num_pending: int = 0
    locks_num_failed: int = 0
    locks_latency: LatencyCounter = LatencyCounter()
    locks_buckets: tuple[int, ...] = _buckets()
    total_calls: int = 0
    pending_calls: int = 0
    childwrite_calls: int = 0
    pending_childwrite_calls: int = 0
    memory_used: int = 0
    max_hop_count: int = 0
    hop_count_bucket: tuple[int, ...] = _buckets()
    call_latency: LatencyCounter = LatencyCounter()
    childwrite_latency: LatencyCounter = LatencyCounter()
    num_recoveries: int = 0
    statistics_start_time: Timeval = Timeval()
    statistics_current_time: Timeval = Timeval()
    total_ro_delegations: int = 0
    total_ro_revokes: int = 0
    SIZE: ClassVar[int] = 488

    def pack(self) -> bytes:
        return _STATS.pack(*_layout_flatten(self, _STATS_LAYOUT))

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        _need(buf, 488, "statistics")
        return cls._unpack_from(_view(buf), 0)

    @classmethod
    def _unpack_from(cls, buf: memoryview, offset: int) -> Self:
        return cls(**_layout_fields(_STATS.unpack_from(buf, offset), _STATS_LAYOUT))


@attrs.frozen
class StatisticsList:
    """GET_STAT_HISTORY reply: i32 num, pad, then ``num`` statistics."""

    stats: tuple[Statistics, ...] = attrs.field(default=(), converter=tuple)

    def pack(self) -> bytes:
        return b"".join([_I32.pack(len(self.stats)), bytes(4)] + [s.pack() for s in self.stats])

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        _need(view, 8, "statistics_list")
        (num,) = _I32.unpack_from(view, 0)
        if num < 0:
            raise BadPayload(f"statistics_list: negative count {num}")
        _need(view, 8 + 488 * num, f"statistics_list with {num} entries")
        return cls(tuple(Statistics._unpack_from(view, 8 + 488 * i) for i in range(num)))


MAX_HOT_KEYS = 10


@attrs.frozen
class HotKey:
    count: int = 0
    key: bytes = b""


def _pad_hot_keys(value: Any) -> tuple[HotKey, ...]:
    keys = tuple(value)
    if len(keys) > MAX_HOT_KEYS:
        raise ValueError(f"at most {MAX_HOT_KEYS} hot keys, got {len(keys)}")
    # 4.17 always sends all MAX_HOT_KEYS slots, so normalising here keeps unpack(pack(x)) == x.
    return keys + (HotKey(),) * (MAX_HOT_KEYS - len(keys))


_DB_STATS_LAYOUT: tuple[tuple[str, int | str], ...] = (
    ("locks_num_calls", 1), ("locks_num_current", 1), ("locks_num_pending", 1),
    ("locks_num_failed", 1), ("locks_latency", _LAT), ("locks_buckets", _BUCKETS),
    ("vacuum_latency", _LAT), ("db_ro_delegations", 1), ("db_ro_revokes", 1),
    ("hop_count_bucket", _BUCKETS),
)  # fmt: skip
_DB_STATS = struct.Struct(_layout_format(_DB_STATS_LAYOUT))
_HOT_KEY = struct.Struct("<I4xQQ")  # count, pad, TDB_DATA {dptr, dsize}; dptr is meaningless
_DB_STATS_FIXED = _DB_STATS.size + 8 + MAX_HOT_KEYS * _HOT_KEY.size
assert _DB_STATS.size == 216 and _DB_STATS_FIXED == 464


@attrs.frozen(kw_only=True)
class DbStatistics:
    """``ctdb_db_statistics``: the 464-byte C struct, then the hot keys' bytes back to back."""

    locks_num_calls: int = 0
    locks_num_current: int = 0
    locks_num_pending: int = 0
    locks_num_failed: int = 0
    locks_latency: LatencyCounter = LatencyCounter()
    locks_buckets: tuple[int, ...] = _buckets()
    vacuum_latency: LatencyCounter = LatencyCounter()
    db_ro_delegations: int = 0
    db_ro_revokes: int = 0
    hop_count_bucket: tuple[int, ...] = _buckets()
    hot_keys: tuple[HotKey, ...] = attrs.field(default=(), converter=_pad_hot_keys)

    def pack(self) -> bytes:
        parts = [
            _DB_STATS.pack(*_layout_flatten(self, _DB_STATS_LAYOUT)),
            _U32.pack(MAX_HOT_KEYS),
            bytes(4),
        ]
        parts += [_HOT_KEY.pack(k.count, 0, len(k.key)) for k in self.hot_keys]
        parts += [k.key for k in self.hot_keys]
        return b"".join(parts)

    @classmethod
    def unpack(cls, buf: bytes | memoryview) -> Self:
        view = _view(buf)
        _need(view, _DB_STATS_FIXED, "db_statistics")
        fields = _layout_fields(_DB_STATS.unpack_from(view, 0), _DB_STATS_LAYOUT)
        (num,) = _U32.unpack_from(view, _DB_STATS.size)
        if num > MAX_HOT_KEYS:
            raise BadPayload(f"db_statistics: num_hot_keys {num} > {MAX_HOT_KEYS}")
        keys = []
        offset = _DB_STATS_FIXED
        for i in range(num):
            count, _ptr, size = _HOT_KEY.unpack_from(view, _DB_STATS.size + 8 + i * _HOT_KEY.size)
            _need(view, offset + size, f"db_statistics hot key {i} of length {size}")
            keys.append(HotKey(count, bytes(view[offset : offset + size])))
            offset += size
        return cls(hot_keys=tuple(keys), **fields)
