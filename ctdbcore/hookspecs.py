"""Every hook specification of ctdbd: the plugin API.

An *event plugin* (entry-point group ``ctdb.services``) plays the role that an event
script ``$CTDB_BASE/events/legacy/NN.name.script`` plays in CTDB 4.17. ctdbd runs an
event by calling the matching ``ctdb_<event>`` hook of every event plugin, **one plugin
after the other, sorted by** ``(CTDB_ORDER, name)`` (see :mod:`ctdbcore.plugins`), and
stops at the first plugin that fails, exactly as 4.17's eventd does with ``flags = 0``.

Common rules for every hook below
---------------------------------

* Hooks are called with **keyword arguments**. An implementation only lists the
  parameters it needs (pluggy "opt-in arguments"); new arguments may be added to a
  hook later without breaking existing plugins.
* Every hook accepts ``ctx`` (:class:`ctdbcore.plugins.EventContext`): the node's pnn,
  the event name, the node's configuration object, a logger named after the plugin and
  the node's run directory.
* **Return contract** (none of these hooks is ``firstresult``; ctdbd collects one result
  per plugin and records it like a script's exit status):

  - ``None`` or ``True``: the plugin succeeded (script exit status 0, state ``OK``);
  - a ``str``: the plugin failed; the string is the output shown by
    ``ctdb event status`` / ``ctdb scriptstatus`` (like a script that printed it and
    exited 1);
  - ``False``: the plugin failed without output;
  - raising an exception: the plugin failed; the output is ``"<ExcType>: <message>"``
    and the traceback is logged.

* An implementation may be ``async def``; ctdbd awaits it on its event loop under the
  event's timeout. A plain ``def`` implementation runs in a worker thread of its own, so
  it may block (run a command, read a file) without stalling ctdbd; if it overruns the
  timeout it is abandoned and recorded ``TIMEDOUT``.
* The whole event run shares one time budget, ``EventScriptTimeout`` (30 s by
  default): each plugin gets what is left of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from ctdbcore.plugins.context import EventContext

#: The pluggy project name; :data:`ctdbcore.plugins.hookimpl` is bound to it.
PROJECT_NAME = "ctdb"

_hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: The event names, in the order of ``enum ctdb_event`` (4.17, protocol/protocol.h),
#: without the deprecated ``stopped``/``status``/``reload`` values that never run.
EVENTS: tuple[str, ...] = (
    "init",
    "setup",
    "startup",
    "startrecovery",
    "recovered",
    "takeip",
    "releaseip",
    "monitor",
    "shutdown",
    "updateip",
    "ipreallocated",
)

#: Hooks that are not 4.17 events (ctdbd calls them outside event runs).
OTHER_HOOKS: tuple[str, ...] = ("ctdb_watch",)

#: Arguments each event receives, as 4.17 passes them to scripts (``check_options``).
EVENT_ARGS: dict[str, tuple[str, ...]] = {
    "takeip": ("iface", "ip", "maskbits"),
    "releaseip": ("iface", "ip", "maskbits"),
    "updateip": ("old_iface", "new_iface", "ip", "maskbits"),
}


def hook_name(event: str) -> str:
    """Return the hook name for an event name (``"monitor"`` → ``"ctdb_monitor"``)."""
    return f"ctdb_{event}"


@_hookspec
def ctdb_init(ctx: EventContext) -> bool | str | None:
    """Event ``init``: the daemon is starting, before the transport is up.

    Runs once, in runstate INIT. Use it to clean up state left by a previous run
    (4.17's ``00.ctdb`` recreates its state directory here).

    :param ctx: the event context.
    :return: ``None``/``True`` for success, a ``str`` (the output) or ``False`` for
        failure. **A failed init makes ctdbd exit.** Its timeout is never ignored.

    Example::

        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_init(ctx):
            state = ctx.rundir / "example"
            state.mkdir(parents=True, exist_ok=True)
            for old in state.iterdir():
                old.unlink()
    """


@_hookspec
def ctdb_setup(ctx: EventContext) -> bool | str | None:
    """Event ``setup``: the transport has started.

    On success ctdbd starts the recovery daemon and its timers; on failure the daemon
    does not continue starting up (4.17 retries and eventually exits).

    :param ctx: the event context.
    :return: ``None``/``True`` for success, a ``str`` or ``False`` for failure.

    Example::

        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_setup(ctx):
            if not ctx.config:
                return "no configuration loaded"
            return None
    """


@_hookspec
def ctdb_startup(ctx: EventContext) -> bool | str | None:
    """Event ``startup``: the first recovery has completed; start managed services.

    ctdbd retries the event every 5 s until it succeeds; after that the node is
    RUNNING and ``monitor`` events begin.

    :param ctx: the event context.
    :return: ``None``/``True`` for success, a ``str`` or ``False`` for failure.

    Example::

        import subprocess
        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_startup(ctx):
            proc = subprocess.run(["systemctl", "start", "smbd"],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                return proc.stdout + proc.stderr
    """


@_hookspec
def ctdb_monitor(ctx: EventContext) -> bool | str | None:
    """Event ``monitor``: check that the managed service is healthy.

    Runs periodically while the node is RUNNING, in recovery mode NORMAL, not
    INACTIVE. Any failure marks the node **UNHEALTHY** at once; a later all-OK run
    clears it. A timeout only marks the node unhealthy after ``MonitorTimeoutCount``
    (20) consecutive timed-out runs.

    :param ctx: the event context.
    :return: ``None``/``True`` if healthy; a ``str`` (the reason, shown by
        ``ctdb scriptstatus``) or ``False`` if not.

    Example::

        import socket
        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_monitor(ctx):
            try:
                socket.create_connection(("127.0.0.1", 445), timeout=2).close()
            except OSError:
                return "ERROR: samba not listening on TCP port 445"
    """


@_hookspec
def ctdb_startrecovery(ctx: EventContext) -> bool | str | None:
    """Event ``startrecovery``: a database recovery is starting (START_RECOVERY).

    A timeout of this event is logged and treated as success.

    :param ctx: the event context.
    :return: ``None``/``True`` for success, a ``str`` or ``False`` for failure.

    Example::

        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_startrecovery(ctx):
            ctx.logger.info("recovery starting on node %d", ctx.pnn)
    """


@_hookspec
def ctdb_recovered(ctx: EventContext) -> bool | str | None:
    """Event ``recovered``: the database recovery has finished (END_RECOVERY).

    A timeout of this event is logged and treated as success.

    :param ctx: the event context.
    :return: ``None``/``True`` for success, a ``str`` or ``False`` for failure.

    Example::

        from ctdbcore.plugins import hookimpl

        @hookimpl
        async def ctdb_recovered(ctx):
            ctx.logger.info("recovered")
            return True
    """


@_hookspec
def ctdb_takeip(ctx: EventContext, iface: str, ip: str, maskbits: int) -> bool | str | None:
    """Event ``takeip``: this node is taking over a public address (TAKEOVER_IP).

    The address has already been added to ``iface`` by the time later plugins run
    (4.17's ``10.interface`` script does it at order 10). A timeout of this event is
    logged and treated as success.

    :param ctx: the event context.
    :param iface: the interface name, e.g. ``"eth1"``.
    :param ip: the public address, e.g. ``"10.0.0.31"`` or ``"fd00::31"``.
    :param maskbits: the prefix length, e.g. ``24``.
    :return: ``None``/``True`` for success, a ``str`` or ``False`` for failure (the
        takeover run fails and the leader retries it).

    Example::

        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_takeip(ctx, iface, ip, maskbits):
            ctx.logger.info("took %s/%d on %s", ip, maskbits, iface)
    """


@_hookspec
def ctdb_releaseip(ctx: EventContext, iface: str, ip: str, maskbits: int) -> bool | str | None:
    """Event ``releaseip``: this node is releasing a public address (RELEASE_IP).

    A timeout of this event is logged and treated as success when the release is
    asynchronous; ctdbd bans itself if a synchronous release-all times out.

    :param ctx: the event context.
    :param iface: the interface name the address is on.
    :param ip: the public address being released.
    :param maskbits: the prefix length.
    :return: ``None``/``True`` for success, a ``str`` or ``False`` for failure.

    Example::

        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_releaseip(ctx, ip):
            # only the arguments you name are passed (opt-in arguments)
            ctx.logger.info("released %s", ip)
    """


@_hookspec
def ctdb_updateip(
    ctx: EventContext, old_iface: str, new_iface: str, ip: str, maskbits: int
) -> bool | str | None:
    """Event ``updateip``: a public address moves from one interface to another.

    :param ctx: the event context.
    :param old_iface: the interface the address was on.
    :param new_iface: the interface the address moves to.
    :param ip: the public address.
    :param maskbits: the prefix length.
    :return: ``None``/``True`` for success, a ``str`` or ``False`` for failure.

    Example::

        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_updateip(ctx, old_iface, new_iface, ip, maskbits):
            ctx.logger.info("%s/%d moved %s -> %s", ip, maskbits, old_iface, new_iface)
    """


@_hookspec
def ctdb_ipreallocated(ctx: EventContext) -> bool | str | None:
    """Event ``ipreallocated``: a takeover run has finished (IPREALLOCATED control).

    Runs on every node at the end of every takeover run, whether or not this node's
    addresses changed: the place to reload services that depend on the address set
    (4.17's NFS and Samba scripts do it here).

    :param ctx: the event context.
    :return: ``None``/``True`` for success, a ``str`` or ``False`` for failure.

    Example::

        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_ipreallocated(ctx):
            (ctx.rundir / "ips-changed").touch()
    """


@_hookspec
def ctdb_watch(ctx: EventContext) -> None:
    """Watch the managed service between monitor events (not a 4.17 event).

    4.17 learns of a dead service at the next ``monitor`` event, up to
    ``MonitorInterval`` later. A plugin that implements this hook hears of it at
    once: ctdbd calls it when the node reaches RUNNING (after ``startup``) and runs
    it as a task for as long as it likes; it waits for the service to fail (a pidfd
    on its main process, a connect probe every second) and then calls
    ``ctx.report_failure(reason)``. The node goes UNHEALTHY with that reason at once
    and its public addresses move; the next successful ``monitor`` clears it, as
    after a failed monitor. The hook must be ``async def``; it is cancelled at
    shutdown or when the plugin is disabled. When it returns (or raises, which is
    logged), ctdbd calls it again after the next successful monitor event.

    :param ctx: the event context (event ``"watch"``); ``ctx.settings`` as for events.
    :return: nothing.

    Example::

        import anyio
        from ctdbcore.plugins import hookimpl, service

        @hookimpl
        async def ctdb_watch(ctx):
            pid = service.read_pidfile(ctx.settings.pid_file)
            if pid is None:
                return  # not running: the next monitor event says so
            await service.wait_for_exit(pid)
            ctx.report_failure(f"ERROR: myservice (pid {pid}) exited")
    """


@_hookspec
def ctdb_shutdown(ctx: EventContext) -> bool | str | None:
    """Event ``shutdown``: ctdbd is stopping (``ctdb shutdown`` or SIGTERM).

    Stop the managed service here. The daemon exits whatever the result.

    :param ctx: the event context.
    :return: ``None``/``True`` for success, a ``str`` or ``False`` for failure.

    Example::

        import subprocess
        from ctdbcore.plugins import hookimpl

        @hookimpl
        def ctdb_shutdown(ctx):
            subprocess.run(["systemctl", "stop", "smbd"], check=False)
    """
