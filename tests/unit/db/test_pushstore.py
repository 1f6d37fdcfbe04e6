"""Storing recovery push buffers: what lands in the tdb, header rules, bad buffers."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctdbcore.db import marshall, pushstore
from ctdbcore.db.tdb import Tdb
from ctdbcore.protocol.constants import RecordFlags
from ctdbcore.protocol.records import LtdbHeader

ME = 1
RO = RecordFlags.RO_HAVE_DELEGATIONS | RecordFlags.RO_HAVE_READONLY


def value(rsn: int, dmaster: int, flags: int = 0, data: bytes = b"data") -> bytes:
    return LtdbHeader(rsn=rsn, dmaster=dmaster, flags=flags).pack() + data


@pytest.fixture
def tdb(tmp_path):
    with Tdb.open(str(tmp_path / "p.tdb"), hash_size=31, open_flags=os.O_RDWR | os.O_CREAT) as t:
        yield t


def test_volatile_rules(tdb) -> None:
    recs = [
        (b"other", value(5, 0, RecordFlags.MIGRATED_WITH_DATA)),  # stored as it is
        (b"mine", value(5, ME, RecordFlags.MIGRATED_WITH_DATA)),  # one more RSN
        (b"ro", value(7, 0, RO | RecordFlags.MIGRATED_WITH_DATA, b"x")),  # delegations dropped
        (b"mine-ro", value(9, ME, RO)),
        (b"", value(1, 0, 0, b"")),  # empty key, header-only value
    ]
    assert pushstore.store_buffer(tdb, marshall.pack(3, recs), ME) == len(recs)
    got = dict(tdb.traverse())
    assert got[b"other"] == recs[0][1]
    assert got[b"mine"] == value(6, ME, RecordFlags.MIGRATED_WITH_DATA)
    assert got[b"ro"] == value(7, 0, RecordFlags.MIGRATED_WITH_DATA, b"x")
    assert got[b"mine-ro"] == value(10, ME, 0)
    assert got[b""] == recs[4][1]


def test_persistent_records_keep_their_rsn(tdb) -> None:
    recs = [(b"k", value(5, ME)), (b"j", value(2, 0, RO))]
    assert pushstore.store_buffer(tdb, marshall.pack(3, recs), None) == 2
    assert dict(tdb.traverse()) == {b"k": value(5, ME), b"j": value(2, 0)}


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.binary(max_size=30), st.tuples(st.integers(0, 2**64 - 2), st.integers(0, 3),
                                                          st.binary(max_size=100)), max_size=30))
def test_same_result_as_the_record_rules(tmp_path_factory, recs) -> None:
    """Whatever the records, the tdb ends up holding what the per-record rules say."""
    path = str(tmp_path_factory.mktemp("h") / "p.tdb")
    buf = marshall.pack(3, [(k, value(rsn, dm, 0, d)) for k, (rsn, dm, d) in recs.items()])
    with Tdb.open(path, hash_size=7, open_flags=os.O_RDWR | os.O_CREAT) as t:
        assert pushstore.store_buffer(t, buf, ME) == len(recs)
        assert dict(t.traverse()) == {k: value(rsn + (dm == ME), dm, 0, d) for k, (rsn, dm, d) in recs.items()}


def test_bad_buffers_stop_at_the_fault(tdb) -> None:
    good = marshall.pack(3, [(b"a", value(1, 0)), (b"b", value(1, 0))])
    with pytest.raises(marshall.BadBuffer):
        pushstore.store_buffer(tdb, good[:-3], ME)
    assert dict(tdb.traverse()) == {b"a": value(1, 0)}  # stored before the fault, as 4.17
    with pytest.raises(marshall.BadBuffer):
        pushstore.store_buffer(tdb, b"\x01", ME)
    short = marshall.pack(3, [(b"c", value(1, 0)), (b"d", b"too short")])
    with pytest.raises(pushstore.BadRecord):
        pushstore.store_buffer(tdb, short, ME)
    assert b"d" not in dict(tdb.traverse())
