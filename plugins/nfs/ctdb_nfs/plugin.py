"""Event plugin ``nfs``: 4.17's ``events/legacy/60.nfs.script`` as hooks.

* ``startup``, ``shutdown``: ``callout startup|shutdown``.
* ``takeip IFACE IP BITS``, ``releaseip ...``: the callout with the event's arguments,
  then the service is flagged for reconfiguring.
* ``ipreallocated``: when flagged, "Reconfiguring service ..." — ``statd-callout
  notify`` in the background (lock manager restart and NSM notifies for the addresses
  this node now holds), the flag cleared, the failure counter reset.
* ``monitor``: ``callout monitor-pre``; the exported directories
  (``callout monitor-list-shares``) must exist unless ``CTDB_NFS_SKIP_SHARE_CHECK=yes``;
  ``update_tickles 2049``; ``statd-callout update``; every ``nfs-checks.d`` check
  (:func:`check_service`); ``callout monitor-post``.
* ``ctdb_watch`` (not in 4.17): ganesha.nfsd's exit (pidfd on the pid in its pid file)
  or, for the kernel server, port 2049 refusing connections makes the node UNHEALTHY
  at once; the monitor keeps failing with that reason until the server is back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ctdbcore.plugins import EventContext, hookimpl, service
from ctdbcore.plugins.service import NOT_FOUND, Completed

from ctdb_nfs import checks as nfs_checks
from ctdb_nfs.callout import Callout, env_argv
from ctdb_nfs.common import (
    COMMAND_TIMEOUT,
    expand,
    in_background,
    make_callout,
    run_command,
    service_name,
    settings_of,
    state_dir,
)
from ctdb_nfs.ganesha import GaneshaBackend
from ctdb_nfs.kernel import KernelBackend
from ctdb_nfs.settings import Settings
from ctdb_nfs.tickles import update_tickles

CTDB_ORDER = 60
CTDB_SETTINGS = Settings

NFS_PORT = 2049
RPCINFO_TIMEOUT = 10.0
STATD_TIMEOUT = 30.0
RECONFIGURE_FLAG = "need_reconfigure"
WATCH_FLAG = "watch_failure"


# ------------------------------------------------------------------------ helpers


def _fail(lines: list[str], res: Completed | None = None) -> str | bool:
    if res is not None and res.output:
        lines = [*lines, res.output]
    text = "\n".join(line for line in lines if line)
    return text or False


def _callout_event(ctx: EventContext, event: str, *args: str) -> str | bool | None:
    res = make_callout(ctx).call(event, *args)
    if not res.ok:
        return _fail([], res)
    if res.output:
        ctx.logger.info("%s", res.output)
    return None


def checks_dir(s: Settings) -> Path:
    if s.checks_dir:
        return Path(expand(s.checks_dir))
    if s.nfs_callout:
        return Path(os.environ.get("CTDB_BASE", "/etc/ctdb")) / "nfs-checks.d"
    return nfs_checks.shipped_dir(s.backend)


def statd_argv(ctx: EventContext, s: Settings, callout: Callout, command: str) -> tuple[str, ...] | None:
    """``statd-callout COMMAND`` as the plugin runs it; None when it is not installed
    (4.17 skips it unless ``$CTDB_BASE/statd-callout`` is executable)."""
    prog = s.statd_callout
    if shutil.which(prog) is None and not os.access(prog, os.X_OK):
        return None
    env = {}
    if callout.program:
        env["CTDB_NFS_CALLOUT"] = callout.program
    if s.nfs_hostname:
        env["NFS_HOSTNAME"] = s.nfs_hostname
    argv = [prog, "--state-dir", str(state_dir(ctx) / "statd-callout")]
    if callout.backend:
        argv += ["--nfs-backend", callout.backend]
    return env_argv(env, (*argv, command))


def rpc_check(ctx: EventContext, s: Settings, check: nfs_checks.Check) -> str | None:
    """4.17 ``nfs_check_rpcinfo``: every family × version; the error of the first failure."""
    for family in check.family:
        host = s.rpcinfo_localhost6 if family in ("tcp6", "udp6") else s.rpcinfo_localhost
        for version in check.version or (None,):
            argv = ("rpcinfo", "-T", family, host, check.progname, *((version,) if version else ()))
            res = ctx.runner.run(argv, timeout=RPCINFO_TIMEOUT)
            if not res.ok:
                detail = res.output
                if res.returncode == NOT_FOUND:
                    detail = service.missing_program("rpcinfo", "rpcbind") or detail
                return f"{check.progname} failed RPC check:\n{detail}"
    return None


def check_service(ctx: EventContext, s: Settings, callout: Callout, check: nfs_checks.Check,
                  out: list[str]) -> bool:
    """One ``nfs-checks.d`` file (4.17 ``nfs_check_service``); False = unhealthy.
    Lines for the monitor's output are appended to ``out``."""
    if check.service_check_cmd:
        res = run_command(ctx, callout, check.service_check_cmd)
        if res.output:
            out.append(res.output)
        err = None if res.ok else f'monitoring service "{check.progname}" failed'
    else:
        err = rpc_check(ctx, s, check)
    counter = service.FailureCounter(state_dir(ctx), check.progname)
    if err is None:
        if check.counted:
            counter.reset()
        return True
    count = counter.incr()
    verdict = service.judge_failure(count, restart_every=check.restart_every, unhealthy_after=check.unhealthy_after)
    if verdict.unhealthy:
        out.append(f"ERROR: {err}")
    if verdict.restart:
        if not verdict.unhealthy:
            out.append(f"WARNING: {err}")
        if not restart_service(ctx, callout, check, out):
            return False
    return not verdict.unhealthy


def restart_service(ctx: EventContext, callout: Callout, check: nfs_checks.Check, out: list[str]) -> bool:
    """4.17 ``nfs_restart_service``: stop, debug, start in the background."""
    if not check.service_stop_cmd or not check.service_start_cmd:
        out.append(f'ERROR: Can not restart service "{check.progname}" without corresponding '
                   "service_start_cmd/service_stop_cmd settings")
        return False
    out.append(f'Trying to restart service "{check.progname}"...')
    res = run_command(ctx, callout, check.service_stop_cmd)
    if res.output:
        out.append(res.output)
    if check.service_debug_cmd:
        res = run_command(ctx, callout, check.service_debug_cmd)
        if res.output:
            out.append(res.output)
    start = check.service_start_cmd
    in_background(ctx, f"60.nfs {check.progname} start", lambda: run_command(ctx, callout, start))
    return True


def check_services(ctx: EventContext, s: Settings, callout: Callout, out: list[str]) -> bool:
    """4.17 ``nfs_check_services``: each check file in name order; stop at the first
    unhealthy one or bad file."""
    for path in nfs_checks.check_files(checks_dir(s)):
        try:
            check = nfs_checks.parse_check(path)
        except nfs_checks.CheckFileError as exc:
            out.append(str(exc))
            return False
        if not check_service(ctx, s, callout, check, out):
            return False
    return True


def server_back(callout: Callout) -> bool:
    if isinstance(callout, GaneshaBackend):
        return callout.running_pid() is not None
    return service.tcp_port_listening(NFS_PORT)


# -------------------------------------------------------------------------- hooks


@hookimpl
def ctdb_startup(ctx: EventContext) -> str | bool | None:
    return _callout_event(ctx, "startup")


@hookimpl
def ctdb_shutdown(ctx: EventContext) -> str | bool | None:
    return _callout_event(ctx, "shutdown")


def _ip_event(ctx: EventContext, event: str, iface: str, ip: str, maskbits: int) -> str | bool | None:
    failed = _callout_event(ctx, event, iface, ip, str(maskbits))
    if failed is not None:
        return failed
    (state_dir(ctx) / RECONFIGURE_FLAG).touch()
    return None


@hookimpl
def ctdb_takeip(ctx: EventContext, iface: str, ip: str, maskbits: int) -> str | bool | None:
    return _ip_event(ctx, "takeip", iface, ip, maskbits)


@hookimpl
def ctdb_releaseip(ctx: EventContext, iface: str, ip: str, maskbits: int) -> str | bool | None:
    return _ip_event(ctx, "releaseip", iface, ip, maskbits)


@hookimpl
def ctdb_ipreallocated(ctx: EventContext) -> None:
    flag = state_dir(ctx) / RECONFIGURE_FLAG
    if not flag.exists():
        return None
    s = settings_of(ctx)
    ctx.logger.info('Reconfiguring service "%s"...', service_name(s))
    flag.unlink(missing_ok=True)
    argv = statd_argv(ctx, s, make_callout(ctx, s), "notify")
    if argv is not None:
        in_background(ctx, "statd-callout notify", lambda: ctx.runner.run(argv, timeout=STATD_TIMEOUT * 2))
    service.FailureCounter(state_dir(ctx)).reset()
    return None


@hookimpl
def ctdb_monitor(ctx: EventContext) -> str | bool | None:
    s = settings_of(ctx)
    callout = make_callout(ctx, s)
    out: list[str] = []

    res = callout.call("monitor-pre")
    if not res.ok:
        return _fail(out, res)

    if not s.skip_share_check:
        res = callout.call("monitor-list-shares")
        if res.stderr.strip():
            out.append(res.stderr.strip())
        err = service.check_directories(service_name(s), res.stdout.splitlines())
        if err:
            return _fail([*out, err])

    update_tickles(ctx.runner, ctx.pnn, NFS_PORT, ctx.logger)

    argv = statd_argv(ctx, s, callout, "update")
    if argv is not None:
        res = ctx.runner.run(argv, timeout=STATD_TIMEOUT)
        if not res.ok:
            ctx.logger.warning("statd-callout update failed: %s", res.output)

    if not check_services(ctx, s, callout, out):
        return _fail(out)

    flag = state_dir(ctx) / WATCH_FLAG
    if flag.exists():
        if server_back(callout):
            flag.unlink(missing_ok=True)
        else:
            reason = flag.read_text().strip()
            return _fail([*out, reason])

    res = callout.call("monitor-post")
    if not res.ok:
        return _fail(out, res)
    if res.output:
        out.append(res.output)
    if out:
        ctx.logger.info("%s", "\n".join(out))
    return None


@hookimpl
async def ctdb_watch(ctx: EventContext) -> None:
    s = settings_of(ctx)
    callout = make_callout(ctx, s)
    if isinstance(callout, GaneshaBackend):
        pid = callout.running_pid()
        if pid is None:
            return  # not running: the next monitor event says so
        await service.wait_for_exit(pid)
        reason = f"ERROR: NFS Ganesha (pid {pid}) exited"
    elif isinstance(callout, KernelBackend):
        if not service.tcp_port_listening(NFS_PORT):
            return
        reason = "ERROR: nfs: " + await service.wait_until_unresponsive(s.rpcinfo_localhost, NFS_PORT)
    else:
        return  # an external callout: only its checks know what to watch
    (state_dir(ctx) / WATCH_FLAG).write_text(reason + "\n")
    ctx.report_failure(reason)
