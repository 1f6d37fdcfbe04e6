"""ctdbd service plugin ``httpd``: CTDB 4.17's ``events/legacy/41.httpd.script`` as hooks.

Per event, as the script:

* ``startup``: clean up leaked SysV semaphores (see :func:`cleanup_semaphore_leak`),
  start the service, reset the failure counter; succeeds whatever the start did.
* ``shutdown``: stop the service, then SIGKILL every process of that name left.
* ``monitor``: TCP port 80 (``port``) must have a listener (and, not in 4.17, the pid
  file, if there is one, must name a live process: workers left by a SIGKILLed main
  process still listen, but nothing would ever restart them). At the 2nd consecutive
  failure: "HTTPD is not running. Trying to restart HTTPD.", stop + kill + start,
  success. At the 5th and every later one: the same restart, and the node is unhealthy.
  The 1st, 3rd and 4th failures change nothing.

The service is ``httpd`` on Red Hat style systems and ``apache2`` elsewhere (4.17's
``detect_init_style``: ``/sbin/startproc`` → suse, ``/sbin/start-stop-daemon`` →
debian, else redhat; ``CTDB_INIT_STYLE`` overrides it).

Not in 4.17: ``ctdb_watch`` waits on a pidfd of the main process (``pid file``, or the
process of the service's name in the node's network namespace whose parent is not one)
and, when it exits other than by the plugin's own stop, counts one failure and makes
the node UNHEALTHY at once; the next failed monitor event is then the 2nd failure and
restarts the service.
"""

from __future__ import annotations

import os
import signal

import anyio
import attrs

from ctdbcore.plugins import EventContext, hookimpl, service, setting

#: The ``41.`` of ``41.httpd.script``.
CTDB_ORDER = 41

RESTART_AT = 2  #: the failure count at which monitor restarts and succeeds
UNHEALTHY_FROM = 5  #: from this count monitor restarts and fails
RESTART_MESSAGE = "HTTPD is not running. Trying to restart HTTPD."
COMMAND_TIMEOUT = 10.0  #: each start/stop/ipcs command (the event has 30 s in all)
INIT_STYLES = ("redhat", "suse", "debian")


def detect_init_style() -> str:
    """4.17's ``detect_init_style`` without ``CTDB_INIT_STYLE``."""
    if os.access("/sbin/startproc", os.X_OK):
        return "suse"
    if os.access("/sbin/start-stop-daemon", os.X_OK):
        return "debian"
    return "redhat"


def _init_style(value: str) -> str:
    if value not in INIT_STYLES:
        raise ValueError(f"init style must be one of {', '.join(INIT_STYLES)}, not {value!r}")
    return value


@attrs.frozen
class Settings:
    """``[httpd]`` in ctdb.conf, or 4.17's variables in script.options / 41.httpd.options."""

    init_style: str | None = setting(None, var="CTDB_INIT_STYLE", parse=_init_style,
                                     help="redhat, suse or debian (default: detected as 4.17)")
    service_name: str | None = setting(None, help="init system name (default: httpd on redhat, else apache2)")
    port: int = setting(80, help="TCP port monitor checks (4.17: 80)")
    start_command: str | None = setting(None, help="shell command that starts the server (default: the init system)")
    stop_command: str | None = setting(None, help="shell command that stops the server (default: the init system)")
    pid_file: str | None = setting(
        None, help="the server's pid file, for ctdb_watch and monitor ($VARIABLES of ctdbd's environment "
        "expanded; default: /run/apache2/apache2.pid, or /run/httpd/httpd.pid for httpd)")
    semaphore_user: str = setting("apache", help="owner of the SysV semaphores startup cleans up (4.17: apache)")


CTDB_SETTINGS = Settings


def _settings(ctx: EventContext) -> Settings:
    return ctx.settings if ctx.settings is not None else Settings()


def service_name(ctx: EventContext) -> str:
    s = _settings(ctx)
    if s.service_name:
        return s.service_name
    return "httpd" if (s.init_style or detect_init_style()) == "redhat" else "apache2"


def program(ctx: EventContext) -> tuple[str, str]:
    """The server binary and its Debian/Red Hat package, for the not-installed message."""
    name = service_name(ctx)
    return (f"/usr/sbin/{name}", "httpd" if name == "httpd" else "apache2")


def _service(ctx: EventContext) -> service.Service:
    s = _settings(ctx)
    return service.Service(service_name(ctx), runner=ctx.runner, start_cmd=s.start_command, stop_cmd=s.stop_command)


def _counter(ctx: EventContext) -> service.FailureCounter:
    return service.FailureCounter(ctx.state_dir)


def _stops(ctx: EventContext) -> service.DeliberateStops:
    return service.DeliberateStops(ctx.state_dir)


def cleanup_semaphore_leak(ctx: EventContext) -> list[str]:
    """4.17's ``cleanup_httpd_semaphore_leak``: a SIGKILLed httpd leaks SysV semaphores;
    when no process of the service's name runs, remove those ``ipcs -s`` lists as owned
    by ``semaphore user``. The ids removed."""
    if service.pids_of(service_name(ctx), same_netns=True):
        return []
    listing = ctx.runner.run(("ipcs", "-s"), timeout=COMMAND_TIMEOUT)
    if not listing.ok:
        ctx.logger.info("not cleaning up semaphores: ipcs -s failed (%d): %s", listing.returncode, listing.output)
        return []
    user = _settings(ctx).semaphore_user
    removed = []
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == user and fields[1].isdigit():
            done = ctx.runner.run(("ipcrm", "-s", fields[1]), timeout=COMMAND_TIMEOUT)
            if done.ok:
                removed.append(fields[1])
            else:
                ctx.logger.warning("ipcrm -s %s failed: %s", fields[1], done.output)
    return removed


def service_start(ctx: EventContext) -> service.Completed:
    cleanup_semaphore_leak(ctx)
    done = _service(ctx).start(COMMAND_TIMEOUT)
    if not done.ok:
        ctx.logger.warning("starting %s failed (%d)%s", service_name(ctx), done.returncode,
                           f": {done.output}" if done.output else "")
    return done


def service_stop(ctx: EventContext) -> None:
    """Stop, then ``killall -q -9`` what is left (in this node's namespace)."""
    _stops(ctx).mark()
    done = _service(ctx).stop(COMMAND_TIMEOUT)
    if not done.ok:
        ctx.logger.warning("stopping %s failed (%d)%s", service_name(ctx), done.returncode,
                           f": {done.output}" if done.output else "")
    service.kill_all(service_name(ctx), signal.SIGKILL, same_netns=True)


@hookimpl
def ctdb_startup(ctx: EventContext) -> str | None:
    if not _settings(ctx).start_command:
        missing = service.missing_program(*program(ctx))
        if missing:
            return missing
    service_start(ctx)  # 4.17 goes on (and exits 0) whatever the start did
    _counter(ctx).reset()
    return None


@hookimpl
def ctdb_shutdown(ctx: EventContext) -> None:
    service_stop(ctx)


@hookimpl
def ctdb_monitor(ctx: EventContext) -> str | None:
    counter = _counter(ctx)
    if service.check_tcp_ports(service_name(ctx), [_settings(ctx).port]) is None:
        gone = stale_pid(ctx)
        if gone is None:
            counter.reset()
            return None
        # not in 4.17: orphaned workers hold the port, nothing would ever restart them
        ctx.logger.warning("%s: the main process (pid %d, %s) is gone; its workers still listen",
                           service_name(ctx), gone, pid_file(ctx))
    fails = counter.incr()
    if fails == RESTART_AT or fails >= UNHEALTHY_FROM:
        ctx.logger.warning("%s", RESTART_MESSAGE)
        service_stop(ctx)
        service_start(ctx)
        if fails >= UNHEALTHY_FROM:
            return RESTART_MESSAGE
    return None


def pid_file(ctx: EventContext) -> str:
    s = _settings(ctx)
    if s.pid_file:
        return os.path.expandvars(s.pid_file)
    name = service_name(ctx)
    return f"/run/{name}/{name}.pid"


def stale_pid(ctx: EventContext) -> int | None:
    """The pid in the pid file if that process is gone (a SIGKILLed main process leaves
    its pid file, and its workers may still listen); None if it lives or there is no
    pid file."""
    try:
        pid = int(open(pid_file(ctx), encoding="ascii").read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if service.read_pidfile(pid_file(ctx)) is None else None


def daemon_pid(ctx: EventContext) -> int | None:
    """The server's main process on this node: from the pid file, else by name."""
    if os.path.exists(pid_file(ctx)):
        return service.read_pidfile(pid_file(ctx))
    return service.main_pid(service_name(ctx), same_netns=True)


@hookimpl
async def ctdb_watch(ctx: EventContext) -> None:
    pid = await service.watch_daemon(lambda: daemon_pid(ctx), _stops(ctx))
    if pid is None:
        return  # not running: the next monitor event judges that
    await anyio.to_thread.run_sync(_counter(ctx).incr)  # the first failure monitor would have seen
    ctx.report_failure(f"ERROR: {service_name(ctx)} (pid {pid}) exited")
