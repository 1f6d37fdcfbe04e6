"""Enabled per node: state files, configuration, defaults, and 4.17's commands."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import types

import pytest

from ctdbcore.plugins.enablement import (
    EnableState,
    decide,
    find_plugin,
    format_script_list,
    read_configured,
    script_command,
    script_name,
    write_configured,
)


def plugin(order=50, default=None, script=None):
    mod = types.SimpleNamespace(CTDB_ORDER=order)
    if default is not None:
        mod.CTDB_ENABLED_BY_DEFAULT = default
    if script is not None:
        mod.CTDB_SCRIPT = script
    return mod


PLUGINS = {"samba": plugin(50), "interface": plugin(10, default=True), "nfs_pre": plugin(6, script="06.nfs")}


def test_script_names():
    assert script_name("samba", PLUGINS["samba"]) == "50.samba"
    assert script_name("nfs_pre", PLUGINS["nfs_pre"]) == "06.nfs"
    with pytest.raises(ValueError, match="NN = CTDB_ORDER"):
        script_name("x", plugin(6, script="60.nfs"))
    assert find_plugin(PLUGINS, "06.nfs") == "nfs_pre" and find_plugin(PLUGINS, "samba") == "samba"
    assert find_plugin(PLUGINS, "50.nosuch") is None


def test_installed_plugins_are_disabled_until_enabled_and_builtins_enabled(tmp_path):
    decided = decide(PLUGINS, EnableState(tmp_path).read_all(), {})
    assert {n: e.enabled for n, e in decided.items()} == {"samba": False, "interface": True, "nfs_pre": False}
    assert format_script_list(decided.values()) == "  06.nfs\n* 10.interface\n  50.samba\n"


def test_commands_beat_configuration_beats_default(tmp_path):
    state = EnableState(tmp_path / "events" / "legacy")
    configured = {"samba": (True, "/etc/sysconfig/ctdb:3 (CTDB_MANAGES_SAMBA)"), "interface": (False, "ctdb.conf:2")}
    decided = decide(PLUGINS, state.read_all(), configured)
    assert decided["samba"].enabled and decided["samba"].source.endswith("(CTDB_MANAGES_SAMBA)")
    assert not decided["interface"].enabled
    assert script_command(PLUGINS, state, "legacy", "50.samba", False) == ("", 0)
    assert script_command(PLUGINS, state, "legacy", "interface", True) == ("", 0)
    assert (tmp_path / "events" / "legacy" / "50.samba.plugin").read_text() == "disabled\n"
    decided = decide(PLUGINS, state.read_all(), configured)
    assert not decided["samba"].enabled and decided["interface"].enabled
    assert decided["samba"].source == "ctdb event script disable"


def test_unknown_script_and_component_are_4_17_errors(tmp_path):
    state = EnableState(tmp_path)
    assert script_command(PLUGINS, state, "legacy", "51.nosuch", True) == (
        "Script 51.nosuch does not exist in legacy\n", errno.ENOENT)
    assert script_command(PLUGINS, state, "service", "50.samba", True) == (
        "Script 50.samba does not exist in service\n", errno.ENOENT)
    assert not list(tmp_path.iterdir())


def test_a_hand_made_state_file_counts_as_enabled(tmp_path):
    (tmp_path / "50.samba.plugin").write_text("")
    (tmp_path / "50.samba.script").write_text("not ours")
    assert EnableState(tmp_path).read_all() == {"50.samba": True}


def test_configured_file_round_trip_and_garbage(tmp_path):
    write_configured(str(tmp_path), {"samba": (True, "x:1")})
    assert read_configured(str(tmp_path)) == {"samba": (True, "x:1")}
    (tmp_path / "plugins-configured.json").write_text("{not json")
    assert read_configured(str(tmp_path)) == {}
    assert read_configured(str(tmp_path / "missing")) == {}


def _ctdb(args, base, **env):
    tool = os.path.join(os.path.dirname(sys.executable), "ctdb")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CTDB_BASE": str(base), "CTDB_TEST_MODE": "yes",
                               "CTDB_SOCKET": str(base / "run" / "ctdbd.socket"), **env})


def test_ctdb_event_script_commands_with_the_example_plugin(tmp_path):
    r = _ctdb(["event", "script", "list", "legacy"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "* 10.interface\n" in r.stdout and "  90.example\n" in r.stdout
    assert _ctdb(["event", "script", "enable", "legacy", "90.example"], tmp_path).returncode == 0
    assert "* 90.example\n" in _ctdb(["event", "script", "list", "legacy"], tmp_path).stdout
    assert _ctdb(["event", "script", "disable", "legacy", "example"], tmp_path).returncode == 0
    assert "  90.example\n" in _ctdb(["event", "script", "list", "legacy"], tmp_path).stdout
    r = _ctdb(["event", "script", "enable", "legacy", "99.nosuch"], tmp_path)
    assert (r.returncode, r.stdout) == (errno.ENOENT, "Script 99.nosuch does not exist in legacy\n")
