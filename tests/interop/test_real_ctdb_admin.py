"""statistics, statisticsreset, stats, setdebug/getdebug, process-exists, shutdown,
tfetch/tstore: Debian's real `ctdb` (4.17.12) and ours, against our daemons (loopback
127.0.0.74-75) and against real 4.17 ctdbd daemons (127.0.0.77-78)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tests.cluster.helpers import wait_for

REAL = "/usr/bin/ctdb"
OURS = os.path.join(os.path.dirname(sys.executable), "ctdb")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.interop,
    pytest.mark.skipif(not os.path.exists(REAL), reason="Debian's ctdb package is not installed"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ctdb_localcluster.cluster import LocalCluster

    lc = LocalCluster(tmp_path_factory.mktemp("admin"), f"adm{os.getpid() % 100000}", cleanup_at_exit=True)
    lc.up(n=2, loopback=True, loopback_base=74)
    try:
        lc.wait_ok(timeout=30)
        yield lc
    finally:
        lc.down()


def run(lc, tool: str, *args: str, pnn: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, **lc.env(pnn)}
    return subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=60)


def both(lc, *args: str, pnn: int = 0) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    return run(lc, REAL, *args, pnn=pnn), run(lc, OURS, *args, pnn=pnn)


def same(real, mine) -> None:
    assert (mine.stdout, mine.stderr, mine.returncode) == (real.stdout, real.stderr, real.returncode)


NUMBERS = re.compile(r" *\d+(\.\d+)?")
CTIME = re.compile(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}")


def shape(text: str) -> str:
    """Times and numbers (and the padding before them) out: the counters move."""
    return NUMBERS.sub(" N", CTIME.sub("T", text))


@pytest.mark.parametrize("args", [
    ("getdebug",), ("setdebug",), ("setdebug", "nosuchlevel"), ("setdebug", "11"),
    ("statistics", "x"), ("statisticsreset", "x"), ("stats", "1", "2"),
    ("process-exists",), ("process-exists", "1"), ("process-exists", "1", "0x10"),
    ("process-exists", "1", "zz"), ("process-exists", "1", "99999999999999999999999"),
    ("-n", "1", "process-exists", "1"), ("shutdown", "now"),
    ("tfetch", "x"), ("tstore", "f", "k", "v", "1", "2", "3"), ("tfetch", "/nonexistent.tdb", "k"),
], ids=lambda a: "_".join(a) or "none")
def test_same_output(cluster, args) -> None:
    same(*both(cluster, *args))


def test_statistics_same_layout_and_counters_that_move(cluster) -> None:
    real, mine = both(cluster, "statistics")
    assert real.returncode == mine.returncode == 0
    assert shape(mine.stdout) == shape(real.stdout)
    real_n, mine_n = both(cluster, "-n", "1", "statistics")
    assert real_n.returncode == mine_n.returncode == 0 and shape(real_n.stdout) == shape(mine_n.stdout)
    real_x, mine_x = both(cluster, "-X", "statistics")
    assert real_x.stdout.splitlines()[0] == mine_x.stdout.splitlines()[0]
    assert shape(real_x.stdout) == shape(mine_x.stdout)

    def value(text: str, name: str) -> int:
        return int(re.search(rf"^ +{re.escape(name)} +(\d+)$", text, re.M).group(1))

    # the second tool ran later: its connection and controls are counted
    for name in ("client_packets_recv", "client_packets_sent"):
        assert value(mine.stdout, name) > value(real.stdout, name) > 0
    assert value(mine.stdout, "num_clients") >= 1
    assert value(mine.stdout, "num_recoveries") >= 1
    assert value(mine.stdout, "keepalive_packets_sent") > 0
    assert value(mine.stdout, "node_packets_recv") > 0


def _since(lc, tool: str) -> int:
    out = run(lc, tool, "-X", "statistics").stdout.splitlines()
    row = dict(zip(out[0].split("|"), out[1].split("|")))
    return int(row["Statistics collected since"]), int(row["num_recoveries"])


@pytest.mark.parametrize("tool", [REAL, OURS], ids=["real", "ours"])
def test_statisticsreset(cluster, tool) -> None:
    before, _ = _since(cluster, OURS)
    wait_for(lambda: time.time() >= before + 1, what="a second to pass")
    r = run(cluster, tool, "statisticsreset")
    assert (r.stdout, r.stderr, r.returncode) == ("", "", 0)
    after, recoveries = _since(cluster, REAL)
    assert after > before and recoveries == 0


@pytest.mark.parametrize("level,name", [("INFO", "INFO"), ("4", "NOTICE"), ("deb", "DEBUG"),
                                        ("2", "WARNING"), ("NOTICE", "NOTICE")])
def test_setdebug_getdebug_cross_tools(cluster, level, name) -> None:
    for setter, getter in ((REAL, OURS), (OURS, REAL)):
        r = run(cluster, setter, "-n", "1", "setdebug", level)
        assert (r.stdout, r.stderr, r.returncode) == ("", "", 0)
        real, mine = both(cluster, "getdebug", pnn=1)
        same(real, mine)
        assert mine.stdout == f"{name}\n"


def test_process_exists_for_a_connected_client(cluster) -> None:
    from ctdbcore.client.sync import Client

    srvid = 0xABC0000000000001
    with Client(cluster.socket(1)) as c:
        c.register_srvid(srvid)
        pid = str(os.getpid())
        for args in ((pid,), (pid, hex(srvid)), (pid, hex(srvid + 1))):
            real, mine = both(cluster, "process-exists", *args, pnn=1)
            same(real, mine)
        assert mine.stdout == f"PID {pid} with SRVID 0xabc0000000000002 does not exist\n"
        assert run(cluster, OURS, "-n", "1", "process-exists", pid).stdout == f"PID {pid} exists\n"


def test_stats_history(cluster) -> None:
    wait_for(lambda: len(run(cluster, OURS, "-X", "stats").stdout.splitlines()) >= 3, timeout=10,
             what="two stat history entries")
    real, mine = both(cluster, "-X", "stats", "1")
    assert real.returncode == mine.returncode == 0
    # 4.17 prints entries 0..count
    assert len(mine.stdout.splitlines()) == len(real.stdout.splitlines()) == 3
    assert real.stdout.splitlines()[0] == mine.stdout.splitlines()[0]
    for line in mine.stdout.splitlines()[1:]:
        fields = line.split("|")
        assert int(fields[1]) - int(fields[2]) in (0, 1, 2)  # one StatHistoryInterval each
    real, mine = both(cluster, "stats", "0")
    assert shape(real.stdout).count("CTDB version") >= 2
    assert shape(mine.stdout).split("CTDB version")[1] == shape(real.stdout).split("CTDB version")[1]


def test_tstore_tfetch_cross_tools(cluster, tmp_path) -> None:
    from ctdbcore.db.tdb import Tdb

    path = str(tmp_path / "t.tdb")
    Tdb.open(path).close()
    for writer, reader, key in ((REAL, OURS, "0x6B32"), (OURS, REAL, "plain")):
        r = run(cluster, writer, "tstore", path, key, "0x00ff41", "18446744073709551615", "4294967295")
        assert (r.stdout, r.stderr, r.returncode) == ("", "", 0)
        out = run(cluster, reader, "tfetch", path, key, str(tmp_path / f"rec-{key}"))
        assert out.returncode == 0
        assert out.stdout == 'dmaster: 4294967295\nrsn: 18446744073709551615\nflags: 0x00000000\ndata(3) = "\\00\\FFA"\n'
    assert open(tmp_path / "rec-plain", "rb").read() == open(tmp_path / "rec-0x6B32", "rb").read()
    for args in (("tfetch", path, "k2"), ("tfetch", path, "0x6G"), ("tfetch", path, "nokey"),
                 ("tstore", path, "0xABC", "v"), ("tstore", path, "k", "0xZZ"), ("tstore", path, "k", "v", "zz"),
                 ("tstore", path, "k", "v", "5", "abc"), ("tfetch", path, "k"), ("tstore", path, "0x", ""),
                 ("tfetch", path, "")):
        same(*both(cluster, *args))


def test_record_commands_reject_bad_hex_as_4_17(cluster) -> None:
    for args in (("attach", "v.tdb"), ("attach", "p.tdb", "persistent")):
        assert run(cluster, REAL, *args).returncode == 0
    for args in (("readkey", "v.tdb", "0xZZ"), ("writekey", "v.tdb", "0x1", "v"), ("writekey", "v.tdb", "k", "0xG0"),
                 ("deletekey", "v.tdb", "0xq1"), ("pfetch", "p.tdb", "0x1"), ("pstore", "p.tdb", "k", "0xZZ"),
                 ("pdelete", "p.tdb", "0xZ"), ("pstore", "p.tdb", "0xAA", "0x4142"), ("pfetch", "p.tdb", "0xaa")):
        real, mine = both(cluster, *args)
        same(real, mine)
    assert mine.stdout == "AB\n"


def test_shutdown_stops_the_daemon(cluster) -> None:
    """Last in the module: it stops node 1 twice (remote with ours, local with the real tool)."""
    for tool, args, pnn in ((OURS, ("-n", "1", "shutdown"), 0), (OURS, ("shutdown",), 1),
                            (REAL, ("shutdown",), 1)):
        assert cluster.running(1)
        r = run(cluster, tool, *args, pnn=pnn)
        assert (r.stdout, r.stderr, r.returncode) == ("", "", 0)
        wait_for(lambda: not cluster.running(1), timeout=30, what="node 1's ctdbd to exit")
        cluster.start(1)
        cluster.wait_ok(timeout=60)


def test_our_tool_against_real_ctdbd(local_cluster) -> None:
    lc = local_cluster(n=2, loopback=True, loopback_base=77, impl="real")
    lc.wait_ok(timeout=60)
    for args in (("getdebug",), ("process-exists", "1"), ("setdebug", "x"), ("statisticsreset",)):
        same(*both(lc, *args))
    real, mine = both(lc, "statistics")
    assert shape(mine.stdout) == shape(real.stdout)
    wait_for(lambda: len(run(lc, REAL, "-X", "stats").stdout.splitlines()) >= 3, timeout=10,
             what="two stat history entries")
    real, mine = both(lc, "-X", "stats", "1")
    assert real.returncode == mine.returncode == 0
    assert real.stdout.splitlines()[0] == mine.stdout.splitlines()[0]
    assert len(real.stdout.splitlines()) == len(mine.stdout.splitlines()) == 3
    r = run(lc, OURS, "shutdown", pnn=1)
    assert (r.stdout, r.stderr, r.returncode) == ("", "", 0)
    wait_for(lambda: not lc.running(1), timeout=30, what="real ctdbd 1 to exit")
