"""The built-in plugins 00.ctdb, 01.reclock and 05.system inside a real ctdbd: a
corrupt persistent database stops it with 4.17's message, a corrupt volatile one is
moved aside, ctdb.tdb is attached at startup, and the node is healthy with them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.helpers import ctdb, wait_for
from tests.unit.builtin.test_builtin_ctdb import damage, make_tdb

CTDBD = os.path.join(os.path.dirname(sys.executable), "ctdbd")
BUILTINS = "ctdb,reclock,system"
needs_tdbtool = pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v tdbtool"]).returncode != 0,
                                   reason="needs tdbtool (apt-get install tdb-tools)")


@needs_tdbtool
def test_corrupt_persistent_database_stops_ctdbd_with_4_17s_message(tmp_path) -> None:
    (tmp_path / "nodes").write_text("127.0.0.72\n")
    log = tmp_path / "log.ctdb"
    (tmp_path / "ctdb.conf").write_text(f"[logging]\n\tlocation = file:{log}\n[legacy]\n\trealtime scheduling = false\n")
    bad = damage(make_tdb(tmp_path / "var" / "persistent" / "secrets.tdb.0"))
    env = {**os.environ, "CTDB_BASE": str(tmp_path), "CTDB_TEST_MODE": "yes"}
    env.pop("CTDB_SOCKET", None)
    env.pop("CTDB_SCRIPT_VARDIR", None)
    r = subprocess.run([CTDBD, "-i", "--plugins", BUILTINS], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    text = log.read_text()
    assert f"Persistent database {bad} is corrupted! CTDB will not start." in text
    assert "Failed to run init event, shutting down" in text
    assert "Attached persistent database" not in text  # never opened


@needs_tdbtool
@pytest.mark.slow
def test_builtins_in_a_running_node(local_cluster) -> None:
    lc = local_cluster(n=1, loopback=True, loopback_base=74, plugins=f"{BUILTINS},interface")
    lc.wait_ok(timeout=30)
    node = Path(lc.node(0).dir)
    wait_for(lambda: "ctdb.tdb" in ctdb(lc, 0, "getdbmap"), timeout=20, what="ctdb.tdb attached at startup")
    assert "PERSISTENT" in next(line for line in ctdb(lc, 0, "getdbmap").splitlines() if "ctdb.tdb" in line)
    wait_for(lambda: "system" in ctdb(lc, 0, "scriptstatus"), timeout=20, what="a monitor run")
    status = ctdb(lc, 0, "scriptstatus")
    assert f"\n{'system':<20} OK" in "\n" + status, status  # the only one with a monitor hook
    init = lc.run(0, "ctdb", "event", "status", "legacy", "init").stdout
    assert f"{'ctdb':<20} OK" in init and f"{'reclock':<20} OK" in init
    # 01.reclock made the cluster lock's directory; per-node script state dir used
    scripts = node / "var" / "scripts"
    assert (scripts / "system").is_dir()

    # a corrupt volatile database left by a previous run is moved aside at the next start
    lc.kill(0)
    bad = damage(make_tdb(node / "db" / "volatile" / "junk.tdb.0"))
    (scripts / "leftover").write_text("from the last run")
    lc.start(0)
    lc.wait_ok(timeout=30)
    assert not bad.exists()
    assert len(list(bad.parent.glob("junk.tdb.0.*.corrupt"))) == 1
    assert not (scripts / "leftover").exists()
    # the persistent ctdb.tdb written last time passed the check and is attached again
    assert "ctdb.tdb" in ctdb(lc, 0, "getdbmap")
