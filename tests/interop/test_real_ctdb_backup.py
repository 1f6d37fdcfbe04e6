"""backupdb, dumpdbbackup, wipedb and restoredb: our tool and Debian's 4.17 tool on our
daemons, each reading the other's backup files, with the same output and exit codes."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import attrs
import pytest

from ctdbcore.db import backupfile as bf
from tests.cluster.helpers import generation, wait_for

REAL = "/usr/bin/ctdb"
OURS = os.path.join(os.path.dirname(sys.executable), "ctdb")
pytestmark = [pytest.mark.slow, pytest.mark.interop,
              pytest.mark.skipif(not os.path.exists(REAL), reason="Debian's ctdb package is not installed")]


def run(lc, tool: str, pnn: int, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, CTDB_SOCKET=lc.socket(pnn), TZ="UTC")
    return subprocess.run([tool, *args], env=env, capture_output=True, text=True, input=stdin, timeout=120)


def ok(lc, tool: str, pnn: int, *args: str, stdin: str | None = None) -> str:
    r = run(lc, tool, pnn, *args, stdin=stdin)
    assert r.returncode == 0 and r.stderr == "", (tool, pnn, args, r.stdout, r.stderr)
    return r.stdout


def same(lc, pnn: int, *args: str) -> subprocess.CompletedProcess:
    """Both tools, the same stdout, stderr and exit code."""
    theirs, mine = run(lc, REAL, pnn, *args), run(lc, OURS, pnn, *args)
    assert (mine.stdout, mine.stderr, mine.returncode) == (theirs.stdout, theirs.stderr, theirs.returncode), args
    return theirs


def layout(raw: bytes):
    """A backup file without what may differ between two runs: the header's timestamp
    and each buffer's db_id (4.17 leaves that one uninitialised)."""
    header = bf.Header.unpack(raw)
    f = io.BytesIO(raw[bf.HEADER_SIZE:])
    buffers = [(b.count, b.body) for b in (bf.read_buffer(f) for _ in range(header.nbuf))]
    assert f.read() == b""
    return attrs.evolve(header, timestamp=0), buffers


def catdb_everywhere(lc, db: str) -> str:
    """catdb on every node, by both tools: one and the same dump."""
    outs = {tool: [ok(lc, tool, p, "catdb", db) for p in range(3)] for tool in (REAL, OURS)}
    assert len(set(outs[REAL] + outs[OURS])) == 1, outs
    return outs[REAL][0]


def pairs(dump: str) -> set[tuple[str, str]]:
    return set(re.findall(r'^key\(\d+\) = "(.*)"\n(?:.*\n){3}data\(\d+\) = "(.*)"$', dump, re.M))


VOLATILE = {"k1": "hello", "0x00ff01": "binary key", "k3": 'quote" and \\ backslash', "k4": "x" * 900}


def test_backup_wipe_restore_across_both_tools(local_cluster, tmp_path) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=211)
    lc.wait_ok(timeout=30)
    ok(lc, REAL, 0, "attach", "bv.tdb")
    ok(lc, REAL, 0, "attach", "bp.tdb", "persistent")
    # backupdb copies the node's own file: write the volatile records where it runs
    for key, val in VOLATILE.items():
        ok(lc, OURS, 0, "writekey", "bv.tdb", key, val)
    ok(lc, REAL, 1, "pstore", "bp.tdb", "pk", "pv")
    ok(lc, OURS, 2, "ptrans", "bp.tdb", stdin='"a" "1"\n"b" "0x00ff"\n')
    assert ok(lc, REAL, 0, "getdbseqnum", "bp.tdb") == "0x2\n"
    before = {db: catdb_everywhere(lc, db) for db in ("bv.tdb", "bp.tdb")}
    assert "__db_sequence_number__" in before["bp.tdb"] and before["bp.tdb"].endswith("Dumped 4 records\n")

    files = {}
    for db in ("bv.tdb", "bp.tdb"):
        for name, tool in (("real", REAL), ("ours", OURS)):
            files[db, name] = str(tmp_path / f"{name}-{db}.bak")
            assert ok(lc, tool, 0, "backupdb", db, files[db, name]) == f"Database backed up to {files[db, name]}\n"
        raw = {name: open(files[db, name], "rb").read() for name in ("real", "ours")}
        assert layout(raw["ours"]) == layout(raw["real"]) and len(raw["ours"]) == len(raw["real"])
        # both tools dump both files alike; the two files differ only in their timestamp line
        dumps = [same(lc, 0, "dumpdbbackup", files[db, name]) for name in ("real", "ours")]
        assert all(d.returncode == 0 and d.stderr == "" for d in dumps)
        assert [d.stdout.split("\n", 1)[1] for d in dumps] == [dumps[0].stdout.split("\n", 1)[1]] * 2
        assert dumps[0].stdout.startswith(f"Dumping database {db} from backup @ ")
        assert pairs(dumps[0].stdout) == pairs(before[db])

    # wipe: ours the volatile one, 4.17's the persistent one; empty on every node
    assert ok(lc, OURS, 1, "wipedb", "bv.tdb") == "Database bv.tdb wiped\n"
    assert ok(lc, REAL, 2, "wipedb", "bp.tdb") == "Database bp.tdb wiped\n"
    for db in ("bv.tdb", "bp.tdb"):
        assert catdb_everywhere(lc, db) == "Dumped 0 records\n"
    assert {ok(lc, OURS, p, "getdbseqnum", "bp.tdb") for p in range(3)} == {"0x0\n"}

    # restore each from the other tool's file
    out = ok(lc, OURS, 2, "restoredb", files["bv.tdb", "real"])
    assert re.fullmatch(r"Restoring database bv.tdb from backup @ \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\n"
                        r"Database bv.tdb restored\n", out)
    restored = catdb_everywhere(lc, "bv.tdb")
    assert pairs(restored) == pairs(before["bv.tdb"])
    # as 4.17: the data master's own copy counts one more RSN when it is pushed back
    rsns = lambda dump: re.findall(r"^rsn: (\d+)$", dump, re.M)  # noqa: E731
    assert [int(r) for r in rsns(restored)] == [int(r) + 1 for r in rsns(before["bv.tdb"])]
    assert ok(lc, REAL, 1, "readkey", "bv.tdb", "k1") == "Data: size:5 ptr:[hello]\n"

    out = ok(lc, REAL, 1, "restoredb", files["bp.tdb", "ours"])
    assert out.endswith("Database bp.tdb restored\n")
    assert catdb_everywhere(lc, "bp.tdb") == before["bp.tdb"]
    assert {ok(lc, REAL, p, "getdbseqnum", "bp.tdb") for p in range(3)} == {"0x2\n"}
    ok(lc, OURS, 0, "pstore", "bp.tdb", "after", "restore")
    assert {ok(lc, REAL, p, "getdbseqnum", "bp.tdb") for p in range(3)} == {"0x3\n"}

    # restoring under another name creates that database, of the backup's kind
    out = ok(lc, OURS, 1, "restoredb", files["bp.tdb", "real"], "bcopy.tdb")
    assert out.startswith("Restoring database bcopy.tdb from backup @ ")
    assert out.endswith("Database bcopy.tdb restored\n")
    assert re.search(r"^dbid:0x[0-9a-f]{8} name:bcopy.tdb path:\S+ PERSISTENT$", ok(lc, REAL, 2, "getdbmap"), re.M)
    assert catdb_everywhere(lc, "bcopy.tdb") == before["bp.tdb"]


def _recovered(lc, gen: str) -> None:
    wait_for(lambda: generation(lc, 0) != gen and "Recovery mode:NORMAL" in ok(lc, REAL, 0, "status"),
             timeout=30, what="the recovery after a failed restore")


def test_backup_commands_fail_as_4_17_fails(local_cluster, tmp_path) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=221)
    lc.wait_ok(timeout=30)
    ok(lc, REAL, 0, "attach", "fv.tdb")
    for key in ("a", "b", "c"):
        ok(lc, REAL, 0, "writekey", "fv.tdb", key, "value-" + key)
    good = str(tmp_path / "good.bak")
    ok(lc, OURS, 0, "backupdb", "fv.tdb", good)
    raw = open(good, "rb").read()
    header = bf.Header.unpack(raw)
    garbage = tmp_path / "garbage.bak"
    garbage.write_bytes(b"not a backup file at all, not even close")
    for args in (("backupdb", "nosuch.tdb", str(tmp_path / "x.bak")),
                 ("backupdb", "fv.tdb", str(tmp_path / "no" / "dir.bak")),
                 ("backupdb", "fv.tdb"), ("restoredb",), ("restoredb", good, "a", "b"),
                 ("restoredb", str(tmp_path / "missing.bak")), ("restoredb", str(garbage)),
                 ("restoredb", str(tmp_path)), ("dumpdbbackup", str(garbage)),
                 ("wipedb",), ("wipedb", "nosuch.tdb"), ("wipedb", "fv.tdb", "extra"),
                 ("-n", "1", "wipedb", "fv.tdb"), ("-n", "1", "backupdb", "fv.tdb", good)):
        r = same(lc, 0, *args)
        assert r.returncode != 0 and "Traceback" not in r.stderr, args

    # a backup cut short: the wipe is not committed, a recovery puts everything back
    short = tmp_path / "short.bak"
    short.write_bytes(attrs.evolve(header, nbuf=header.nbuf + 1).pack() + raw[bf.HEADER_SIZE:])
    # a record without its ltdb header: the nodes count none, 4.17 says so and exits 0
    bad = tmp_path / "bad.bak"
    bad.write_bytes(attrs.evolve(header, nbuf=1, nrec=1).pack()
                    + next(bf.chunks(0x1234, [(b"k", b"short")])).data)
    # (4.17 exits with a stale errno after a short read: ENOENT or ECHILD; ours with ENOENT)
    for path, err, codes in ((short, "", {2, 10}), (bad, "Node 0 received 0 of 1 records\n", {0})):
        for tool in (REAL, OURS):
            gen = generation(lc, 0)
            r = run(lc, tool, 0, "restoredb", str(path))
            assert r.stdout.split(" @ ")[0] == "Restoring database fv.tdb from backup", (tool, path)
            assert r.stderr == err, (tool, path)
            assert r.returncode in codes and (tool == REAL or r.returncode == min(codes)), (tool, path)
            _recovered(lc, gen)
            assert pairs(catdb_everywhere(lc, "fv.tdb")) == {(k, "value-" + k) for k in "abc"}
