"""The context object every event hook may ask for (``ctx``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ctdbcore.plugins.service import CommandRunner, SubprocessRunner


def _no_report(plugin: str, reason: str) -> None:
    raise RuntimeError("report_failure() is only available inside ctdbd")


@attrs.frozen
class EventContext:
    """What an event plugin knows about the node and the event being run.

    :ivar pnn: the physical node number of this node.
    :ivar event: the event name, e.g. ``"monitor"`` or ``"takeip"``.
    :ivar config: the node's whole configuration (``ctdbcore.config.Config``): nodes,
        public addresses, tunables. A plugin's own settings are in :attr:`settings`.
    :ivar logger: a logger; during a run it is a child logger named after the plugin
        (``ctdb.plugins.<name>``).
    :ivar rundir: the node's run directory (``/run/ctdb``, or ``$CTDB_BASE/run`` with
        ``CTDB_TEST_MODE``).
    :ivar script_vardir: where plugins keep state, 4.17's ``$CTDB_SCRIPT_VARDIR``
        (``<var dir>/scripts``, or that environment variable); :attr:`state_dir` is below it.
    :ivar plugin: the plugin being called (None outside a plugin's call).
    :ivar settings: that plugin's typed settings, an instance of its ``CTDB_SETTINGS``
        class filled from the configuration files (None if it declares none).
    :ivar runner: runs commands (:class:`ctdbcore.plugins.service.CommandRunner`);
        tests put a recording runner here.
    :ivar test_mode: ``CTDB_TEST_MODE`` is set: several nodes share one machine (and
        often one network namespace), so public addresses are bookkeeping only, as in
        4.17; a plugin must not add or remove addresses, send ARPs or kill connections.
    """

    pnn: int
    event: str
    config: Any = None
    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger("ctdb.plugins"))
    rundir: Path = attrs.field(default=Path("/run/ctdb"), converter=Path)
    script_vardir: Path = attrs.field(default=Path("/var/lib/ctdb/scripts"), converter=Path)
    test_mode: bool = False
    plugin: str | None = None
    settings: Any = None
    runner: CommandRunner = attrs.field(factory=SubprocessRunner)
    #: plugin name -> settings instance; :meth:`for_plugin` picks one
    all_settings: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    #: called with (plugin, reason) by :meth:`report_failure`; set by ctdbd
    reporter: Callable[[str, str], None] = attrs.field(default=_no_report, repr=False)

    @property
    def state_dir(self) -> Path:
        """The plugin's own state directory, ``<script_vardir>/<plugin>`` (4.17:
        ``$CTDB_SCRIPT_VARDIR/<name>``): failure counters, caches. Created on use."""
        path = self.script_vardir / (self.plugin or "_")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def for_plugin(self, name: str) -> EventContext:
        """Return a copy for plugin ``name``: its logger, its settings."""
        return attrs.evolve(self, logger=self.logger.getChild(name), plugin=name,
                            settings=self.all_settings.get(name))

    def for_event(self, event: str) -> EventContext:
        """Return a copy for another event."""
        return attrs.evolve(self, event=event)

    def report_failure(self, reason: str) -> None:
        """Tell ctdbd at once that this plugin's service has failed.

        The node goes UNHEALTHY with ``reason`` (shown by ``ctdb event status`` and
        ``ctdb status --json``) and its public addresses move, without waiting for
        the next monitor event; the next successful monitor event clears it. Safe to
        call from any thread and from a ``ctdb_watch`` coroutine.
        """
        if self.plugin is None:
            raise RuntimeError("report_failure() needs a plugin context (ctx.for_plugin)")
        self.reporter(self.plugin, reason)
