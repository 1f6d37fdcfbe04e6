"""Recovery's bulk loops: the compiled versions (ctdbcore/db/_bulk.c) give what the
Python reference versions give, for good input and bad, and both give what libtdb and
the record rules say."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctdbcore.db import bulk, marshall, pushstore, tdbfile
from ctdbcore.db.tdb import Tdb
from ctdbcore.protocol.constants import RecordFlags
from ctdbcore.protocol.records import LtdbHeader

# Every test but the last compares the compiled loops with the Python ones.
needs_c = pytest.mark.skipif(not bulk.COMPILED, reason="ctdbcore.db._bulk is not built (no C compiler?)")
C = bulk._c
VOLATILE = 0x1C41 & ~0x1  # 4.17's volatile flags (mutexes, jenkins hash), as reopened
RO = int(RecordFlags.RO_HAVE_DELEGATIONS | RecordFlags.RO_HAVE_READONLY)


def value(rsn: int, dmaster: int, flags: int = 0, data: bytes = b"data") -> bytes:
    return LtdbHeader(rsn=rsn, dmaster=dmaster, flags=flags).pack() + data


def outcome(fn, *args):
    """What a call gave: its result, or its exception's type and message."""
    try:
        return "ok", fn(*args)
    except Exception as e:  # noqa: BLE001 - the point is to compare them
        return type(e).__name__, str(e)


records = st.dictionaries(st.binary(max_size=24),
                          st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1),
                                    st.sampled_from([0, RO, int(RecordFlags.MIGRATED_WITH_DATA)]),
                                    st.binary(max_size=60)),
                          max_size=40)


def tdb_file(path: str, recs: dict[bytes, bytes], flags: int, hash_size: int, churn: int = 0) -> bytes:
    rnd = random.Random(len(recs) + churn)
    with Tdb.open(path, hash_size=hash_size, tdb_flags=flags, open_flags=os.O_RDWR | os.O_CREAT) as t:
        for i in range(churn):  # stores and deletes leave free and dead records between
            t.store(b"gone%d" % i, os.urandom(rnd.randrange(80)))
        for k, v in recs.items():
            t.store(k, v)
        for i in range(churn):
            if i % 2:
                t.delete(b"gone%d" % i)
        with open(path, "rb") as f:
            return f.read()


@contextlib.contextmanager
def opened(path: str, content: bytes | None = None):
    """A read-only descriptor of path (written with content first, if given)."""
    if content is not None:
        with open(path, "wb") as f:
            f.write(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


@needs_c
@settings(max_examples=60, deadline=None)
@given(recs=records, flags=st.sampled_from([VOLATILE, 0]), hash_size=st.sampled_from([3, 31]),
       churn=st.integers(0, 20), min_value=st.sampled_from([0, 24, 30]), limit=st.sampled_from([1, 100, 10**6]))
def test_pull_pack_and_merge_file_on_real_files(tmp_path_factory, recs, flags, hash_size, churn, min_value,
                                                limit) -> None:
    stored = {k: value(rsn, dm, fl, d) for k, (rsn, dm, fl, d) in recs.items()}
    stored[b"short"] = b"tiny"  # below a header: left out by a min_value of 24
    path = str(tmp_path_factory.mktemp("b") / "t.tdb")
    file = tdb_file(path, stored, flags, hash_size, churn)
    with opened(path) as fd:
        got = C.pull_pack(fd, 7, min_value, limit)
        assert got == bulk.py_pull_pack(fd, 7, min_value, limit)
        count, buffers = got
        assert {k: v for b in buffers for k, v in marshall.records(b)} == \
            {k: v for k, v in tdbfile.parse(file) if len(v) >= min_value}
        assert count == sum(len(marshall.unpack(b)[1]) for b in buffers)
        for newest in (False, True):
            start = {k: value(5, 1) for k in list(stored)[:5]}
            m_c, m_py = dict(start), dict(start)
            assert C.merge_file(fd, m_c, 1, min_value, newest) == bulk.py_merge_file(fd, m_py, 1, min_value, newest)
            assert m_c == m_py and list(m_c) == list(m_py)


@needs_c
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_damaged_files_are_refused_alike(tmp_path_factory, data) -> None:
    path = str(tmp_path_factory.mktemp("d") / "t.tdb")
    file = bytearray(tdb_file(path, {b"k%d" % i: value(i, 0, 0, b"v" * i) for i in range(12)}, VOLATILE, 5, churn=4))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(file) - 1))
        file[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(file)))
    with opened(path, bytes(file[:cut])) as fd:  # cut may leave an empty file
        assert C.pull_pack(fd, 1, 24, 100) == bulk.py_pull_pack(fd, 1, 24, 100)
        m_c: dict[bytes, bytes] = {}
        m_py: dict[bytes, bytes] = {}
        assert C.merge_file(fd, m_c, 0, 24, True) == bulk.py_merge_file(fd, m_py, 0, 24, True)
        assert m_c == m_py


def buffers_of(recs) -> bytes:
    return marshall.pack(3, [(k, value(rsn, dm, fl, d)) for k, (rsn, dm, fl, d) in recs.items()])


@needs_c
@settings(max_examples=150, deadline=None)
@given(first=records, second=records, leader=st.integers(0, 3), cut=st.integers(0, 400))
def test_merge_newest(first, second, leader, cut) -> None:
    # Small dmasters and RSNs collide often, so that equal RSNs and the leader's copy matter.
    second = {k: (rsn % 3, dm % 4, fl, d) for k, (rsn, dm, fl, d) in second.items()}
    first = {k: (rsn % 3, dm % 4, fl, d) for k, (rsn, dm, fl, d) in first.items()}
    m_c: dict[bytes, bytes] = {b"short": b"x"}
    m_py = dict(m_c)
    for buf in (buffers_of(first), buffers_of({**second, b"short": (9, 0, 0, b"")}),
                buffers_of(second)[:cut], b"\x01\x00"):
        assert outcome(bulk.merge_newest, buf, m_c, leader) == outcome(bulk.py_merge_newest, buf, m_py, leader)
        assert m_c == m_py and list(m_c) == list(m_py)
    assert outcome(bulk.merge_newest, b"\x01", {}, 0) == ("BadBuffer", "marshall buffer shorter than its header")


@needs_c
@settings(max_examples=150, deadline=None)
@given(recs=records, claim=st.sampled_from([None, (2, int(RecordFlags.MIGRATED_WITH_DATA)), (0, 0)]),
       limit=st.sampled_from([1, 50, 300, 10**6]), empties=st.integers(0, 5))
def test_pack_push(recs, claim, limit, empties) -> None:
    merged = {k: value(rsn, dm, fl, d) for k, (rsn, dm, fl, d) in recs.items()}
    merged.update({b"empty%d" % i: value(i, 0, 0, b"") for i in range(empties)})  # deletions: not pushed
    dmaster, flags = claim if claim is not None else (-1, 0)
    got = C.pack_push(3, merged, 24, dmaster, flags, limit)
    assert got == bulk.py_pack_push(3, merged, claim, limit)
    count, buffers = got
    assert count == sum(1 for v in merged.values() if len(v) > 24) and buffers


@needs_c
def test_pack_push_refuses_what_python_refuses() -> None:
    with pytest.raises(ValueError):
        C.pack_push(3, {b"k": b"header-less value"}, 0, 1, 0, 100)
    with pytest.raises(TypeError):
        C.pack_push(3, {"k": value(1, 1)}, 24, 1, 0, 100)


@needs_c
@settings(max_examples=80, deadline=None)
@given(recs=records, mine=st.sampled_from([None, 0, 1]), cut=st.integers(0, 500), short_at=st.integers(0, 50))
def test_store_buffer(tmp_path_factory, recs, mine, cut, short_at) -> None:
    recs = {k: (rsn % 2**63, dm % 3, fl, d) for k, (rsn, dm, fl, d) in recs.items()}
    items = [(k, value(rsn, dm, fl, d)) for k, (rsn, dm, fl, d) in recs.items()]
    items.insert(min(short_at, len(items)), (b"bad", b"too short for a header"))
    d = tmp_path_factory.mktemp("s")
    for buf in (marshall.pack(3, items), marshall.pack(3, items[:short_at])[:cut]):
        with Tdb.open(str(d / "c.tdb"), hash_size=7, open_flags=os.O_RDWR | os.O_CREAT) as tc, \
                Tdb.open(str(d / "p.tdb"), hash_size=7, open_flags=os.O_RDWR | os.O_CREAT) as tp:
            assert outcome(bulk.store_buffer, tc, buf, mine) == outcome(bulk.py_store_buffer, tp, buf, mine)
            assert dict(tc.traverse()) == dict(tp.traverse())
            tc.wipe_all()
            tp.wipe_all()


@needs_c
def test_store_buffer_reports_libtdb_failures(tmp_path) -> None:
    path = str(tmp_path / "ro.tdb")
    Tdb.open(path, hash_size=7, open_flags=os.O_RDWR | os.O_CREAT).close()
    with Tdb.open(path, open_flags=os.O_RDONLY) as t:
        got_c = outcome(bulk.store_buffer, t, marshall.pack(3, [(b"k", value(1, 0))]), None)
        got_py = outcome(bulk.py_store_buffer, t, marshall.pack(3, [(b"k", value(1, 0))]), None)
    assert got_c == got_py and got_c[0] == "TdbError", got_c


def test_the_daemon_uses_the_compiled_loops() -> None:
    """pip install builds _bulk; a silent fallback would make recovery 2-3x slower (so
    this one fails, where the others are skipped, when the module is missing)."""
    assert bulk.implementation() == "C"
    assert pushstore.store_buffer is not bulk.store_buffer  # the reference stays callable


@needs_c
def test_reading_a_file_keeps_the_fcntl_locks_on_it(tmp_path) -> None:
    """Neither version opens (and closes) another descriptor of the file: that would
    drop every fcntl lock this process holds on it (libtdb's transaction lock, say)."""
    path = str(tmp_path / "locked.tdb")
    tdb_file(path, {b"k": value(1, 0)}, 0, 7)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
        for fn in (C.pull_pack, bulk.py_pull_pack):
            assert fn(fd, 1, 24, 100)[0] == 1
        for fn in (C.merge_file, bulk.py_merge_file):
            assert fn(fd, {}, 0, 24, True) == 1
        r = subprocess.run([sys.executable, "-c", LOCK_PROBE, path], capture_output=True, text=True, timeout=30)
        assert r.stdout == "held\n", r
    finally:
        os.close(fd)


LOCK_PROBE = """import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
    print("free")
except OSError:
    print("held")
"""
