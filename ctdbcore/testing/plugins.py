"""Test kit for event plugins: a hook recorder, a recording command runner, and a
harness that runs one plugin's events as ctdbd would, without a daemon."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs

from ctdbcore.config.errors import ConfigErrors
from ctdbcore.config.plugin_settings import Inputs, load_plugin_settings, settings_class
from ctdbcore.plugins.context import EventContext
from ctdbcore.plugins.enablement import script_name
from ctdbcore.plugins.manager import make_plugin_manager
from ctdbcore.plugins.runner import EventRun, run_event
from ctdbcore.plugins.service import Completed


@attrs.define
class HookCall:
    name: str
    plugins: list[str]
    kwargs: dict
    outcome: object = None
    exception: BaseException | None = None


@attrs.define
class HookRecorder:
    """Records hook calls through ``add_hookcall_monitoring`` (like pytester's)."""

    calls: list[HookCall] = attrs.Factory(list)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def before(self, hook_name, impls, kwargs) -> None:
        with self._lock:
            self.calls.append(HookCall(hook_name, [i.plugin_name for i in impls], dict(kwargs)))

    def after(self, outcome, hook_name, impls, kwargs) -> None:
        with self._lock:
            for call in reversed(self.calls):
                if call.name == hook_name and call.plugins == [i.plugin_name for i in impls]:
                    call.exception = outcome.exception
                    call.outcome = None if outcome.exception else outcome.get_result()
                    break

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def plugins_called(self, hook_name: str) -> list[str]:
        return [p for c in self.calls if c.name == hook_name for p in c.plugins]


Matcher = Callable[[tuple[str, ...]], bool]


def _matcher(match: Sequence[str] | Matcher) -> Matcher:
    if callable(match):
        return match
    prefix = tuple(match)
    return lambda argv: argv[: len(prefix)] == prefix


class RecordingRunner:
    """A :class:`~ctdbcore.plugins.service.CommandRunner` that runs nothing.

    Every command is recorded in :attr:`calls`; the answer is the newest rule added
    with :meth:`respond` whose match fits (an argv prefix or a predicate), else exit
    status 0 with no output. A rule's answer may be a callable of the argv, for
    commands whose answer changes (a service that dies after its second check).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self._rules: list[tuple[Matcher, Callable[[tuple[str, ...]], Completed]]] = []
        self._lock = threading.Lock()

    def respond(self, match: Sequence[str] | Matcher, returncode: int = 0, stdout: str = "",
                stderr: str = "", *, answer: Callable[[tuple[str, ...]], Completed] | None = None) -> None:
        fn = answer or (lambda argv: Completed(argv, returncode, stdout, stderr))
        with self._lock:
            self._rules.append((_matcher(match), fn))

    def run(self, argv: Sequence[str], *, timeout: float | None = None, input: str | None = None) -> Completed:
        args = tuple(argv)
        with self._lock:
            self.calls.append(args)
            rules = list(reversed(self._rules))
        for match, fn in rules:
            if match(args):
                return fn(args)
        return Completed(args, 0)

    def commands(self, program: str | None = None) -> list[tuple[str, ...]]:
        """The recorded argvs (only those of ``program`` when given)."""
        with self._lock:
            return [c for c in self.calls if program is None or c[0] == program or c[0].endswith("/" + program)]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


class PluginHarness:
    """One event plugin in a real plugin manager, run as ctdbd runs it.

    :param plugin: the plugin module or object.
    :param name: its registration name (its ctdb.conf section).
    :param base: a directory for the run, var and etc directories.
    :param settings: ctdb.conf-style values for the plugin's section, key → text
        (``{"port": "2121"}`` or ``{"skip share check": "yes"}``), parsed exactly as
        ctdbd parses them; :class:`ConfigErrors` if ctdbd would refuse them.
    :param options: 4.17-style variables for its ``NN.name.options`` file.
    :param config: what ``ctx.config`` holds (ctdbd: the node's ``Config``).
    :param runner: the command runner (default: a new :class:`RecordingRunner`).
    """

    def __init__(self, plugin: object, name: str, base: Path, *, settings: Mapping[str, str] | None = None,
                 options: Mapping[str, str] | None = None, config: Any = None, pnn: int = 0,
                 runner: Any = None, timeout: float = 30.0) -> None:
        self.plugin, self.name, self.base = plugin, name, Path(base)
        self.timeout = timeout
        self.runner = runner if runner is not None else RecordingRunner()
        self.pm = make_plugin_manager(load_entrypoints=False)
        self.pm.register_checked(plugin, name)
        self.recorder = HookRecorder()
        self.pm.add_hookcall_monitoring(self.recorder.before, self.recorder.after)
        self.reports: list[tuple[str, str]] = []
        self.script = script_name(name, plugin)
        etc = self.base / "etc"
        (etc / "events" / "legacy").mkdir(parents=True, exist_ok=True)
        if options:
            lines = "".join(f"{k}={_shell_quote(v)}\n" for k, v in options.items())
            (etc / "events" / "legacy" / f"{self.script}.options").write_text(lines)
        section = {key.replace("_", " "): (text, i + 1) for i, (key, text) in enumerate((settings or {}).items())}
        inputs = Inputs(options_dir=str(etc / "events" / "legacy"),
                        sections={name: ("ctdb.conf", section, 0)} if section else {})
        loaded, errors = load_plugin_settings(name, self.script, settings_class(plugin), inputs)
        if errors:
            raise ConfigErrors(errors)
        self.settings = loaded.values
        self.ctx = EventContext(pnn=pnn, event="init", config=config, logger=logging.getLogger("ctdb.plugins"),
                                rundir=self.base / "run", script_vardir=self.base / "var" / "scripts",
                                all_settings={name: loaded.values}, runner=self.runner,
                                reporter=lambda plugin, reason: self.reports.append((plugin, reason)))

    @property
    def plugin_ctx(self) -> EventContext:
        """The context the plugin's hooks get (for calling a helper of it directly)."""
        return self.ctx.for_plugin(self.name)

    async def arun(self, event: str, **args: Any) -> EventRun:
        return await run_event(self.pm, event, timeout=self.timeout, ctx=self.ctx, args=args)

    def run(self, event: str, **args: Any) -> EventRun:
        """Run one event (``harness.run("takeip", iface="eth1", ip="10.0.0.1", maskbits=24)``)."""
        return anyio.run(lambda: self.arun(event, **args))

    def output(self, event: str, **args: Any) -> tuple[int, str]:
        """(status, output) of one event run: (0, "") on success."""
        run = self.run(event, **args)
        failed = run.failed_result
        return run.status, failed.output if failed is not None else ""


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)
