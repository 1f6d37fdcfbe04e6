"""pytest plugin shipped with ctdbcore (entry point ``pytest11``): the test kit.

Fixtures:

* ``election_sim`` -- a factory for :class:`ElectionSim`, N leader-election state
  machines on a fake network with a fake clock and a fake cluster lock.
* ``hook_recorder`` -- a :class:`HookRecorder` factory: ``hook_recorder(pm)`` records
  every hook call of a plugin manager.
* ``plugin_harness`` -- a :class:`PluginHarness` factory for plugin authors:
  ``plugin_harness(module, "name", settings={...})`` registers the plugin in a real
  plugin manager, fills its settings as ctdbd would, and runs events with 4.17's
  semantics, every command going to a :class:`RecordingRunner`.
* ``namespace_services`` (in ``ctdb_localcluster.services``, when installed) starts a
  real service in each node of a namespace cluster.
"""

from __future__ import annotations

import pytest

from ctdbcore.testing.election import ElectionSim
from ctdbcore.testing.plugins import HookCall, HookRecorder, PluginHarness, RecordingRunner

__all__ = ["ElectionSim", "HookCall", "HookRecorder", "PluginHarness", "RecordingRunner"]


@pytest.fixture
def election_sim():
    """Factory: ``election_sim(n, lock=True, leader_timeout=2.0, seed=0)``."""
    return ElectionSim


@pytest.fixture
def hook_recorder():
    """Factory: ``hook_recorder(pm)`` → a :class:`HookRecorder`, removed at teardown."""
    undo = []

    def make(pm) -> HookRecorder:
        rec = HookRecorder()
        undo.append(pm.add_hookcall_monitoring(rec.before, rec.after))
        return rec

    yield make
    for u in undo:
        u()


@pytest.fixture
def plugin_harness(tmp_path):
    """Factory: ``plugin_harness(plugin, name, settings=None, files=None, pnn=0)``."""

    def make(plugin: object, name: str, **kwargs) -> PluginHarness:
        return PluginHarness(plugin, name, tmp_path / f"harness-{name}", **kwargs)

    return make
