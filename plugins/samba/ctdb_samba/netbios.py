"""nmbd managed by ctdbd: 4.17's ``48.netbios`` as an event plugin (entry point ``netbios``).

As 4.17: ``startup`` stops the service, kills leftover nmbd processes (after 1 s, in
this node's network namespace only) and starts it ("Failed to start nmbd" otherwise);
``shutdown`` stops it. 4.17 does not monitor nmbd; neither does this plugin's monitor
event, but ``ctdb_watch`` reports an nmbd that exits (its pid file in smb.conf's pid
directory), which 4.17 would never notice.
"""

from __future__ import annotations

import glob
import os
import time

import attrs

from ctdbcore.plugins import EventContext, hookimpl, service, setting

CTDB_ORDER = 48
PROGRAM = "nmbd"


@attrs.frozen
class Settings:
    """``[netbios]`` in ctdb.conf, or 4.17's variables in script.options / 48.netbios.options."""

    service_name: str = setting("nmbd", var="CTDB_SERVICE_NMB", help="init system name of nmbd")
    start_command: str | None = setting(None, help="shell command that starts nmbd (default: the init system)")
    stop_command: str | None = setting(None, help="shell command that stops nmbd (default: the init system)")
    pid_directory: str = setting("/run/samba", help="where nmbd writes its pid file (smb.conf's pid directory)")
    watch: bool = setting(True, help="report an nmbd that exits at once (ctdb_watch; 4.17 never checks)")


CTDB_SETTINGS = Settings


def _service(ctx: EventContext) -> service.Service:
    s: Settings = ctx.settings
    return service.Service(s.service_name, runner=ctx.runner, start_cmd=s.start_command,
                           stop_cmd=s.stop_command, nice=True)


def main_pid(ctx: EventContext) -> int | None:
    for path in sorted(glob.glob(os.path.join(ctx.settings.pid_directory, "nmbd*.pid"))):
        pid = service.read_pidfile(path)
        if pid is not None:
            return pid
    return None


@hookimpl
def ctdb_startup(ctx: EventContext) -> str | None:
    if ctx.settings.start_command is None:
        missing = service.missing_program(f"/usr/sbin/{PROGRAM}", "samba")
        if missing:
            return missing
    svc = _service(ctx)
    svc.stop()
    if service.pids_of(PROGRAM, same_netns=True):
        time.sleep(1)
        service.kill_all(PROGRAM)
    started = svc.start()
    if not started.ok:
        return f"Failed to start nmbd\n{started.output}".rstrip()
    return None


@hookimpl
def ctdb_shutdown(ctx: EventContext) -> str | None:
    stopped = _service(ctx).stop()
    return None if stopped.ok else (stopped.output or None)


@hookimpl
async def ctdb_watch(ctx: EventContext) -> None:
    import anyio

    if not ctx.settings.watch:
        return
    pid = await anyio.to_thread.run_sync(main_pid, ctx)
    if pid is None:
        return
    await service.wait_for_exit(pid)
    ctx.report_failure(f"ERROR: nmbd (pid {pid}) exited")
