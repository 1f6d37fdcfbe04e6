"""00.ctdb as a plugin: the script state reset, the database checks with the real
tdbtool on real (and really damaged) TDB files, the corrupt-backup rotation, and the
startup attach."""

from __future__ import annotations

import os
import shutil
import sys
import types
from pathlib import Path

import pytest

from ctdbcore.builtin import ctdb as ctdb_plugin
from ctdbcore.config.ctdbconf import CtdbConf, DatabaseConfig
from ctdbcore.db.tdb import Tdb
from ctdbcore.plugins.service import SubprocessRunner

needs_tdbtool = pytest.mark.skipif(shutil.which("tdbtool") is None, reason="needs tdbtool (apt-get install tdb-tools)")


def make_tdb(path: Path, records: int = 50) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tdb = Tdb.open(str(path), hash_size=131, open_flags=os.O_RDWR | os.O_CREAT, mode=0o600)
    for i in range(records):
        tdb.store(b"key%d" % i, b"v" * 100)
    tdb.close()
    return path


def damage(path: Path) -> Path:
    """Overwrite everything after the hash table: the record chains become garbage."""
    data = bytearray(path.read_bytes())
    data[1000:] = b"\xff" * (len(data) - 1000)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def dirs(tmp_path):
    var = tmp_path / "var"
    conf = CtdbConf(database=DatabaseConfig.for_var_dir(str(var)))
    (var / "volatile").mkdir(parents=True)
    (var / "persistent").mkdir(parents=True)
    return types.SimpleNamespace(var=var, volatile=var / "volatile", persistent=var / "persistent",
                                 config=types.SimpleNamespace(ctdb_conf=conf))


@pytest.fixture
def real(plugin_harness, dirs):
    """The plugin with the real command runner (real tdbtool)."""

    def make(**settings):
        return plugin_harness(ctdb_plugin, "ctdb", config=dirs.config, runner=SubprocessRunner(), settings=settings)

    return make


def test_script_name_and_order() -> None:
    from ctdbcore.plugins.enablement import default_enabled, script_name

    assert script_name("ctdb", ctdb_plugin) == "00.ctdb"
    assert default_enabled(ctdb_plugin)


def test_init_empties_the_state_of_every_plugin(plugin_harness, dirs, tmp_path) -> None:
    h = plugin_harness(ctdb_plugin, "ctdb", config=dirs.config)
    h.runner.respond(["tdbtool"], stdout="check\n")
    scripts = h.base / "var" / "scripts"
    (scripts / "natgw").mkdir(parents=True)
    (scripts / "natgw" / "leader_old").write_text("1\n")
    (scripts / "failcount").write_text("\n\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    (scripts / "link").symlink_to(outside)
    assert h.output("init") == (0, "")
    assert list(scripts.iterdir()) == []
    assert (outside / "keep").exists()  # a symlink is removed, not followed


def test_init_never_empties_the_run_directory(plugin_harness, dirs) -> None:
    import attrs

    h = plugin_harness(ctdb_plugin, "ctdb", config=dirs.config)
    h.runner.respond(["tdbtool"], stdout="check\n")
    run = h.base / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "eventstatus.json").write_text("{}")
    h.ctx = attrs.evolve(h.ctx, script_vardir=run)  # a host that gave no state directory
    assert h.output("init") == (0, "")
    assert (run / "eventstatus.json").exists()


@needs_tdbtool
def test_good_databases_pass_with_real_tdbtool(real, dirs) -> None:
    make_tdb(dirs.persistent / "secrets.tdb.0")
    make_tdb(dirs.volatile / "locking.tdb.0")
    assert real().output("init") == (0, "")
    assert (dirs.volatile / "locking.tdb.0").exists()


@needs_tdbtool
def test_corrupt_persistent_database_stops_ctdbd(real, dirs) -> None:
    make_tdb(dirs.persistent / "a.tdb.0")
    bad = damage(make_tdb(dirs.persistent / "secrets.tdb.0"))
    status, out = real().output("init")
    assert status == 1
    assert out == f"Persistent database {bad} is corrupted! CTDB will not start."
    assert bad.exists()  # left alone for the administrator


@needs_tdbtool
def test_corrupt_volatile_database_is_moved_aside(real, dirs) -> None:
    bad = damage(make_tdb(dirs.volatile / "locking.tdb.0"))
    good = make_tdb(dirs.volatile / "brlock.tdb.0")
    assert real().output("init") == (0, "")
    assert not bad.exists() and good.exists()
    backups = list(dirs.volatile.glob("locking.tdb.0.*.corrupt"))
    assert len(backups) == 1
    stamp = backups[0].name[len("locking.tdb.0."):-len(".corrupt")]
    assert len(stamp) == 15 and stamp[8] == "." and stamp.replace(".", "").isdigit()


def test_only_names_ending_in_a_digit_are_checked(plugin_harness, dirs) -> None:
    h = plugin_harness(ctdb_plugin, "ctdb", config=dirs.config)
    h.runner.respond(["tdbtool"], stdout="check\n")
    for name in ("a.tdb.0", "b.tdb.12", "c.tdb", "d.tdb.0.20240101.101010.corrupt", "e.ldb.0"):
        (dirs.persistent / name).write_bytes(b"")
    h.runner.respond(lambda argv: len(argv) == 3 and argv[2] == "check", stdout="Database integrity is OK\n")
    assert h.output("init") == (0, "")
    checked = [Path(argv[1]).name for argv in h.runner.commands("tdbtool") if len(argv) == 3]
    assert checked == ["a.tdb.0", "b.tdb.12"]


def test_backups_beyond_the_limit_are_removed(plugin_harness, dirs) -> None:
    h = plugin_harness(ctdb_plugin, "ctdb", config=dirs.config, settings={"max_corrupt_db_backups": "3"})
    h.runner.respond(["tdbtool"], stdout="check\n")
    h.runner.respond(lambda argv: len(argv) == 3, stdout="Integrity check for the opened database failed.\n")
    for day in range(1, 6):
        (dirs.volatile / f"x.tdb.0.202401{day:02d}.000000.corrupt").write_text("")
    (dirs.volatile / "y.tdb.0.20240101.000000.corrupt").write_text("")  # another database's
    (dirs.volatile / "x.tdb.0").write_text("")
    assert h.output("init") == (0, "")
    left = sorted(p.name for p in dirs.volatile.iterdir())
    # the new backup (today) and the two newest old ones; y's untouched
    assert len([n for n in left if n.startswith("x.tdb.0.")]) == 3
    assert "x.tdb.0.20240105.000000.corrupt" in left and "x.tdb.0.20240104.000000.corrupt" in left
    assert "x.tdb.0.20240103.000000.corrupt" not in left
    assert "y.tdb.0.20240101.000000.corrupt" in left and "x.tdb.0" not in left


def test_tdbdump_is_used_when_tdbtool_has_no_check(plugin_harness, dirs, monkeypatch, caplog) -> None:
    h = plugin_harness(ctdb_plugin, "ctdb", config=dirs.config)
    h.runner.respond(["tdbtool"], stdout="tdbtool: old version\n")
    h.runner.respond(["tdbdump"], returncode=1)
    monkeypatch.setattr(shutil, "which", lambda p: f"/usr/bin/{p}")
    (dirs.persistent / "p.tdb.0").write_text("")
    status, out = h.output("init")
    assert status == 1 and "p.tdb.0 is corrupted! CTDB will not start." in out
    assert "does not offer the 'check' subcommand" in out
    assert h.runner.commands("tdbdump") == [("tdbdump", str(dirs.persistent / "p.tdb.0"))]


def test_no_checker_warns_and_checks_nothing(plugin_harness, dirs, monkeypatch, caplog) -> None:
    h = plugin_harness(ctdb_plugin, "ctdb", config=dirs.config)
    monkeypatch.setattr(shutil, "which", lambda p: None)
    (dirs.persistent / "p.tdb.0").write_text("garbage")
    caplog.set_level("WARNING", logger="ctdb.plugins")
    assert h.output("init") == (0, "")
    assert "Cannot check databases" in caplog.text and "apt-get install tdb-tools" in caplog.text
    assert h.runner.calls == []


def test_checks_have_4_17s_timeout(plugin_harness, dirs) -> None:
    seen = []

    class Runner:
        def run(self, argv, *, timeout=None, input=None):
            from ctdbcore.plugins.service import Completed

            seen.append((tuple(argv), timeout))
            return Completed(tuple(argv), 0, "check Database integrity is OK")

    (dirs.persistent / "p.tdb.0").write_text("")
    h = plugin_harness(ctdb_plugin, "ctdb", config=dirs.config, runner=Runner())
    assert h.output("init") == (0, "")
    assert (("tdbtool", str(dirs.persistent / "p.tdb.0"), "check"), 10.0) in seen


def test_startup_attaches_ctdb_tdb_and_ignores_a_failure(plugin_harness, dirs, caplog) -> None:
    h = plugin_harness(ctdb_plugin, "ctdb", config=dirs.config)
    assert h.output("startup") == (0, "")
    assert h.runner.calls == [(sys.executable, "-m", "ctdbcore.tools.ctdb", "attach", "ctdb.tdb", "persistent")]
    h.runner.respond([sys.executable], returncode=1, stderr="Failed to connect to CTDB daemon\n")
    caplog.set_level("WARNING", logger="ctdb.plugins")
    assert h.output("startup") == (0, "")
    assert "Failed to connect" in caplog.text
