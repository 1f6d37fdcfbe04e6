"""One test per hookspec (checked by test_plugin_docs.py): each event reaches its hook
with the 4.17 arguments, through pluggy (seen by add_hookcall_monitoring)."""

from __future__ import annotations

import pytest

from ctdbcore.plugins import hookimpl, run_event

pytestmark = pytest.mark.anyio

IP_ARGS = {"iface": "eth1", "ip": "10.0.0.31", "maskbits": 24}


def make_plugin(hook: str, seen: list):
    def impl(**kwargs):
        seen.append(kwargs)

    # a plugin object whose single hook takes every argument of the spec
    class Plugin:
        pass

    import inspect

    from ctdbcore import hookspecs

    params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    src = f"def {hook}({', '.join(params)}):\n    seen.append(dict({', '.join(f'{p}={p}' for p in params)}))\n"
    ns: dict = {"seen": seen}
    exec(src, ns)
    setattr(Plugin, hook, staticmethod(hookimpl(ns[hook])))
    return Plugin()


async def check_event(pm, register, recorder, ctx, event: str, args: dict | None = None):
    hook = f"ctdb_{event}"
    seen: list = []
    register(make_plugin(hook, seen), "probe")
    run = await run_event(pm, event, timeout=5, ctx=ctx, args=args or {})
    assert run.ok and run.event == event
    assert [r.name for r in run.results] == ["probe"]
    assert len(seen) == 1
    got = dict(seen[0])
    got_ctx = got.pop("ctx")
    assert got == (args or {})
    assert got_ctx.event == event and got_ctx.pnn == 0
    assert recorder.names() == [hook]
    assert recorder.calls[0].kwargs.keys() == {"ctx", *(args or {})}


async def test_hook_ctdb_init(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "init")


async def test_hook_ctdb_setup(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "setup")


async def test_hook_ctdb_startup(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "startup")


async def test_hook_ctdb_monitor(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "monitor")


async def test_hook_ctdb_startrecovery(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "startrecovery")


async def test_hook_ctdb_recovered(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "recovered")


async def test_hook_ctdb_takeip(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "takeip", IP_ARGS)


async def test_hook_ctdb_releaseip(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "releaseip", IP_ARGS)


async def test_hook_ctdb_updateip(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "updateip",
                      {"old_iface": "eth1", "new_iface": "eth2", "ip": "10.0.0.31",
                       "maskbits": 24})


async def test_hook_ctdb_ipreallocated(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "ipreallocated")


async def test_hook_ctdb_shutdown(pm, register, recorder, ctx):
    await check_event(pm, register, recorder, ctx, "shutdown")
