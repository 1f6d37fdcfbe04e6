"""The counters behind `ctdb dbstatistics` and the lock part of `ctdb statistics`,
counted as 4.17's ctdbd counts them (server/ctdb_lock.c, ctdb_call.c, ctdb_vacuum.c)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator

import anyio
import pytest

from ctdbcore.db import locking
from ctdbcore.db.database import DbCounters
from ctdbcore.db.dbstats import HOT_KEY_WINDOW, HotKeys, Latency, LockCounters, NodeCounters, hop_bucket, lock_bucket
from ctdbcore.db.locking import LockHelperError, freeze_lock, record_lock
from ctdbcore.db.tdb import Tdb, TdbFlags
from ctdbcore.protocol.statistics import MAX_HOT_KEYS, DbStatistics, HotKey, LatencyCounter, Statistics
from tests.unit.db.lockprocs import helper_pids, no_helpers_left

VOLATILE_NO_MUTEX = 0x1C41 & ~TdbFlags.MUTEX_LOCKING
KEY = b"dbstats key"


# -- pure counting -----------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "bucket"), [
    (0.0, 0), (0.000999, 0), (0.001, 1), (0.0099, 1), (0.01, 2), (0.099, 2), (0.1, 3), (0.999, 3),
    (1.0, 4), (1.99, 4), (2.0, 5), (4.0, 6), (8.0, 7), (16.0, 8), (32.0, 9), (63.9, 9), (64.0, 10), (1e6, 10),
])  # fmt: skip
def test_lock_wait_buckets_are_4_17s(seconds: float, bucket: int) -> None:
    assert lock_bucket(seconds) == bucket


@pytest.mark.parametrize(("hops", "bucket"), [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (7, 3), (8, 4),
                                              (1 << 14, 15), (1 << 20, 15)])
def test_hop_buckets_count_bits(hops: int, bucket: int) -> None:
    assert hop_bucket(hops) == bucket


def test_latency_counter_keeps_min_max_total_num() -> None:
    lat = Latency()
    assert lat.counter() == LatencyCounter(0, 0.0, 0.0, 0.0)
    for v in (0.5, 0.25, 2.0):
        lat.add(v)
    assert lat.counter() == LatencyCounter(3, 0.25, 2.0, 2.75)


def test_lock_counters_go_to_the_node_too() -> None:
    node = NodeCounters()
    a, b = DbCounters(node=node), DbCounters(node=node)
    a.locks.requested()
    b.locks.requested()
    assert (a.locks.num_pending, node.locks.num_pending) == (1, 2)
    a.locks.helper_started()
    assert (a.locks.num_pending, a.locks.num_current, node.locks.num_pending, node.locks.num_current) == (0, 1, 1, 1)
    a.locks.locked(0.05)
    b.locks.ended(started=False)  # given up before its helper ran: no call
    a.locks.ended(started=True)
    fields = node.statistics_fields()
    assert (fields["locks_num_calls"], fields["locks_num_current"], fields["locks_num_pending"]) == (1, 0, 0)
    assert fields["locks_buckets"][2] == 1 and fields["locks_latency"] == LatencyCounter(1, 0.05, 0.05, 0.05)
    assert b.locks.num_calls == 0
    b.locks.requested()
    b.locks.helper_started()
    b.locks.failed()
    b.locks.ended(started=True)
    assert (b.locks.num_calls, b.locks.num_failed, node.locks.num_calls, node.locks.num_failed) == (1, 1, 2, 1)
    assert b.locks.latency.num == 0 and sum(b.locks.buckets) == 0
    # the STATISTICS control's struct takes them as they are
    st = Statistics.unpack(Statistics(**node.statistics_fields()).pack())
    assert (st.locks_num_calls, st.locks_num_failed, st.locks_buckets[2]) == (2, 1, 1)


def test_hop_counts_per_database_and_node() -> None:
    node = NodeCounters()
    c = DbCounters(node=node)
    for hops in (0, 1, 3, 3, 9):
        c.hop(hops)
    assert c.hop_count_buckets[:5] == [1, 1, 2, 0, 1]
    assert node.hop_count_bucket == c.hop_count_buckets and node.max_hop_count == 9
    assert c.statistics().hop_count_bucket[:5] == (1, 1, 2, 0, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hot_key_counts_migrations_within_a_second() -> None:
    clock = Clock()
    hk = HotKeys(clock=clock)
    for _ in range(3):
        hk.migrated(b"a")
        clock.now += 0.2
    assert hk.keys == [HotKey(3, b"a")]
    clock.now += HOT_KEY_WINDOW  # a new window starts at 1: the best count so far stays
    hk.migrated(b"a")
    assert hk.keys == [HotKey(3, b"a")]
    for _ in range(3):
        hk.migrated(b"a")
    assert hk.keys == [HotKey(4, b"a")]
    hk.migrated(b"b")
    assert hk.keys == [HotKey(1, b"b"), HotKey(4, b"a")]  # sorted, coolest first


def test_hot_keys_of_volatile_databases_only(tmp_path) -> None:
    from ctdbcore.db.registry import Databases, DbDirs
    from ctdbcore.protocol.constants import DbFlags

    reg = Databases(0, DbDirs(*(str(tmp_path / d) for d in ("v", "p", "s"))))
    for name, flags in (("v.tdb", 0), ("p.tdb", DbFlags.PERSISTENT), ("r.tdb", DbFlags.REPLICATED)):
        db, _ = reg.attach(name, flags)
        db.counters.migrated_here(b"k")
        assert len(db.counters.statistics().hot_keys) == MAX_HOT_KEYS
        assert [k.count for k in db.counters.statistics().hot_keys][0] == (1 if name == "v.tdb" else 0)
        assert db.counters.locks.parent is reg.counters.locks
        db.close()


def test_hot_keys_keep_the_ten_hottest() -> None:
    hk = HotKeys(clock=Clock())
    for i in range(MAX_HOT_KEYS):
        hk.update(b"k%d" % i, i + 2)
    assert [k.count for k in hk.keys] == list(range(2, 12))
    hk.update(b"new", 2)  # no hotter than the coolest: ignored
    assert b"new" not in [k.key for k in hk.keys]
    hk.update(b"new", 3)  # replaces the coolest
    assert [k.key for k in hk.keys][:2] == [b"new", b"k1"] or [k.key for k in hk.keys][:2] == [b"k1", b"new"]
    assert b"k0" not in [k.key for k in hk.keys] and len(hk.keys) == MAX_HOT_KEYS
    hk.update(b"k5", 100)
    assert hk.keys[-1] == HotKey(100, b"k5")
    hk.update(b"k5", 50)  # a known key's count never drops
    assert hk.keys[-1] == HotKey(100, b"k5")


def test_hot_key_windows_are_forgotten() -> None:
    clock = Clock()
    hk = HotKeys(clock=clock)
    hk.migrated(b"old")
    clock.now += 30
    hk.migrated(b"new")
    clock.now += 11
    hk.migrated(b"new")
    assert set(hk.windows) == {b"new"}
    assert [k.key for k in hk.keys] == [b"old", b"new"]  # the hot key list keeps them


def test_db_statistics_on_the_wire_and_in_the_cli(monkeypatch) -> None:
    """GET_DB_STATISTICS sends all ten hot key slots, used ones first (coolest first),
    and `ctdb dbstatistics` prints all ten, as 4.17."""
    c = DbCounters(node=NodeCounters())
    c.ro_delegations = 2
    c.locks.requested()
    c.locks.helper_started()
    c.locks.locked(0.5)
    c.locks.requested()
    c.hop(0)
    c.hop(2)
    c.hot_keys.update(b"\x00key", 3)
    c.hot_keys.update(b"k2", 7)
    c.vacuum_latency.add(0.25)
    c.vacuum_latency.add(0.75)
    s = DbStatistics.unpack(c.statistics().pack())
    assert s.hot_keys[:2] == (HotKey(3, b"\x00key"), HotKey(7, b"k2")) and len(s.hot_keys) == MAX_HOT_KEYS

    from ctdbcore.tools.ctdb_records import control_dbstatistics

    class Reply:
        status = 0
        data = c.statistics().pack()

    class Conn:
        def control(self, *a, **kw):
            return Reply()

    class Tool:
        cmd_pnn = 0
        c = Conn()
        out = io.StringIO()

        def print(self, text):
            self.out.write(text)

    import ctdbcore.tools.ctdb_records as cr

    monkeypatch.setattr(cr, "db_lookup", lambda t, arg: (0x1234, "test.tdb", 0))
    t = Tool()
    assert control_dbstatistics(t, ["test.tdb"]) == 0
    expected = (
        "DB Statistics test.tdb\n"
        " db_ro_delegations                  2\n"
        " db_ro_revokes                      0\n"
        " locks\n"
        "     num_calls                      1\n"
        "     num_current                    1\n"
        "     num_pending                    1\n"
        "     num_failed                     0\n"
        " hop_count_buckets: 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        " lock_buckets: 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0\n"
        " locks_latency      MIN/AVG/MAX     0.500000/0.500000/0.500000 sec out of 1\n"
        " vacuum_latency     MIN/AVG/MAX     0.250000/0.500000/0.750000 sec out of 2\n"
        " Num Hot Keys:     10\n"
        "     Count:3 Key:006b6579\n"
        "     Count:7 Key:6b32\n"
        + "     Count:0 Key:\n" * 8
    )
    assert t.out.getvalue() == expected


@pytest.mark.anyio
async def test_timed_vacuum_counts_failed_runs_too() -> None:
    c = DbCounters()

    async def run(fail: bool) -> int:
        await anyio.sleep(0.05)
        if fail:
            raise RuntimeError("scan failed")
        return 7

    assert await c.timed_vacuum(run(False)) == 7
    with pytest.raises(RuntimeError):
        await c.timed_vacuum(run(True))
    lat = c.statistics().vacuum_latency
    assert lat.num == 2 and 0.04 < lat.min <= lat.max < 5


# -- what the record and freeze locks count ----------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def flags() -> int:
    return int(VOLATILE_NO_MUTEX)


@pytest.fixture
def tdb(tmp_path, flags) -> Iterator[Tdb]:
    path = str(tmp_path / "stats.tdb.0")
    t = Tdb.open(path, tdb_flags=flags)
    yield t
    t.close()
    assert no_helpers_left(path), "a lock helper outlived its test"


@pytest.fixture
def counted(tdb) -> tuple[LockCounters, LockCounters]:
    """(database, node) lock counters for tdb, as the daemon's registry sets them up."""
    node = NodeCounters()
    db = DbCounters(node=node)
    locking.count_locks(tdb, db.locks)
    return db.locks, node.locks


async def wait_for(predicate: Callable[[], bool], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


def snapshot(c: LockCounters) -> tuple[int, int, int, int]:
    return (c.num_calls, c.num_current, c.num_pending, c.num_failed)


@pytest.mark.anyio
async def test_uncontended_locks_count_nothing(tdb, counted) -> None:
    db, node = counted
    for _ in range(3):
        async with record_lock(tdb, KEY):
            pass
    assert snapshot(db) == snapshot(node) == (0, 0, 0, 0) and db.latency.num == 0


@pytest.mark.anyio
async def test_a_record_lock_that_waits_for_a_helper(tdb, holder, counted) -> None:
    db, node = counted
    assert holder("chainlock", KEY) == "ok"
    got = anyio.Event()
    release = anyio.Event()

    async def locker() -> None:
        async with record_lock(tdb, KEY):
            got.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(locker)
        await wait_for(lambda: len(helper_pids(tdb.path)) == 1 and db.num_current == 1)
        await anyio.sleep(0.3)
        # its helper runs and waits: current, not yet a call
        assert snapshot(db) == snapshot(node) == (0, 1, 0, 0)
        assert holder("chainunlock", KEY) == "ok"
        with anyio.fail_after(10):
            await got.wait()
        # had: one call with its wait; still current while the lock is held
        assert snapshot(db) == (1, 1, 0, 0)
        assert 0.3 <= db.latency.min == db.latency.max < 10 and db.latency.num == 1
        assert sum(db.buckets) == 1 and db.buckets[lock_bucket(db.latency.max)] == 1
        release.set()
    assert snapshot(db) == snapshot(node) == (1, 0, 0, 0)
    assert node.latency.num == 1 and node.buckets == db.buckets


@pytest.mark.anyio
async def test_a_record_lock_had_while_spinning_counts_its_wait(tdb, holder, counted, monkeypatch) -> None:
    monkeypatch.setattr(locking, "SPIN", 5.0)
    db, _ = counted
    assert holder("chainlock", KEY) == "ok"
    got = anyio.Event()

    async def locker() -> None:
        async with record_lock(tdb, KEY):
            got.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(locker)
        await anyio.sleep(0.2)
        assert not got.is_set() and no_helpers_left(tdb.path)
        assert holder("chainunlock", KEY) == "ok"
    assert snapshot(db) == (1, 0, 0, 0)
    assert 0.2 <= db.latency.max < 5 and db.buckets[3] == 1


@pytest.mark.anyio
async def test_a_given_up_lock_is_no_call(tdb, holder, counted) -> None:
    db, node = counted
    assert holder("chainlock", KEY) == "ok"
    with pytest.raises(TimeoutError):
        async with record_lock(tdb, KEY, timeout=0.3):
            pytest.fail("locked")
    assert snapshot(db) == snapshot(node) == (0, 0, 0, 0)
    assert holder("chainunlock", KEY) == "ok"


@pytest.mark.anyio
async def test_a_failed_helper_is_a_failed_call(tdb, holder, counted) -> None:
    db, node = counted
    assert holder("chainlock", KEY) == "ok"
    os.rename(tdb.path, tdb.path + ".moved")
    try:
        with pytest.raises(LockHelperError):
            async with record_lock(tdb, KEY):
                pytest.fail("locked")
    finally:
        os.rename(tdb.path + ".moved", tdb.path)
    assert snapshot(db) == snapshot(node) == (1, 0, 0, 1) and db.latency.num == 0
    assert holder("chainunlock", KEY) == "ok"


@pytest.mark.anyio
async def test_a_freeze_lock_counts_and_stays_current_while_frozen(tdb, counted) -> None:
    db, node = counted
    async with freeze_lock(tdb):
        assert snapshot(db) == snapshot(node) == (1, 1, 0, 0) and db.latency.num == 1
    assert snapshot(db) == (1, 0, 0, 0)
