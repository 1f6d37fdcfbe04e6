"""`ctdbd`: command line, configuration, signals; then hands over to Daemon.run()."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

import anyio

from ctdbcore import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctdbd", description="Clustered TDB daemon (Python, CTDB 4.17 compatible)")
    p.add_argument("-i", "--interactive", action="store_true", help="stay in the foreground")
    p.add_argument("--socket", help="unix socket path (default $CTDB_SOCKET or <rundir>/ctdbd.socket)")
    p.add_argument("--pidfile", help="write the daemon's pid here")
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
    from ctdbcore.plugins.manager import list_plugins, make_plugin_manager

    pm = make_plugin_manager(groups=("ctdb.services", "ctdb.transport", "ctdb.cluster_mutex", "ctdb.ipalloc"))
    infos = list_plugins(pm, groups=("ctdb.services", "ctdb.transport", "ctdb.cluster_mutex", "ctdb.ipalloc"))
    if as_json:
        from ctdbcore.config.model import make_converter

        print(json.dumps(make_converter().unstructure(infos), indent=2))
        return 0
    print(f"{'NAME':<16} {'KIND':<20} {'DISTRIBUTION':<28} {'VERSION':<10} {'ENABLED':<8} HOOKS")
    for i in infos:
        dist = i.distribution or "-"
        hooks = ",".join(h.removeprefix("ctdb_") for h in i.hooks) or "-"
        enabled = "yes" if i.enabled else "no"
        print(f"{i.name:<16} {i.kind:<20} {dist:<28} {(i.version or '-'):<10} {enabled:<8} {hooks}")
        if i.error:
            print(f"{'':<16} error: {i.error}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.plugins == "":
        return _list_plugins(args.json)

    from ctdbcore.config.errors import ConfigErrors
    from ctdbcore.config.model import config_to_dict, load_config
    from ctdbcore.config.paths import default_paths

    paths = default_paths(os.environ)
    try:
        config = load_config(paths, sysconfig_path=args.sysconfig)
    except ConfigErrors as e:
        print(f"ctdbd: configuration errors:\n{e}", file=sys.stderr)
        return 1
    if args.check_config:
        if args.json:
            print(json.dumps(config_to_dict(config), indent=2, default=str))
        else:
            from ctdbcore.config.ctdbconf import dump_ctdb_conf

            print(dump_ctdb_conf(config.ctdb_conf), end="")
            print(f"# nodes: {', '.join(str(n.address) if not n.deleted else '#deleted' for n in config.nodes)}")
            print("# tunables differing from 4.17:")
            for name, value in config.tunables.listvars():
                print(f"#   {name} = {value}")
        return 0

    from ctdbcore.daemon.events import EventHost
    from ctdbcore.daemon.logsetup import setup_logging, wire_level
    from ctdbcore.daemon.mutex import make_cluster_mutex
    from ctdbcore.daemon.node import Daemon, find_own_pnn
    from ctdbcore.db.registry import Databases, DbDirs
    from ctdbcore.plugins.manager import PluginLoadError, load_named, make_plugin_manager

    conf = config.ctdb_conf
    location = conf.logging.location
    if args.interactive and location.startswith("file:") and os.environ.get("CTDB_LOG_STDERR"):
        location = "stderr"
    logger = setup_logging(location, conf.logging.log_level)
    socket_path = args.socket or os.environ.get("CTDB_SOCKET") or paths.socket
    run_dir = os.path.dirname(socket_path) or paths.run_dir

    try:
        if args.no_plugins:
            pm = make_plugin_manager(load_entrypoints=False)
        elif args.plugins:
            pm = make_plugin_manager(only=[p for p in args.plugins.split(",") if p])
        else:
            pm = make_plugin_manager()
        transport_plugin = load_named("ctdb.transport", conf.cluster.transport)
    except PluginLoadError as e:
        logger.error("%s", e)
        print(f"ctdbd: {e}", file=sys.stderr)
        return 1

    pnn = find_own_pnn(list(config.nodes), conf.cluster.node_address)
    allocator = None
    if not conf.failover.disabled and config.public_addresses:
        from ctdbcore.daemon.ipalloc_glue import make_allocator

        try:
            allocator = make_allocator(config.tunables)
        except PluginLoadError as e:
            logger.error("%s", e)
            print(f"ctdbd: {e}", file=sys.stderr)
            return 1
    events = EventHost(pm, tunables=config.tunables, run_dir=run_dir, pnn=pnn, config=config, logger=logger)
    dbconf = conf.database
    databases = Databases(
        pnn,
        DbDirs(dbconf.volatile_dir, dbconf.persistent_dir, dbconf.state_dir),
        hash_size=int(config.tunables.get("DatabaseHashSize")),
        max_dead=int(config.tunables.get("DatabaseMaxDead")),
        mutexes=dbconf.tdb_mutexes,
    )
    for db in databases.attach_on_disk():
        logger.info("Attached persistent database %s from %s", db.name, db.path)
    daemon = Daemon(
        debug_level=wire_level(conf.logging.log_level),
        pnn=pnn,
        nodes=list(config.nodes),
        tunables=config.tunables,
        socket_path=socket_path,
        cluster_lock=conf.cluster.cluster_lock,
        leader_timeout=float(conf.cluster.leader_timeout),
        leader_capability=conf.cluster.leader_capability,
        lmaster_capability=conf.legacy.lmaster_capability,
        start_as_disabled=conf.legacy.start_as_disabled,
        start_as_stopped=conf.legacy.start_as_stopped,
        transport_plugin=transport_plugin,
        mutex_factory=lambda spec: make_cluster_mutex(spec, logger=logger),
        events=events,
        socket_group=args.socket_group,
        public_addresses=config.public_addresses,
        failover_disabled=conf.failover.disabled,
        allocator=allocator,
        public_addresses_path=paths.public_addresses,
        public_interface=None,
        databases=databases,
    )
    pidfile = args.pidfile
    if pidfile:
        os.makedirs(os.path.dirname(pidfile) or ".", exist_ok=True)
        with open(pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")

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
        return int(e.code or 0) if isinstance(e.code, int) else 1
    finally:
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
