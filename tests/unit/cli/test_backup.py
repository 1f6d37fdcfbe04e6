"""4.17's backup file (ctdbcore/db/backupfile.py) and `ctdb dumpdbbackup`, which needs
no daemon: a file written by Debian's tool, round trips, and damaged files refused
with 4.17's message and exit code (checked against Debian's /usr/bin/ctdb)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctdbcore.db import backupfile as bf
from ctdbcore.db import marshall
from ctdbcore.protocol.records import LtdbHeader
from ctdbcore.tools.ctdb import main

# `ctdb backupdb p.tdb` by Debian's 4.17 tool: pstore pk pv on node 0, pstore pk2 0x0001ff
# on node 1. (The buffer's db_id, d0542a11, is whatever 4.17 had on its stack.)
DEBIAN_BACKUP = bytes.fromhex(
    "030000000000000057ca126b00000000010000000000000001000000000000000300000000000000702e746462000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000d0542a1103000000a1000000000000002c00000000000000020000001a000000706b010000000000"
    "0000000000000000000000000000000000007076470000000000000017000000200000005f5f64625f73657175656e63"
    "655f6e756d6265725f5f0002000000000000000100000000000000000000000000000002000000000000002e00000000"
    "000000030000001b000000706b320100000000000000010000000000000000000000000000000001ff"
)

DEBIAN_DUMP = (
    "Dumping database p.tdb from backup @ 2026/12/04 14:12:39\n"
    'key(2) = "pk"\ndmaster: 0\nrsn: 1\nflags: 0x00000000\ndata(2) = "pv"\n\n'
    'key(23) = "__db_sequence_number__\\00"\ndmaster: 1\nrsn: 2\nflags: 0x00000000\n'
    'data(8) = "\\02\\00\\00\\00\\00\\00\\00\\00"\n\n'
    'key(3) = "pk2"\ndmaster: 1\nrsn: 1\nflags: 0x00000000\ndata(3) = "\\00\\01\\FF"\n\n'
    "Dumped 3 record(s)\n"
)


pytestmark = pytest.mark.usefixtures("utc")  # tests/unit/conftest.py


def dump(capsys, path) -> tuple[int, str, str]:
    rc = main(["dumpdbbackup", str(path)])
    out, err = capsys.readouterr()
    return rc, out, err


def value(rsn: int, dmaster: int, data: bytes) -> bytes:
    return LtdbHeader(rsn=rsn, dmaster=dmaster, flags=0).pack() + data


def backup(records, *, name=b"x.tdb", flags=0, db_id=0x1234, nbuf=None, nrec=None) -> bytes:
    chunks = list(bf.chunks(db_id, records))
    header = bf.Header(bf.VERSION, 1700000000, flags, len(chunks) if nbuf is None else nbuf,
                       len(records) if nrec is None else nrec, name)
    return header.pack() + b"".join(c.data for c in chunks)


def test_a_backup_written_by_debians_tool_dumps_as_4_17_dumps_it(tmp_path, capsys) -> None:
    path = tmp_path / "p.bak"
    path.write_bytes(DEBIAN_BACKUP)
    assert dump(capsys, path) == (0, DEBIAN_DUMP, "")


def test_header_layout_is_4_17s_struct_on_x86_64() -> None:
    header = bf.Header.unpack(DEBIAN_BACKUP)
    assert header == bf.Header(3, 0x6B12CA57, 1, 1, 3, b"p.tdb")
    assert bf.HEADER_SIZE == 104 and header.pack() == DEBIAN_BACKUP[:104]
    # at most 63 name bytes, NUL terminated, as strncpy into a zeroed header
    long = bf.Header(3, 0, 0, 0, 0, b"n" * 80).pack()
    assert long[40:103] == b"n" * 63 and long[103] == 0


def test_our_file_is_debians_file_but_for_the_buffer_db_id() -> None:
    with_header = DEBIAN_BACKUP[104:]
    records = list(bf.RecBuffer(0x112A54D0, 3, with_header[16:]).records())
    ours = backup(records, name=b"p.tdb", flags=1, db_id=0x112A54D0)
    assert ours[8:16] != DEBIAN_BACKUP[8:16]  # the timestamp
    assert ours[:8] + ours[16:] == DEBIAN_BACKUP[:8] + DEBIAN_BACKUP[16:]


records_st = st.lists(st.tuples(st.binary(max_size=30), st.binary(min_size=24, max_size=3000)), max_size=80)


@settings(max_examples=40, deadline=None)
@given(records_st)
def test_round_trip_through_the_file(tmp_path_factory, recs) -> None:
    path = tmp_path_factory.mktemp("rt") / "x.bak"
    path.write_bytes(backup(recs))
    with open(path, "rb") as f:
        header = bf.Header.unpack(f.read(bf.HEADER_SIZE))
        got = [r for _ in range(header.nbuf) for r in bf.read_buffer(f).records()]
        assert f.read() == b""
    assert got == recs and header.nrec == len(recs)


def test_buffers_split_where_4_17_splits_them() -> None:
    # 4.17 writes a buffer out once db_id + count + records reach 100000 bytes
    rec = (b"k", value(1, 0, bytes(1000 - 16 - 1 - 24)))  # 1000 bytes in the buffer
    chunks = list(bf.chunks(1, [rec] * 250))
    assert [c.count for c in chunks] == [100, 100, 50]
    assert [len(c.data) - 16 for c in chunks] == [100000, 100000, 50000]
    assert [c.full for c in chunks] == [True, True, False]
    assert list(bf.chunks(1, [])) == []  # an empty database: header only, nbuf 0


def test_empty_database(tmp_path, capsys) -> None:
    path = tmp_path / "e.bak"
    path.write_bytes(backup([]))
    assert dump(capsys, path) == (0, "Dumping database x.tdb from backup @ 2023/11/14 22:13:20\n"
                                     "Dumped 0 record(s)\n", "")


GOOD = (b"a", value(5, 1, b"AAA"))
GOOD_TEXT = 'key(1) = "a"\ndmaster: 1\nrsn: 5\nflags: 0x00000000\ndata(3) = "AAA"\n\n'
FIRST = "Dumping database x.tdb from backup @ 2023/11/14 22:13:20\n"


def raw_buffer(body: bytes, count: int, size: int | None = None) -> bytes:
    return struct.pack("<IIQ", 1, count, len(body) if size is None else size) + body


def rec(key: bytes, val: bytes, length: int | None = None) -> bytes:
    length = 16 + len(key) + len(val) if length is None else length
    return struct.pack("<4I", length, 0, len(key), len(val)) + key + val


HDR1 = bf.Header(3, 1700000000, 0, 1, 2, b"x.tdb").pack()


@pytest.mark.parametrize("content, out, err, rc", [
    # not a backup at all: 4.17 checks the version only
    (b"garbage garbage garbage garbage!", "",
     "Wrong version of backup file, expected 3, got 2334385649822622055\n", 22),
    (bf.Header(2, 0, 0, 1, 1, b"x").pack(), "", "Wrong version of backup file, expected 3, got 2\n", 22),
    # truncated: inside the header's name, after the header, inside a buffer
    (backup([GOOD])[:50], FIRST, "Failed to read records\n", 2),
    (backup([GOOD])[:104], FIRST, "Failed to read records\n", 2),
    (backup([GOOD])[:130], FIRST, "Failed to read records\n", 2),
    (backup([GOOD], nbuf=2), FIRST + GOOD_TEXT, "Failed to read records\n", 2),
    # a buffer too big for talloc
    (HDR1 + raw_buffer(b"", 1, size=1 << 40), FIRST, "Failed to read records\n", 12),
    # damaged records: dumped up to the bad one
    (HDR1 + raw_buffer(rec(*GOOD) + rec(b"k", bytes(26), length=1000), 2), FIRST + GOOD_TEXT,
     "Failed to dump records\n", 90),
    (HDR1 + raw_buffer(rec(*GOOD) + rec(b"k", bytes(26), length=20), 2), FIRST + GOOD_TEXT,
     "Failed to dump records\n", 90),
    (HDR1 + raw_buffer(rec(*GOOD) * 2, 3), FIRST + GOOD_TEXT * 2, "Failed to dump records\n", 90),
    (HDR1 + raw_buffer(rec(*GOOD) * 2, 2, size=40), FIRST, "Failed to dump records\n", 90),
    (HDR1 + raw_buffer(rec(b"k", b"xy"), 1), FIRST, "Failed to dump records\n", 90),
])
def test_damaged_files_are_refused_as_4_17_refuses_them(tmp_path, capsys, content, out, err, rc) -> None:
    path = tmp_path / "bad.bak"
    path.write_bytes(content)
    assert dump(capsys, path) == (rc, out, err)


def test_what_4_17_lets_through(tmp_path, capsys) -> None:
    # a length field below 4 wraps around in 4.17's checks; fewer buffers than nbuf says
    # on disk but more after them: the header's nbuf wins
    body = rec(*GOOD) + rec(b"k", value(0, 0, b"zz"), length=3)
    path = tmp_path / "odd.bak"
    path.write_bytes(HDR1 + raw_buffer(body, 2) + raw_buffer(rec(*GOOD), 1))
    rc, out, err = dump(capsys, path)
    assert (rc, err) == (0, "") and out.endswith('data(2) = "zz"\n\nDumped 2 record(s)\n')


def test_missing_file_directory_and_usage(tmp_path, capsys) -> None:
    assert dump(capsys, tmp_path / "nope") == (2, "", f"Failed to open file {tmp_path}/nope for reading\n")
    assert dump(capsys, tmp_path) == (21, "", f"Failed to read db header from file {tmp_path}\n")
    # 4.17 asks for the usage of "dumpbackup", which is no command: the full usage
    rc = main(["dumpdbbackup"])
    out, err = capsys.readouterr()
    assert rc == 1 and out.startswith("Usage: [OPTION...]") and "\nCommands:\n" in out and err == ""
    assert main(["-n", "1", "dumpdbbackup", "x"]) == 1
    assert capsys.readouterr().err == "Cannot specify node for command dumpdbbackup\n"


def test_marshall_walk_follows_4_17s_length_checks() -> None:
    good = rec(*GOOD)
    assert list(marshall.walk(good, 1)) == [GOOD]
    for length in (4, 8, 15, len(good) - 1, len(good) + 1):
        with pytest.raises(ValueError):
            list(marshall.walk(rec(*GOOD, length=length), 1))
    assert list(marshall.walk(rec(*GOOD, length=2), 1)) == [GOOD]
    with pytest.raises(ValueError):
        list(marshall.walk(good[:-1], 1))
