"""The ctypes binding of libtdb: records, flags, transactions, and files that Debian's
own tdbdump and ltdbtool read back."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap

import pytest

from ctdbcore.db import tdb as tdbmod
from ctdbcore.db.tdb import (
    TDB_INSERT,
    TDB_MODIFY,
    Tdb,
    TdbBusy,
    TdbError,
    TdbErrorCode,
    TdbExists,
    TdbFlags,
    TdbNotFound,
    runtime_check_for_robust_mutexes,
)

VOLATILE = 0x1C41  # 4.17: NOSYNC|CLEAR_IF_FIRST|INCOMPATIBLE_HASH|DISALLOW_NESTING|MUTEX_LOCKING
VOLATILE_NO_MUTEX = VOLATILE & ~TdbFlags.MUTEX_LOCKING
PERSISTENT = int(TdbFlags.DISALLOW_NESTING)

needs_mutexes = pytest.mark.skipif(not runtime_check_for_robust_mutexes(), reason="no robust mutexes here")
ALL_FLAGS = [
    pytest.param(VOLATILE, id="volatile-mutex", marks=needs_mutexes),
    pytest.param(VOLATILE_NO_MUTEX, id="volatile-fcntl"),
    pytest.param(PERSISTENT, id="persistent"),
]

# struct ctdb_ltdb_header on 64-bit: rsn, dmaster, reserved1, flags, reserved2
LTDB_HEADER = struct.Struct("<QIIII")


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "test.tdb")


@pytest.fixture
def db(path):
    with Tdb.open(path, tdb_flags=PERSISTENT) as t:
        yield t


def test_flag_values_match_tdb_h():
    assert [int(f) for f in TdbFlags] == [1 << i for i in range(13)]
    assert int(TdbFlags.NOSYNC | TdbFlags.CLEAR_IF_FIRST | TdbFlags.INCOMPATIBLE_HASH
               | TdbFlags.DISALLOW_NESTING | TdbFlags.MUTEX_LOCKING) == 0x1C41
    assert (tdbmod.TDB_REPLACE, TDB_INSERT, TDB_MODIFY) == (1, 2, 3)


def test_store_fetch_delete_round_trip(db):
    records = {b"plain": b"value", b"nul\x00key\xff": bytes(range(256)), b"": b"empty key",
               b"empty value": b"", b"big": os.urandom(300_000)}
    for k, v in records.items():
        db.store(k, v)
    for k, v in records.items():
        assert db.fetch(k) == v
        assert db.exists(k) and k in db
    assert db.fetch(b"missing") is None
    assert not db.exists(b"missing")
    assert db.delete(b"plain") is True
    assert db.delete(b"plain") is False
    assert db.fetch(b"plain") is None
    db.store(b"big", b"small now")
    assert db.fetch(b"big") == b"small now"
    db.append(b"big", b" and more")
    assert db.fetch(b"big") == b"small now and more"
    db.check()


def test_bytes_like_keys_and_values(db):
    db.store(bytearray(b"k"), memoryview(b"v"))
    assert db.fetch(memoryview(b"k")) == b"v"


def test_store_flags_and_their_errors(db):
    db.store(b"k", b"1", TDB_INSERT)
    with pytest.raises(TdbExists) as exc:
        db.store(b"k", b"2", TDB_INSERT)
    assert exc.value.ecode == TdbErrorCode.EXISTS
    assert str(exc.value) == f"store {db.path}: Record exists"
    db.store(b"k", b"3", TDB_MODIFY)
    with pytest.raises(TdbNotFound) as exc:
        db.store(b"nope", b"x", TDB_MODIFY)
    assert exc.value.ecode == TdbErrorCode.NOEXIST
    assert "Record does not exist" in str(exc.value)
    assert db.fetch(b"k") == b"3" and db.fetch(b"nope") is None


def test_traverse_len_and_keys(db):
    want = {b"k%d" % i: b"v%d" % i for i in range(100)}
    for k, v in want.items():
        db.store(k, v)
    assert len(db) == 100
    assert dict(db.traverse()) == want
    assert dict(db.traverse_read()) == want
    assert sorted(db.keys()) == sorted(want)
    # traverse() collects first, so writing while iterating is fine
    for k, _ in db.traverse():
        db.delete(k)
    assert len(db) == 0 and list(db.traverse()) == []


def test_traverse_with_stops_early_and_reraises(db):
    for i in range(10):
        db.store(b"%d" % i, b"x")
    seen = []
    assert db.traverse_with(lambda k, v: seen.append(k) or len(seen) == 3) == 3
    assert len(seen) == 3

    def boom(k, v):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        db.traverse_with(boom, read=True)
    assert len(db) == 10  # nothing left locked or half done
    db.store(b"after", b"ok")


@pytest.mark.parametrize("flags", ALL_FLAGS)
def test_open_with_ctdb_flags(path, flags):
    with Tdb.open(path, tdb_flags=flags, hash_size=10007) as t:
        got = t.get_flags()
        assert got & flags == flags
        assert t.hash_size() == 10007
        assert t.name() == path and t.fd() >= 0 and t.map_size() > 0
        t.store(b"k", b"v")
        assert t.fetch(b"k") == b"v"
        t.check()
    reopen = flags & ~TdbFlags.CLEAR_IF_FIRST  # (mutex files need MUTEX_LOCKING to open)
    with Tdb.open(path, tdb_flags=reopen, open_flags=os.O_RDWR) as t:
        assert t.hash_size() == 10007  # the file's own, whatever the opener asks
        assert t.fetch(b"k") == b"v"


def test_default_hash_size(path):
    with Tdb.open(path) as t:
        assert t.hash_size() == 131
        assert t.get_flags() & TdbFlags.ALLOW_NESTING  # libtdb's default unless DISALLOW


@needs_mutexes
def test_mutex_locking_implies_incompatible_hash_and_binds_the_file(path):
    with Tdb.open(path, tdb_flags=TdbFlags.MUTEX_LOCKING | TdbFlags.CLEAR_IF_FIRST) as t:
        assert t.get_flags() & TdbFlags.INCOMPATIBLE_HASH
    holder = _open_in_other_process(path, VOLATILE)
    try:
        # A file with mutexes can only be opened with MUTEX_LOCKING (or NOLOCK).
        with pytest.raises(TdbError) as exc:
            Tdb.open(path, tdb_flags=0, open_flags=os.O_RDWR)
        assert exc.value.errno == errno.EINVAL
        with Tdb.open(path, tdb_flags=VOLATILE & ~TdbFlags.CLEAR_IF_FIRST, open_flags=os.O_RDWR) as t:
            assert t.get_flags() & TdbFlags.MUTEX_LOCKING
    finally:
        _close_other(holder)


def test_clear_if_first_wipes_only_the_first_opener(path):
    with Tdb.open(path, tdb_flags=PERSISTENT) as t:
        t.store(b"old", b"record")
    with Tdb.open(path, tdb_flags=VOLATILE_NO_MUTEX) as t:
        assert len(t) == 0  # first opener: wiped
        t.store(b"kept", b"record")
        holder = _open_in_other_process(path, VOLATILE_NO_MUTEX)
    try:
        # We closed, but the other process still has it open: not the first opener.
        with Tdb.open(path, tdb_flags=VOLATILE_NO_MUTEX) as t:
            assert t.fetch(b"kept") == b"record"
    finally:
        _close_other(holder)
    with Tdb.open(path, tdb_flags=VOLATILE_NO_MUTEX) as t:
        assert len(t) == 0


def test_transactions_commit_and_cancel(path):
    with Tdb.open(path, tdb_flags=PERSISTENT) as t:
        t.store(b"a", b"1")
        t.transaction_start()
        assert t.transaction_active()
        t.store(b"a", b"2")
        t.store(b"b", b"2")
        assert t.fetch(b"a") == b"2"
        t.transaction_cancel()
        assert not t.transaction_active()
        assert t.fetch(b"a") == b"1" and t.fetch(b"b") is None

        t.transaction_start_nonblock()
        t.store(b"b", b"3")
        t.transaction_prepare_commit()
        t.transaction_commit()
        with t.transaction():
            t.delete(b"a")
        with pytest.raises(RuntimeError), t.transaction():
            t.store(b"c", b"never")
            raise RuntimeError
        t.fetch(b"missing")  # leaves tdb_error() at NOEXIST, which libtdb would report next
        for op in (t.transaction_commit, t.transaction_cancel, t.transaction_prepare_commit):
            with pytest.raises(TdbError, match="no transaction") as exc:
                op()
            assert type(exc.value) is TdbError and exc.value.ecode == TdbErrorCode.EINVAL
    with Tdb.open(path, tdb_flags=PERSISTENT) as t:
        assert dict(t.traverse()) == {b"b": b"3"}


def test_disallow_nesting(db):
    db.transaction_start()
    with pytest.raises(TdbError) as exc:
        db.transaction_start()
    assert exc.value.ecode == TdbErrorCode.NESTING
    db.transaction_cancel()


def test_wipe_all_repack_and_freelist(db):
    for i in range(500):
        db.store(b"k%d" % i, b"x" * 100)
    size = os.path.getsize(db.path)
    db.wipe_all()
    assert len(db) == 0 and db.fetch(b"k1") is None
    assert os.path.getsize(db.path) == size  # wiping keeps the file
    assert db.freelist_size() >= 1
    db.store(b"again", b"fine")
    db.repack()
    assert db.freelist_size() <= 1
    assert dict(db.traverse()) == {b"again": b"fine"}
    db.check()


def test_seqnum(path):
    with Tdb.open(path, tdb_flags=TdbFlags.SEQNUM) as t:
        assert t.get_seqnum() == 0
        t.store(b"a", b"1")
        t.store(b"a", b"2")
        t.delete(b"a")
        assert t.get_seqnum() == 3
    other = path + ".2"
    with Tdb.open(other) as t:
        t.store(b"a", b"1")
        assert t.get_seqnum() == 0
        t.enable_seqnum()
        t.store(b"a", b"2")
        assert t.get_seqnum() == 1


def test_add_remove_flags_and_max_dead(db):
    assert not db.get_flags() & TdbFlags.NOLOCK
    db.add_flags(TdbFlags.NOLOCK)
    assert db.get_flags() & TdbFlags.NOLOCK
    db.remove_flags(TdbFlags.NOLOCK)
    assert not db.get_flags() & TdbFlags.NOLOCK
    db.set_max_dead(5)
    db.store(b"k", b"v")
    db.delete(b"k")
    db.check()


def test_chainlock_mark_bookkeeping(db):
    db.chainlock(b"k")
    db.chainlock(b"k")  # counted, per context
    db.chainunlock(b"k")
    db.chainunlock(b"k")
    with pytest.raises(TdbError):
        db.chainunlock(b"k")
    db.chainlock_mark(b"k")
    db.store(b"k", b"written under a mark")
    db.chainlock_unmark(b"k")
    db.chainlock_read(b"k")
    db.chainunlock_read(b"k")
    db.lockall()
    db.store(b"k2", b"under lockall")
    db.unlockall()
    db.lockall_mark()
    db.lockall_unmark()
    db.lockall_read()
    db.unlockall_read()
    assert db.fetch(b"k") == b"written under a mark"


def test_errors(path, tmp_path, caplog):
    with pytest.raises(TdbError) as exc:
        Tdb.open(tmp_path / "no" / "such.tdb", tdb_flags=0, open_flags=os.O_RDWR)
    assert exc.value.errno == errno.ENOENT
    assert str(exc.value) == f"tdb_open {tmp_path}/no/such.tdb: No such file or directory"

    t = Tdb.open(path)
    caplog.set_level(logging.DEBUG, logger="ctdb.tdb")
    with pytest.raises(TdbError) as exc:
        Tdb.open(path)  # libtdb refuses a second context in one process
    assert exc.value.errno == errno.EBUSY
    # libtdb's own log line, with its printf arguments filled in
    lines = [r.getMessage() for r in caplog.records if r.name == "ctdb.tdb"]
    assert any(path in m and "already open in this process" in m and "%" not in m for m in lines), lines
    caplog.clear()
    with pytest.raises(TdbError):
        Tdb.open(path, quiet=True)
    assert not [r for r in caplog.records if r.name == "ctdb.tdb"]

    t.close()
    t.close()
    assert t.closed
    with pytest.raises(TdbError, match="is closed") as exc:
        t.fetch(b"k")
    assert exc.value.ecode == TdbErrorCode.EINVAL
    assert issubclass(TdbBusy, TdbError) and issubclass(TdbNotFound, TdbError)


def test_log_format_expansion():
    buf = ctypes.create_string_buffer(b"hello")
    addr = ctypes.addressof(buf)
    expand = tdbmod._expand
    assert expand("%s: %d %u %x %08X %zu %c %%", (addr, 2**32 - 5, 2**32 - 5, 255, 255, 2**40, 65)) == \
        "hello: -5 4294967291 ff 000000FF 1099511627776 A %"
    assert expand("[%s] %.3s %p %p", (0, addr, 0, 0x1000)) == "[(null)] hel (nil) 0x1000"
    assert expand("%lld %hhu", (2**64 - 1, 0x1FF)) == "-1 255"
    for unsupported in ("%f", "%*d", "%n", "%d %d"):
        with pytest.raises(tdbmod._CannotExpand):
            expand(unsupported, (1,))


def test_load_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(tdbmod, "_lib", None)
    monkeypatch.setattr(tdbmod.ctypes.util, "find_library", lambda name: None)
    real_cdll = tdbmod.ctypes.CDLL

    def no_tdb(name, *a, **kw):
        if "tdb" in str(name):
            raise OSError(f"{name}: cannot open shared object file")
        return real_cdll(name, *a, **kw)

    monkeypatch.setattr(tdbmod.ctypes, "CDLL", no_tdb)
    with pytest.raises(ImportError, match="libtdb1"):
        tdbmod.load()


# -- the files are what Samba's tools read ---------------------------------------------------


def _unescape(s: str) -> bytes:
    """tdbdump/ltdbtool quoting: printable ASCII as is, everything else (and \\ ") as \\XX."""
    out = bytearray()
    i = 0
    while i < len(s):
        if s[i] == "\\":
            out.append(int(s[i + 1:i + 3], 16))
            i += 3
        else:
            out += s[i].encode("latin-1")
            i += 1
    return bytes(out)


_DUMP_RECORD = re.compile(r'\{\nkey\((\d+)\) = "(.*)"\n((?:\w+: .*\n)*)data\((\d+)\) = "(.*)"\n\}\n')


def _parse_dump(text: str) -> dict[bytes, tuple[dict[str, str], bytes]]:
    out = {}
    pos = 0
    for m in _DUMP_RECORD.finditer(text):
        assert m.start() == pos, f"unparsed output: {text[pos:m.start()]!r}"
        pos = m.end()
        key, data = _unescape(m.group(2)), _unescape(m.group(5))
        assert (len(key), len(data)) == (int(m.group(1)), int(m.group(4)))
        fields = dict(line.split(": ", 1) for line in m.group(3).splitlines())
        out[key] = (fields, data)
    assert pos == len(text), f"unparsed output: {text[pos:]!r}"
    return out


def _ctdb_records() -> dict[bytes, tuple[int, int, int, bytes]]:
    """key -> (rsn, dmaster, flags, data), including awkward bytes and an empty record."""
    return {
        b"smbXsrv\x00\x01": (7, 1, 0x10000, b"hello\x00\xff\"\\ world\n"),
        b'quote"back\\slash': (2**40, 0, 0, bytes(range(256))),
        b"header only": (3, 2, 0, b""),
        b"\xff" * 40: (1, 0xFFFFFFFF, 0x20, bytes(i * 7 % 251 for i in range(5000))),
    }


def _write_ctdb_file(path: str, flags: int) -> Tdb:
    t = Tdb.open(path, tdb_flags=flags)
    for key, (rsn, dmaster, rflags, data) in _ctdb_records().items():
        t.store(key, LTDB_HEADER.pack(rsn, dmaster, 0, rflags, 0) + data)
    return t


@pytest.mark.skipif(shutil.which("tdbdump") is None, reason="tdbdump not installed (Debian package tdb-tools)")
@pytest.mark.parametrize("flags", ALL_FLAGS)
def test_tdbdump_reads_our_file(path, flags):
    with _write_ctdb_file(path, flags):
        # read while we still have it open (CLEAR_IF_FIRST would not matter to tdbdump anyway)
        out = subprocess.run(["tdbdump", path], check=True, capture_output=True, text=True,
                             encoding="latin-1").stdout
    got = _parse_dump(out)
    want = {k: LTDB_HEADER.pack(rsn, dm, 0, fl, 0) + d for k, (rsn, dm, fl, d) in _ctdb_records().items()}
    assert {k: data for k, (_, data) in got.items()} == want
    one = subprocess.run(["tdbdump", "-k", "header only", path], check=True, capture_output=True,
                         text=True, encoding="latin-1").stdout
    assert _unescape(one.rstrip("\n")) == want[b"header only"]


@pytest.mark.skipif(shutil.which("ltdbtool") is None, reason="ltdbtool not installed (Debian package ctdb)")
@pytest.mark.parametrize("flags", ALL_FLAGS)
def test_ltdbtool_reads_our_headers(path, flags):
    with _write_ctdb_file(path, flags):
        plain = subprocess.run(["ltdbtool", "dump", path], check=True, capture_output=True, text=True,
                               encoding="latin-1").stdout
        full = subprocess.run(["ltdbtool", "dump", "-p", "-e", path], check=True, capture_output=True,
                              text=True, encoding="latin-1").stdout
    records = _ctdb_records()
    # without -e, ltdbtool leaves out records that are only a header
    assert {k: d for k, (_, d) in _parse_dump(plain).items()} == \
        {k: d for k, (_, _, _, d) in records.items() if d}
    got = _parse_dump(full)
    assert set(got) == set(records)
    for key, (rsn, dmaster, rflags, data) in records.items():
        fields, gdata = got[key]
        assert gdata == data
        # ltdbtool prints dmaster as a signed int: CTDB_UNKNOWN_PNN shows as -1
        signed_dmaster = dmaster - (1 << 32) if dmaster >> 31 else dmaster
        assert fields == {"dmaster": str(signed_dmaster), "rsn": str(rsn), "flags": f"0x{rflags:x}"}


# -- helpers ------------------------------------------------------------------------------------

_OPENER = textwrap.dedent("""
    import os, sys
    from ctdbcore.db.tdb import Tdb
    t = Tdb.open(sys.argv[1], tdb_flags=int(sys.argv[2]), open_flags=os.O_RDWR)
    print("open", flush=True)
    sys.stdin.read()
    t.close()
""")


def _open_in_other_process(path: str, flags: int) -> subprocess.Popen:
    root = os.path.dirname(os.path.dirname(os.path.abspath(tdbmod.__file__)))
    env = {**os.environ, "PYTHONPATH": os.path.dirname(root)}
    p = subprocess.Popen([sys.executable, "-c", _OPENER, path, str(int(flags))], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "open"
    return p


def _close_other(p: subprocess.Popen) -> None:
    p.stdin.close()
    assert p.wait(10) == 0
    p.stdout.close()
