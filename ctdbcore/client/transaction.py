"""A persistent transaction's buffer (4.17 client/client_db.c ``ctdb_transaction_*``):
writes are kept here until commit, reads see the local copy plus these writes. What
goes out at commit and how its outcome is judged are decided here too; the exchange
with the daemon (TRANS3_COMMIT under the g_lock) is :mod:`ctdbcore.client.aiodb`'s."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ctdbcore.db import record
from ctdbcore.protocol.records import LtdbHeader, RecBuffer, RecData

if TYPE_CHECKING:
    from ctdbcore.db.tdb import Tdb

_U64 = struct.Struct("<Q")


class Transaction:
    """Writes buffered until the ``with db.transaction()`` block ends."""

    def __init__(self, tdb: Tdb, db_id: int) -> None:
        self.tdb = tdb
        self.db_id = db_id
        self.writes: dict[bytes, bytes] = {}

    def fetch(self, key: bytes) -> bytes | None:
        """The value as this transaction sees it (None when missing or empty)."""
        if key in self.writes:
            return self.writes[key] or None
        return self._local(key) or None

    def store(self, key: bytes, data: bytes) -> None:
        self.writes[key] = data

    def delete(self, key: bytes) -> None:
        self.writes[key] = b""

    def _local(self, key: bytes) -> bytes:
        got = record.split_value(self.tdb.fetch(key))
        return got[1] if got else b""

    def seqnum(self) -> int:
        """The database's transaction counter in this node's copy."""
        data = self._local(record.SEQNUM_KEY)
        return _U64.unpack(data)[0] if len(data) == 8 else 0

    def commit_buffer(self, pnn: int) -> tuple[bytes, int] | None:
        """The TRANS3_COMMIT payload and the seqnum it starts from; None when nothing
        would change. Each record gets the next RSN with this node as dmaster, and the
        counter record goes up by one, as 4.17's commit does."""
        changes = {k: v for k, v in self.writes.items() if self._local(k) != v}
        if not changes:
            return None
        seq = self.seqnum()
        changes[record.SEQNUM_KEY] = _U64.pack(seq + 1)
        recs = tuple(RecData(reqid=0, key=k, data=v, header=self._header(k, pnn)) for k, v in changes.items())
        return RecBuffer(self.db_id, recs).pack(), seq

    def _header(self, key: bytes, pnn: int) -> LtdbHeader:
        got = record.split_value(self.tdb.fetch(key))
        return LtdbHeader(rsn=(got[0].rsn if got else 0) + 1, dmaster=pnn, flags=0)
