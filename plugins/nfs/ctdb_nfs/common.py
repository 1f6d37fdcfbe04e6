"""What 60.nfs and 06.nfs share: the state directory and the callout."""

from __future__ import annotations

import os
import shlex
import threading
from pathlib import Path

from ctdbcore.plugins import EventContext, service
from ctdbcore.plugins.service import Completed

from ctdb_nfs import ganesha, kernel
from ctdb_nfs.callout import CALLOUT_REFS, Callout, ExternalCallout, env_argv
from ctdb_nfs.settings import Settings

#: Bound on a check's or a restart's shell command.
COMMAND_TIMEOUT = 25.0

_background: list[threading.Thread] = []
_bg_lock = threading.Lock()


def settings_of(ctx: EventContext) -> Settings:
    """60.nfs's settings (06.nfs reads 60.nfs's options in 4.17), else the caller's own."""
    s = ctx.all_settings.get("nfs") if ctx.plugin != "nfs" else None
    s = s or ctx.settings
    return s if s is not None else Settings()


def state_dir(ctx: EventContext) -> Path:
    """One directory for both scripts (4.17: ``$CTDB_SCRIPT_VARDIR/service/<name>``)."""
    path = ctx.script_vardir / "nfs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_env(s: Settings) -> dict[str, str]:
    env = {}
    if s.state_fs_type:
        env["CTDB_NFS_STATE_FS_TYPE"] = s.state_fs_type
    if s.state_mnt:
        env["CTDB_NFS_STATE_MNT"] = s.state_mnt
    return env


def expand(value: str | None) -> str | None:
    """A path setting with ``$VARIABLES`` of ctdbd's environment expanded
    (``$CTDB_BASE/nfs/ganesha.conf``: one ctdb.conf line for nodes with their own
    ``CTDB_BASE``); unknown variables are left as they are."""
    return os.path.expandvars(value) if value else value


def make_callout(ctx: EventContext, s: Settings | None = None) -> Callout:
    """``CTDB_NFS_CALLOUT`` if set, else the built-in backend the settings choose."""
    s = s or settings_of(ctx)
    sd = state_dir(ctx)
    if s.nfs_callout:
        return ExternalCallout(s.nfs_callout, ctx.runner, sd, extra_env=state_env(s))
    if s.backend == "ganesha":
        return ganesha.GaneshaBackend(ctx.runner, sd, service_name=s.service_name, start_cmd=s.start_command,
                                      stop_cmd=s.stop_command, config_file=expand(s.exports_file),
                                      pid_file=expand(s.ganesha_pid_file),
                                      dbus_address=expand(s.ganesha_dbus_address),
                                      grace_period=s.ganesha_grace_period, procfs=s.procfs_path)
    return kernel.KernelBackend(ctx.runner, sd, service_name=s.service_name, start_cmd=s.start_command,
                                stop_cmd=s.stop_command, exports_file=expand(s.exports_file), procfs=s.procfs_path)


def service_name(s: Settings) -> str:
    """4.17's ``$service_name`` (in messages)."""
    if s.service_name:
        return s.service_name
    return ganesha.NAME if (s.backend == "ganesha" and not s.nfs_callout) else kernel.NAME


def run_command(ctx: EventContext, callout: Callout, command: str, timeout: float = COMMAND_TIMEOUT) -> Completed:
    """Run a .check file's command as 4.17 ``eval``\\ s it: a command that starts with
    ``$CTDB_NFS_CALLOUT`` goes to the callout (in-process for a built-in backend),
    ``program_stack_traces PROG [N]`` is answered here, anything else runs in ``sh -c``
    with ``CTDB_NFS_CALLOUT`` and ``CTDB_NFS_CALLOUT_STATE_DIR`` in its environment."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    if words and words[0] in CALLOUT_REFS and len(words) > 1 and not any(c in command for c in ";&|`\n"):
        return callout.call(*words[1:])
    if words and words[0] == "program_stack_traces" and len(words) in (2, 3) and not any(c in command for c in ";&|`\n"):
        n = int(words[2]) if len(words) == 3 and words[2].isdigit() else 1
        return Completed(tuple(words), 0, service.stack_traces(words[1], n))
    env = callout.env() or {"CTDB_NFS_CALLOUT": callout.program,
                            "CTDB_NFS_CALLOUT_STATE_DIR": str(state_dir(ctx) / "callout-state")}
    return ctx.runner.run(env_argv(env, service.shell(command)), timeout=timeout)


def in_background(ctx: EventContext, what: str, fn) -> threading.Thread:
    """4.17's ``background_with_logging``: run ``fn()`` (which returns a Completed) in a
    thread; its output is logged as ``<what>&``."""
    log = ctx.logger

    def body() -> None:
        try:
            res = fn()
        except Exception:  # noqa: BLE001 - a background job must not take anything down
            log.exception("%s& failed", what)
            return
        if res is not None and res.output:
            log.info("%s&: %s", what, res.output)

    t = threading.Thread(target=body, name=f"nfs-{what}", daemon=True)
    with _bg_lock:
        _background[:] = [b for b in _background if b.is_alive()]
        _background.append(t)
    t.start()
    return t


def wait_background(timeout: float = 10.0) -> None:
    """Wait for the background jobs (tests)."""
    with _bg_lock:
        jobs = list(_background)
    for t in jobs:
        t.join(timeout)


def make_backend_standalone(backend: str, runner) -> Callout:
    """A built-in backend with default settings, outside ctdbd (statd-callout)."""
    sd = Path(os.environ.get("CTDB_SCRIPT_VARDIR") or "/var/lib/ctdb/scripts") / "nfs"
    if backend == "ganesha":
        return ganesha.GaneshaBackend(runner, sd)
    return kernel.KernelBackend(runner, sd)
