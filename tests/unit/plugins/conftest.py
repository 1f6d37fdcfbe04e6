"""Fixtures for plugin-host tests: a real plugin manager and a hook-call recorder."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from ctdbcore.plugins import CtdbPluginManager, EventContext, make_plugin_manager
from ctdbcore.testing import HookCall, HookRecorder  # noqa: F401 - the kit's recorder


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pm(monkeypatch: pytest.MonkeyPatch) -> CtdbPluginManager:
    """A real manager without entry points (throwaway plugins only)."""
    monkeypatch.delenv("CTDB_TRACE_PLUGINS", raising=False)
    return make_plugin_manager(load_entrypoints=False)


@pytest.fixture
def recorder(pm: CtdbPluginManager) -> Iterator[HookRecorder]:
    rec = HookRecorder()
    undo = pm.add_hookcall_monitoring(rec.before, rec.after)
    yield rec
    undo()


@pytest.fixture
def register(pm: CtdbPluginManager):
    """``register(plugin, name)``; unregisters everything at teardown."""
    added: list[object] = []

    def _register(plugin: object, name: str) -> object:
        pm.register_checked(plugin, name)
        added.append(plugin)
        return plugin

    yield _register
    for plugin in added:
        if pm.is_registered(plugin):
            pm.unregister(plugin)


@pytest.fixture
def ctx(tmp_path) -> EventContext:
    return EventContext(pnn=0, event="monitor", config={"test": True},
                        logger=logging.getLogger("ctdb.test"), rundir=tmp_path / "run")
