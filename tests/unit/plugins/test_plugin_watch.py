"""ctdb_watch and ctx.report_failure: a service's failure seen between monitor events."""

from __future__ import annotations

import logging
import threading

import anyio
import attrs
import pytest

from ctdbcore.config.tunables import Tunables
from ctdbcore.daemon.events import EventHost
from ctdbcore.plugins import hookimpl
from ctdbcore.plugins.enablement import EnableState
from ctdbcore.protocol.constants import NodeFlags, RecMode, Runstate


@attrs.define
class FakeNode:
    """What EventHost.monitor_loop uses of the daemon."""

    runstate: int = Runstate.RUNNING
    recmode: int = RecMode.NORMAL
    own_flags: int = 0
    changes: list = attrs.Factory(list)

    def set_own_flags(self, flags: int, why: str) -> None:
        self.own_flags = flags
        self.changes.append((flags, why))


def host(pm, tmp_path, **kw) -> EventHost:
    t = Tunables()
    t.set("MonitorInterval", 1)
    t.set("EventScriptTimeout", 5)
    return EventHost(pm, tunables=t, run_dir=str(tmp_path / "run"), pnn=0, config=None,
                     logger=logging.getLogger("ctdb.test"), events_dir=str(tmp_path / "events"), **kw)


class Watched:
    """A plugin whose service 'dies' when the test sets died."""

    CTDB_ORDER = 40
    CTDB_ENABLED_BY_DEFAULT = True

    def __init__(self) -> None:
        self.died = threading.Event()
        self.cancelled = anyio.Event()
        self.healthy = True

    @hookimpl
    def ctdb_monitor(self, ctx):
        return None if self.healthy else "ERROR: still dead"

    @hookimpl
    async def ctdb_watch(self, ctx):
        try:
            while not self.died.is_set():
                await anyio.sleep(0.01)
            ctx.report_failure("ERROR: vsftpd (pid 42) exited")
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise


async def wait(cond, timeout=5.0):
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_hook_ctdb_watch(pm, register, tmp_path):
    plugin = register(Watched(), "watched")
    h = host(pm, tmp_path)
    node = FakeNode()
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.monitor_loop, node)
        await wait(lambda: node.changes and not node.own_flags & NodeFlags.UNHEALTHY)  # first monitor: healthy
        plugin.healthy = False
        plugin.died.set()  # the watcher reports at once, long before the next monitor run is due
        await wait(lambda: node.own_flags & NodeFlags.UNHEALTHY, timeout=0.5)
        assert "watched: ERROR: vsftpd (pid 42) exited" in node.changes[-1][1]
        out, code = h.store.scriptstatus()
        assert code == 1 and "watched" in out and "OUTPUT: ERROR: vsftpd (pid 42) exited" in out
        # the next monitor run fails too (the node stays unhealthy); once the service is
        # back, a monitor run clears it and the watcher starts again
        plugin.died.clear()
        plugin.healthy = True
        await wait(lambda: not node.own_flags & NodeFlags.UNHEALTHY, timeout=12)
        await wait(lambda: "watched" in h._watching)
        node.runstate = Runstate.SHUTDOWN
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_disabled_plugin_is_not_watched_and_its_reports_are_ignored(pm, register, tmp_path):
    plugin = register(Watched(), "watched")
    EnableState(tmp_path / "events").write("40.watched", False)
    h = host(pm, tmp_path)
    node = FakeNode()
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.monitor_loop, node)
        await wait(lambda: node.changes)
        assert "watched" not in h._watching
        h.report_failure("watched", "ignored")
        assert not node.own_flags & NodeFlags.UNHEALTHY
        # enabled at run time: watched after the next good monitor; disabled again: cancelled
        EnableState(tmp_path / "events").write("40.watched", True)
        await wait(lambda: "watched" in h._watching, timeout=12)
        EnableState(tmp_path / "events").write("40.watched", False)
        await wait(lambda: plugin.cancelled.is_set(), timeout=12)
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_raising_or_sync_watcher_does_not_harm_the_host(pm, register, tmp_path, caplog):
    calls = []

    class Raises:
        CTDB_ENABLED_BY_DEFAULT = True

        @hookimpl
        async def ctdb_watch(self, ctx):
            calls.append(1)
            raise RuntimeError("boom")

    class Sync:
        CTDB_ENABLED_BY_DEFAULT = True

        @hookimpl
        def ctdb_watch(self, ctx):  # must be async: refused
            calls.append("sync")

    register(Raises(), "raises")
    register(Sync(), "sync")
    h = host(pm, tmp_path)
    node = FakeNode()
    with caplog.at_level(logging.ERROR, logger="ctdb.test"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(h.monitor_loop, node)
            await wait(lambda: len(calls) >= 2, timeout=12)  # re-started after a good monitor run
            tg.cancel_scope.cancel()
    assert "sync" not in calls
    assert "ctdb_watch raised" in caplog.text and "must be 'async def'" in caplog.text


def test_report_from_a_thread_reaches_the_loop(pm, register, tmp_path):
    register(Watched(), "watched")
    h = host(pm, tmp_path)
    node = FakeNode()

    async def main():
        async with anyio.create_task_group() as tg:
            tg.start_soon(h.monitor_loop, node)
            await wait(lambda: node.changes)
            await anyio.to_thread.run_sync(h.report_failure, "watched", "from a thread")
            assert node.own_flags & NodeFlags.UNHEALTHY
            tg.cancel_scope.cancel()

    anyio.run(main)
