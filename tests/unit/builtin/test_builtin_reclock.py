"""01.reclock as a plugin: the cluster lock's directory is made at init."""

from __future__ import annotations

import types

import pytest

from ctdbcore.builtin import reclock
from ctdbcore.config.ctdbconf import parse_ctdb_conf_text


def config(text: str):
    return types.SimpleNamespace(ctdb_conf=parse_ctdb_conf_text(text))


@pytest.mark.parametrize("key", ["cluster lock", "recovery lock"])
def test_init_makes_the_lock_directory(plugin_harness, tmp_path, key) -> None:
    lock = tmp_path / "shared" / ".ctdb" / "reclock"
    h = plugin_harness(reclock, "reclock", config=config(f"[cluster]\n{key} = {lock}\n"))
    assert h.output("init") == (0, "")
    assert lock.parent.is_dir() and not lock.exists()
    assert h.output("init") == (0, "")  # mkdir -p: again is fine


def test_helper_lock_and_no_lock_do_nothing(plugin_harness, tmp_path) -> None:
    target = tmp_path / "x" / "y"
    h = plugin_harness(reclock, "reclock", config=config(f"[cluster]\ncluster lock = !/bin/true {target}\n"))
    assert h.output("init") == (0, "")
    assert not (tmp_path / "x").exists()
    h = plugin_harness(reclock, "reclock", config=config(""))
    assert h.output("init") == (0, "")


def test_a_directory_that_cannot_be_made_fails_init(plugin_harness, tmp_path) -> None:
    (tmp_path / "file").write_text("")
    h = plugin_harness(reclock, "reclock", config=config(f"[cluster]\ncluster lock = {tmp_path}/file/sub/lock\n"))
    status, out = h.output("init")
    assert status == 1
    assert out.startswith(f"mkdir: cannot create directory '{tmp_path}/file/sub'")


def test_enabled_by_default_as_01_reclock() -> None:
    from ctdbcore.plugins.enablement import default_enabled, script_name

    assert script_name("reclock", reclock) == "01.reclock" and default_enabled(reclock)
