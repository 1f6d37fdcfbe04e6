"""onnode against a real local cluster (loopback mode), through localcluster's shim."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def onnode(lc, *args: str) -> subprocess.CompletedProcess:
    tool = os.path.join(os.path.dirname(sys.executable), "localcluster")
    return subprocess.run([tool, "--root", str(lc.root), "--name", lc.name, "onnode", *args],
                          capture_output=True, text=True, timeout=60)


def test_onnode_all_any_ok_connected_lists_and_parallel(local_cluster) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=91)
    lc.wait_ok(timeout=30)
    r = onnode(lc, "all", "ctdb", "pnn")
    assert r.returncode == 0 and r.stdout.split() == ["0", "1", "2"]
    assert ">> NODE: 127.0.0.91 <<" in r.stderr
    r = onnode(lc, "-p", "all", "ctdb", "pnn")
    assert sorted(r.stdout.splitlines()) == ["[127.0.0.91] 0", "[127.0.0.92] 1", "[127.0.0.93] 2"]
    assert onnode(lc, "any", "ctdb", "pnn").stdout.strip() in ("0", "1", "2")
    assert onnode(lc, "1,2", "ctdb", "pnn").stdout.split() == ["1", "2"]
    assert onnode(lc, "0-1", "ctdb", "pnn").stdout.split() == ["0", "1"]
    lc.run(1, "ctdb", "disable")
    assert onnode(lc, "ok", "ctdb", "pnn").stdout.split() == ["0", "2"]
    lc.kill(2)
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = onnode(lc, "con", "ctdb", "pnn").stdout.split()
        if out == ["0", "1"]:
            break
        time.sleep(0.2)
    assert out == ["0", "1"]
    r = onnode(lc, "2", "ctdb", "pnn")
    assert r.returncode != 0
