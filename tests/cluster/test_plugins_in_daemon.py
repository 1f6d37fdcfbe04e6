"""The plugin host inside a running ctdbd: failing, raising and hanging plugins make
the node UNHEALTHY and it recovers; the daemon survives all of them; event status
is visible through `ctdb`; SIGTERM runs the shutdown event; plugin selection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.helpers import ctdb, flag, wait_for

PLUGIN_DIR = str(Path(__file__).parent / "testplugin")
CTDBD = os.path.join(os.path.dirname(sys.executable), "ctdbd")


def cluster(local_cluster, tmp_path, n=2, **opts):
    ctl = tmp_path / "ctl"
    ctl.mkdir(exist_ok=True)
    env = {"PYTHONPATH": PLUGIN_DIR, "CTDB_TESTPLUGIN_DIR": str(ctl)}
    lc = local_cluster(n=n, loopback=True, loopback_base=61,
                       tunables=(("MonitorInterval", "1"), ("EventScriptTimeout", "2"), ("MonitorTimeoutCount", "2")),
                       env=tuple(env.items()), enable=("testplugin",), **opts)
    lc.wait_ok(timeout=30)
    return lc, ctl


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fail", "raise", "hang"])
def test_bad_monitor_makes_node_unhealthy_then_it_recovers(local_cluster, tmp_path, mode) -> None:
    lc, ctl = cluster(local_cluster, tmp_path)
    (ctl / "monitor").write_text(mode)
    wait_for(lambda: flag(lc, 1, 0, "Unhealthy") and flag(lc, 0, 0, "Unhealthy"), timeout=20,
             what=f"UNHEALTHY after a monitor that does {mode!r}")
    out = ctdb(lc, 0, "scriptstatus")
    word = {"fail": "ERROR", "raise": "ERROR", "hang": "TIMEDOUT"}[mode]
    assert f"\n{'testplugin':<20} {word}" in "\n" + out, out
    (ctl / "monitor").write_text("ok")
    wait_for(lambda: not flag(lc, 1, 0, "Unhealthy"), timeout=20, what="healthy again")
    assert lc.running(0) and lc.running(1)
    assert f"\n{'testplugin':<20} OK" in "\n" + ctdb(lc, 0, "scriptstatus")
    rc = lc.run(0, "ctdb", "event", "status", "legacy", "startup", check=False)
    assert rc.returncode == 0 and "testplugin" in rc.stdout


@pytest.mark.slow
def test_sigterm_runs_shutdown_event_and_exits_cleanly(local_cluster, tmp_path) -> None:
    lc, ctl = cluster(local_cluster, tmp_path, n=1)
    pid = lc.pid(0)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not lc.running(0), timeout=20, what="ctdbd to exit")
    assert (ctl / "shutdown.ran").read_text().split() == [str(pid)]
    assert not os.path.exists(lc.socket(0))


def _ctdbd(args, env_extra, tmp_path):
    env = {**os.environ, "CTDB_BASE": str(tmp_path), "CTDB_TEST_MODE": "yes", **env_extra}
    return subprocess.run([CTDBD, *args], env=env, capture_output=True, text=True, timeout=60)


def test_plugins_listing_shows_every_kind(tmp_path) -> None:
    r = _ctdbd(["--plugins"], {"PYTHONPATH": PLUGIN_DIR}, tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:] if line and not line.startswith(" ")}
    assert "ctdb.services" in rows["testplugin"] and "ctdb-testplugin" in rows["testplugin"]
    assert "ctdb.services" in rows["example"]
    assert "ctdb.transport" in rows["tcp"] and "ctdb.cluster_mutex" in rows["fcntl"]
    assert "monitor" in rows["testplugin"]


def test_named_plugin_that_cannot_load_stops_the_daemon(tmp_path) -> None:
    (tmp_path / "nodes").write_text("127.0.0.71\n")
    r = _ctdbd(["-i", "--plugins", "nosuchplugin"], {}, tmp_path)
    assert r.returncode == 1 and "nosuchplugin" in r.stderr


def test_check_config(tmp_path) -> None:
    (tmp_path / "nodes").write_text("127.0.0.71\nnot-an-address\n")
    (tmp_path / "ctdb.conf").write_text("[cluster]\n  leader timeout = soon\n")
    r = _ctdbd(["--check-config"], {}, tmp_path)
    assert r.returncode == 1
    assert f"{tmp_path}/nodes:2:" in r.stderr and f"{tmp_path}/ctdb.conf:2:" in r.stderr
    (tmp_path / "nodes").write_text("127.0.0.71\n")
    (tmp_path / "ctdb.conf").write_text("[cluster]\n  leader timeout = 3\n")
    r = _ctdbd(["--check-config"], {}, tmp_path)
    assert r.returncode == 0 and "leader timeout = 3" in r.stdout


@pytest.mark.slow
def test_plugins_allow_list_runs_exactly_those(local_cluster, tmp_path) -> None:
    lc, ctl = cluster(local_cluster, tmp_path, n=1, plugins="testplugin")
    wait_for(lambda: "testplugin" in ctdb(lc, 0, "scriptstatus"), what="a monitor run")
    out = ctdb(lc, 0, "scriptstatus")
    assert out.startswith("testplugin") and "example" not in out and "interface" not in out


@pytest.mark.slow
def test_an_uninstalled_plugin_leaves_the_listing_and_ctdbd_still_runs(local_cluster, tmp_path) -> None:
    """What `pip uninstall` does to a plugin (its module and dist-info go) after it was
    enabled on the node: gone from `ctdbd --plugins`, its state file ignored, ctdbd runs."""
    import shutil

    site = tmp_path / "site"
    shutil.copytree(PLUGIN_DIR, site)
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    env = {"PYTHONPATH": str(site), "CTDB_TESTPLUGIN_DIR": str(ctl)}
    lc = local_cluster(n=1, loopback=True, loopback_base=66, env=tuple(env.items()))
    lc.wait_ok(timeout=30)
    assert lc.run(0, "ctdb", "event", "script", "enable", "legacy", "10.testplugin").returncode == 0
    listing = lc.run(0, "ctdbd", "--plugins").stdout
    assert any(line.split()[:1] == ["testplugin"] and " yes " in line for line in listing.splitlines()), listing
    lc.kill(0)
    shutil.rmtree(site / "ctdb_testplugin-0.1.dist-info")
    (site / "ctdb_testplugin.py").unlink()
    assert "testplugin" not in lc.run(0, "ctdbd", "--plugins").stdout
    lc.start(0)
    lc.wait_ok(timeout=30)
    out = lc.run(0, "ctdb", "event", "script", "list", "legacy").stdout
    assert "testplugin" not in out and "* 10.interface" in out
    assert "testplugin" not in lc.run(0, "ctdb", "scriptstatus").stdout
