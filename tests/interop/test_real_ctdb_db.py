"""Debian's real 4.17 `ctdb` tool uses our daemons' databases: it attaches, opens our
TDB files itself, migrates records with REQ_CALL, traverses, runs persistent
transactions (its own g_lock + TRANS3_COMMIT) and forces a recovery."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.cluster.helpers import wait_for

REAL = "/usr/bin/ctdb"
pytestmark = [pytest.mark.slow, pytest.mark.interop,
              pytest.mark.skipif(not os.path.exists(REAL), reason="Debian's ctdb package is not installed")]


def real(lc, pnn: int, *args: str, stdin: str | None = None) -> str:
    env = dict(os.environ, CTDB_SOCKET=lc.socket(pnn))
    r = subprocess.run([REAL, *args], env=env, capture_output=True, text=True, input=stdin, timeout=60)
    assert r.returncode == 0, (args, pnn, r.stdout, r.stderr)
    return r.stdout


def test_real_tool_volatile_and_persistent_databases(local_cluster) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=241)
    lc.wait_ok(timeout=30)
    real(lc, 0, "attach", "test.tdb")
    real(lc, 0, "attach", "p.tdb", "persistent")

    dbmap = real(lc, 1, "getdbmap")
    # and ctdb.tdb, which 00.ctdb attaches at startup on every node, as in 4.17
    assert dbmap.splitlines()[0] == "Number of databases:3"
    assert re.search(r"^dbid:\S+ name:ctdb.tdb path:\S+/node1/db/persistent/ctdb.tdb.1 PERSISTENT$", dbmap, re.M)
    assert re.search(r"^dbid:0xc445c6ab name:test.tdb path:\S+/node1/db/volatile/test.tdb.1$", dbmap, re.M)
    assert re.search(r"^dbid:0x47023bf1 name:p.tdb path:\S+/node1/db/persistent/p.tdb.1 PERSISTENT$", dbmap, re.M)

    # volatile: written on node 0, read on node 1 (a migration), dumped from node 2
    real(lc, 0, "writekey", "test.tdb", "k1", "hello")
    assert real(lc, 1, "readkey", "test.tdb", "k1") == "Data: size:5 ptr:[hello]\n"
    dump = real(lc, 2, "catdb", "test.tdb")
    assert 'key(2) = "k1"\ndmaster: 1\n' in dump and 'data(5) = "hello"' in dump
    assert dump.endswith("Dumped 1 records\n")

    # persistent: pstore on node 0, pfetch on node 2, ptrans on node 1
    real(lc, 0, "pstore", "p.tdb", "pk", "pv")
    assert real(lc, 2, "pfetch", "p.tdb", "pk") == "pv\n"
    real(lc, 1, "ptrans", "p.tdb", stdin='"a" "1"\n"b" "2"\n')
    for pnn in (0, 1, 2):
        assert real(lc, pnn, "pfetch", "p.tdb", "b") == "2\n"
        assert real(lc, pnn, "getdbseqnum", "p.tdb") == "0x2\n"
    # as 4.17: the transaction counter is a record too
    assert real(lc, 0, "catdb", "p.tdb").endswith("Dumped 4 records\n")

    # a forced recovery keeps everything
    gen = re.search(r"^Generation:(\d+)$", real(lc, 0, "status"), re.M).group(1)
    real(lc, 0, "recover")
    wait_for(lambda: re.search(r"^Generation:(\d+)$", real(lc, 0, "status"), re.M).group(1) != gen,
             what="a new generation after ctdb recover")
    assert real(lc, 2, "readkey", "test.tdb", "k1") == "Data: size:5 ptr:[hello]\n"
    assert real(lc, 1, "pfetch", "p.tdb", "pk") == "pv\n"


def both(lc, pnn: int, *args: str, stdin: str | None = None):
    env = dict(os.environ, CTDB_SOCKET=lc.socket(pnn))
    ours = os.path.join(os.path.dirname(sys.executable), "ctdb")
    return tuple(subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=60, input=stdin)
                 for tool in (REAL, ours))


def test_our_record_commands_print_what_4_17_prints(local_cluster) -> None:
    # No vacuum run between the two tools' `cattdb`: it may delete the empty record that
    # `readkey missing` left, and the two outputs would differ for that reason alone.
    lc = local_cluster(n=2, loopback=True, loopback_base=251, tunables=(("VacuumInterval", "3600"),))
    lc.wait_ok(timeout=30)
    ours = os.path.join(os.path.dirname(sys.executable), "ctdb")
    env0 = dict(os.environ, CTDB_SOCKET=lc.socket(0))
    real(lc, 0, "attach", "rec.tdb")
    real(lc, 0, "attach", "prec.tdb", "persistent")
    for args in (("attach", "ours.tdb", "sticky"), ("attach", "ourrep.tdb", "replicated")):
        r = subprocess.run([ours, *args], env=env0, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (args, r.stderr)
    # written by our tool, read by theirs and ours
    for args in (("writekey", "rec.tdb", "plain", "value one"),
                 ("writekey", "rec.tdb", "0x00ff22", 'quote" and \\ backslash'),
                 ("pstore", "prec.tdb", "pk", "persistent value"),
                 ("pstore", "prec.tdb", "gone", "x"),
                 ("pdelete", "prec.tdb", "gone"), ("ptrans", "prec.tdb")):
        stdin = '"t1" "one"\n  "t2" "0x414243"\nbad line\n"" "skipped"\n"t3" ""\n'
        r = subprocess.run([ours, *args], env=env0, capture_output=True, text=True, timeout=60, input=stdin)
        assert r.returncode == 0, (args, r.stderr)
    for pnn in (0, 1):
        for args in (("catdb", "rec.tdb"), ("catdb", "prec.tdb"), ("cattdb", "rec.tdb"),
                     ("readkey", "rec.tdb", "plain"), ("readkey", "rec.tdb", "missing"),
                     ("pfetch", "prec.tdb", "pk"), ("pfetch", "prec.tdb", "gone"),
                     ("readkey", "prec.tdb", "pk"), ("catdb", "nosuch.tdb"), ("catdb", "0xc445c6ab"),
                     ("pfetch", "prec.tdb", "t2"), ("pfetch", "rec.tdb", "plain"), ("getdbseqnum", "prec.tdb"),
                     ("getdbmap",), ("-X", "getdbmap"), ("getdbstatus", "prec.tdb"), ("getdbstatus", "0xc445c6ab"),
                     ("getdbstatus", "nosuch.tdb"), ("dbstatistics", "rec.tdb"), ("dbstatistics", "prec.tdb"),
                     ("setdbreadonly", "prec.tdb"), ("setdbsticky", "ourrep.tdb"), ("detach", "rec.tdb")):
            theirs, mine = both(lc, pnn, *args)
            assert (mine.stdout, mine.stderr, mine.returncode) == \
                (theirs.stdout, theirs.stderr, theirs.returncode), (pnn, args)
    # bad ptrans input is reported the same way
    theirs, mine = both(lc, 0, "ptrans", "prec.tdb", stdin='bad line\n"k" unquoted\n"k2" "open\n"ok" "1"\n'
                          '"0xZZ" "1"\n"k3" "0xABC"\n"0x6b34" "0x3g"\n"k5" "0x"\n')
    assert (mine.stdout, mine.stderr, mine.returncode) == (theirs.stdout, theirs.stderr, theirs.returncode), \
        (theirs, mine)
    # our `recover` forces a recovery and returns once the generation changed
    gen = re.search(r"^Generation:(\d+)$", real(lc, 1, "status"), re.M).group(1)
    r = subprocess.run([ours, "recover"], env=env0, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    assert re.search(r"^Generation:(\d+)$", real(lc, 1, "status"), re.M).group(1) != gen
    assert real(lc, 1, "readkey", "rec.tdb", "plain") == "Data: size:9 ptr:[value one]\n"
    # flags set by our tool are what the real tool then shows
    for args in (("setdbreadonly", "ours.tdb"), ("setdbsticky", "rec.tdb")):
        r = subprocess.run([ours, *args], env=env0, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (args, r.stderr)
    theirs, mine = both(lc, 0, "getdbmap")
    assert mine.stdout == theirs.stdout and " STICKY READONLY" in theirs.stdout
    # detach, once client attaches are refused everywhere, removes it on every node
    for pnn in (0, 1):
        real(lc, pnn, "setvar", "AllowClientDBAttach", "0")
    r = subprocess.run([ours, "detach", "ours.tdb"], env=env0, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: all("name:ours.tdb " not in real(lc, p, "getdbmap") for p in (0, 1)),
             what="ours.tdb detached on both nodes")


def test_real_tool_read_only_records(local_cluster) -> None:
    """4.17's `setdbreadonly`, `getdbmap`, `readkey ... readonly` and `cattdb` against our
    daemons: the real client gets a read-only copy from our data master and reads it."""
    from ctdbcore.db import record

    lc = local_cluster(n=3, loopback=True, loopback_base=244)
    lc.wait_ok(timeout=30)
    real(lc, 0, "attach", "ro.tdb")
    # A key whose lmaster is node 0, so that node 1 only ever holds a copy.
    key = next(k for k in ("key%d" % i for i in range(100)) if record.lmaster(k.encode(), [0, 1, 2]) == 0)
    real(lc, 0, "writekey", "ro.tdb", key, "v0")
    for pnn in (0, 1, 2):
        real(lc, pnn, "setdbreadonly", "ro.tdb")
        assert re.search(r"^dbid:0x[0-9a-f]{8} name:ro.tdb path:\S+ READONLY$", real(lc, pnn, "getdbmap"), re.M)
    assert real(lc, 1, "readkey", "ro.tdb", key, "readonly") == "Data: size:2 ptr:[v0]\n"
    assert (f'key({len(key)}) = "{key}"\ndmaster: 0\n' in (dump := real(lc, 1, "cattdb", "ro.tdb"))
            and "flags: 0x02000000 RO_HAVE_READONLY\n" in dump), dump
    assert "RO_HAVE_DELEGATIONS" in real(lc, 0, "cattdb", "ro.tdb")
    # A write from node 2 revokes node 1's copy and moves the record to node 2.
    real(lc, 2, "writekey", "ro.tdb", key, "v1")
    assert "RO_HAVE" not in real(lc, 1, "cattdb", "ro.tdb")
    for pnn in (0, 1, 2):
        assert real(lc, pnn, "readkey", "ro.tdb", key, "readonly") == "Data: size:2 ptr:[v1]\n"
