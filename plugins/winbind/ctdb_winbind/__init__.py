"""ctdbd service plugin ``winbind``: CTDB 4.17's ``events/legacy/49.winbind.script`` as hooks.

Per event, as the script:

* ``startup``: stop the service (``CTDB_SERVICE_WINBIND``, default ``winbind``; errors
  ignored); if a winbindd still runs, wait 1 s and SIGKILL every winbindd; start the
  service. A failed start fails the event ("Failed to start winbind"), so ctdbd retries
  startup.
* ``shutdown``: stop the service.
* ``monitor``: ``wbinfo -p`` must succeed, else the node is unhealthy with
  "ERROR: wbinfo -p returned error" and wbinfo's output.

Not in 4.17: ``ctdb_watch`` waits on a pidfd of winbindd's main process (``pid file``,
or the process named ``winbindd`` in the node's network namespace whose parent is not a
winbindd) and, when it exits other than by the plugin's own stop, makes the node
UNHEALTHY at once.
"""

from __future__ import annotations

import os
import signal
import time

import attrs

from ctdbcore.plugins import EventContext, hookimpl, service, setting

#: The ``49.`` of ``49.winbind.script``.
CTDB_ORDER = 49

PROGRAM = "/usr/sbin/winbindd"
PROCESS = "winbindd"
PACKAGE = "winbind"
COMMAND_TIMEOUT = 10.0  #: each start/stop (the event has 30 s in all)
WBINFO_TIMEOUT = 10.0
DEFAULT_WBINFO = "wbinfo -p"


@attrs.frozen
class Settings:
    """``[winbind]`` in ctdb.conf, or 4.17's variables in script.options / 49.winbind.options."""

    service_name: str = setting("winbind", var="CTDB_SERVICE_WINBIND", help="init system name of winbindd")
    start_command: str | None = setting(None, help="shell command that starts winbindd (default: the init system)")
    stop_command: str | None = setting(None, help="shell command that stops winbindd (default: the init system)")
    wbinfo_command: str = setting(DEFAULT_WBINFO, help="shell command line monitor runs (4.17: wbinfo -p)")
    pid_file: str = setting("/run/samba/winbindd.pid",
                            help="winbindd's pid file, for ctdb_watch ($VARIABLES of ctdbd's environment expanded; "
                            "if it does not exist the process is found by name)")


CTDB_SETTINGS = Settings


def _settings(ctx: EventContext) -> Settings:
    return ctx.settings if ctx.settings is not None else Settings()


def _service(ctx: EventContext) -> service.Service:
    s = _settings(ctx)
    return service.Service(s.service_name, runner=ctx.runner, start_cmd=s.start_command, stop_cmd=s.stop_command)


def _stops(ctx: EventContext) -> service.DeliberateStops:
    return service.DeliberateStops(ctx.state_dir)


def service_stop(ctx: EventContext) -> service.Completed:
    _stops(ctx).mark()
    return _service(ctx).stop(COMMAND_TIMEOUT)


@hookimpl
def ctdb_startup(ctx: EventContext) -> str | None:
    s = _settings(ctx)
    if not s.start_command:
        missing = service.missing_program(PROGRAM, PACKAGE)
        if missing:
            return missing
    service_stop(ctx)  # 4.17: >/dev/null 2>&1
    if service.pids_of(PROCESS, same_netns=True):
        time.sleep(1)
        # make absolutely sure winbindd is dead
        service.kill_all(PROCESS, signal.SIGKILL, same_netns=True)
    done = _service(ctx).start(COMMAND_TIMEOUT)
    if not done.ok:
        return "\n".join(x for x in (done.output, "Failed to start winbind") if x)
    return None


@hookimpl
def ctdb_shutdown(ctx: EventContext) -> None:
    done = service_stop(ctx)
    if not done.ok:  # logged only: the script exits 0 after the stop
        ctx.logger.warning("stopping %s failed (%d)%s", _settings(ctx).service_name, done.returncode,
                           f": {done.output}" if done.output else "")


@hookimpl
def ctdb_monitor(ctx: EventContext) -> str | None:
    cmd = _settings(ctx).wbinfo_command
    if cmd == DEFAULT_WBINFO:
        missing = service.missing_program("wbinfo", PACKAGE)
        if missing:
            return missing
    done = ctx.runner.run(service.shell(cmd), timeout=WBINFO_TIMEOUT)
    if done.ok:
        return None
    return "\n".join(x for x in ("ERROR: wbinfo -p returned error", done.output) if x)


def daemon_pid(ctx: EventContext) -> int | None:
    """winbindd's main process on this node: from the pid file, else by name."""
    path = os.path.expandvars(_settings(ctx).pid_file)
    if os.path.exists(path):
        return service.read_pidfile(path)
    return service.main_pid(PROCESS, same_netns=True)


@hookimpl
async def ctdb_watch(ctx: EventContext) -> None:
    pid = await service.watch_daemon(lambda: daemon_pid(ctx), _stops(ctx))
    if pid is None:
        return  # not running: the next monitor event judges that
    ctx.report_failure(f"ERROR: winbindd (pid {pid}) exited")
