"""run_event: order, isolation, timeouts, return contract, opt-in arguments."""

from __future__ import annotations

import threading
import time

import anyio
import anyio.to_thread
import cattrs
import pytest

from ctdbcore.plugins import EventRun, hookimpl, run_event
from ctdbcore.plugins.runner import STATUS_DISABLED, STATUS_TIMEDOUT, converter

pytestmark = pytest.mark.anyio


class Ok:
    def __init__(self, log: list[str], name: str, order: int | None = None):
        self.log, self.name = log, name
        if order is not None:
            self.CTDB_ORDER = order

    @hookimpl
    def ctdb_monitor(self):
        self.log.append(self.name)


class Raises:
    CTDB_ORDER = 20

    @hookimpl
    def ctdb_monitor(self):
        raise RuntimeError("boom")


class Hangs:
    CTDB_ORDER = 20

    def __init__(self):
        self.release = threading.Event()

    @hookimpl
    def ctdb_monitor(self):
        self.release.wait(30)


class AsyncHangs:
    CTDB_ORDER = 20

    @hookimpl
    async def ctdb_monitor(self):
        await anyio.sleep(30)


async def test_raising_plugin_is_recorded_and_stops_the_run(pm, register, recorder, ctx):
    log: list[str] = []
    register(Ok(log, "first", 10), "first")
    register(Raises(), "raiser")
    register(Ok(log, "later", 30), "later")

    run = await run_event(pm, "monitor", timeout=5, ctx=ctx)

    assert [r.name for r in run.results] == ["first", "raiser"]
    assert [r.state for r in run.results] == ["OK", "ERROR"]
    assert run.results[1].status == 1
    assert run.results[1].output == "RuntimeError: boom"
    assert run.status == 1 and not run.ok
    assert log == ["first"]  # "later" was skipped, as 4.17 stops at the first failure
    assert recorder.plugins_called("ctdb_monitor") == ["first", "raiser"]
    assert isinstance(recorder.calls[1].exception, RuntimeError)
    # the event loop is alive and usable afterwards
    await anyio.sleep(0)
    assert (await run_event(pm, "startup", timeout=1, ctx=ctx)).ok


async def test_hung_sync_plugin_times_out_and_is_abandoned(pm, register, ctx):
    log: list[str] = []
    hung = register(Hangs(), "hung")
    register(Ok(log, "later", 30), "later")
    t0 = time.monotonic()
    run = await run_event(pm, "monitor", timeout=0.3, ctx=ctx)
    elapsed = time.monotonic() - t0
    try:
        assert elapsed < 0.3 + 0.5
        assert [(r.name, r.state, r.status) for r in run.results] == [
            ("hung", "TIMEDOUT", STATUS_TIMEDOUT)
        ]
        assert run.status == STATUS_TIMEDOUT and run.timed_out
        assert log == []
        # anyio's default thread limiter is untouched by the abandoned thread
        assert anyio.to_thread.current_default_thread_limiter().borrowed_tokens == 0
        assert await anyio.to_thread.run_sync(lambda: 42) == 42
    finally:
        hung.release.set()


async def test_many_hung_sync_plugins_do_not_exhaust_threads(pm, register, ctx):
    hung = register(Hangs(), "hung")
    try:
        limiter = anyio.to_thread.current_default_thread_limiter()
        for _ in range(int(limiter.total_tokens) + 5):
            run = await run_event(pm, "monitor", timeout=0.01, ctx=ctx)
            assert run.results[0].state == "TIMEDOUT"
        assert await anyio.to_thread.run_sync(lambda: "still works") == "still works"
    finally:
        hung.release.set()


async def test_hung_async_plugin_times_out(pm, register, ctx):
    register(AsyncHangs(), "ahung")
    t0 = time.monotonic()
    run = await run_event(pm, "monitor", timeout=0.2, ctx=ctx)
    assert time.monotonic() - t0 < 0.2 + 0.5
    assert run.results[0].state == "TIMEDOUT"


async def test_timeout_is_the_budget_of_the_whole_run(pm, register, ctx):
    class Slow:
        CTDB_ORDER = 10

        @hookimpl
        def ctdb_monitor(self):
            time.sleep(0.25)

    register(Slow(), "slow")
    hung = register(Hangs(), "hung")
    try:
        t0 = time.monotonic()
        run = await run_event(pm, "monitor", timeout=0.4, ctx=ctx)
        assert time.monotonic() - t0 < 0.4 + 0.5
        assert [r.state for r in run.results] == ["OK", "TIMEDOUT"]
    finally:
        hung.release.set()


async def test_order_is_ctdb_order_then_name_not_registration(pm, register, recorder, ctx):
    log: list[str] = []
    register(Ok(log, "c", 10), "c")
    register(Ok(log, "z"), "z")  # default 50
    register(Ok(log, "a", 90), "a")
    register(Ok(log, "b"), "b")  # default 50
    register(Ok(log, "y", 5), "y")
    run = await run_event(pm, "monitor", timeout=5, ctx=ctx)
    assert log == ["y", "c", "b", "z", "a"]
    assert [r.name for r in run.results] == log
    assert recorder.plugins_called("ctdb_monitor") == log


async def test_return_contract(pm, register, ctx):
    class Returns:
        def __init__(self, value, order):
            self.value, self.CTDB_ORDER = value, order

        @hookimpl
        def ctdb_startup(self):
            return self.value

    register(Returns(None, 1), "none")
    register(Returns(True, 2), "true")
    run = await run_event(pm, "startup", timeout=5, ctx=ctx)
    assert [r.state for r in run.results] == ["OK", "OK"] and run.ok

    register(Returns("samba not listening\n", 3), "str")
    run = await run_event(pm, "startup", timeout=5, ctx=ctx)
    assert run.results[-1].state == "ERROR"
    assert run.results[-1].output == "samba not listening"
    pm.unregister(name="str")

    register(Returns(False, 3), "false")
    run = await run_event(pm, "startup", timeout=5, ctx=ctx)
    assert (run.results[-1].state, run.results[-1].output) == ("ERROR", "")


async def test_async_impl_is_awaited(pm, register, ctx):
    class Async:
        @hookimpl
        async def ctdb_recovered(self, ctx):
            await anyio.sleep(0)
            return f"failed on {ctx.pnn}"

    register(Async(), "async")
    run = await run_event(pm, "recovered", timeout=5, ctx=ctx)
    assert run.results[0].output == "failed on 0"


async def test_opt_in_arguments(pm, register, ctx):
    seen = {}

    class OnlyIp:
        @hookimpl
        def ctdb_takeip(self, ip):
            seen["only_ip"] = ip

    class NoArgs:
        @hookimpl
        def ctdb_takeip(self):
            seen["none"] = True

    class All:
        @hookimpl
        def ctdb_takeip(self, ctx, iface, ip, maskbits):
            seen["all"] = (ctx.event, ctx.logger.name, iface, ip, maskbits)

    register(OnlyIp(), "onlyip")
    register(NoArgs(), "noargs")
    register(All(), "all")
    run = await run_event(pm, "takeip", timeout=5, ctx=ctx,
                          args={"iface": "eth1", "ip": "10.0.0.31", "maskbits": 24})
    assert run.ok
    assert seen == {"only_ip": "10.0.0.31", "none": True,
                    "all": ("takeip", "ctdb.test.all", "eth1", "10.0.0.31", 24)}


async def test_wrong_arguments_are_rejected_like_check_options(pm, ctx):
    with pytest.raises(ValueError, match="takes arguments"):
        await run_event(pm, "takeip", timeout=1, ctx=ctx, args={"ip": "10.0.0.1"})
    with pytest.raises(ValueError, match="takes arguments"):
        await run_event(pm, "monitor", timeout=1, ctx=ctx, args={"ip": "10.0.0.1"})
    with pytest.raises(ValueError, match="unknown event"):
        await run_event(pm, "stopped", timeout=1, ctx=ctx)


async def test_disabled_plugin_shows_disabled_and_does_not_stop_the_run(pm, register, ctx):
    log: list[str] = []
    register(Raises(), "raiser")
    register(Ok(log, "later", 30), "later")
    run = await run_event(pm, "monitor", timeout=5, ctx=ctx, disabled={"raiser"})
    assert [(r.name, r.state, r.status) for r in run.results] == [
        ("raiser", "DISABLED", STATUS_DISABLED), ("later", "OK", 0)]
    assert run.ok and log == ["later"]


async def test_no_plugins_is_success(pm, ctx):
    run = await run_event(pm, "monitor", timeout=1, ctx=ctx)
    assert run.results == () and run.status == 0


async def test_event_run_is_json_roundtrippable(pm, register, ctx):
    import json

    register(Raises(), "raiser")
    run = await run_event(pm, "monitor", timeout=5, ctx=ctx)
    data = json.loads(json.dumps(converter.unstructure(run)))
    assert data["results"][0]["state"] == "ERROR"
    assert converter.structure(data, EventRun) == run
    assert cattrs.Converter().structure(data, EventRun) == run


async def test_cancelling_the_run_is_not_blocked_by_a_hung_plugin(pm, register, ctx):
    hung = register(Hangs(), "hung")
    try:
        t0 = time.monotonic()
        with anyio.move_on_after(0.2):
            await run_event(pm, "monitor", timeout=30, ctx=ctx)
        assert time.monotonic() - t0 < 1.0
    finally:
        hung.release.set()
