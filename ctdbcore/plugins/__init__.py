"""Plugin host of ctdbd, and the one public module plugin authors import.

Quickstart: write an event plugin
=================================

An event plugin is what an event script (``/etc/ctdb/events/legacy/NN.name.script``)
is to CTDB 4.17: a module whose hooks ctdbd calls for each event. Write a module::

    # ctdb_myservice/__init__.py
    from ctdbcore.plugins import hookimpl

    CTDB_ORDER = 60          # like the "60." prefix of 60.myservice.script

    @hookimpl
    def ctdb_startup(ctx):
        ctx.logger.info("starting myservice on node %d", ctx.pnn)

    @hookimpl
    def ctdb_monitor(ctx):
        if not (ctx.rundir / "myservice.ok").exists():
            return "ERROR: myservice is not running"    # → node UNHEALTHY

    @hookimpl
    def ctdb_takeip(ctx, iface, ip, maskbits):
        ctx.logger.info("now serving %s/%d on %s", ip, maskbits, iface)

declare it in its ``pyproject.toml``::

    [project.entry-points."ctdb.services"]
    myservice = "ctdb_myservice"

``pip install`` it on every node and check ``ctdbd --plugins`` lists it. The hooks,
their arguments and the return contract are documented in :mod:`ctdbcore.hookspecs`
and in ``docs/plugins.md``.

Host API (for ctdbd itself)
===========================

* :func:`make_plugin_manager` builds a manager and loads plugins from entry points;
  :func:`list_plugins` describes them; :func:`load_named` loads the one
  implementation of a single-implementation group (transport, cluster mutex, ipalloc).
* :func:`run_event` runs one event over all event plugins with 4.17 semantics and
  returns an :class:`EventRun`.
* :class:`EventStatusStore` / :func:`format_event_status` keep and print the last run
  per event (``ctdb event status``); :class:`MonitorHealth` turns monitor runs into
  UNHEALTHY flag changes.
"""

from __future__ import annotations

import pluggy

from ctdbcore.hookspecs import PROJECT_NAME

#: Marker for hook implementations: decorate ``ctdb_<event>`` functions with it.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

from ctdbcore.config.plugin_settings import setting  # noqa: E402
from ctdbcore.plugins import service  # noqa: E402
from ctdbcore.plugins.context import EventContext  # noqa: E402
from ctdbcore.plugins.health import HealthChange, MonitorHealth  # noqa: E402
from ctdbcore.plugins.manager import (  # noqa: E402
    DEFAULT_ORDER,
    GROUPS,
    CtdbPluginManager,
    PluginInfo,
    PluginLoadError,
    list_plugins,
    load_named,
    make_plugin_manager,
    plugin_order,
)
from ctdbcore.plugins.runner import EventRun, ScriptResult, run_event  # noqa: E402
from ctdbcore.plugins.status import (  # noqa: E402
    EventStatusStore,
    event_status_command,
    format_event_status,
)

__all__ = [
    "DEFAULT_ORDER",
    "GROUPS",
    "CtdbPluginManager",
    "EventContext",
    "EventRun",
    "EventStatusStore",
    "HealthChange",
    "MonitorHealth",
    "PluginInfo",
    "PluginLoadError",
    "ScriptResult",
    "event_status_command",
    "format_event_status",
    "hookimpl",
    "list_plugins",
    "load_named",
    "make_plugin_manager",
    "plugin_order",
    "run_event",
    "service",
    "setting",
]
