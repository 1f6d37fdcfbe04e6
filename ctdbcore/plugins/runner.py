"""Running one event over the event plugins, with 4.17 eventd semantics.

* Plugins run one after the other in ``(CTDB_ORDER, name)`` order, never concurrently.
* The run stops at the first failure (4.17 runs the ``legacy`` component with
  ``flags = 0``); the run's status is the failing plugin's status.
* ``timeout`` is the budget of the whole run (``EventScriptTimeout``, 4.17 passes it in
  every run request); each plugin gets what is left of it. A plugin that overruns is
  recorded ``TIMEDOUT`` and the run stops.
* Each plugin is isolated: its exception is caught and recorded ``ERROR``; a sync
  implementation runs in a daemon thread of its own (never anyio's shared thread
  limiter), and is abandoned if it hangs, so neither the event loop nor shutdown wait
  for it; an ``async def`` implementation is awaited under ``anyio.fail_after``.
* A plugin disabled by configuration is recorded ``DISABLED`` and does not stop the run.

Each implementation is called through pluggy (a one-plugin subset hook caller), so
``add_hookcall_monitoring`` and opt-in arguments work as for any pluggy call.

Status values are those of 4.17's ``struct ctdb_event_script``: the exit status (0 or
1 here), ``-ETIMEDOUT`` for TIMEDOUT, ``-ENOEXEC`` for DISABLED, another negative errno
for CANNOT RUN.
"""

from __future__ import annotations

import contextvars
import errno
import inspect
import logging
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any, Literal

import anyio
import anyio.from_thread
import anyio.lowlevel
import attrs
import cattrs
import pluggy

from ctdbcore.hookspecs import EVENT_ARGS, hook_name
from ctdbcore.plugins.context import EventContext

log = logging.getLogger("ctdb.plugins")

State = Literal["OK", "ERROR", "TIMEDOUT", "DISABLED", "CANNOT RUN"]

STATUS_TIMEDOUT = -errno.ETIMEDOUT
STATUS_DISABLED = -errno.ENOEXEC


@attrs.frozen
class ScriptResult:
    """The outcome of one plugin in one event run (one line of ``ctdb event status``).

    :ivar name: the plugin name.
    :ivar status: 0 = OK; > 0 = failed (ERROR); ``-ETIMEDOUT``; ``-ENOEXEC`` (DISABLED);
        other negative errno = CANNOT RUN.
    :ivar state: the status as a word.
    :ivar start: wall-clock start, seconds since the epoch.
    :ivar end: wall-clock end.
    :ivar output: what the plugin reported on failure.
    """

    name: str
    status: int
    state: State
    start: float
    end: float
    output: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


@attrs.frozen
class EventRun:
    """The outcome of one event run: the plugins that ran, in order.

    :ivar event: the event name.
    :ivar results: one :class:`ScriptResult` per plugin that ran (or was disabled);
        plugins after a failure do not appear, as in 4.17.
    :ivar status: 0, or the status of the failing plugin.
    :ivar start: wall-clock start of the run.
    :ivar end: wall-clock end of the run.
    """

    event: str
    results: tuple[ScriptResult, ...]
    status: int
    start: float
    end: float

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def timed_out(self) -> bool:
        return self.status == STATUS_TIMEDOUT

    @property
    def failed_result(self) -> ScriptResult | None:
        for result in self.results:
            if result.status not in (0, STATUS_DISABLED):
                return result
        return None


#: Converter for :class:`EventRun` / :class:`ScriptResult` to and from JSON-able dicts.
converter = cattrs.Converter()


def _state_for(status: int) -> State:
    if status == 0:
        return "OK"
    if status == STATUS_TIMEDOUT:
        return "TIMEDOUT"
    if status == STATUS_DISABLED:
        return "DISABLED"
    if status < 0:
        return "CANNOT RUN"
    return "ERROR"


def _interpret(value: Any) -> tuple[int, str]:
    """Map a hook's return value to (status, output) per the return contract."""
    if value is None or value is True:
        return 0, ""
    if value is False:
        return 1, ""
    if isinstance(value, str):
        return 1, value.rstrip("\n")
    return 1, f"invalid return value {value!r} (expected None, True, False or a str)"


def _first(results: Any) -> Any:
    # A one-implementation pluggy call returns [] (None) or [value].
    if isinstance(results, list):
        return results[0] if results else None
    return results


async def _call_sync_in_thread(caller: pluggy.HookCaller, kwargs: dict[str, Any],
                               timeout: float, thread_name: str) -> Any:
    """Call ``caller(**kwargs)`` in a fresh daemon thread; give up after ``timeout``.

    :raises TimeoutError: the call did not finish in time (the thread is abandoned).
    """
    done = anyio.Event()
    box: dict[str, Any] = {}
    token = anyio.lowlevel.current_token()
    context = contextvars.copy_context()

    def work() -> None:
        try:
            box["value"] = context.run(caller, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - recorded, re-raised in the loop
            box["exc"] = exc
        finally:
            try:
                anyio.from_thread.run_sync(done.set, token=token)
            except Exception:  # the loop has gone away: nobody is waiting any more
                pass

    thread = threading.Thread(target=work, name=thread_name, daemon=True)
    thread.start()
    with anyio.move_on_after(timeout):
        await done.wait()
    if not done.is_set():
        raise TimeoutError
    if "exc" in box:
        raise box["exc"]
    return box.get("value")


async def _run_one(pm: pluggy.PluginManager, impl: pluggy.HookImpl, name: str,
                   kwargs: dict[str, Any], remaining: float, event: str) -> ScriptResult:
    start = time.time()

    def done(status: int, output: str = "") -> ScriptResult:
        return ScriptResult(name=name, status=status, state=_state_for(status),
                            start=start, end=time.time(), output=output)

    if remaining <= 0:
        return done(STATUS_TIMEDOUT)
    others = [p for p in pm.get_plugins() if p is not impl.plugin]
    caller = pm.subset_hook_caller(hook_name(event), remove_plugins=others)
    try:
        if inspect.iscoroutinefunction(impl.function):
            with anyio.fail_after(remaining):
                value = _first(caller(**kwargs))
                if inspect.isawaitable(value):
                    value = await value
        else:
            deadline = anyio.current_time() + remaining
            try:
                value = _first(await _call_sync_in_thread(
                    caller, kwargs, remaining, f"ctdb-{event}-{name}"))
            except RuntimeError as exc:
                if "can't start new thread" in str(exc):
                    return done(-errno.EAGAIN, str(exc))
                raise
            if inspect.isawaitable(value):  # a plain def that returned a coroutine
                with anyio.fail_after(max(deadline - anyio.current_time(), 0)):
                    value = await value
    except TimeoutError:
        log.error("%s event: plugin %s timed out after %.1f s", event, name, remaining)
        return done(STATUS_TIMEDOUT)
    except Exception as exc:
        log.error("%s event: plugin %s raised", event, name, exc_info=exc)
        return done(1, f"{type(exc).__name__}: {exc}")
    status, output = _interpret(value)
    return done(status, output)


async def run_event(
    pm: pluggy.PluginManager,
    event: str,
    *,
    timeout: float,
    ctx: EventContext,
    args: Mapping[str, Any] | None = None,
    disabled: Collection[str] = (),
) -> EventRun:
    """Run ``event`` over every event plugin, in order, stopping at the first failure.

    :param pm: the plugin manager (see :func:`ctdbcore.plugins.make_plugin_manager`).
    :param event: the event name, e.g. ``"monitor"``.
    :param timeout: the time budget of the whole run (``EventScriptTimeout``).
    :param ctx: the event context; each plugin gets a copy with its own logger.
    :param args: the event's arguments by name (``iface``, ``ip``, ``maskbits`` for
        takeip/releaseip; ``old_iface``, ``new_iface``, ``ip``, ``maskbits`` for
        updateip; nothing for the others).
    :param disabled: plugin names disabled by configuration: recorded DISABLED.
    :raises ValueError: unknown event, or wrong arguments (4.17 ``check_options``).
    """
    args = dict(args or {})
    name_of_hook = hook_name(event)
    caller = getattr(pm.hook, name_of_hook, None)
    if caller is None or caller.spec is None:
        raise ValueError(f"unknown event {event!r}")
    expected = EVENT_ARGS.get(event, ())
    if set(args) != set(expected):
        raise ValueError(
            f"event {event!r} takes arguments {list(expected)}, got {sorted(args)}"
        )
    if ctx.event != event:
        ctx = ctx.for_event(event)

    ordered = pm.ordered_hookimpls(name_of_hook) if hasattr(pm, "ordered_hookimpls") else \
        sorted(caller.get_hookimpls(), key=lambda i: i.plugin_name)
    deadline = anyio.current_time() + timeout
    start = time.time()
    results: list[ScriptResult] = []
    status = 0
    for impl in ordered:
        name = impl.plugin_name
        if name in disabled:
            now = time.time()
            results.append(ScriptResult(name=name, status=STATUS_DISABLED, state="DISABLED",
                                        start=now, end=now))
            continue
        kwargs = {**args, "ctx": ctx.for_plugin(name)}
        result = await _run_one(pm, impl, name, kwargs, deadline - anyio.current_time(), event)
        results.append(result)
        if result.status not in (0, STATUS_DISABLED):
            status = result.status
            log.error("%s event %s", event, "timed out" if status == STATUS_TIMEDOUT else "failed")
            break
    return EventRun(event=event, results=tuple(results), status=status,
                    start=start, end=time.time())
