"""`ctdbd`: command line, configuration, signals; then hands over to Daemon.run().

As 4.17: everything that can be wrong with the configuration is found and reported
(exit 1) before the daemon forks into the background; `-i` stays in the foreground.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

import anyio
import attrs

from ctdbcore import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctdbd", description="Clustered TDB daemon (Python, CTDB 4.17 compatible)")
    p.add_argument("-i", "--interactive", action="store_true",
                   help="stay in the foreground (default: fork into the background once configured)")
    p.add_argument("--socket", help="unix socket path (default $CTDB_SOCKET or <rundir>/ctdbd.socket)")
    p.add_argument("--pidfile", help="the pid file, locked while the daemon runs (default <rundir>/ctdbd.pid)")
    p.add_argument("--socket-group", default=os.environ.get("CTDB_SOCKET_GROUP"),
                   help="let this group use the unix socket too (mode 0770); default: root only (0700)")
    p.add_argument("--check-config", action="store_true", help="print the effective configuration or the errors, then exit")
    p.add_argument("--json", action="store_true", help="with --check-config or --plugins: JSON output")
    p.add_argument("--plugins", nargs="?", const="", default=None, metavar="A,B",
                   help="without a value: list installed plugins and exit; with a list: run with exactly those")
    p.add_argument("--no-plugins", action="store_true", help="run without any service plugins")
    p.add_argument("--sysconfig", help="also read a legacy /etc/sysconfig/ctdb style file")
    p.add_argument("--version", action="version", version=f"ctdbd (ctdb-core) {__version__}")
    return p


def _list_plugins(as_json: bool) -> int:
    """``ctdbd --plugins``: every installed plugin; for event plugins, whether this
    node runs them (ENABLED) and their 4.17 script name."""
    from ctdbcore.config.paths import default_paths
    from ctdbcore.plugins.enablement import EnableState, decide, read_configured
    from ctdbcore.plugins.manager import list_plugins, make_plugin_manager

    groups = ("ctdb.services", "ctdb.transport", "ctdb.cluster_mutex", "ctdb.ipalloc")
    pm = make_plugin_manager(groups=groups)
    infos = list_plugins(pm, groups=groups)
    paths = default_paths(os.environ)
    run_dir = os.path.dirname(os.environ.get("CTDB_SOCKET") or paths.socket)
    try:
        node = decide(_service_plugins(pm), EnableState(paths.etc("events/legacy")).read_all(),
                      read_configured(run_dir))
    except ValueError:
        node = {}
    if as_json:
        from ctdbcore.config.model import make_converter

        rows = make_converter().unstructure(infos)
        for row in rows:
            e = node.get(row["name"]) if row["kind"] == "ctdb.services" else None
            if e is not None:
                row.update(script=e.script, enabled_on_node=e.enabled, decided_by=e.source)
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'NAME':<16} {'KIND':<20} {'DISTRIBUTION':<28} {'VERSION':<10} {'ENABLED':<8} {'SCRIPT':<16} HOOKS")
    for i in infos:
        dist = i.distribution or "-"
        hooks = ",".join(h.removeprefix("ctdb_") for h in i.hooks) or "-"
        e = node.get(i.name) if i.kind == "ctdb.services" else None
        if not i.enabled:
            enabled = "no"
        elif e is not None:
            enabled = "yes" if e.enabled else "no"
        else:
            enabled = "yes"
        script = e.script if e is not None else "-"
        print(f"{i.name:<16} {i.kind:<20} {dist:<28} {(i.version or '-'):<10} {enabled:<8} {script:<16} {hooks}")
        if i.error:
            print(f"{'':<16} error: {i.error}")
    return 0


def _service_plugins(pm) -> dict:
    """The loaded event plugins by name (``ctdb.services``)."""
    return {name: plugin for name, plugin in pm.list_name_plugin() if plugin is not None}


def _plugin_decls(pm) -> list:
    """What the configuration loader needs of each event plugin (name, script, settings class).

    :raises TypeError, ValueError: a plugin declares a malformed ``CTDB_SETTINGS`` or
        ``CTDB_SCRIPT``.
    """
    from ctdbcore.config.plugin_settings import PluginDecl, settings_class
    from ctdbcore.plugins.enablement import script_name

    decls = []
    for name, plugin in _service_plugins(pm).items():
        try:
            decls.append(PluginDecl(name=name, script=script_name(name, plugin), settings=settings_class(plugin)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"plugin {name}: {exc}") from exc
    return decls


def _absent_plugins(pm) -> dict[str, str]:
    """Our own service plugins that are not installed, by section name -> distribution."""
    from ctdbcore.plugins.manager import GROUP_SERVICES, KNOWN_DISTRIBUTIONS

    loaded = set(_service_plugins(pm))
    return {name: dist for (group, name), dist in KNOWN_DISTRIBUTIONS.items()
            if group == GROUP_SERVICES and name not in loaded}


def _configured_enablement(config) -> dict[str, tuple[bool, str]]:
    return {name: (s.enabled, s.enabled_source or "configuration")
            for name, s in config.plugin_settings.items() if s.enabled is not None}


def _print_plugin_settings(config, pm, paths, as_json: bool) -> dict:
    """The effective settings and the enablement of every event plugin."""
    import attrs

    from ctdbcore.config.plugin_settings import describe_field, settings_to_dict
    from ctdbcore.plugins.enablement import EnableState, decide

    enabled = decide(_service_plugins(pm), EnableState(paths.etc("events/legacy")).read_all(),
                     _configured_enablement(config))
    out = {}
    for name, s in config.plugin_settings.items():
        e = enabled[name]
        out[name] = {"script": e.script, "enabled": e.enabled, "decided_by": e.source, **settings_to_dict(s)}
    if as_json:
        return out
    for name, s in config.plugin_settings.items():
        e = enabled[name]
        print(f"[{name}]\t# {e.script}: {'enabled' if e.enabled else 'disabled'} ({e.source})")
        if s.values is None:
            continue
        for f in attrs.fields(type(s.values)):
            key, var, _help = describe_field(type(s.values), f.name)
            value = getattr(s.values, f.name)
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (tuple, list)):
                text = " ".join(map(str, value))
            else:
                text = "" if value is None else str(value)
            where = s.sources.get(f.name, "default")
            prefix = "# " if where == "default" else ""
            print(f"\t{prefix}{key} = {text}" + (f"\t# {var}" if var else "") + (f", from {where}" if where != "default" else ""))
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.plugins == "":
        return _list_plugins(args.json)

    from ctdbcore.config.errors import ConfigErrors
    from ctdbcore.config.model import config_to_dict, load_config
    from ctdbcore.config.paths import default_paths, test_mode
    from ctdbcore.plugins.manager import PluginLoadError, load_named, make_plugin_manager

    paths = default_paths(os.environ)
    in_test_mode = test_mode(os.environ)
    # Plugins load before the configuration is read: their settings are part of it.
    try:
        if args.no_plugins:
            pm = make_plugin_manager(load_entrypoints=False)
        elif args.plugins:
            pm = make_plugin_manager(only=[p for p in args.plugins.split(",") if p])
        else:
            pm = make_plugin_manager()
        decls = _plugin_decls(pm)
    except (PluginLoadError, ValueError) as e:
        print(f"ctdbd: {e}", file=sys.stderr)
        return 1
    try:
        config = load_config(paths, sysconfig_path=args.sysconfig, plugins=decls, absent_plugins=_absent_plugins(pm))
    except ConfigErrors as e:
        print(f"ctdbd: configuration errors:\n{e}", file=sys.stderr)
        return 1
    if args.check_config:
        for warning in config.warnings:
            print(f"ctdbd: warning: {warning}", file=sys.stderr)
        if args.json:
            data = config_to_dict(config)
            data["plugin_settings"] = _print_plugin_settings(config, pm, paths, as_json=True)
            print(json.dumps(data, indent=2, default=str))
        else:
            from ctdbcore.config.ctdbconf import dump_ctdb_conf

            print(dump_ctdb_conf(config.ctdb_conf), end="")
            _print_plugin_settings(config, pm, paths, as_json=False)
            print(f"# nodes: {', '.join(str(n.address) if not n.deleted else '#deleted' for n in config.nodes)}")
            print("# tunables differing from 4.17:")
            for name, value in config.tunables.listvars():
                print(f"#   {name} = {value}")
        return 0

    from ctdbcore.daemon.daemonize import AlreadyRunning, PidFile, Readiness, check_socket_free, daemonize
    from ctdbcore.daemon.logsetup import setup_logging
    from ctdbcore.daemon.node import find_own_pnn

    conf = config.ctdb_conf
    location = conf.logging.location
    if args.interactive and location.startswith("file:") and os.environ.get("CTDB_LOG_STDERR"):
        location = "stderr"
    logger = setup_logging(location, conf.logging.log_level)
    for warning in config.warnings:
        logger.warning("%s", warning)
    # Absolute: the background daemon runs in / (it must not keep a directory busy).
    socket_path = os.path.abspath(args.socket or os.environ.get("CTDB_SOCKET") or paths.socket)
    run_dir = os.path.dirname(socket_path)
    # What plugins and helpers run (the ctdb tool, smbd's) must find this daemon.
    os.environ["CTDB_SOCKET"] = socket_path

    try:
        transport_plugin = load_named("ctdb.transport", conf.cluster.transport)
    except PluginLoadError as e:
        logger.error("%s", e)
        print(f"ctdbd: {e}", file=sys.stderr)
        return 1

    pnn = find_own_pnn(list(config.nodes), conf.cluster.node_address)
    allocator = None
    if not conf.failover.disabled:
        # Every node needs the policy, its own public_addresses empty or not: whoever
        # is leader places every node's addresses (4.17's takeover helper runs there).
        from ctdbcore.daemon.ipalloc_glue import make_allocator

        try:
            allocator = make_allocator(config.tunables)
        except PluginLoadError as e:
            if config.public_addresses:
                logger.error("%s", e)
                print(f"ctdbd: {e}", file=sys.stderr)
                return 1
            logger.warning("%s; as leader this node will not place public addresses", e)

    # One daemon per pid file and socket: a second one would unlink the first one's
    # socket and take its clients. Checked before forking, so the command says so.
    try:
        pidfile = PidFile.acquire(args.pidfile or os.path.join(run_dir, "ctdbd.pid"))
    except (AlreadyRunning, OSError) as e:
        logger.error("%s", e)
        print(f"ctdbd: {e}", file=sys.stderr)
        return 1
    try:
        check_socket_free(socket_path)
    except AlreadyRunning as e:
        pidfile.remove()
        logger.error("%s", e)
        print(f"ctdbd: {e}", file=sys.stderr)
        return 1

    # systemd (Type=notify) is told by us, not by our children (event scripts).
    notify_env = {"NOTIFY_SOCKET": os.environ.pop("NOTIFY_SOCKET")} if "NOTIFY_SOCKET" in os.environ else {}
    ready = Readiness(None)
    if not args.interactive:
        # Nothing above opened a database, started a thread or an event loop: all of
        # that belongs to the child (fcntl locks and threads do not survive a fork).
        ready = daemonize(test_mode=in_test_mode,
                          log_file=location[len("file:"):] if location.startswith("file:") else None)
    pidfile.write(os.getpid())
    st = _Start(args=args, config=config, paths=paths, logger=logger, pm=pm, transport_plugin=transport_plugin,
                pnn=pnn, allocator=allocator, socket_path=socket_path, run_dir=run_dir, test_mode=in_test_mode,
                pidfile=pidfile, ready=ready, notify_env=notify_env)
    try:
        try:
            daemon = _make_daemon(st)
        except Exception as e:  # e.g. a database directory that cannot be created
            logger.exception("ctdbd: start-up failed: %s", e)
            ready.fail(f"{type(e).__name__}: {e}")
            return 1
        return _serve(daemon, logger, ready)
    finally:
        pidfile.remove()


@attrs.frozen
class _Start:
    """What main() found out before the fork, for building the daemon after it."""

    args: argparse.Namespace
    config: object
    paths: object
    logger: object
    pm: object
    transport_plugin: object
    pnn: int
    allocator: object
    socket_path: str
    run_dir: str
    test_mode: bool
    pidfile: object
    ready: object
    notify_env: dict


def _make_daemon(st: _Start):
    from ctdbcore.daemon.daemonize import sd_notify
    from ctdbcore.daemon.events import EventHost
    from ctdbcore.daemon.logsetup import wire_level
    from ctdbcore.daemon.mutex import make_cluster_mutex
    from ctdbcore.daemon.node import Daemon
    from ctdbcore.db.registry import Databases, DbDirs

    config, logger = st.config, st.logger
    conf = config.ctdb_conf
    if st.test_mode:
        logger.log(25, "CTDB_TEST_MODE enabled")

    def on_ready() -> None:
        st.ready.ok()
        sd_notify(f"READY=1\nMAINPID={os.getpid()}", st.notify_env)

    def on_stopped() -> None:
        # Before the clients' connections close: `ctdb shutdown` returns when ours
        # closes, and a restart right after must find the pid file gone.
        st.pidfile.remove()
        sd_notify("STOPPING=1", st.notify_env)

    configured = _configured_enablement(config)
    events = EventHost(st.pm, tunables=config.tunables, run_dir=st.run_dir, pnn=st.pnn, config=config, logger=logger,
                       events_dir=st.paths.etc("events/legacy"),
                       script_vardir=os.environ.get("CTDB_SCRIPT_VARDIR") or os.path.join(st.paths.var_dir, "scripts"),
                       configured=configured, test_mode=st.test_mode)
    try:
        from ctdbcore.plugins.enablement import write_configured

        write_configured(st.run_dir, configured)
    except OSError as e:
        logger.warning("Could not write %s/plugins-configured.json: %s", st.run_dir, e)
    dbconf = conf.database
    databases = Databases(
        st.pnn,
        DbDirs(*(os.path.abspath(d) for d in (dbconf.volatile_dir, dbconf.persistent_dir, dbconf.state_dir))),
        hash_size=int(config.tunables.get("DatabaseHashSize")),
        max_dead=int(config.tunables.get("DatabaseMaxDead")),
        mutexes=dbconf.tdb_mutexes,
    )
    # The persistent databases on disk are attached by the daemon after the init event
    # (00.ctdb checks them first), as 4.17's ctdb_attach_databases.
    return Daemon(
        debug_level=wire_level(conf.logging.log_level),
        pnn=st.pnn,
        nodes=list(config.nodes),
        tunables=config.tunables,
        socket_path=st.socket_path,
        cluster_lock=conf.cluster.cluster_lock,
        leader_timeout=float(conf.cluster.leader_timeout),
        leader_capability=conf.cluster.leader_capability,
        lmaster_capability=conf.legacy.lmaster_capability,
        start_as_disabled=conf.legacy.start_as_disabled,
        start_as_stopped=conf.legacy.start_as_stopped,
        transport_plugin=st.transport_plugin,
        mutex_factory=lambda spec: make_cluster_mutex(spec, logger=logger),
        events=events,
        socket_group=st.args.socket_group,
        public_addresses=config.public_addresses,
        failover_disabled=conf.failover.disabled,
        allocator=st.allocator,
        public_addresses_path=os.path.abspath(st.paths.public_addresses),
        public_interface=None,
        databases=databases,
        test_mode=st.test_mode,
        on_ready=on_ready,
        on_stopped=on_stopped,
    )


def _serve(daemon, logger, ready) -> int:
    async def amain() -> None:
        async with anyio.create_task_group() as tg:
            async def signals() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
                    async for _ in sigs:
                        logger.log(25, "Received SIGTERM, shutting down")
                        daemon.request_shutdown()
                        return

            tg.start_soon(signals)
            await daemon.run()
            tg.cancel_scope.cancel()

    try:
        anyio.run(amain)
    except SystemExit as e:
        code = int(e.code or 0) if isinstance(e.code, int) else 1
        if code:
            ready.fail(str(e.code) if not isinstance(e.code, int) else "see the log")
        return code
    except BaseExceptionGroup as group:
        # SystemExit raised inside the daemon's task groups (a failed init event)
        exits = group.subgroup(SystemExit)
        if exits is None:
            logger.exception("ctdbd: %s", group)
            ready.fail(_reason(group))
            return 1
        while isinstance(exits, BaseExceptionGroup):
            exits = exits.exceptions[0]
        code = int(exits.code or 0) if isinstance(exits.code, int) else 1
        if code:
            ready.fail("see the log")
        return code
    except Exception as e:  # e.g. the node port is taken; the traceback goes to the log
        logger.exception("ctdbd: %s", e)
        ready.fail(_reason(e))
        return 1
    return 0


def _reason(e: BaseException) -> str:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {e}"


if __name__ == "__main__":
    sys.exit(main())
