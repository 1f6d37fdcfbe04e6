"""Loading from entry points (fake *.dist-info on sys.path), allow-list, listing."""

from __future__ import annotations

import importlib.metadata
import logging
import textwrap
from pathlib import Path

import pytest

from ctdbcore.plugins import (
    PluginLoadError,
    list_plugins,
    load_named,
    make_plugin_manager,
    plugin_order,
)


def make_dist(root: Path, name: str, entry_points: str, modules: dict[str, str] | None = None) -> None:
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for mod, src in (modules or {}).items():
        (root / f"{mod}.py").write_text(textwrap.dedent(src))


GOOD = """
    from ctdbcore.plugins import hookimpl
    CTDB_ORDER = 15

    @hookimpl
    def ctdb_monitor(ctx):
        return None
"""


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    monkeypatch.delenv("CTDB_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    site = tmp_path / "site"
    make_dist(site, "ctdb-broken", """
        [ctdb.services]
        broken = ctdb_broken_no_such_module
    """)
    make_dist(site, "ctdb-good", """
        [ctdb.services]
        good = ctdb_fake_good
    """, {"ctdb_fake_good": GOOD})
    make_dist(site, "ctdb-badhook", """
        [ctdb.services]
        badhook = ctdb_fake_badhook
    """, {"ctdb_fake_badhook": """
        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_no_such_event(ctx):
            pass
    """})
    make_dist(site, "ctdb-fakemutex", """
        [ctdb.cluster_mutex]
        fake = ctdb_fake_mutex_missing:plugin
    """)
    monkeypatch.syspath_prepend(str(site))
    return site


def infos_by_name(pm):
    return {i.name: i for i in list_plugins(pm)}


def test_broken_auto_discovered_plugin_is_skipped_and_recorded(fake_site, caplog):
    with caplog.at_level(logging.WARNING, logger="ctdb.plugins"):
        pm = make_plugin_manager()
    assert pm.has_plugin("good")
    assert not pm.has_plugin("broken") and not pm.has_plugin("badhook")
    infos = infos_by_name(pm)
    assert infos["good"].enabled and infos["good"].hooks == ("ctdb_monitor",)
    assert infos["good"].distribution == "ctdb-good" and infos["good"].order == 15
    assert not infos["broken"].enabled
    assert "ModuleNotFoundError" in infos["broken"].error
    assert infos["broken"].distribution == "ctdb-broken" and infos["broken"].version == "1.0"
    assert "unknown hook 'ctdb_no_such_event'" in infos["badhook"].error
    assert "skipping plugin 'broken'" in caplog.text


def test_named_broken_plugin_fails_loudly(fake_site):
    with pytest.raises(PluginLoadError) as err:
        make_plugin_manager(only=["good", "broken"])
    msg = str(err.value)
    assert "'broken'" in msg and "ctdb.services" in msg and "ModuleNotFoundError" in msg
    assert err.value.name == "broken" and err.value.group == "ctdb.services"
    assert isinstance(err.value.cause, ModuleNotFoundError)


def test_named_missing_plugin_fails_loudly(fake_site):
    with pytest.raises(PluginLoadError, match="can't be found, is the plugin installed"):
        make_plugin_manager(only=["nosuchplugin"])


def test_allow_list_by_entry_point_or_distribution_name(fake_site):
    pm = make_plugin_manager(only=["ctdb_good"])  # distribution name, any spelling
    assert pm.has_plugin("good") and not pm.has_plugin("example")
    infos = infos_by_name(pm)
    assert infos["broken"].enabled is False and infos["broken"].error is None
    # a name that exists in another ctdb group (the mutex) is not "missing"
    pm = make_plugin_manager(only=["good", "fake"])
    assert pm.has_plugin("good")


def test_disable_autoload(fake_site, monkeypatch):
    monkeypatch.setenv("CTDB_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = make_plugin_manager()
    assert not pm.has_plugin("good")
    assert infos_by_name(pm)["good"].enabled is False
    pm = make_plugin_manager(only=["good"])  # named plugins still load
    assert pm.has_plugin("good")


def test_no_entrypoints(fake_site):
    pm = make_plugin_manager(load_entrypoints=False)
    assert pm.get_plugins() == set()


def test_listing_tolerates_missing_modules_in_other_groups(fake_site):
    infos = infos_by_name(make_plugin_manager(load_entrypoints=False))
    assert infos["fake"].kind == "ctdb.cluster_mutex"
    assert infos["fake"].enabled is False and "ModuleNotFoundError" in infos["fake"].error


def test_load_named(fake_site):
    with pytest.raises(PluginLoadError, match=r"The transport 'nope' can't be found, is the "
                                              r"plugin installed\? \(pip install ctdb-nope\)"):
        load_named("ctdb.transport", "nope")
    with pytest.raises(PluginLoadError, match="cluster mutex 'fake'.*could not be loaded"):
        load_named("ctdb.cluster_mutex", "fake")
    import ctdb_fake_good

    make_dist(fake_site / "more", "ctdb-lcp", """
        [ctdb.ipalloc]
        lcp2 = ctdb_fake_good
    """)
    import sys

    sys.path.insert(0, str(fake_site / "more"))
    try:
        assert load_named("ctdb.ipalloc", "lcp2") is ctdb_fake_good
    finally:
        sys.path.remove(str(fake_site / "more"))


def test_plugin_order_validation():
    class P:
        CTDB_ORDER = 7

    class Bad:
        CTDB_ORDER = "10"

    class TooBig:
        CTDB_ORDER = 100

    assert plugin_order(P) == 7 and plugin_order(object()) == 50
    for bad in (Bad, TooBig):
        with pytest.raises(ValueError):
            plugin_order(bad)


def test_bad_order_is_a_load_error(tmp_path, monkeypatch):
    make_dist(tmp_path, "ctdb-badorder", """
        [ctdb.services]
        badorder = ctdb_fake_badorder
    """, {"ctdb_fake_badorder": "CTDB_ORDER = 'late'\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "CTDB_ORDER" in infos_by_name(make_plugin_manager())["badorder"].error
    with pytest.raises(PluginLoadError, match="CTDB_ORDER"):
        make_plugin_manager(only=["badorder"])


def test_example_plugin_is_found_by_entry_point():
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="ctdb.services")}
    assert eps["example"].value == "ctdb_example"
    pm = make_plugin_manager(only=["example"])
    info = infos_by_name(pm)["example"]
    assert info.enabled and info.distribution == "ctdb-example-plugin" and info.order == 90
    assert info.hooks == ("ctdb_ipreallocated", "ctdb_monitor", "ctdb_releaseip", "ctdb_takeip")


def test_trace_env_logs_hook_calls(monkeypatch, caplog):
    monkeypatch.setenv("CTDB_TRACE_PLUGINS", "1")
    pm = make_plugin_manager(load_entrypoints=False)
    from ctdbcore.plugins import EventContext

    with caplog.at_level(logging.INFO, logger="ctdb.plugins.trace"):
        pm.hook.ctdb_monitor(ctx=EventContext(pnn=0, event="monitor"))
    assert "hook ctdb_monitor" in caplog.text
