"""The example distribution (contrib/example_plugin), loaded through its entry point."""

from __future__ import annotations

import pytest

from ctdbcore.plugins import MonitorHealth, format_event_status, make_plugin_manager, run_event

pytestmark = pytest.mark.anyio

IP = {"iface": "eth1", "ip": "10.0.0.31", "maskbits": 24}


@pytest.fixture
def example_pm():
    pm = make_plugin_manager(only=["ctdb-example-plugin"])
    assert pm.has_plugin("example")
    return pm


async def test_example_monitor_health_file(example_pm, ctx, tmp_path, monkeypatch):
    flag = tmp_path / "down"
    monkeypatch.setenv("CTDB_EXAMPLE_HEALTH_FILE", str(flag))
    health = MonitorHealth()
    run = await run_event(example_pm, "monitor", timeout=5, ctx=ctx)
    assert run.ok and health.on_result(run, now=0).notification == "healthy"

    flag.write_text("maintenance\n")
    run = await run_event(example_pm, "monitor", timeout=5, ctx=ctx)
    assert run.results[0].state == "ERROR"
    assert run.results[0].output == f"ERROR: health file {flag} exists: maintenance"
    assert health.on_result(run, now=5).unhealthy
    assert "  OUTPUT: ERROR: health file" in format_event_status(run)

    monkeypatch.delenv("CTDB_EXAMPLE_HEALTH_FILE")
    assert (await run_event(example_pm, "monitor", timeout=5, ctx=ctx)).ok


async def test_example_logs_ip_events(example_pm, ctx):
    for event, args in (("takeip", IP), ("releaseip", IP), ("ipreallocated", {})):
        run = await run_event(example_pm, event, timeout=5, ctx=ctx, args=args)
        assert run.ok and [r.name for r in run.results] == ["example"]
    lines = (ctx.rundir / "example-events.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "takeip eth1 10.0.0.31 24", "releaseip eth1 10.0.0.31 24", "ipreallocated"]


async def test_example_runs_after_lower_orders(example_pm, ctx):
    from ctdbcore.plugins import hookimpl

    class Early:
        CTDB_ORDER = 10

        @hookimpl
        def ctdb_ipreallocated(self):
            pass

    example_pm.register_checked(Early(), "zzz-early")
    run = await run_event(example_pm, "ipreallocated", timeout=5, ctx=ctx)
    assert [r.name for r in run.results] == ["zzz-early", "example"]
