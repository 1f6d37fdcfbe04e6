"""smbd managed by ctdbd: 4.17's ``50.samba`` as an event plugin (entry point ``samba``).

As 4.17:

* ``startup``: stop the service, kill leftover smbd processes (after 1 s), start it
  (``nice``); failure → "Failed to start samba" and startup is retried.
* ``shutdown``: stop it and log up to 5 kernel stacks of smbd processes still there.
* ``monitor``: refresh the cached ``testparm -v -s`` (timeout 10 s; on failure or
  timeout the old cache is used with a warning; with no cache the node is unhealthy);
  check that something listens on ``CTDB_SAMBA_CHECK_PORTS`` or else ``smb ports``
  ("samba not listening on TCP port N"); unless ``CTDB_SAMBA_SKIP_SHARE_CHECK=yes``,
  every share path must be a directory.
* nothing on takeip/releaseip/ipreallocated (10.interface kills connections; smbd
  itself reacts to RELEASE_IP).

Better than 4.17 (each can be switched off):

* ``startup`` waits up to ``start wait`` seconds until smbd listens, so the first
  monitor event does not find a half-started smbd and mark the node unhealthy;
* ``monitor`` also asks smbd an SMB2 NEGOTIATE (``probe``): a hung smbd, whose port
  the kernel still accepts, makes the node unhealthy;
* ``ctdb_watch`` waits on smbd's main process (pidfd) and probes it every
  ``probe interval`` seconds: a killed or hung smbd makes the node UNHEALTHY at once,
  not at the next monitor event.
* leftover smbds are killed only in ctdbd's own network namespace.
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import anyio
import attrs

from ctdb_samba import probe, smbconf
from ctdbcore.plugins import EventContext, hookimpl, service, setting

CTDB_ORDER = 50
PROGRAM = "smbd"
SERVICE_NAME = "samba"  # what 4.17's messages call it


@attrs.frozen
class Settings:
    """``[samba]`` in ctdb.conf, or 4.17's variables in script.options / 50.samba.options."""

    service_name: str = setting("smbd", var="CTDB_SERVICE_SMB", help="init system name of smbd")
    check_ports: tuple[int, ...] = setting(
        (), var="CTDB_SAMBA_CHECK_PORTS", parse=service.parse_ports,
        help="TCP ports monitor checks (default: smb.conf's smb ports)")
    skip_share_check: bool = setting(False, var="CTDB_SAMBA_SKIP_SHARE_CHECK",
                                     help="do not check that share paths exist")
    smb_conf: str | None = setting(None, help="smb.conf for testparm (default: Samba's own); $VARIABLES of "
                                   "ctdbd's environment are expanded ($CTDB_BASE/smb.conf)")
    testparm: str = setting("testparm", help="the testparm program")
    testparm_timeout: int = setting(10, help="seconds testparm may take")
    start_command: str | None = setting(None, help="shell command that starts smbd (default: the init system)")
    stop_command: str | None = setting(None, help="shell command that stops smbd (default: the init system)")
    start_wait: int = setting(10, help="seconds startup waits for smbd to listen (0: do not wait, as 4.17)")
    probe: bool = setting(True, help="monitor asks smbd an SMB2 NEGOTIATE (4.17 checks the port only)")
    probe_address: str = setting("127.0.0.1", help="where the probe and the watcher connect")
    probe_timeout: int = setting(5, help="seconds smbd has to answer the probe (asked twice before it counts)")
    probe_interval: int = setting(1, help="seconds between the watcher's probes (0: pidfd only)")
    watch: bool = setting(True, help="report a dead or hung smbd at once (ctdb_watch)")


CTDB_SETTINGS = Settings


def _service(ctx: EventContext) -> service.Service:
    s: Settings = ctx.settings
    return service.Service(s.service_name, runner=ctx.runner, start_cmd=s.start_command,
                           stop_cmd=s.stop_command, nice=True)


def _cache(ctx: EventContext) -> Path:
    return ctx.state_dir / "smb.conf.cache"


def refresh_cache(ctx: EventContext) -> tuple[bool, str | None]:
    """4.17's ``testparm_foreground_update``: (cache is fresh, failure text or None).

    A failure text means there is no cache to fall back on (the node is unhealthy);
    (False, None) means the old cache is used (a warning is logged)."""
    s: Settings = ctx.settings
    cache = _cache(ctx)
    argv = [s.testparm, "-v", "-s"] + ([os.path.expandvars(s.smb_conf)] if s.smb_conf else [])
    done = ctx.runner.run(argv, timeout=s.testparm_timeout)
    if done.returncode == 0:
        smbconf.write_cache(cache, done.stdout)
        return True, None
    timed_out = done.returncode == service.TIMED_OUT
    if cache.exists():
        what = "timed out" if timed_out else "failed"
        ctx.logger.warning("WARNING: smb.conf cache update %s - using old cache file%s", what,
                           "" if timed_out else f"\n{done.stderr.rstrip()}")
        return False, None
    if timed_out:
        return False, "ERROR: smb.conf cache create failed - testparm command timed out"
    return False, f"ERROR: smb.conf cache create failed - testparm failed with:\n{done.stderr.rstrip()}"


def _conf(ctx: EventContext) -> dict[str, dict[str, str]]:
    try:
        return smbconf.parse(_cache(ctx).read_text(errors="replace"))
    except OSError:
        return {}


def ports(ctx: EventContext, conf: dict[str, dict[str, str]]) -> list[int]:
    return list(ctx.settings.check_ports) or smbconf.smb_ports(conf)


def main_pid(ctx: EventContext) -> int | None:
    """smbd's main process, from its pid file in smb.conf's pid directory (smbd names
    it ``smbd.pid``, or ``smbd-<conf file>.pid`` with a non-default smb.conf)."""
    pid_dir = smbconf.pid_directory(_conf(ctx))
    for path in sorted(glob.glob(os.path.join(pid_dir, "smbd*.pid"))):
        pid = service.read_pidfile(path)
        if pid is not None:
            return pid
    return None


@hookimpl
def ctdb_startup(ctx: EventContext) -> str | None:
    s: Settings = ctx.settings
    if s.start_command is None:
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
        return f"Failed to start samba\n{started.output}".rstrip()
    if s.start_wait <= 0:
        return None
    fresh, failure = refresh_cache(ctx)
    if failure:
        return failure
    wanted = ports(ctx, _conf(ctx))
    deadline = time.monotonic() + s.start_wait
    while True:
        problem = service.check_tcp_ports(SERVICE_NAME, wanted)
        if problem is None:
            return None
        if time.monotonic() > deadline:
            return f"ERROR: smbd started but {problem} after {s.start_wait} s"
        time.sleep(0.1)


@hookimpl
def ctdb_shutdown(ctx: EventContext) -> str | None:
    stopped = _service(ctx).stop()
    traces = service.stack_traces(PROGRAM, 5)
    if traces:
        ctx.logger.warning("%s", traces)
    if not stopped.ok:
        return stopped.output or None
    return None


@hookimpl
def ctdb_monitor(ctx: EventContext) -> str | None:
    s: Settings = ctx.settings
    _fresh, failure = refresh_cache(ctx)
    if failure:
        return failure
    conf = _conf(ctx)
    wanted = ports(ctx, conf)
    if not wanted:
        return "Failed to set smb ports"
    problem = service.check_tcp_ports(SERVICE_NAME, wanted)
    if problem:
        return problem
    if not s.skip_share_check:
        problem = service.check_directories(SERVICE_NAME, smbconf.share_paths(conf))
        if problem:
            return problem
    if s.probe:
        # Twice: one slow answer on a loaded machine is no hung smbd.
        problem = probe.answers(s.probe_address, wanted[0], s.probe_timeout)
        if problem:
            problem = probe.answers(s.probe_address, wanted[0], s.probe_timeout)
        if problem:
            return f"ERROR: smbd does not answer: {problem}"
    return None


@hookimpl
async def ctdb_watch(ctx: EventContext) -> None:
    s: Settings = ctx.settings
    if not s.watch:
        return
    pid = await anyio.to_thread.run_sync(main_pid, ctx)
    if pid is None:
        return  # not running: the next monitor event says why
    wanted = ports(ctx, await anyio.to_thread.run_sync(_conf, ctx))
    reason: list[str] = []
    async with anyio.create_task_group() as tg:
        async def died() -> None:
            await service.wait_for_exit(pid)
            reason.append(f"ERROR: smbd (pid {pid}) exited")
            tg.cancel_scope.cancel()

        async def hung() -> None:
            missed = 0
            while s.probe and s.probe_interval > 0 and wanted:
                await anyio.sleep(s.probe_interval)
                problem = await anyio.to_thread.run_sync(probe.answers, s.probe_address, wanted[0],
                                                         s.probe_timeout, abandon_on_cancel=True)
                missed = missed + 1 if problem else 0
                if missed >= 2:
                    reason.append(f"ERROR: smbd does not answer: {problem}")
                    tg.cancel_scope.cancel()

        tg.start_soon(died)
        tg.start_soon(hung)
    if reason:
        ctx.report_failure(reason[0])
