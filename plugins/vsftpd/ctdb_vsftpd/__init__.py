"""ctdbd service plugin ``vsftpd``: CTDB 4.17's ``events/legacy/40.vsftpd.script`` as hooks.

Per event, as the script:

* ``startup``: stop vsftpd (its failure ignored), start it, reset the failure counter.
  The event succeeds whatever the start did (the script exits 0).
* ``shutdown``: stop vsftpd (success whatever the stop did).
* ``takeip``, ``releaseip``: flag a reconfigure (vsftpd binds to addresses).
* ``ipreallocated``: if flagged: "Reconfiguring service "vsftpd"...", clear the flag,
  restart vsftpd, and on success reset the counter.
* ``monitor``: TCP port 21 (``port``) must have a listener. The 1st consecutive failure is a
  warning (success); from the 2nd the node is unhealthy.

Not in 4.17: ``ctdb_watch`` waits on a pidfd of vsftpd's main process (``pid file``, or
the process named ``vsftpd`` in the node's network namespace whose parent is not a
vsftpd) and, when it exits other than by the plugin's own stop, counts one failure
and makes the node UNHEALTHY at once.
"""

from __future__ import annotations

import os

import anyio
import attrs

from ctdbcore.plugins import EventContext, hookimpl, service, setting

#: The ``40.`` of ``40.vsftpd.script``.
CTDB_ORDER = 40

#: 4.17's threshold: the 2nd consecutive failure makes the node unhealthy.
UNHEALTHY_AFTER = 2
#: Bound on each start or stop command (the whole event has EventScriptTimeout, 30 s).
COMMAND_TIMEOUT = 12.0
PACKAGE = "vsftpd"
PROGRAM = "/usr/sbin/vsftpd"


@attrs.frozen
class Settings:
    """``[vsftpd]`` in ctdb.conf (40.vsftpd.script reads no variable of its own)."""

    service_name: str = setting("vsftpd", help="init system name of the service")
    port: int = setting(21, help="TCP port monitor checks (4.17: 21)")
    start_command: str | None = setting(None, help="shell command that starts vsftpd (default: the init system)")
    stop_command: str | None = setting(None, help="shell command that stops vsftpd (default: the init system)")
    pid_file: str | None = setting(None, help="vsftpd's pid file, for ctdb_watch ($VARIABLES of ctdbd's environment expanded; default: find the process by name)")
    process_name: str = setting("vsftpd", help="the daemon's process name, for ctdb_watch")


CTDB_SETTINGS = Settings


def _settings(ctx: EventContext) -> Settings:
    return ctx.settings if ctx.settings is not None else Settings()


def _service(ctx: EventContext) -> service.Service:
    s = _settings(ctx)
    return service.Service(s.service_name, runner=ctx.runner, start_cmd=s.start_command, stop_cmd=s.stop_command)


def _counter(ctx: EventContext) -> service.FailureCounter:
    return service.FailureCounter(ctx.state_dir)


def _stops(ctx: EventContext) -> service.DeliberateStops:
    return service.DeliberateStops(ctx.state_dir)


def _reconfigure_flag(ctx: EventContext):
    return ctx.state_dir / "need_reconfigure"


def _log_failed(ctx: EventContext, what: str, done: service.Completed) -> None:
    if not done.ok:
        ctx.logger.warning("%s %s failed (%d)%s", what, _settings(ctx).service_name, done.returncode,
                           f": {done.output}" if done.output else "")


def _stop(ctx: EventContext, *, quiet: bool = False) -> service.Completed:
    _stops(ctx).mark()
    done = _service(ctx).stop(COMMAND_TIMEOUT)
    if not quiet:
        _log_failed(ctx, "stopping", done)
    return done


def _start(ctx: EventContext) -> service.Completed:
    done = _service(ctx).start(COMMAND_TIMEOUT)
    _log_failed(ctx, "starting", done)
    return done


def _missing(ctx: EventContext) -> str | None:
    """The init system needs vsftpd installed; a start command names its own program."""
    if _settings(ctx).start_command:
        return None
    return service.missing_program(PROGRAM, PACKAGE)


@hookimpl
def ctdb_startup(ctx: EventContext) -> str | None:
    missing = _missing(ctx)
    if missing:
        return missing
    _stop(ctx, quiet=True)  # 4.17: "service vsftpd stop > /dev/null 2>&1"
    _start(ctx)  # the script goes on (and exits 0) whatever the start did
    _counter(ctx).reset()
    return None


@hookimpl
def ctdb_shutdown(ctx: EventContext) -> None:
    _stop(ctx)


@hookimpl
def ctdb_takeip(ctx: EventContext) -> None:
    _reconfigure_flag(ctx).touch()


@hookimpl
def ctdb_releaseip(ctx: EventContext) -> None:
    _reconfigure_flag(ctx).touch()


@hookimpl
def ctdb_ipreallocated(ctx: EventContext) -> None:
    flag = _reconfigure_flag(ctx)
    if not flag.exists():
        return
    ctx.logger.info('Reconfiguring service "%s"...', "vsftpd")
    flag.unlink(missing_ok=True)
    _stop(ctx)
    if _start(ctx).ok:
        _counter(ctx).reset()
    # a failed restart does not fail the event (4.17 exits 0)


@hookimpl
def ctdb_monitor(ctx: EventContext) -> str | None:
    problem = service.check_tcp_ports("vsftpd", [_settings(ctx).port])
    counter = _counter(ctx)
    if problem is None:
        counter.reset()
        return None
    fails = counter.incr()
    if fails >= UNHEALTHY_AFTER:
        return f"{problem}\nERROR: {fails} consecutive failures for vsftpd, marking node unhealthy"
    ctx.logger.warning("%s", problem)
    ctx.logger.warning("WARNING: vsftpd not listening but less than %d consecutive failures, not unhealthy yet",
                       UNHEALTHY_AFTER)
    return None


def daemon_pid(ctx: EventContext) -> int | None:
    """vsftpd's main process on this node: from the pid file, else by name."""
    s = _settings(ctx)
    if s.pid_file:
        return service.read_pidfile(os.path.expandvars(s.pid_file))
    return service.main_pid(s.process_name, same_netns=True)


@hookimpl
async def ctdb_watch(ctx: EventContext) -> None:
    pid = await service.watch_daemon(lambda: daemon_pid(ctx), _stops(ctx))
    if pid is None:
        return  # not running: the next monitor event judges that
    await anyio.to_thread.run_sync(_counter(ctx).incr)  # this exit is the first failure monitor would have seen
    ctx.report_failure(f"ERROR: vsftpd (pid {pid}) exited")
