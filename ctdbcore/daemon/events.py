"""Runs plugin events for the daemon and turns monitor results into node health.

The plugin host does the isolation (timeouts, exceptions, threads); this module
decides when events run, keeps `ctdb event status` data in the run directory and
applies 4.17's health rules to the node flags.
"""

from __future__ import annotations

import logging
import time

import anyio

from ctdbcore.plugins.context import EventContext
from ctdbcore.plugins.health import MonitorHealth
from ctdbcore.plugins.runner import STATUS_TIMEDOUT, EventRun, run_event
from ctdbcore.plugins.status import EventStatusStore
from ctdbcore.protocol.constants import INACTIVE, NodeFlags, RecMode, Runstate

NOTICE = 25
# 4.17: timeouts of these events are logged and treated as success.
TIMEOUT_IS_SUCCESS = {"startrecovery", "recovered", "takeip", "releaseip"}
# 4.17 event_allowed_during_recovery
ALLOWED_DURING_RECOVERY = {"init", "setup", "startrecovery", "shutdown", "releaseip", "ipreallocated"}


class EventHost:
    def __init__(self, pm, *, tunables, run_dir: str, pnn: int, config, logger: logging.Logger,
                 test_mode: bool = False) -> None:
        self.pm = pm
        self.tunables = tunables
        self.log = logger
        self.ctx = EventContext(pnn=pnn, event="init", config=config, logger=logger.getChild("plugins"), rundir=run_dir,
                                test_mode=test_mode)
        self.store = EventStatusStore.in_rundir(run_dir)
        self.health = MonitorHealth(
            monitor_timeout_count=max(1, int(tunables.get("MonitorTimeoutCount"))),
            monitor_interval=max(1, int(tunables.get("MonitorInterval"))),
        )
        self._lock = anyio.Lock()  # 4.17's eventd runs one event at a time per component

    async def run_full(self, event: str, **args) -> EventRun:
        async with self._lock:
            run = await run_event(
                self.pm, event, timeout=float(self.tunables.get("EventScriptTimeout")), ctx=self.ctx, args=args
            )
        try:
            await anyio.to_thread.run_sync(self.store.record, run)
        except OSError as e:
            self.log.warning("Could not save event status: %s", e)
        return run

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

    async def monitor_loop(self, daemon) -> None:
        """4.17's monitor schedule, except that the first run is right after startup
        (4.17 waits 2 s): a node's health is known as soon as it is up."""
        now = time.monotonic()
        self.health.started(now)
        self.health.next_due = now
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
                flags = daemon.own_flags
                flags = flags | NodeFlags.UNHEALTHY if change.unhealthy else flags & ~NodeFlags.UNHEALTHY
                daemon.set_own_flags(flags, f"monitor: {change.notification}"
                                     + (f" ({change.reason})" if change.reason else ""))
