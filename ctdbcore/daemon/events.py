"""Runs plugin events for the daemon and turns monitor results into node health.

The plugin host does the isolation (timeouts, exceptions, threads); this module
decides when events run and which plugins are enabled for each run, keeps `ctdb event
status` data in the run directory, applies 4.17's health rules to the node flags, and
runs the plugins' ``ctdb_watch`` watchers, whose reports make the node UNHEALTHY at once.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from ctdbcore.plugins.context import EventContext
from ctdbcore.plugins.enablement import EnableState, Enablement, decide
from ctdbcore.plugins.health import HealthChange, MonitorHealth
from ctdbcore.plugins.runner import STATUS_TIMEDOUT, EventRun, ScriptResult, run_event
from ctdbcore.plugins.status import EventStatusStore
from ctdbcore.protocol.constants import INACTIVE, NodeFlags, RecMode, Runstate

NOTICE = 25
# 4.17: timeouts of these events are logged and treated as success.
TIMEOUT_IS_SUCCESS = {"startrecovery", "recovered", "takeip", "releaseip"}
# 4.17 event_allowed_during_recovery
ALLOWED_DURING_RECOVERY = {"init", "setup", "startrecovery", "shutdown", "releaseip", "ipreallocated"}
WATCH_HOOK = "ctdb_watch"


class EventHost:
    def __init__(self, pm, *, tunables, run_dir: str, pnn: int, config, logger: logging.Logger,
                 events_dir: str | None = None, script_vardir: str | None = None,
                 configured: Mapping[str, tuple[bool, str]] | None = None, test_mode: bool = False) -> None:
        """
        :param events_dir: ``$CTDB_BASE/events/legacy`` (the enable state files);
            None = every plugin enabled (tests of the host alone).
        :param configured: plugin name -> (enabled, where) from the configuration files.
        :param test_mode: ``CTDB_TEST_MODE``: public addresses are bookkeeping only.
        """
        self.pm = pm
        self.tunables = tunables
        self.log = logger
        settings = {name: s.values for name, s in (getattr(config, "plugin_settings", None) or {}).items()}
        self.ctx = EventContext(pnn=pnn, event="init", config=config, logger=logger.getChild("plugins"),
                                rundir=run_dir, script_vardir=script_vardir or run_dir, all_settings=settings,
                                reporter=self.report_failure, test_mode=test_mode)
        self.store = EventStatusStore.in_rundir(run_dir)
        self.health = MonitorHealth(
            monitor_timeout_count=max(1, int(tunables.get("MonitorTimeoutCount"))),
            monitor_interval=max(1, int(tunables.get("MonitorInterval"))),
        )
        self.state = EnableState(events_dir) if events_dir is not None else None
        self.configured = dict(configured or {})
        self._lock = anyio.Lock()  # 4.17's eventd runs one event at a time per component
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._loop_thread: int | None = None
        self._on_change: Callable[[HealthChange], None] | None = None
        self._watching: dict[str, anyio.CancelScope] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._stopping = False

    # ------------------------------------------------------------ enablement
    def plugins(self) -> dict[str, Any]:
        """The loaded event plugins by name."""
        return {name: plugin for name, plugin in self.pm.list_name_plugin() if plugin is not None}

    def enablements(self) -> dict[str, Enablement]:
        if self.state is None:
            return {}
        return decide(self.plugins(), self.state.read_all(), self.configured)

    def disabled(self) -> set[str]:
        return {name for name, e in self.enablements().items() if not e.enabled}

    # ------------------------------------------------------------ event runs
    async def run_full(self, event: str, **args) -> EventRun:
        if event == "shutdown":
            # The shutdown event stops the services on purpose: that is no failure.
            self._stopping = True
            for scope in self._watching.values():
                scope.cancel()
        async with self._lock:
            disabled = await anyio.to_thread.run_sync(self.disabled)
            run = await run_event(
                self.pm, event, timeout=float(self.tunables.get("EventScriptTimeout")), ctx=self.ctx, args=args,
                disabled=disabled,
            )
        await self._record(run)
        return run

    async def _record(self, run: EventRun) -> None:
        try:
            await anyio.to_thread.run_sync(self.store.record, run)
        except OSError as e:
            self.log.warning("Could not save event status: %s", e)

    async def run(self, event: str, **args) -> bool:
        run = await self.run_full(event, **args)
        if run.status == 0:
            return True
        if run.status == STATUS_TIMEDOUT and event in TIMEOUT_IS_SUCCESS:
            self.log.warning("Ignoring hung script for %s event", event)
            return True
        failed = run.failed_result
        self.log.error("%s event failed: %s", event, f"{failed.name}: {failed.output}" if failed else run.status)
        return False

    # ------------------------------------------------------------ immediate failure reports
    def report_failure(self, plugin: str, reason: str) -> None:
        """``ctx.report_failure``: from the event loop or from any thread."""
        if self._token is None:
            self.log.warning("plugin %s reported a failure before monitoring started: %s", plugin, reason)
            return
        if threading.get_ident() == self._loop_thread:
            self._apply_report(plugin, reason)
        else:
            anyio.from_thread.run_sync(self._apply_report, plugin, reason, token=self._token)

    def _apply_report(self, plugin: str, reason: str) -> None:
        if self._stopping or plugin in self.disabled():
            return
        self.log.error("plugin %s reports its service failed: %s", plugin, reason)
        now = time.time()
        last = self.store.get("monitor")
        before = tuple(r for r in (last.results if last else ()) if r.name < plugin and r.status == 0)
        failed = ScriptResult(name=plugin, status=1, state="ERROR", start=now, end=now, output=reason)
        run = EventRun(event="monitor", results=(*before, failed), status=1, start=now, end=now)
        try:
            self.store.record(run)
        except OSError as e:
            self.log.warning("Could not save event status: %s", e)
        change = self.health.reported(plugin, reason)
        if change is not None and self._on_change is not None:
            self._on_change(change)

    # ------------------------------------------------------------ watchers
    def _ensure_watchers(self) -> None:
        if self._tg is None or self._stopping:
            return
        disabled = self.disabled()
        for name, scope in list(self._watching.items()):
            if name in disabled:
                scope.cancel()
                del self._watching[name]
        caller = getattr(self.pm.hook, WATCH_HOOK, None)
        if caller is None:
            return
        for impl in caller.get_hookimpls():
            name = impl.plugin_name
            if name in disabled or name in self._watching:
                continue
            if not inspect.iscoroutinefunction(impl.function):
                self.log.error("plugin %s: ctdb_watch must be 'async def'; not watching", name)
                continue
            scope = anyio.CancelScope()
            self._watching[name] = scope
            self._tg.start_soon(self._watch_one, name, impl.plugin, scope)

    async def _watch_one(self, name: str, plugin: object, scope: anyio.CancelScope) -> None:
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        caller = self.pm.subset_hook_caller(WATCH_HOOK, remove_plugins=others)
        ctx = self.ctx.for_event("watch").for_plugin(name)
        try:
            with scope:
                for coro in caller(ctx=ctx):
                    await coro
        except Exception as exc:  # noqa: BLE001 - a broken watcher must not harm ctdbd
            self.log.error("plugin %s: ctdb_watch raised", name, exc_info=exc)
        finally:
            if self._watching.get(name) is scope:
                del self._watching[name]

    # ------------------------------------------------------------ monitoring
    async def monitor_loop(self, daemon) -> None:
        """4.17's monitor schedule, except that the first run is right after startup
        (4.17 waits 2 s): a node's health is known as soon as it is up."""
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = threading.get_ident()

        def on_change(change: HealthChange) -> None:
            flags = daemon.own_flags
            flags = flags | NodeFlags.UNHEALTHY if change.unhealthy else flags & ~NodeFlags.UNHEALTHY
            daemon.set_own_flags(flags, f"monitor: {change.notification}"
                                 + (f" ({change.reason})" if change.reason else ""))

        self._on_change = on_change
        now = time.monotonic()
        self.health.started(now)
        self.health.next_due = now
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self._ensure_watchers()
            while daemon.runstate == Runstate.RUNNING:
                delay = max(0.0, (self.health.next_due or now) - time.monotonic())
                await anyio.sleep(delay)
                self.health.monitor_interval = max(1, int(self.tunables.get("MonitorInterval")))
                self.health.monitor_timeout_count = max(1, int(self.tunables.get("MonitorTimeoutCount")))
                if daemon.recmode != RecMode.NORMAL or daemon.own_flags & INACTIVE:
                    self.health.skipped(time.monotonic())
                    # Come back soon: the end of a recovery should not wait a whole interval.
                    self.health.next_due = time.monotonic() + 0.2
                    continue
                run = await self.run_full("monitor")
                change = self.health.on_result(run, now=time.monotonic())
                if change is not None:
                    on_change(change)
                if run.ok:
                    self._ensure_watchers()
            tg.cancel_scope.cancel()
