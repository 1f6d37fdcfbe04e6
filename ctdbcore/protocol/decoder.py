"""Split a byte stream into CTDB packets (sans-IO; §1.2 for the rules).

Two receivers with different tolerance exist in 4.17:

* strict, the node TCP transport (tcp/tcp_io.c): any framing fault drops the connection;
* lenient, the unix socket (ctdb_daemon_read_cb): short or foreign packets are skipped and only a
  zero length, which would make the reader spin, kills the connection.

Faults that leave the stream usable come out as ``Dropped`` events; faults that do not are raised
as ``ProtocolError`` and the decoder stays broken (the caller must close the connection).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import attrs

from .constants import ALIGNMENT, CTDB_MAGIC, CTDB_PROTOCOL, HEADER_SIZE, Operation
from .errors import BadLength, BadMagic, BadVersion, ProtocolError, UnknownOperation
from .packets import Packet, unpack

_LENGTH = struct.Struct("<I")
_MAGIC_VERSION = struct.Struct("<II")
_OPERATION = struct.Struct("<I")
_OPERATIONS = frozenset(int(op) for op in Operation)

DEFAULT_MAX_LENGTH = 64 * 1024 * 1024


@attrs.frozen
class Dropped:
    """A packet the receiver skipped; ``raw`` is exactly its ``length`` bytes."""

    error: ProtocolError
    raw: bytes


class StreamDecoder:
    def __init__(self, strict: bool, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        self.strict = strict
        # 4.17 has no limit, but a peer must not make us buffer gigabytes on a corrupt length.
        self.max_length = max_length
        self._buf = bytearray()
        self._pos = 0
        self._error: ProtocolError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as an event."""
        return len(self._buf) - self._pos

    def events(self) -> Iterator[Packet | Dropped]:
        """Yield every complete packet buffered so far, in order."""
        if self._error is not None:
            raise self._error
        try:
            while True:
                event = self._next()
                if event is None:
                    return
                yield event
        except ProtocolError as exc:
            self._error = exc
            raise
        finally:
            # Compact once per call rather than per packet: many small packets in one read would
            # otherwise cost a quadratic amount of copying.
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0

    def _next(self) -> Packet | Dropped | None:
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 4:
            return None
        (length,) = _LENGTH.unpack_from(buf, pos)
        if length == 0:
            raise BadLength("bad length 0")
        if length > self.max_length:
            raise BadLength(f"bad length {length}, above the limit of {self.max_length}")
        if self.strict:
            if length < HEADER_SIZE:
                raise BadLength(f"bad length {length}, shorter than the {HEADER_SIZE}-byte header")
            if length % ALIGNMENT:
                raise BadLength(f"bad length {length}, not a multiple of {ALIGNMENT}")
            # Judge magic and version as soon as they are here, not after a possibly huge body.
            if avail >= 12:
                magic, version = _MAGIC_VERSION.unpack_from(buf, pos + 4)
                if magic != CTDB_MAGIC:
                    raise BadMagic(f"bad magic 0x{magic:08x}, expected 0x{CTDB_MAGIC:08x}")
                if version != CTDB_PROTOCOL:
                    raise BadVersion(f"bad protocol version {version}, expected {CTDB_PROTOCOL}")
        if avail < length:
            return None
        raw = bytes(buf[pos : pos + length])
        self._pos = pos + length
        if length < HEADER_SIZE:
            return Dropped(
                BadLength(f"bad length {length}, shorter than the {HEADER_SIZE}-byte header"), raw
            )
        magic, version = _MAGIC_VERSION.unpack_from(raw, 4)
        if magic != CTDB_MAGIC:
            return Dropped(BadMagic(f"bad magic 0x{magic:08x}, expected 0x{CTDB_MAGIC:08x}"), raw)
        if version != CTDB_PROTOCOL:
            return Dropped(
                BadVersion(f"bad protocol version {version}, expected {CTDB_PROTOCOL}"), raw
            )
        (operation,) = _OPERATION.unpack_from(raw, 16)
        if operation not in _OPERATIONS:
            return Dropped(UnknownOperation(f"unknown operation {operation}"), raw)
        try:
            return unpack(raw)
        except ProtocolError as exc:
            # The framing is intact, only this packet's body is bad: skip it like 4.17 would.
            return Dropped(exc, raw)
