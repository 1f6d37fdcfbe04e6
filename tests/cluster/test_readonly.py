"""Read-only delegations and sticky records across three real ctdbd processes
(loopback mode, 127.0.0.101-109 and 247-249; 4.17 server/ctdb_call.c).

With the READONLY flag on a database (``ctdb setdbreadonly``, on every node: 4.17's
flag is per node), a read that wants a read-only copy is answered by the data master
with a copy instead of moving the record; reads on the copy's node are then local, and a
write anywhere first takes the copies back (revoke), then moves the record.
"""

from __future__ import annotations

import re
import time

import pytest

from ctdbcore.client.db import attach, call
from ctdbcore.db import record
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import FETCH_FUNC, WANT_READONLY, Opcode, RecordFlags
from tests.cluster.helpers import client, ctdb, up, wait_for

pytestmark = pytest.mark.slow

ALL = [0, 1, 2]
DB = "ro.tdb"
# A key whose lmaster is node 0 (map [0, 1, 2]): nodes 1 and 2 then only ever hold
# copies of it, so what the revoke does to them is seen alone.
KEY = next(k for k in (b"hot%d" % i for i in range(100)) if record.lmaster(k, ALL) == 0)
RO = record.RO_FLAGS


def local_record(lc, pnn: int, key: bytes = KEY):
    """(header, data) as node pnn's file holds the record."""
    with client(lc, pnn) as c:
        db = attach(c, DB)
        try:
            return record.split_value(db.tdb.fetch(key))
        finally:
            db.close()


def stats(lc, pnn: int) -> T.Statistics:
    with client(lc, pnn) as c:
        return T.Statistics.unpack(c._checked(Opcode.STATISTICS).data)


def record_packets(lc, pnn: int) -> int:
    st = stats(lc, pnn)
    return st.node_req_call + st.node_reply_call + st.node_req_dmaster + st.node_reply_dmaster + st.node_reply_error


def cattdb_flags(lc, pnn: int) -> tuple[int, str]:
    """The record's dmaster and flag names as `ctdb cattdb` prints them on node pnn."""
    out = ctdb(lc, pnn, "cattdb", DB)
    m = re.search(rf'key\({len(KEY)}\) = "{KEY.decode()}"\ndmaster: (\d+)\nrsn: \d+\nflags: 0x[0-9a-f]{{8}}(.*)\n', out)
    assert m, out
    return int(m.group(1)), m.group(2).strip()


def test_read_only_copies_local_reads_and_revoke_on_write(local_cluster) -> None:
    lc = up(local_cluster, 101)
    with client(lc, 0) as c:
        assert list(c.get_vnnmap().map) == ALL
    with client(lc, 0) as c:
        attach(c, DB).store(KEY, b"v0")  # node 0 is data master
    for pnn in ALL:
        ctdb(lc, pnn, "setdbreadonly", DB)
        assert " READONLY" in ctdb(lc, pnn, "getdbmap")
    h0, _ = local_record(lc, 0)
    assert h0.dmaster == 0 and not h0.flags & RO

    # Nodes 1 and 2 read with the read-only wish: the CLI's `readkey ... readonly`.
    for pnn in (1, 2):
        assert ctdb(lc, pnn, "readkey", DB, KEY.decode(), "readonly") == "Data: size:2 ptr:[v0]\n"
    d0, _ = local_record(lc, 0)
    assert d0.dmaster == 0 and d0.flags & RecordFlags.RO_HAVE_DELEGATIONS
    assert d0.rsn == h0.rsn + 3  # the first delegation moves the data master's RSN on by 3
    for pnn in (1, 2):
        h, data = local_record(lc, pnn)
        assert data == b"v0"
        assert h.dmaster == 0, "a read-only copy leaves the data master where it is"
        assert h.flags & RecordFlags.RO_HAVE_READONLY and not h.flags & RecordFlags.RO_HAVE_DELEGATIONS
        assert h.rsn == d0.rsn - 2
        assert cattdb_flags(lc, pnn) == (0, "RO_HAVE_READONLY")
    assert cattdb_flags(lc, 0)[1].split()[-1] == "RO_HAVE_DELEGATIONS"
    assert stats(lc, 0).total_ro_delegations == 2
    assert re.search(r"^\s*db_ro_delegations\s+2$", ctdb(lc, 0, "dbstatistics", DB), re.M)

    # Repeated read-only reads on nodes 1 and 2 use the copies: not one record packet.
    before = [record_packets(lc, p) for p in ALL]
    for pnn in (1, 2):
        with client(lc, pnn) as c:
            db = attach(c, DB)
            for _ in range(20):
                assert db.fetch(KEY, readonly=True) == b"v0"
            db.close()
        assert ctdb(lc, pnn, "readkey", DB, KEY.decode(), "readonly") == "Data: size:2 ptr:[v0]\n"
    assert [record_packets(lc, p) for p in ALL] == before
    assert sum(before) > 0  # the counters do count: the delegations above were seen

    # Samba's unlocked read (ctdbd_parse): FETCH with WANT_READONLY. The daemon sends it
    # as FETCH_WITH_HEADER and hands the client the value alone, from node 0 (another
    # delegation) or locally on node 0.
    for pnn in (2, 0):
        with client(lc, pnn) as c:
            db = attach(c, DB)
            assert call(c, db.db_id, KEY, callid=FETCH_FUNC, flags=WANT_READONLY) == b"v0"
            db.close()
    assert stats(lc, 0).total_ro_delegations == 3

    # A write on node 1: node 0 revokes every copy first, then the record moves to node 1.
    with client(lc, 1) as c:
        db = attach(c, DB)
        with db.fetch_lock(KEY) as rec:
            assert rec.data == b"v0"
            assert rec.header.dmaster == 1 and not rec.header.flags & RO
            rec.store(b"v1")
        db.close()
    assert stats(lc, 0).total_ro_revokes == 1
    h0, _ = local_record(lc, 0)
    assert h0.dmaster == 1 and not h0.flags & RO
    h2, d2 = local_record(lc, 2)
    assert not h2.flags & RO, "node 2's read-only copy was revoked"
    # What is left on node 2 is a plain copy naming node 0, one RSN below node 0's at
    # the revoke (4.17's UPDATE_RECORD header): no longer readable locally.
    assert d2 == b"v0" and h2.dmaster == 0 and h2.rsn == d0.rsn - 1
    assert cattdb_flags(lc, 2) == (0, "MIGRATED_WITH_DATA")

    # The new value everywhere: read-only reads (copies from node 1 now), then plain ones.
    for pnn in ALL:
        with client(lc, pnn) as c:
            assert attach(c, DB).fetch(KEY, readonly=True) == b"v1"
    h1, _ = local_record(lc, 1)
    assert h1.dmaster == 1 and h1.flags & RecordFlags.RO_HAVE_DELEGATIONS
    # A write by the data master's own client revokes too, and the record stays there.
    revokes = stats(lc, 1).total_ro_revokes
    with client(lc, 1) as c:
        attach(c, DB).store(KEY, b"v2")
    assert stats(lc, 1).total_ro_revokes == revokes + 1
    h1, _ = local_record(lc, 1)
    assert h1.dmaster == 1 and not h1.flags & RO
    for pnn in (0, 2):
        h, data = local_record(lc, pnn)
        assert not h.flags & RO and data == b"v1"
        with client(lc, pnn) as c:
            assert attach(c, DB).fetch(KEY, readonly=True) == b"v2"
    for pnn in (2, 0, 1):
        with client(lc, pnn) as c:
            assert attach(c, DB).fetch(KEY) == b"v2"
        h, _ = local_record(lc, pnn)
        assert h.dmaster == pnn and not h.flags & RO
    assert stats(lc, 1).total_ro_revokes >= 1


def test_recovery_clears_read_only_copies(local_cluster) -> None:
    lc = up(local_cluster, 104)
    with client(lc, 0) as c:
        attach(c, DB).store(KEY, b"v0")
    for pnn in ALL:
        ctdb(lc, pnn, "setdbreadonly", DB)
    assert ctdb(lc, 1, "readkey", DB, KEY.decode(), "readonly") == "Data: size:2 ptr:[v0]\n"
    assert local_record(lc, 1)[0].flags & RecordFlags.RO_HAVE_READONLY
    with client(lc, 0) as c:
        gen = c.get_vnnmap().generation
        c._checked(Opcode.SET_RECMODE, T.pack_u32(1))
        wait_for(lambda: c.get_vnnmap().generation != gen and c.get_recmode() == 0, what="recovery done")
    for pnn in ALL:
        h, data = local_record(lc, pnn)
        assert not h.flags & RO and data == b"v0"
    # Reads and writes go on as usual after it.
    with client(lc, 2) as c:
        attach(c, DB).store(KEY, b"after")
    for pnn in ALL:
        with client(lc, pnn) as c:
            assert attach(c, DB).fetch(KEY, readonly=True) == b"after"
    assert local_record(lc, 1)[0].flags & RecordFlags.RO_HAVE_READONLY

    # A copy holder dies: the revoke cannot reach it and is retried until the recovery
    # that follows the death clears every copy; then the write goes through.
    lc.kill(1)
    with client(lc, 0) as c:
        db = attach(c, DB)
        db.store(KEY, b"after death")
        assert db.fetch(KEY) == b"after death"
    with client(lc, 2) as c:
        assert attach(c, DB).fetch(KEY, readonly=True) == b"after death"


def test_without_the_readonly_flag_a_read_only_wish_migrates_the_record(local_cluster) -> None:
    lc = up(local_cluster, 107)
    with client(lc, 0) as c:
        attach(c, DB).store(KEY, b"v0")
    assert " READONLY" not in ctdb(lc, 0, "getdbmap")
    assert ctdb(lc, 1, "readkey", DB, KEY.decode(), "readonly") == "Data: size:2 ptr:[v0]\n"
    h1, _ = local_record(lc, 1)
    assert h1.dmaster == 1 and not h1.flags & RO  # migrated as any read
    h0, _ = local_record(lc, 0)
    assert h0.dmaster == 1 and not h0.flags & RO
    with client(lc, 2) as c:
        assert attach(c, DB).fetch(KEY, readonly=True) == b"v0"
    assert local_record(lc, 2)[0].dmaster == 2
    assert all(stats(lc, p).total_ro_delegations == 0 for p in ALL)
    # The flag on the requester alone is not enough: the data master (2) must have it too.
    ctdb(lc, 1, "setdbreadonly", DB)
    assert ctdb(lc, 1, "readkey", DB, KEY.decode(), "readonly") == "Data: size:2 ptr:[v0]\n"
    assert local_record(lc, 1)[0].dmaster == 1
    assert all(stats(lc, p).total_ro_delegations == 0 for p in ALL)


def _bounce(lc, key: bytes) -> float:
    """Node 1 writes ``key`` (lmaster 0), node 2 reads it (its call reaches node 1
    through node 0: hopcount 1), node 1 takes it back; then the seconds node 0 needs to
    read it."""
    for pnn in (1, 2, 1):
        with client(lc, pnn) as c:
            attach(c, DB).store(key, b"from %d" % pnn)
    assert local_record(lc, 1, key)[0].dmaster == 1

    with client(lc, 0) as c:
        db = attach(c, DB)
        t0 = time.monotonic()
        assert db.fetch(key) == b"from 1"
        return time.monotonic() - t0


def test_sticky_record_is_pinned_on_its_node_for_sticky_pindown(local_cluster) -> None:
    lc = up(local_cluster, 247)
    with client(lc, 0) as c:
        assert list(c.get_vnnmap().map) == ALL
        attach(c, DB)
    for pnn in ALL:
        ctdb(lc, pnn, "setvar", "HopcountMakeSticky", "1")
        ctdb(lc, pnn, "setvar", "StickyPindown", "4000")
    # Without the STICKY flag nothing waits.
    assert _bounce(lc, KEY) < 2.0
    for pnn in ALL:
        ctdb(lc, pnn, "setdbsticky", DB)
        assert " STICKY" in ctdb(lc, pnn, "getdbmap")
    key = KEY + b"s"
    while record.lmaster(key, ALL) != 0:
        key += b"s"
    # Node 1 served a call that needed a redirect, so the record is sticky there; when
    # it comes back to node 1 it is pinned down, and node 0's call waits for the end
    # of the pin-down (4 s from the record's arrival on node 1) before the record moves.
    waited = _bounce(lc, key)
    assert 2.5 < waited < 10.0, waited
    assert local_record(lc, 0, key)[0].dmaster == 0
