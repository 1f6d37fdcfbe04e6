"""Fixtures for plugin-host tests: a real plugin manager and a hook-call recorder."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import attrs
import pytest

from ctdbcore.plugins import CtdbPluginManager, EventContext, make_plugin_manager


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@attrs.define
class HookCall:
    name: str
    plugins: list[str]
    kwargs: dict
    outcome: object = None
    exception: BaseException | None = None


@attrs.define
class HookRecorder:
    """Records hook calls through ``add_hookcall_monitoring`` (like pytester's)."""

    calls: list[HookCall] = attrs.Factory(list)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def before(self, hook_name, impls, kwargs) -> None:
        with self._lock:
            self.calls.append(HookCall(hook_name, [i.plugin_name for i in impls], dict(kwargs)))

    def after(self, outcome, hook_name, impls, kwargs) -> None:
        with self._lock:
            for call in reversed(self.calls):
                if call.name == hook_name and call.plugins == [i.plugin_name for i in impls]:
                    call.exception = outcome.exception
                    call.outcome = None if outcome.exception else outcome.get_result()
                    break

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def plugins_called(self, hook_name: str) -> list[str]:
        return [p for c in self.calls if c.name == hook_name for p in c.plugins]


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
