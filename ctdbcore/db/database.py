"""One attached database as this node holds it: its TDB file, kind and recovery state.

The file is the real thing Samba opens too (same name, flags, hash and 24-byte record
header), so every write here goes through :mod:`ctdbcore.db.tdb` (libtdb) and every rule
about headers comes from :mod:`ctdbcore.db.record`.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Awaitable, Iterator
from typing import TypeVar

import attrs

from ctdbcore.db import record
from ctdbcore.db.dbstats import HotKeys, Latency, LockCounters, NodeCounters, hop_bucket
from ctdbcore.db.sticky import StickyRecords
from ctdbcore.db.tdb import Tdb, TdbFlags
from ctdbcore.protocol.constants import INVALID_GENERATION, DbFlags
from ctdbcore.protocol.records import LtdbHeader
from ctdbcore.protocol.statistics import DbStatistics

_U64 = struct.Struct("<Q")
T = TypeVar("T")


def tdb_flags_for(db_flags: int, mutexes: bool) -> int:
    """4.17's ``ctdb_db_tdb_flags``: the open flags Samba must use for the same file."""
    if db_flags & DbFlags.PERSISTENT:
        return int(TdbFlags.DISALLOW_NESTING)
    flags = TdbFlags.NOSYNC | TdbFlags.CLEAR_IF_FIRST | TdbFlags.INCOMPATIBLE_HASH | TdbFlags.DISALLOW_NESTING
    if mutexes and not db_flags & DbFlags.REPLICATED:
        flags |= TdbFlags.MUTEX_LOCKING
    return int(flags)


@attrs.define(eq=False)
class DbCounters:
    """What ``ctdb dbstatistics`` shows about this node's use of the database (see
    :mod:`ctdbcore.db.dbstats` for what is counted when); ``node`` gets the node-wide
    share (``ctdb statistics``)."""

    node: NodeCounters | None = None
    # 4.17 tracks hot keys of volatile databases only.
    count_hot_keys: bool = True
    locks: LockCounters = attrs.Factory(LockCounters)
    vacuum_latency: Latency = attrs.Factory(Latency)
    hot_keys: HotKeys = attrs.Factory(HotKeys)
    hop_count_max: int = 0
    hop_count_buckets: list[int] = attrs.Factory(lambda: [0] * 16)
    ro_delegations: int = 0
    ro_revokes: int = 0

    def __attrs_post_init__(self) -> None:
        if self.node is not None:
            self.locks.parent = self.node.locks

    def reset(self) -> None:
        """STATISTICS_RESET (4.17 ctdb_db_statistics_reset). In place: the lock code
        and the node's totals hold on to these objects."""
        self.locks.reset()
        self.vacuum_latency = Latency()
        self.hot_keys = HotKeys()
        self.hop_count_max = 0
        self.hop_count_buckets = [0] * 16
        self.ro_delegations = self.ro_revokes = 0

    def hop(self, count: int) -> None:
        """The data master serves a call that took ``count`` hops to reach it."""
        bucket = hop_bucket(count)
        self.hop_count_max = max(self.hop_count_max, count)
        self.hop_count_buckets[bucket] += 1
        if self.node is not None:
            self.node.max_hop_count = max(self.node.max_hop_count, count)
            self.node.interval_max_hop_count = max(self.node.interval_max_hop_count, count)
            self.node.hop_count_bucket[bucket] += 1

    def migrated_here(self, key: bytes) -> None:
        """The record of ``key`` arrived here for a call made on this node."""
        if self.count_hot_keys:
            self.hot_keys.migrated(key)

    async def timed_vacuum(self, run: Awaitable[T]) -> T:
        """Await one vacuum run of the database, adding its duration to the vacuum
        latency however it ends (4.17 counts aborted and failed runs too)."""
        start = time.monotonic()
        try:
            return await run
        finally:
            self.vacuum_latency.add(time.monotonic() - start)

    def statistics(self) -> DbStatistics:
        lk = self.locks
        return DbStatistics(
            locks_num_calls=lk.num_calls, locks_num_current=lk.num_current, locks_num_pending=lk.num_pending,
            locks_num_failed=lk.num_failed, locks_latency=lk.latency.counter(), locks_buckets=tuple(lk.buckets),
            vacuum_latency=self.vacuum_latency.counter(), db_ro_delegations=self.ro_delegations,
            db_ro_revokes=self.ro_revokes, hop_count_bucket=tuple(self.hop_count_buckets),
            hot_keys=tuple(self.hot_keys.keys))


@attrs.define(eq=False)
class Database:
    name: str
    db_id: int
    flags: int  # DbFlags
    path: str
    tdb: Tdb
    tdb_flags: int
    # The generation of the last recovery that rebuilt this copy; calls from an older
    # generation are stale.
    generation: int = INVALID_GENERATION
    frozen: bool = False
    txn_id: int | None = None
    unhealthy_reason: str = ""
    counters: DbCounters = attrs.Factory(DbCounters)
    # Read-only delegations (READONLY databases): which nodes hold a copy of each record
    # this node handed out as data master (4.17 keeps the same bitmaps in <path>.RO),
    # and the revokes in progress by key.
    ro_tracking: dict[bytes, bytes] = attrs.Factory(dict)
    revokes: dict[bytes, object] = attrs.Factory(dict)
    # Sticky records (STICKY databases) and the calls waiting for a pin-down to end.
    sticky_records: StickyRecords = attrs.Factory(StickyRecords)
    pinned_calls: dict[bytes, list] = attrs.Factory(dict)

    @property
    def persistent(self) -> bool:
        return bool(self.flags & DbFlags.PERSISTENT)

    @property
    def replicated(self) -> bool:
        return bool(self.flags & DbFlags.REPLICATED)

    @property
    def readonly(self) -> bool:
        return bool(self.flags & DbFlags.READONLY)

    @property
    def sticky(self) -> bool:
        return bool(self.flags & DbFlags.STICKY)

    @property
    def volatile(self) -> bool:
        return not self.flags & (DbFlags.PERSISTENT | DbFlags.REPLICATED)

    # -- records -------------------------------------------------------------------------

    def fetch(self, key: bytes) -> tuple[LtdbHeader, bytes] | None:
        return record.split_value(self.tdb.fetch(key))

    def write(self, key: bytes, header: LtdbHeader, data: bytes) -> None:
        self.tdb.store(key, record.join_value(header, data))

    def delete(self, key: bytes) -> None:
        self.tdb.delete(key)

    def store(self, key: bytes, header: LtdbHeader, data: bytes, *, pnn: int, is_lmaster: bool) -> LtdbHeader | None:
        """The daemon's own store (4.17 ``ctdb_ltdb_store_server``): volatile records may
        be deleted or get their RSN bumped; other kinds are written as given."""
        if not self.volatile:
            self.write(key, header, data)
            return header
        out = record.volatile_store(header, data, pnn=pnn, is_lmaster=is_lmaster)
        if out is None:
            self.delete(key)
        else:
            self.write(key, out, data)
        return out

    def records(self) -> Iterator[tuple[bytes, LtdbHeader, bytes]]:
        """Every record with a valid header (values shorter than a header are not ours)."""
        for key, value in self.tdb.traverse():
            split = record.split_value(value)
            if split is not None:
                yield key, split[0], split[1]

    def seqnum(self) -> int:
        """Persistent databases count committed transactions in a record of their own."""
        got = self.fetch(record.SEQNUM_KEY)
        if got is None or len(got[1]) != 8:
            return 0
        return _U64.unpack(got[1])[0]

    def close(self) -> None:
        self.tdb.close()


def db_file_name(directory: str, name: str, pnn: int) -> str:
    """4.17 names the file ``<dir>/<dbname>.<pnn>`` (e.g. ``locking.tdb.0``)."""
    return os.path.join(directory, f"{name}.{pnn}")
