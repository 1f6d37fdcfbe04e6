"""`ctdb natgw|lvs leader|list|status`: Debian's tool (which runs 4.17's helpers
/usr/libexec/ctdb/ctdb_natgw and ctdb_lvs, themselves running Debian's ctdb) and
ours print the same and exit the same against our daemons, as node states change."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.helpers import wait_for

REAL = "/usr/bin/ctdb"
OURS = os.path.join(os.path.dirname(sys.executable), "ctdb")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.interop,
    pytest.mark.skipif(not os.path.exists(REAL) or not os.path.exists("/usr/libexec/ctdb/ctdb_natgw"),
                       reason="Debian's ctdb package is not installed"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ctdb_localcluster.cluster import LocalCluster

    lc = LocalCluster(tmp_path_factory.mktemp("natgwlvs"), f"nlt{os.getpid() % 100000}", cleanup_at_exit=True)
    lc.up(n=3, loopback=True, loopback_base=47)
    try:
        lc.wait_ok(timeout=30)
        for node in lc.nodes():
            d = Path(node.dir)
            shutil.copy("/etc/ctdb/functions", d / "functions")  # the helpers source it
            a = [n.address for n in lc.nodes()]
            (d / "natgw_nodes").write_text(f"{a[0]}\n{a[1]}\n{a[2]} follower-only\n")
            # LVS nodes through script.options, as an administrator would
            (d / "lvs_nodes.txt").write_text(f"{a[0]} follower-only\n{a[1]}\n{a[2]}\n")
            (d / "script.options").write_text(f"CTDB_LVS_NODES={d / 'lvs_nodes.txt'}\n")
        yield lc
    finally:
        lc.down()


def both(lc, *args: str, pnn: int = 0):
    env = {**os.environ, **lc.env(pnn), "CTDB": REAL}
    real = subprocess.run([REAL, *args], env=env, capture_output=True, text=True, timeout=60)
    mine = subprocess.run([OURS, *args], env=env, capture_output=True, text=True, timeout=60)
    return real, mine


COMMANDS = [("natgw", "leader"), ("natgw", "list"), ("natgw", "status"), ("natgw", "bogus"),
            ("lvs", "leader"), ("lvs", "list"), ("lvs", "status"), ("lvs", "bogus")]


def assert_same(lc, pnn: int = 0) -> None:
    for args in COMMANDS:
        real, mine = both(lc, *args, pnn=pnn)
        assert (mine.returncode, mine.stdout) == (real.returncode, real.stdout), (args, real.stderr, mine.stderr)
        assert mine.stderr.strip() == real.stderr.strip(), args


def test_all_healthy(cluster) -> None:
    assert_same(cluster, 0)
    assert_same(cluster, 2)
    real, _ = both(cluster, "natgw", "leader")
    assert real.stdout.split()[0] == "0"


def test_with_a_disabled_and_an_unhealthy_node(cluster) -> None:
    lc = cluster
    lc.run(0, "ctdb", "-n", "0", "disable")
    lc.run(1, "ctdb", "-n", "1", "stop")
    try:
        wait_for(lambda: "DISABLED" in lc.run(2, "ctdb", "nodestatus", "0", check=False).stdout
                 and "STOPPED" in lc.run(2, "ctdb", "nodestatus", "1", check=False).stdout, timeout=30,
                 what="node 0 disabled, node 1 stopped")
        assert_same(lc, 2)
        real, _ = both(lc, "natgw", "leader", pnn=2)
        assert real.returncode == 0 and real.stdout.split()[0] == "1"  # STOPPED will do
    finally:
        lc.run(0, "ctdb", "-n", "0", "enable", check=False)
        lc.run(1, "ctdb", "-n", "1", "continue", check=False)
        wait_for(lc.all_ok, timeout=30, what="all OK again")


def test_missing_group_file(cluster) -> None:
    lc = cluster
    node = Path(lc.node(0).dir)
    (node / "natgw_nodes").rename(node / "natgw_nodes.off")
    try:
        for args in (("natgw", "leader"), ("natgw", "list"), ("natgw", "status")):
            real, mine = both(lc, *args)
            assert (mine.returncode, mine.stdout) == (real.returncode, real.stdout) == (1, "")
            assert mine.stderr == real.stderr and "NAT gateway nodes file" in real.stderr
    finally:
        (node / "natgw_nodes.off").rename(node / "natgw_nodes")
