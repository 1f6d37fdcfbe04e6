"""The counters behind ``ctdb dbstatistics`` and the lock part of ``ctdb statistics``,
kept the way 4.17's ctdbd keeps them.

* Locks (4.17 server/ctdb_lock.c): only lock requests that could not be had at once
  count -- a record lock whose first non-blocking try found the chain busy, and the
  whole-database lock of a freeze. ``num_pending`` is a request whose helper is not
  running yet, ``num_current`` one whose helper runs (waiting, or holding the lock for
  as long as the lock is used); ``num_calls`` counts the answers, ``num_failed`` the
  failed ones, and each lock that was had adds its wait (from the request) to the
  latency and to one of the wait-time buckets. A request that is given up (timeout,
  cancelled) leaves ``num_calls`` alone. Each database's counts also go to the node's.
* Hot keys (4.17 server/ctdb_call.c): every time a record arrives on this node for a
  call made here, its key's migrations within a one-second window are counted; the ten
  keys with the largest such counts are kept, sorted by count, smallest first.
* Hop counts: the hop count of each call the data master serves, in power-of-two
  buckets (and the node's largest).
* Vacuum latency: how long each vacuum run of the database took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs

from ctdbcore.protocol.statistics import MAX_HOT_KEYS, HotKey, LatencyCounter

BUCKETS = 16  # MAX_COUNT_BUCKETS
# Upper ends (seconds, exclusive) of 4.17's lock wait buckets; longer waits go to the last.
_LOCK_BUCKET_LIMITS = (0.001, 0.01, 0.1, 1, 2, 4, 8, 16, 32, 64)
# A key's migrations are counted within this many seconds from its first one.
HOT_KEY_WINDOW = 1.0
# Keys whose window ended this long ago are forgotten (4.17 sweeps every 10 s).
_EXPIRE_EVERY = 10.0


def lock_bucket(seconds: float) -> int:
    """Index of 4.17's lock wait bucket for a wait of ``seconds``: <1 ms, <10 ms,
    <100 ms, <1 s, <2 s, <4 s ... <64 s, longer."""
    for i, limit in enumerate(_LOCK_BUCKET_LIMITS):
        if seconds < limit:
            return i
    return len(_LOCK_BUCKET_LIMITS)


def hop_bucket(hops: int) -> int:
    """Bucket of a hop count: the number of bits it needs (0 for 0), at most 15."""
    return min(hops.bit_length(), BUCKETS - 1)


@attrs.define
class Latency:
    """A ``ctdb_latency_counter`` being filled: min and max of the values, their sum and number."""

    num: int = 0
    min: float = 0.0
    max: float = 0.0
    total: float = 0.0

    def add(self, value: float) -> None:
        if self.num == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.total += value
        self.num += 1

    def counter(self) -> LatencyCounter:
        return LatencyCounter(self.num, self.min, self.max, self.total)


@attrs.define(eq=False)
class LockCounters:
    """4.17's ``locks`` counters, of a database or (``parent``) of the node."""

    num_calls: int = 0
    num_current: int = 0
    num_pending: int = 0
    num_failed: int = 0
    latency: Latency = attrs.Factory(Latency)
    buckets: list[int] = attrs.Factory(lambda: [0] * BUCKETS)
    parent: LockCounters | None = None

    def reset(self) -> None:
        """Zero what was counted; locks being waited for or held stay counted."""
        self.num_calls = self.num_failed = 0
        self.latency = Latency()
        self.buckets = [0] * BUCKETS

    def _each(self) -> list[LockCounters]:
        return [self] if self.parent is None else [self, self.parent]

    def requested(self) -> None:
        """A busy lock is handed to a helper that is not running yet."""
        for c in self._each():
            c.num_pending += 1

    def helper_started(self) -> None:
        for c in self._each():
            c.num_pending = max(0, c.num_pending - 1)
            c.num_current += 1

    def locked(self, waited: float) -> None:
        """The lock was had ``waited`` seconds after it was asked for."""
        bucket = lock_bucket(waited)
        for c in self._each():
            c.num_calls += 1
            c.latency.add(waited)
            c.buckets[bucket] += 1

    def failed(self) -> None:
        for c in self._each():
            c.num_calls += 1
            c.num_failed += 1

    def ended(self, *, started: bool) -> None:
        """The request is over (lock released, failed or given up)."""
        for c in self._each():
            if started:
                c.num_current = max(0, c.num_current - 1)
            else:
                c.num_pending = max(0, c.num_pending - 1)


@attrs.define(eq=False)
class HotKeys:
    """The ten keys that migrated here most often within one second (4.17 keeps a
    ``hash_count`` of migrations per key and ``ctdb_update_db_stat_hot_keys``)."""

    clock: Callable[[], float] = time.monotonic
    # key -> (start of its counting window, migrations in it)
    windows: dict[bytes, tuple[float, int]] = attrs.Factory(dict)
    # Slots in use, sorted by count, smallest first (what GET_DB_STATISTICS sends).
    keys: list[HotKey] = attrs.Factory(list)
    _last_expiry: float | None = None

    def migrated(self, key: bytes) -> None:
        now = self.clock()
        start, count = self.windows.get(key, (now, 0))
        if now < start + HOT_KEY_WINDOW:
            count += 1
        else:
            start, count = now, 1
        self.windows[key] = (start, count)
        self.update(key, count)
        self._expire(now)

    def _expire(self, now: float) -> None:
        if self._last_expiry is None:
            self._last_expiry = now
        if now - self._last_expiry < _EXPIRE_EVERY:
            return
        self._last_expiry = now
        for k, (start, _) in list(self.windows.items()):
            if start < now - HOT_KEY_WINDOW:
                del self.windows[k]

    def update(self, key: bytes, count: int) -> None:
        """Offer ``key`` with ``count``: it replaces the coolest key when all slots are
        used and it is hotter; a known key's count only grows."""
        keys = self.keys
        if len(keys) == MAX_HOT_KEYS and count <= keys[0].count:
            return
        for i, hk in enumerate(keys):
            if hk.key == key:
                if count <= hk.count:
                    return
                keys[i] = HotKey(count, key)
                break
        else:
            if len(keys) < MAX_HOT_KEYS:
                keys.append(HotKey(count, key))
            else:
                keys[0] = HotKey(count, key)
        keys.sort(key=lambda k: k.count)


@attrs.define(eq=False)
class NodeCounters:
    """Node-wide counterparts (``ctdb statistics``) of the database counters."""

    locks: LockCounters = attrs.Factory(LockCounters)
    max_hop_count: int = 0
    hop_count_bucket: list[int] = attrs.Factory(lambda: [0] * BUCKETS)
    # Since the last ``ctdb stats`` history entry (see :meth:`interval_hops`).
    interval_max_hop_count: int = 0
    _hop_mark: list[int] = attrs.Factory(lambda: [0] * BUCKETS)

    def reset(self) -> None:
        self.locks.reset()
        self.max_hop_count = self.interval_max_hop_count = 0
        self.hop_count_bucket = [0] * BUCKETS
        self._hop_mark = [0] * BUCKETS

    def interval_hops(self) -> tuple[list[int], int]:
        """The hop counts since the last call: each bucket's growth, and the largest
        count (a GET_STAT_HISTORY entry); the next interval starts now."""
        grown = [n - m for n, m in zip(self.hop_count_bucket, self._hop_mark)]
        peak = self.interval_max_hop_count
        self._hop_mark = list(self.hop_count_bucket)
        self.interval_max_hop_count = 0
        return grown, peak

    def statistics_fields(self) -> dict[str, Any]:
        """Keyword arguments for :class:`ctdbcore.protocol.statistics.Statistics`."""
        lk = self.locks
        return dict(locks_num_calls=lk.num_calls, locks_num_current=lk.num_current,
                    locks_num_pending=lk.num_pending, locks_num_failed=lk.num_failed,
                    locks_latency=lk.latency.counter(), locks_buckets=tuple(lk.buckets),
                    max_hop_count=self.max_hop_count, hop_count_bucket=tuple(self.hop_count_bucket))
