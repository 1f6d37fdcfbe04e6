"""Debian's real `ctdb ip` family against our daemon prints what ours prints
(namespace cluster: real public addresses on eth1)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cluster.helpers import wait_for

REAL = "/usr/bin/ctdb"
pytestmark = [pytest.mark.slow, pytest.mark.interop, pytest.mark.netns,
              pytest.mark.skipif(not os.path.exists(REAL), reason="Debian's ctdb package is not installed")]


def run(lc, tool: str, *args: str, pnn: int = 0) -> subprocess.CompletedProcess:
    ns = ["ip", "netns", "exec", lc.node_ns(pnn)]
    return subprocess.run([*ns, tool, *args], env=lc.env(pnn), capture_output=True, text=True, timeout=30)


def test_ip_commands_match(local_cluster) -> None:
    lc = local_cluster(n=3)
    lc.wait_ok(timeout=30)
    ours = os.path.join(os.path.dirname(sys.executable), "ctdb")
    def settled() -> bool:
        # LCP2 ends with one address per node; until then a rebalance may move one
        # between the two tools' runs.
        rows = [ln.strip("|").split("|") for ln in run(lc, REAL, "-X", "ip").stdout.splitlines()[1:]]
        return sorted(r[1] for r in rows) == ["0", "1", "2"]

    wait_for(settled, what="addresses placed one per node")
    for args in (("ip",), ("ip", "-v"), ("-X", "ip"), ("-X", "ip", "-v"), ("ip", "all"), ("ifaces",),
                 ("-X", "ifaces"), ("ipinfo", "198.51.100.101"), ("gettickles", "198.51.100.101"),
                 ("ipinfo", "203.0.113.9")):
        for pnn in (0, 2):
            real, mine = run(lc, REAL, *args, pnn=pnn), run(lc, ours, *args, pnn=pnn)
            assert (mine.stdout, mine.returncode) == (real.stdout, real.returncode), (args, pnn, real.stderr, mine.stderr)
