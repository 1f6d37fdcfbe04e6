"""The NFS callout interface of 4.17 (``nfs_callout_init``, ``nfs_callout_register``,
``nfs_callout`` in ``$CTDB_BASE/functions``).

60.nfs and 06.nfs do nothing NFS-specific themselves: they call a *callout* with an
event and its arguments (``startup``, ``shutdown``, ``takeip IFACE IP BITS``,
``releaseip ...``, ``takeip-pre ...``, ``releaseip-pre ...``, ``monitor-pre``,
``monitor-list-shares``, ``monitor-post``, ``stop SERVICE``, ``start SERVICE``,
``check SERVICE``, ``register``). ``CTDB_NFS_CALLOUT`` names an external program run
exactly as 4.17 runs it; without it a built-in backend (:mod:`ctdb_nfs.kernel`,
:mod:`ctdb_nfs.ganesha`) answers the same events in Python.

Registration as 4.17: the first call (and any call after ``CTDB_NFS_CALLOUT``
changed) runs ``callout register``; the operations it prints, one a line, are the
only ones called afterwards; empty output means all of them. The answer is cached in
the state directory (``nfs_callout_cache/``) so it survives ctdbd restarts.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from ctdbcore.plugins.service import Completed, CommandRunner

#: Bound on one callout command (4.17 has only the event's 30 s).
CALLOUT_TIMEOUT = 25.0

#: Events every callout may be called with.
EVENTS = ("startup", "shutdown", "takeip", "releaseip", "takeip-pre", "releaseip-pre", "monitor-pre",
          "monitor-post", "monitor-list-shares", "stop", "start", "check", "register")

#: How a .check file's command names the callout.
CALLOUT_REFS = ("$CTDB_NFS_CALLOUT", "${CTDB_NFS_CALLOUT}")


def env_argv(env: Mapping[str, str], argv: Sequence[str]) -> tuple[str, ...]:
    """argv that runs ``argv`` with ``env`` added (``env K=V ... argv``)."""
    if not env:
        return tuple(argv)
    return ("env", *(f"{k}={v}" for k, v in env.items()), *argv)


class Callout:
    """What 60.nfs calls. :meth:`call` returns a Completed: exit status and output."""

    #: the value of ``$CTDB_NFS_CALLOUT`` for commands of .check files and statd-callout
    program: str = ""
    #: the built-in backend's name, or "" for an external callout
    backend: str = ""

    def call(self, event: str, *args: str) -> Completed:  # pragma: no cover - interface
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}


class ExternalCallout(Callout):
    """A ``CTDB_NFS_CALLOUT`` program, with 4.17's registration cache."""

    def __init__(self, program: str, runner: CommandRunner, state_dir: Path, *,
                 extra_env: Mapping[str, str] | None = None, timeout: float = CALLOUT_TIMEOUT) -> None:
        self.program = program
        self.runner = runner
        self.state_dir = Path(state_dir)
        self.cache = self.state_dir / "nfs_callout_cache"
        self.timeout = timeout
        self._env = {"CTDB_NFS_CALLOUT": program,
                     "CTDB_NFS_CALLOUT_STATE_DIR": str(self.state_dir / "callout-state"),
                     **(extra_env or {})}

    def env(self) -> dict[str, str]:
        return dict(self._env)

    def _run(self, event: str, *args: str) -> Completed:
        return self.runner.run(env_argv(self._env, (self.program, event, *args)), timeout=self.timeout)

    def register(self) -> None:
        ops = self.cache / "ops"
        ops.mkdir(parents=True, exist_ok=True)
        for old in ops.iterdir():
            old.unlink()
        (self.cache / "CTDB_NFS_CALLOUT").write_text(self.program + "\n")
        listed = [line for line in self._run("register").stdout.splitlines() if line]
        for op in listed or ["ALL"]:
            if "/" not in op and op not in (".", ".."):
                (ops / op).touch()

    def registered(self, event: str) -> bool:
        try:
            prev = (self.cache / "CTDB_NFS_CALLOUT").read_text().rstrip("\n")
        except OSError:
            prev = None
        if prev != self.program:
            self.register()
        ops = self.cache / "ops"
        return (ops / "ALL").exists() or ("/" not in event and (ops / event).exists())

    def call(self, event: str, *args: str) -> Completed:
        if not self.registered(event):
            return Completed((self.program, event, *args), 0)
        return self._run(event, *args)


def usage(name: str, lines: str) -> Completed:
    return Completed((name,), 1, f"usage: {name} {lines}\n")


def read_shell_config(path: str | os.PathLike[str]) -> dict[str, str]:
    """``KEY=value`` assignments of a sourced config file (``/etc/default/...``),
    as far as they can be read without a shell: quotes removed, no expansion."""
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export "):].strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if not key.isidentifier():
            continue
        try:
            words = shlex.split(value, comments=True)
        except ValueError:
            continue
        values[key] = " ".join(words)
    return values
