"""Databases across three real ctdbd processes (loopback mode): record migration,
recovery of records a dead node held, persistent transactions, traverse.

The clients are our client library talking to each node's unix socket, and reading
and writing the same TDB files the daemons use, as smbd does.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import struct
import time
from pathlib import Path

import pytest

from ctdbcore.client.db import attach
from ctdbcore.client.sync import Client
from ctdbcore.db import marshall, record
from ctdbcore.protocol import types as T
from ctdbcore.protocol.hash import db_id as hash_db_id
from ctdbcore.protocol.constants import Opcode
from ctdbcore.protocol.records import LtdbHeader
from tests.cluster.helpers import client, ctdb, up, vacuum_children, wait_for, waits_for_a_lock

pytestmark = pytest.mark.slow

ALL = [0, 1, 2]


def local_header(lc, pnn: int, name: str, key: bytes):
    """The record as node pnn's file holds it (header, data), read like tdbdump would."""
    with client(lc, pnn) as c:
        db = attach(c, name)
        try:
            got = record.split_value(db.tdb.fetch(key))
        finally:
            db.close()
    return got


def node_packets(lc, pnn: int) -> int:
    """Record traffic this daemon received from other nodes: calls and data master
    moves (``ctdb statistics``; the leader's periodic polling is not counted)."""
    with client(lc, pnn) as c:
        st = T.Statistics.unpack(c._checked(Opcode.STATISTICS).data)
    return st.node_req_call + st.node_reply_call + st.node_req_dmaster + st.node_reply_dmaster + st.node_reply_error


def force_recovery(lc) -> None:
    """What `ctdb recover` does: put a node into recovery mode; wait for the new generation."""
    with client(lc, 0) as c:
        gen = c.get_vnnmap().generation
        c._checked(Opcode.SET_RECMODE, T.pack_u32(1))
        wait_for(lambda: c.get_vnnmap().generation != gen and c.get_recmode() == 0, what="recovery done")


def test_volatile_record_migrates_on_access_and_rsn_grows(local_cluster) -> None:
    lc = up(local_cluster, 111)
    key = b"k1"
    with client(lc, 0) as c:
        attach(c, "test.tdb").store(key, b"from 0")
    rsns = []
    for pnn, value in ((1, b"from 1"), (2, b"from 2"), (0, b"from 0 again")):
        with client(lc, pnn) as c:
            db = attach(c, "test.tdb")
            with db.fetch_lock(key) as rec:
                assert rec.header.dmaster == pnn
                rsns.append(rec.header.rsn)
                rec.store(value)
            db.close()
    assert rsns == sorted(rsns) and len(set(rsns)) == 3, f"RSN must grow with each migration: {rsns}"
    # Every node agrees on the value: the last written one.
    for pnn in ALL:
        with client(lc, pnn) as c:
            assert attach(c, "test.tdb").fetch(key) == b"from 0 again"
    # The last reader, node 2, holds it now: using it there again is local (same RSN,
    # and not one packet between the nodes).
    h2, _ = local_header(lc, 2, "test.tdb", key)
    assert h2.dmaster == 2
    before = [node_packets(lc, p) for p in ALL]
    with client(lc, 2) as c:
        db = attach(c, "test.tdb")
        for i in range(20):
            with db.fetch_lock(key) as rec:
                assert rec.header.rsn == h2.rsn
                rec.store(b"local %d" % i)
    after = [node_packets(lc, p) for p in ALL]
    assert after == before
    assert sum(before) > 0  # the counters do count: the migrations above were seen


def test_record_of_a_killed_dmaster_comes_back_from_the_newest_copy(local_cluster) -> None:
    lc = up(local_cluster, 121)
    key = b"precious"
    with client(lc, 0) as c:
        attach(c, "test.tdb").store(key, b"v0")
    with client(lc, 1) as c:
        attach(c, "test.tdb").store(key, b"v1")  # node 1 writes the newest value
    with client(lc, 2) as c:
        assert attach(c, "test.tdb").fetch(key) == b"v1"  # node 2 becomes dmaster by reading
    h, _ = local_header(lc, 2, "test.tdb", key)
    assert h.dmaster == 2
    lc.kill(2)
    wait_for(lambda: "Size:2" in ctdb(lc, 0, "status"), timeout=30, what="recovery without node 2")
    for pnn in (0, 1):
        with client(lc, pnn) as c:
            assert attach(c, "test.tdb").fetch(key) == b"v1"


def test_traverse_sees_every_record_once(local_cluster) -> None:
    lc = up(local_cluster, 131)
    keys = [f"key-{i}".encode() for i in range(60)]
    # Spread the records: each node writes a third of them, so dmasters differ.
    for i, key in enumerate(keys):
        with client(lc, i % 3) as c:
            attach(c, "trav.tdb").store(key, b"value-" + key)
    with client(lc, 1) as c:
        seen = [r.key for r in attach(c, "trav.tdb").traverse()]
    assert sorted(seen) == sorted(keys)


def test_persistent_transactions_visible_everywhere_and_restarted_node_catches_up(local_cluster) -> None:
    lc = up(local_cluster, 141)
    with client(lc, 0) as c:
        db = attach(c, "pers.tdb", persistent=True)
        with db.transaction() as t:
            t.store(b"a", b"1")
            t.store(b"b", b"2")
    for pnn in ALL:
        with client(lc, pnn) as c:
            db = attach(c, "pers.tdb", persistent=True)
            assert (db.fetch(b"a"), db.fetch(b"b")) == (b"1", b"2")
    lc.kill(2)
    wait_for(lambda: "Size:2" in ctdb(lc, 0, "status"), timeout=30, what="recovery without node 2")
    with client(lc, 1) as c:
        with attach(c, "pers.tdb", persistent=True).transaction() as t:
            t.store(b"a", b"changed while node 2 was down")
    lc.start(2)
    lc.wait_ok(timeout=30)
    with client(lc, 2) as c:
        assert attach(c, "pers.tdb", persistent=True).fetch(b"a") == b"changed while node 2 was down"


def _transactions(socket_path: str, n: int, out) -> None:
    c = Client(socket_path, timeout=30)
    db = attach(c, "stream.tdb", persistent=True)
    for i in range(n):
        try:
            with db.transaction() as t:
                t.store(b"counter", str(i).encode())
                t.store(f"item-{i}".encode(), b"x" * 100)
                t.store(b"pair", struct.pack("<QQ", i, i))
        except Exception:
            return
        out.put(i)


def test_sigkill_during_a_stream_of_transactions_loses_nothing_committed(local_cluster) -> None:
    lc = up(local_cluster, 151)
    with client(lc, 0) as c:
        attach(c, "stream.tdb", persistent=True)
    q: multiprocessing.Queue = multiprocessing.Queue()
    writer = multiprocessing.Process(target=_transactions, args=(lc.socket(0), 400, q))
    writer.start()
    time.sleep(1.0)
    lc.kill(2)
    writer.join(120)
    assert writer.exitcode == 0
    committed = []
    while not q.empty():
        committed.append(q.get())
    assert committed, "no transaction committed"
    last = max(committed)
    for pnn in (0, 1):
        with client(lc, pnn) as c:
            db = attach(c, "stream.tdb", persistent=True)
            counter = int(db.fetch(b"counter"))
            # all-or-nothing: the three records of one transaction agree
            assert struct.unpack("<QQ", db.fetch(b"pair")) == (counter, counter)
            assert counter >= last
            for i in committed:
                assert db.fetch(f"item-{i}".encode()) == b"x" * 100


def test_persistent_update_is_all_or_nothing_and_a_refused_commit_ends_by_recovery(local_cluster) -> None:
    """UPDATE_RECORD stores none of its records when one of them has other data than
    the copy without a higher RSN, or when the buffer is cut short; the same data at
    the same RSN passes. A TRANS3_COMMIT the nodes refuse forces a recovery and is
    answered 2, "trans3 commit ended by recovery" (4.17 ctdb_persistent.c)."""
    lc = up(local_cluster, 71)
    with client(lc, 0) as c:
        db = attach(c, "upd.tdb", persistent=True)
        with db.transaction() as t:
            t.store(b"a", b"1")
        db_id = db.db_id
        rsn_a = record.split_value(db.tdb.fetch(b"a"))[0].rsn

    def rec(key: bytes, rsn: int, data: bytes) -> tuple[bytes, bytes]:
        return key, LtdbHeader(rsn=rsn, dmaster=0).pack() + data

    stale = marshall.pack(db_id, [rec(b"c", 1, b"new"), rec(b"a", rsn_a, b"other")])
    cut = marshall.pack(db_id, [rec(b"c", 1, b"new"), rec(b"e", 1, b"y")])[:-2]
    same = marshall.pack(db_id, [rec(b"d", 1, b"x"), rec(b"a", rsn_a, b"1")])

    def fetch(pnn: int, key: bytes) -> bytes | None:
        with client(lc, pnn) as c:
            return attach(c, "upd.tdb", persistent=True).fetch(key)

    with client(lc, 0) as c:
        refused = c.control(Opcode.UPDATE_RECORD, stale, destnode=1)
        bad = c.control(Opcode.UPDATE_RECORD, cut, destnode=1)
    assert refused.status != 0 and "newer than the update" in (refused.errmsg or "")
    assert bad.status != 0 and "bad update buffer" in (bad.errmsg or "")
    assert [fetch(1, k) for k in (b"a", b"c", b"e")] == [b"1", None, None]

    with client(lc, 0) as c:
        gen = c.get_vnnmap().generation
        reply = c.control(Opcode.TRANS3_COMMIT, stale, timeout=60)
        assert (reply.status, reply.errmsg) == (2, "trans3 commit ended by recovery")
        assert c.get_vnnmap().generation != gen
    for pnn in ALL:
        assert (fetch(pnn, b"a"), fetch(pnn, b"c")) == (b"1", None)

    with client(lc, 0) as c:
        assert c.control(Opcode.UPDATE_RECORD, same, destnode=2).status == 0
    assert (fetch(2, b"a"), fetch(2, b"d")) == (b"1", b"x")


def test_files_are_real_tdbs_with_4_17_names(local_cluster) -> None:
    lc = up(local_cluster, 161)
    with client(lc, 0) as c:
        with attach(c, "names.tdb") as db:
            db.store(b"k", b"value-k")
            path = db.path
        with attach(c, "pnames.tdb", persistent=True) as pdb:
            ppath = pdb.path
            with pdb.transaction() as t:
                t.store(b"pk", b"pvalue")
    assert path.endswith("/volatile/names.tdb.0") and ppath.endswith("/persistent/pnames.tdb.0")
    # Debian's tdbdump reads the raw records (24-byte header + value) ...
    out = subprocess.run(["tdbdump", path], capture_output=True, text=True, check=True).stdout
    assert 'key(1) = "k"' in out and 'data(31) = "' in out and '\\00value-k"' in out
    # ... and ltdbtool strips the header and shows who holds the record.
    out = subprocess.run(["ltdbtool", "dump", "-p", path], capture_output=True, text=True, check=True).stdout
    assert "dmaster: 0" in out and 'data(7) = "value-k"' in out
    out = subprocess.run(["ltdbtool", "dump", ppath], capture_output=True, text=True, check=True).stdout
    assert 'key(2) = "pk"' in out and 'data(6) = "pvalue"' in out
    assert "__db_sequence_number__" in out


def _raw(lc, pnn: int, name: str, key: bytes):
    with client(lc, pnn) as c:
        with attach(c, name) as db:
            return db.tdb.fetch(key)


def test_deleted_records_are_vacuumed_everywhere_and_never_resurrected(local_cluster) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=171, tunables=(("VacuumInterval", "1"),))
    lc.wait_ok(timeout=30)
    keys = [f"gone-{i}".encode() for i in range(30)]
    # Each record passes through all three nodes, so stale copies with data are left
    # behind on the nodes it left, then it is deleted on its last holder.
    for key in keys:
        for pnn in ALL:
            with client(lc, pnn) as c, attach(c, "vac.tdb") as db:
                db.store(key, b"value of " + key + b" on %d" % pnn)
    for key in keys:
        with client(lc, 2) as c, attach(c, "vac.tdb") as db:
            db.delete(key)
    assert any(_raw(lc, p, "vac.tdb", keys[0]) is not None for p in ALL)

    def all_gone() -> bool:
        return all(_raw(lc, p, "vac.tdb", k) is None for p in ALL for k in keys)

    wait_for(all_gone, timeout=30, what="deleted records vacuumed from every node's file")
    force_recovery(lc)
    for pnn in ALL:
        with client(lc, pnn) as c, attach(c, "vac.tdb") as db:
            assert all(db.fetch(k) is None for k in keys[:5])
    # Deleted, then a recovery at once (before any vacuum run could matter): the empty
    # copy has the highest RSN, so it wins over the stale copies with data, and recovery
    # pushes no empty records.
    more = [f"again-{i}".encode() for i in range(10)]
    for key in more:
        for pnn in ALL:
            with client(lc, pnn) as c, attach(c, "vac.tdb") as db:
                db.store(key, b"data")
        with client(lc, 1) as c, attach(c, "vac.tdb") as db:
            db.delete(key)
    force_recovery(lc)
    for pnn in ALL:
        with client(lc, pnn) as c, attach(c, "vac.tdb") as db:
            assert all(db.fetch(k) is None for k in more)


def test_client_attach_waits_for_the_end_of_recovery(local_cluster) -> None:
    """4.17 defers a local client's DB_ATTACH while the node is in recovery mode (a
    database opened mid-recovery would miss the records being pushed into it): the
    attach answers only once recovery mode is NORMAL again."""
    import threading

    lc = up(local_cluster, 191)
    done: dict[str, object] = {}

    def attach_now() -> None:
        with client(lc, 1) as c:
            db = attach(c, "deferred.tdb")
            done["recmode"] = c.get_recmode()
            done["db_id"] = db.db_id
            db.close()

    with client(lc, 1) as c:
        c._checked(Opcode.SET_RECMODE, T.pack_u32(1))
        assert c.get_recmode() == 1
        th = threading.Thread(target=attach_now)
        th.start()
        th.join(timeout=30)
    assert not th.is_alive(), "the deferred attach never answered"
    assert done["recmode"] == 0, "the attach answered while the node was still in recovery"
    log = (Path(lc.node_dir(1)) / "log.ctdb").read_text(errors="replace")
    assert "DB Attach to database deferred.tdb deferred for client" in log
    with client(lc, 2) as c:
        dbmap = T.DbidMap.unpack(c._checked(Opcode.GET_DBMAP).data)
        assert any(e.db_id == done["db_id"] for e in dbmap.dbs)


def test_recovery_mode_stays_active_while_a_database_missed_the_recovery(local_cluster) -> None:
    """4.17's SET_RECMODE NORMAL refuses while a database's generation is not the
    node's (the database was not rebuilt by the recovery that set it); the leader's
    next recovery then brings the node back."""
    lc = up(local_cluster, 201)
    with client(lc, 0) as c:
        attach(c, "genchk.tdb").close()
    with client(lc, 1) as c:
        wait_for(lambda: any(e.db_id == hash_db_id("genchk.tdb")
                             for e in T.DbidMap.unpack(c._checked(Opcode.GET_DBMAP).data).dbs),
                 what="attach reached node 1")
        vm = c.get_vnnmap()
        c._checked(Opcode.SET_RECMODE, T.pack_u32(1))
        c._checked(Opcode.SETVNNMAP, T.VnnMap(generation=vm.generation + 7, map=vm.map).pack())
        reply = c.control(Opcode.SET_RECMODE, T.pack_u32(0))
        assert reply.status != 0
        assert "Inconsistent DB generation" in (reply.errmsg or "")
        assert c.get_recmode() == 1
    with client(lc, 0) as c0, client(lc, 1) as c1:
        wait_for(lambda: c1.get_recmode() == 0 and c1.get_vnnmap().generation == c0.get_vnnmap().generation,
                 what="the leader recovered node 1")






def test_freeze_aborts_a_vacuum_scan_holding_a_traverse_lock(local_cluster) -> None:
    """A vacuum scan's traverse holds a record lock while it waits for the next chain; a
    freeze holds every chain while it waits for that record lock. 4.17 kills the vacuum
    child when a database freezes, so a recovery can never wait on it for ever."""
    lc = local_cluster(n=2, loopback=True, loopback_base=31, tunables=(("VacuumInterval", "1"),))
    lc.wait_ok(timeout=30)
    with client(lc, 0) as c:
        db = attach(c, "vacfreeze.tdb")
        for i in range(200):
            db.store(b"k%d" % i, b"v")
        # Hold one chain the way smbd might, so that the next scan stops at it (a
        # traverse skips empty chains without locking them: this one has a record).
        db.store(b"held by the test", b"v")
        db.tdb.chainlock(b"held by the test")
        try:
            # A scan that started before the chain was locked may already be past it and
            # end by itself: only a scan asleep in the kernel's lock wait is the one.
            wait_for(lambda: [p for p in vacuum_children(db.path) if waits_for_a_lock(p)], timeout=15,
                     what="a vacuum scan waiting for the chain")
            gen = c.get_vnnmap().generation
            c._checked(Opcode.SET_RECMODE, T.pack_u32(1))
            wait_for(lambda: not vacuum_children(db.path), timeout=10,
                     what="the scan child killed when the database froze")
        finally:
            db.tdb.chainunlock(b"held by the test")
        wait_for(lambda: c.get_vnnmap().generation != gen and c.get_recmode() == 0, timeout=30,
                 what="recovery done once the chain is free")
        assert db.fetch(b"k7") == b"v"
    log = (Path(lc.node_dir(0)) / "log.ctdb").read_text(errors="replace")
    assert "Aborting vacuuming" in log


def test_a_call_for_a_frozen_database_is_served_at_the_thaw(local_cluster) -> None:
    """Another node's REQ_CALL for a frozen database waits for the thaw, as behind 4.17's
    freeze lock. It used to be dropped: after a recovery the node that thawed first had
    already resent its calls, and a restarted node's smbd hung in a g_lock fetch."""
    lc = local_cluster(n=2, loopback=True, loopback_base=14)
    lc.wait_ok(timeout=30)
    key = b"wanted during a freeze"
    with client(lc, 1) as c1:
        db1 = attach(c1, "parked.tdb")
        with db1.fetch_lock(key) as rec:
            rec.store(b"from 1")
        u32 = T.pack_u32(db1.db_id)
        gen = c1.get_vnnmap().generation
        c1._checked(Opcode.DB_FREEZE, u32)
        calls_before = _req_calls(lc, 1)
        try:
            with multiprocessing.Pool(1) as pool:
                fetched = pool.apply_async(_fetch_lock_store, (lc.socket(0), "parked.tdb", key, b"from 0"))
                # node 0 sends its call to node 1, which can't serve it yet
                wait_for(lambda: _req_calls(lc, 1) > calls_before, timeout=10,
                         what="node 0's REQ_CALL to reach node 1")
                time.sleep(0.3)
                assert not fetched.ready()
                c1._checked(Opcode.DB_THAW, u32)
                assert fetched.get(timeout=20) == b"from 1"
        finally:
            c1.control(Opcode.DB_THAW, u32)
        assert c1.get_vnnmap().generation == gen  # served without a recovery
    h0, value = local_header(lc, 0, "parked.tdb", key)
    assert (h0.dmaster, value) == (0, b"from 0")


def _stat(lc, pnn: int, field: str) -> int:
    """One of node pnn's `ctdb statistics` counters."""
    with client(lc, pnn) as c:
        return getattr(T.Statistics.unpack(c._checked(Opcode.STATISTICS).data), field)


def _req_calls(lc, pnn: int) -> int:
    return _stat(lc, pnn, "node_req_call")


def _fetch_lock_store(socket_path: str, name: str, key: bytes, value: bytes) -> bytes:
    """One client's fetch_lock + store; returns the value it replaced."""
    with Client(socket_path, timeout=30) as c:
        db = attach(c, name)
        with db.fetch_lock(key) as rec:
            old = rec.data
            rec.store(value)
        return old


def _increment(socket_path: str, key: bytes) -> None:
    with Client(socket_path, timeout=30) as c:
        db = attach(c, "collapse.tdb")
        with db.fetch_lock(key) as rec:
            rec.store(b"%d" % (int(rec.data or b"0") + 1))


@pytest.mark.parametrize("collapse", [1, 0])
def test_fetch_collapse_sends_one_call_for_many_local_clients(local_cluster, collapse) -> None:
    """FetchCollapse (4.17's default 1): while one client's call fetches a record from
    another node, the same node's other clients wait for it instead of sending calls of
    their own. Node 0 holds the record's chain lock, so that every call waits there."""
    lc = local_cluster(n=2, loopback=True, loopback_base=34 + 3 * collapse,
                       tunables=(("FetchCollapse", str(collapse)),))
    lc.wait_ok(timeout=30)
    key = b"wanted by five"
    with client(lc, 0) as c0:
        db0 = attach(c0, "collapse.tdb")
        with db0.fetch_lock(key) as rec:
            rec.store(b"0")
        before = _req_calls(lc, 0)
        db0.tdb.chainlock(key)
        locked = True
        try:
            with multiprocessing.Pool(5) as pool:
                done = [pool.apply_async(_increment, (lc.socket(1), key)) for _ in range(5)]
                wait_for(lambda: _req_calls(lc, 0) > before, timeout=10, what="node 1's first call")
                if not collapse:
                    wait_for(lambda: _req_calls(lc, 0) - before == 5, timeout=10, what="five calls")
                time.sleep(0.5)  # time for calls that should not come
                waiting = _req_calls(lc, 0) - before
                db0.tdb.chainunlock(key)
                locked = False
                for d in done:
                    d.get(timeout=30)
        finally:
            if locked:
                db0.tdb.chainunlock(key)
    assert waiting == (1 if collapse else 5)
    h1, value = local_header(lc, 1, "collapse.tdb", key)
    assert (h1.dmaster, value) == (1, b"5")


def test_a_call_waits_for_a_dmaster_move_the_lmaster_is_applying(local_cluster) -> None:
    """4.17's dmaster defer queue: while the lmaster's REQ_DMASTER waits for the record's
    lock, another node's call for that record waits behind it, so that it goes to the
    new data master and not to the node that just gave the record away."""
    lc = local_cluster(n=4, loopback=True, loopback_base=64)
    lc.wait_ok(timeout=30)
    name = "dmdefer.tdb"
    key = next(k for k in (b"moving-%d" % i for i in range(1000)) if record.lmaster(k, [0, 1, 2, 3]) == 0)
    # node 1 holds the record, node 2's copy says so: node 2's next call goes to node 1
    for pnn, value in ((1, b"1"), (2, b"2"), (1, b"3")):
        assert _fetch_lock_store(lc.socket(pnn), name, key, value) is not None
    with client(lc, 0) as c0:
        db0 = attach(c0, name)
        c0._checked(Opcode.SET_DEBUG, struct.pack("<i", 5))  # INFO: the deferral is logged
        calls_at_1 = _req_calls(lc, 1)
        dmasters_at_0 = _stat(lc, 0, "node_req_dmaster")
        calls_at_0 = _req_calls(lc, 0)
        db0.tdb.chainlock(key)
        locked = True
        try:
            with multiprocessing.Pool(2) as pool:
                from_2 = pool.apply_async(_fetch_lock_store, (lc.socket(2), name, key, b"4"))
                # node 1 gives the record to node 2 and tells the lmaster, which waits
                wait_for(lambda: _stat(lc, 0, "node_req_dmaster") > dmasters_at_0, timeout=10,
                         what="node 1's REQ_DMASTER at node 0")
                from_3 = pool.apply_async(_fetch_lock_store, (lc.socket(3), name, key, b"5"))
                wait_for(lambda: _req_calls(lc, 0) > calls_at_0, timeout=10, what="node 3's call at node 0")
                db0.tdb.chainunlock(key)
                locked = False
                olds = (from_2.get(timeout=30), from_3.get(timeout=30))
        finally:
            if locked:
                db0.tdb.chainunlock(key)
    # node 1 saw node 2's call and nothing else: node 3's went to node 2 directly
    assert _req_calls(lc, 1) - calls_at_1 == 1
    log = (Path(lc.node_dir(0)) / "log.ctdb").read_text(errors="replace")
    assert f"Call from node 3 for a record of {name} whose data master is moving: deferred" in log
    # node 2's client may lose the record to node 3 before it stores: either order, but
    # each update exactly once
    assert olds in ((b"3", b"4"), (b"5", b"3")), olds
    pnn, value = (3, b"5") if olds == (b"3", b"4") else (2, b"4")
    header, data = local_header(lc, pnn, name, key)
    assert (header.dmaster, data) == (pnn, value)
