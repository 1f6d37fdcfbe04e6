"""Monitor results → node health, as 4.17 ``ctdb_health_callback`` (server/ctdb_monitor.c).

Sans-IO: feed it each monitor :class:`~ctdbcore.plugins.runner.EventRun` with the
current time; it returns a :class:`HealthChange` when the node's UNHEALTHY flag flips
and tells when the next monitor event is due. It never reads a clock or runs anything.

Rules (4.17):

* status 0 → healthy: clears UNHEALTHY ("healthy" notification).
* status != 0 and not a timeout → UNHEALTHY at once ("unhealthy" notification).
* timeout → ``timeouts += 1``; only at ``MonitorTimeoutCount`` (20) consecutive
  timeouts is the node made unhealthy, before that the run counts as nothing happened.
  Any other result resets the count.
* ECANCELED → no change.
* On a flag change ``next_interval = 5``. The next monitor runs ``next_interval`` s
  after the run completes, and ``next_interval`` then doubles, capped at
  ``MonitorInterval`` (15). After a successful ``startup`` event it is 2.
* The own node starts UNHEALTHY (4.17 ``ctdb_add_node``: "nodes start out disconnected
  and unhealthy") until the first good monitor run.

On a change the daemon sends ``CTDB_SRVID_PUSH_NODE_FLAGS`` to its recoverd, asks for a
takeover run (``CTDB_SRVID_TAKEOVER_RUN`` to all connected nodes) and runs the
notification script.
"""

from __future__ import annotations

import errno
from typing import Literal

import attrs

from ctdbcore.plugins.runner import STATUS_TIMEDOUT, EventRun

NODE_FLAGS_UNHEALTHY = 0x02
INITIAL_INTERVAL = 5
STARTUP_INTERVAL = 2


@attrs.frozen
class HealthChange:
    """The UNHEALTHY flag of this node changed.

    :ivar unhealthy: the new state of the flag.
    :ivar notification: the notification script argument, "healthy" or "unhealthy".
    :ivar reason: the failing plugin and its output (empty when healthy).
    """

    unhealthy: bool
    notification: Literal["healthy", "unhealthy"]
    reason: str = ""


@attrs.define
class MonitorHealth:
    """Health state driven by monitor runs.

    :ivar monitor_timeout_count: tunable ``MonitorTimeoutCount``.
    :ivar monitor_interval: tunable ``MonitorInterval`` (seconds).
    :ivar unhealthy: the own node's UNHEALTHY flag.
    :ivar timeouts: consecutive timed-out monitor runs.
    :ivar next_interval: seconds from the end of the next run to the one after it.
    :ivar next_due: when the next monitor event is due (None = not scheduled).
    """

    monitor_timeout_count: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    monitor_interval: float = attrs.field(default=15, validator=attrs.validators.gt(0))
    unhealthy: bool = True
    timeouts: int = 0
    next_interval: float = INITIAL_INTERVAL
    next_due: float | None = None

    @property
    def flags(self) -> int:
        return NODE_FLAGS_UNHEALTHY if self.unhealthy else 0

    def started(self, now: float) -> float:
        """The startup event succeeded: the first monitor is due 2 s later."""
        self.next_interval = STARTUP_INTERVAL
        self.next_due = now + self.next_interval
        return self.next_due

    def due(self, now: float) -> bool:
        return self.next_due is not None and now >= self.next_due

    def skipped(self, now: float) -> float:
        """Monitoring was skipped (recovery, INACTIVE, not RUNNING, frozen dbs)."""
        self.next_due = now + self.next_interval
        return self.next_due

    def launch_failed(self, now: float) -> float:
        """The monitor event could not be started: retry in 5 s."""
        self.next_interval = INITIAL_INTERVAL
        self.next_due = now + INITIAL_INTERVAL
        return self.next_due

    def on_result(self, run: EventRun, *, now: float) -> HealthChange | None:
        """Account for a finished monitor run; return the flag change, if any."""
        change = self._apply(run)
        self.next_due = now + self.next_interval
        self.next_interval = min(self.next_interval * 2, self.monitor_interval)
        return change

    def reported(self, plugin: str, reason: str) -> HealthChange | None:
        """A plugin reported its service failed between monitor runs: UNHEALTHY at
        once (the next successful monitor run clears it, as after a failed run)."""
        self.timeouts = 0
        if self.unhealthy:
            return None
        self.unhealthy = True
        return HealthChange(unhealthy=True, notification="unhealthy", reason=f"{plugin}: {reason}")

    def _apply(self, run: EventRun) -> HealthChange | None:
        status = run.status
        if status in (errno.ECANCELED, -errno.ECANCELED):
            return None
        if status == STATUS_TIMEDOUT:
            self.timeouts += 1
            if self.timeouts < self.monitor_timeout_count:
                return None  # "We pretend this is OK."
        else:
            self.timeouts = 0
        if status != 0 and not self.unhealthy:
            self.unhealthy = True
            self.next_interval = INITIAL_INTERVAL
            return HealthChange(unhealthy=True, notification="unhealthy", reason=_reason(run))
        if status == 0 and self.unhealthy:
            self.unhealthy = False
            self.next_interval = INITIAL_INTERVAL
            return HealthChange(unhealthy=False, notification="healthy")
        return None


def _reason(run: EventRun) -> str:
    failed = run.failed_result
    if failed is None:
        return f"monitor event failed ({run.status})"
    if failed.state == "TIMEDOUT":
        return f"{failed.name}: monitor event timed out"
    return f"{failed.name}: {failed.output}" if failed.output else failed.name
