"""Per-plugin settings: every source, its precedence, and errors at file:line."""

from __future__ import annotations

import attrs
import pytest

from ctdbcore.config.errors import ConfigErrors
from ctdbcore.config.model import load_config
from ctdbcore.config.paths import default_paths
from ctdbcore.config.plugin_settings import PluginDecl, setting, settings_class
from ctdbcore.plugins import service


@attrs.frozen
class SambaLike:
    skip_share_check: bool = setting(False, var="CTDB_SAMBA_SKIP_SHARE_CHECK")
    check_ports: tuple[int, ...] = setting((445, 139), var="CTDB_SAMBA_CHECK_PORTS", parse=service.parse_ports)
    service_name: str = setting("smbd", var="CTDB_SERVICE_SMB")
    start_command: str | None = setting(None)
    retries: int = setting(3)


DECL = PluginDecl(name="samba", script="50.samba", settings=SambaLike)


def base(tmp_path, conf: str = "", script_options: str | None = None, options: str | None = None):
    (tmp_path / "nodes").write_text("127.0.0.1\n")
    (tmp_path / "ctdb.conf").write_text(conf)
    if script_options is not None:
        (tmp_path / "script.options").write_text(script_options)
    if options is not None:
        (tmp_path / "events" / "legacy").mkdir(parents=True)
        (tmp_path / "events" / "legacy" / "50.samba.options").write_text(options)
    return default_paths({"CTDB_BASE": str(tmp_path), "CTDB_TEST_MODE": "yes"})


def test_defaults_when_no_file_sets_anything(tmp_path):
    cfg = load_config(base(tmp_path), plugins=[DECL])
    s = cfg.plugin_settings["samba"]
    assert s.values == SambaLike()
    assert set(s.sources.values()) == {"default"} and s.enabled is None


def test_every_source_in_order_of_precedence(tmp_path):
    paths = base(
        tmp_path,
        conf="[samba]\n\tretries = 7\n\tstart command = /bin/true --x\n",
        script_options='CTDB_SAMBA_CHECK_PORTS="445"\nCTDB_SERVICE_SMB=smb\nCTDB_OTHER_SCRIPT=1\n',
        options="CTDB_SERVICE_SMB=samba-ad-dc\n",
    )
    sysconfig = tmp_path / "sysconfig"
    sysconfig.write_text("CTDB_SAMBA_SKIP_SHARE_CHECK=yes\nCTDB_MANAGES_SAMBA=yes\n")
    cfg = load_config(paths, sysconfig_path=str(sysconfig), plugins=[DECL])
    s = cfg.plugin_settings["samba"]
    assert s.values == SambaLike(skip_share_check=True, check_ports=(445,), service_name="samba-ad-dc",
                                 start_command="/bin/true --x", retries=7)
    assert s.sources["check_ports"] == f"{tmp_path}/script.options:1"
    assert s.sources["service_name"] == f"{tmp_path}/events/legacy/50.samba.options:1"
    assert s.sources["retries"] == f"{tmp_path}/ctdb.conf:2"
    assert s.sources["skip_share_check"] == f"{sysconfig}:1"
    assert s.enabled is True and s.enabled_source == f"{sysconfig}:2 (CTDB_MANAGES_SAMBA)"
    # the sysconfig's plugin variables are not "unknown" any more
    assert not any("CTDB_SAMBA_SKIP_SHARE_CHECK" in w for w in cfg.warnings)


def test_ctdb_conf_section_overrides_options_files(tmp_path):
    paths = base(tmp_path, conf="[samba]\n  check ports = 4455\n", options="CTDB_SAMBA_CHECK_PORTS=1\n")
    assert load_config(paths, plugins=[DECL]).plugin_settings["samba"].values.check_ports == (4455,)


def test_enabled_key_in_section(tmp_path):
    cfg = load_config(base(tmp_path, conf="[samba]\nenabled = no\n"), plugins=[DECL])
    assert cfg.plugin_settings["samba"].enabled is False
    assert cfg.plugin_settings["samba"].enabled_source == f"{tmp_path}/ctdb.conf:2"


@pytest.mark.parametrize(("conf", "options", "expected"), [
    ("[samba]\nretries = many\n", None, "ctdb.conf:2: invalid value for [samba] retries = many"),
    ("[samba]\n\nnosuch = 1\n", None, "ctdb.conf:3: unknown key 'nosuch' in section [samba]"),
    ("[samba]\nenabled = perhaps\n", None, "ctdb.conf:2: invalid value for [samba] enabled = perhaps"),
    ("", "CTDB_SAMBA_CHECK_PORTS=abc\n", "50.samba.options:1: invalid value for CTDB_SAMBA_CHECK_PORTS = abc"),
    ("", "\nCTDB_NOT_OURS=1\n", "50.samba.options:2: unknown setting CTDB_NOT_OURS for plugin samba"),
    ("", "this is not shell\n", "50.samba.options:1: syntax error"),
    ("[nosuchplugin]\nx = 1\n", None, "ctdb.conf:1: unknown section [nosuchplugin]"),
])
def test_bad_input_is_reported_at_its_file_and_line(tmp_path, conf, options, expected):
    with pytest.raises(ConfigErrors) as exc:
        load_config(base(tmp_path, conf=conf, options=options), plugins=[DECL])
    assert expected in str(exc.value), str(exc.value)


def test_section_of_a_plugin_that_is_not_installed_is_a_warning(tmp_path):
    cfg = load_config(base(tmp_path, conf="[vsftpd]\nenabled = yes\n"), plugins=[DECL],
                      absent_plugins={"vsftpd": "ctdb-vsftpd"})
    assert any("[vsftpd] belongs to a plugin that is not installed (pip install ctdb-vsftpd)" in w
               for w in cfg.warnings), cfg.warnings


def test_reserved_and_malformed_settings_classes_are_refused():
    @attrs.frozen
    class Bad:
        enabled: bool = setting(True)

    class Plugin:
        CTDB_SETTINGS = Bad

    with pytest.raises(TypeError, match="reserved"):
        settings_class(Plugin)

    class NotAttrs:
        CTDB_SETTINGS = dict

    with pytest.raises(TypeError, match="attrs class"):
        settings_class(NotAttrs)


def test_check_config_shows_plugin_settings_and_their_sources(tmp_path):
    import json
    import os
    import subprocess
    import sys

    (tmp_path / "nodes").write_text("127.0.0.1\n")
    (tmp_path / "ctdb.conf").write_text("[interface]\n\tpartially online interfaces = yes\n")
    env = {**os.environ, "CTDB_BASE": str(tmp_path), "CTDB_TEST_MODE": "yes"}
    ctdbd = os.path.join(os.path.dirname(sys.executable), "ctdbd")
    r = subprocess.run([ctdbd, "--check-config"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "[interface]\t# 10.interface: enabled (default)" in r.stdout
    assert f"partially online interfaces = true\t# CTDB_PARTIALLY_ONLINE_INTERFACES, from {tmp_path}/ctdb.conf:2" in r.stdout
    r = subprocess.run([ctdbd, "--check-config", "--json"], env=env, capture_output=True, text=True, timeout=60)
    data = json.loads(r.stdout)["plugin_settings"]["interface"]
    assert data["enabled"] is True and data["settings"] == {"partially_online_interfaces": True}
    (tmp_path / "ctdb.conf").write_text("[interface]\n\tpartially online interfaces = sometimes\n")
    r = subprocess.run([ctdbd, "--check-config"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and f"{tmp_path}/ctdb.conf:2: invalid value for [interface] partially online" in r.stderr
