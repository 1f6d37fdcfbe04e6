"""Monitor → health rules of 4.17 ctdb_health_callback, fed real event runs."""

from __future__ import annotations

import pytest

from ctdbcore.plugins import HealthChange, MonitorHealth, hookimpl, run_event
from ctdbcore.plugins.runner import STATUS_TIMEDOUT, EventRun, ScriptResult


def fake_run(status: int, output: str = "") -> EventRun:
    state = {0: "OK", STATUS_TIMEDOUT: "TIMEDOUT"}.get(status, "ERROR")
    res = ScriptResult("svc", status, state, 0.0, 0.1, output)
    return EventRun("monitor", (res,), status, 0.0, 0.1)


@pytest.mark.anyio
async def test_failing_monitor_makes_unhealthy_then_good_clears(pm, register, ctx, recorder):
    class Svc:
        healthy = False

        @hookimpl
        def ctdb_monitor(self):
            return None if self.healthy else "ERROR: svc down"

    svc = register(Svc(), "svc")
    health = MonitorHealth(unhealthy=False)
    run = await run_event(pm, "monitor", timeout=5, ctx=ctx)
    change = health.on_result(run, now=100.0)
    assert change == HealthChange(unhealthy=True, notification="unhealthy",
                                  reason="svc: ERROR: svc down")
    assert health.unhealthy and health.flags == 0x02
    assert health.next_due == 105.0
    # still failing: no change
    assert health.on_result(await run_event(pm, "monitor", timeout=5, ctx=ctx), now=105) is None
    svc.healthy = True
    change = health.on_result(await run_event(pm, "monitor", timeout=5, ctx=ctx), now=115)
    assert change == HealthChange(unhealthy=False, notification="healthy")
    assert not health.unhealthy and health.flags == 0
    assert recorder.names() == ["ctdb_monitor"] * 3


def test_node_starts_unhealthy_until_first_good_monitor():
    health = MonitorHealth()
    assert health.unhealthy
    assert health.on_result(fake_run(0), now=0).notification == "healthy"


def test_monitor_timeout_count():
    health = MonitorHealth(monitor_timeout_count=3, unhealthy=False)
    assert health.on_result(fake_run(STATUS_TIMEDOUT), now=0) is None
    assert health.on_result(fake_run(STATUS_TIMEDOUT), now=1) is None
    assert health.timeouts == 2 and not health.unhealthy
    change = health.on_result(fake_run(STATUS_TIMEDOUT), now=2)
    assert change is not None and change.unhealthy and "timed out" in change.reason
    # any non-timeout result resets the counter
    assert health.on_result(fake_run(0), now=3).notification == "healthy"
    assert health.timeouts == 0
    health.on_result(fake_run(STATUS_TIMEDOUT), now=4)
    health.on_result(fake_run(1), now=5)
    assert health.timeouts == 0 and health.unhealthy


def test_default_monitor_timeout_count_is_20():
    health = MonitorHealth(unhealthy=False)
    for i in range(19):
        assert health.on_result(fake_run(STATUS_TIMEDOUT), now=i) is None
    assert health.on_result(fake_run(STATUS_TIMEDOUT), now=19).unhealthy


def test_interval_doubles_to_monitor_interval_and_resets_on_change():
    health = MonitorHealth(unhealthy=False, monitor_interval=15)
    assert health.started(now=0) == 2
    dues = []
    now = 2.0
    for _ in range(5):
        health.on_result(fake_run(0), now=now)
        dues.append(health.next_due - now)
        now = health.next_due
    assert dues == [2, 4, 8, 15, 15]
    health.on_result(fake_run(1), now=now)  # change → 5, then doubling again
    assert health.next_due - now == 5
    now = health.next_due
    health.on_result(fake_run(1), now=now)
    assert health.next_due - now == 10
    assert health.due(health.next_due) and not health.due(health.next_due - 0.1)


def test_cancelled_is_no_change_and_skip_keeps_interval():
    import errno

    health = MonitorHealth(unhealthy=False)
    assert health.on_result(fake_run(-errno.ECANCELED), now=0) is None
    assert not health.unhealthy
    interval = health.next_interval
    assert health.skipped(now=50) == 50 + interval and health.next_interval == interval
    assert health.launch_failed(now=60) == 65
