"""Debian's real `ctdb` (4.17.12) pointed at our daemon prints what our CLI prints.

A loopback cluster of 3 of our daemons; each command runs once with /usr/bin/ctdb
and once with our `ctdb`, with the same CTDB_SOCKET and CTDB_BASE.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.cluster.helpers import leaders, wait_for

REAL = "/usr/bin/ctdb"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.interop,
    pytest.mark.skipif(not os.path.exists(REAL), reason="Debian's ctdb package is not installed"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ctdb_localcluster.cluster import LocalCluster

    lc = LocalCluster(tmp_path_factory.mktemp("interop"), f"ict{os.getpid() % 100000}", cleanup_at_exit=True)
    lc.up(n=3, loopback=True, loopback_base=41)
    try:
        lc.wait_ok(timeout=30)
        wait_for(lambda: len(leaders(lc, [0, 1, 2])) == 1 and "UNKNOWN" not in leaders(lc, [0, 1, 2]))
        yield lc
    finally:
        lc.down()


def both(lc, *args: str, pnn: int = 0) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    env = {**os.environ, **lc.env(pnn)}
    ours = os.path.join(os.path.dirname(__import__("sys").executable), "ctdb")
    real = subprocess.run([REAL, *args], env=env, capture_output=True, text=True, timeout=30)
    mine = subprocess.run([ours, *args], env=env, capture_output=True, text=True, timeout=30)
    return real, mine


TIMES = re.compile(r"time=\d+\.\d+|\d\d:\d\d:\d\d|\(\d{3} \d\d:\d\d:\d\d\)|\d+\.\d{6} seconds")


@pytest.mark.parametrize(
    "args",
    [
        ("status",), ("-X", "status"), ("nodestatus",), ("nodestatus", "all"), ("-X", "nodestatus"),
        ("pnn",), ("listnodes",), ("-X", "listnodes"), ("runstate",), ("getcapabilities",),
        ("listvars",), ("getvar", "KeepaliveInterval"), ("getvar", "NoSuchTunable"), ("leader",),
        ("getreclock",), ("-n", "2", "status"), ("-n", "1", "runstate"), ("nosuchcommand",),
    ],
    ids=lambda a: "_".join(a),
)
def test_same_output(cluster, args) -> None:
    real, mine = both(cluster, *args)
    assert (mine.stdout, mine.returncode) == (real.stdout, real.returncode)


@pytest.mark.parametrize("args", [("ping",), ("uptime",)], ids=lambda a: a[0])
def test_same_output_modulo_times(cluster, args) -> None:
    real, mine = both(cluster, *args)
    assert real.returncode == mine.returncode == 0
    norm = lambda s: TIMES.sub("T", s)  # noqa: E731
    # ping counts connected clients, one of which is the tool itself
    assert norm(mine.stdout) == norm(real.stdout)


def test_disable_enable_same_effect(cluster) -> None:
    for tool in ("real", "ours"):
        real, mine = both(cluster, "disable", pnn=1) if tool == "real" else (None, None)
        if tool == "ours":
            _, mine = both(cluster, "disable", pnn=1)
            assert mine.returncode == 0
        else:
            assert real.returncode == 0
        r, m = both(cluster, "status", pnn=0)
        assert r.stdout == m.stdout and "pnn:1 127.0.0.42       DISABLED" in r.stdout
        again_real, again_mine = both(cluster, "disable", pnn=1)
        assert (again_mine.stdout, again_mine.returncode) == (again_real.stdout, again_real.returncode)
        _, m = both(cluster, "enable", pnn=1)
        assert m.returncode == 0
        r, m = both(cluster, "nodestatus", pnn=1)
        assert r.stdout == m.stdout and r.returncode == m.returncode == 0
