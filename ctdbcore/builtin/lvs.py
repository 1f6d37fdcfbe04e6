"""Built-in event plugin ``lvs``: 4.17's ``91.lvs.script``.

Entry point (group ``ctdb.services``): ``lvs = "ctdbcore.builtin.lvs"``.

One public address (``CTDB_LVS_PUBLIC_IP``) for the whole group ``CTDB_LVS_NODES``
(lines ``IP [follower-only]``): every node holds it on ``lo`` with scope host (so it
accepts the traffic but does not answer ARP); the leader holds it with global scope,
answers for it on ``CTDB_LVS_PUBLIC_IFACE`` and spreads connections over the usable
nodes with Linux Virtual Server (``ipvsadm``, direct routing, persistence 1999999 s,
least-connection). Nothing is done while ``CTDB_LVS_NODES`` is unset; when ipvsadm is
missing, as in 4.17, each event logs "LVS configured but ipvsadm not found" and
succeeds. Per event:

* ``setup``: check the configuration.
* ``startup``: delete stale services, add the address to ``lo`` (scope host),
  ``arp_ignore=3``, ``arp_announce=2``.
* ``ipreallocated``: delete the services, kill local connections to the address;
  the leader (:func:`ctdbcore.builtin.groups.lvs_leader`, 4.17's ``ctdb_lvs leader``)
  gives the address global scope, adds the TCP and UDP services, every other usable
  node as a real server and itself as 127.0.0.1, and sends a gratuitous ARP; any other
  node keeps the address with scope host.
* ``shutdown``: delete the services and the address.
* ``monitor``: check the configuration and the public interface's link.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from ctdbcore.builtin import common
from ctdbcore.builtin.common import Die, Output, ctdb_tool
from ctdbcore.builtin.groups import GroupError, NodeRow, lvs_leader, lvs_usable, parse_nodestatus_x, read_group_file
from ctdbcore.builtin.natgw import follower_only
from ctdbcore.netif.addresses import NetifError, interface_problem
from ctdbcore.netif.garp import send_gratuitous
from ctdbcore.netif.plugin import kill_tcp_connections
from ctdbcore.plugins import EventContext, hookimpl, service, setting

CTDB_ORDER = 91
CTDB_ENABLED_BY_DEFAULT = False

COMMAND_TIMEOUT = 10.0
PROG = "ctdb_lvs"
#: 4.17: ``ipvsadm -A -t IP -p 1999999 -s lc``.
PERSISTENCE = "1999999"


@attrs.frozen
class Settings:
    """``[lvs]`` in ctdb.conf, or 4.17's variables in script.options /
    ``events/legacy/91.lvs.options``."""

    nodes: str = setting("", var="CTDB_LVS_NODES",
                         help="file of the LVS group, lines 'IP [follower-only]' (unset: LVS off)")
    public_ip: str = setting("", var="CTDB_LVS_PUBLIC_IP", help="the single public address (no mask)")
    public_iface: str = setting("", var="CTDB_LVS_PUBLIC_IFACE", help="interface the leader answers ARP on")


CTDB_SETTINGS = Settings


def check_config(ctx: EventContext) -> Settings:
    """4.17 ``lvs_check_config``."""
    s = ctx.settings
    if not os.access(s.nodes, os.R_OK):
        raise Die(f"error: CTDB_LVS_NODES={s.nodes} unreadable")
    if not s.public_ip:
        raise Die("Invalid configuration: CTDB_LVS_PUBLIC_IP not set")
    if not follower_only(ctx, s.nodes) and not s.public_iface:
        raise Die("Invalid configuration: CTDB_LVS_PUBLIC_IFACE not set")
    return s


def _run(ctx: EventContext, argv: Sequence[str], out: Output | None = None) -> bool:
    done = ctx.runner.run(tuple(argv), timeout=COMMAND_TIMEOUT)
    if not done.ok and out is not None and done.output:
        out.say(done.output)
    return done.ok


def _delete_services(ctx: EventContext, ip: str, out: Output | None = None) -> None:
    _run(ctx, ("ipvsadm", "-D", "-t", ip), out)
    _run(ctx, ("ipvsadm", "-D", "-u", ip), out)


def node_rows(ctx: EventContext) -> list[NodeRow]:
    return parse_nodestatus_x(ctx.runner.run(ctdb_tool("-X", "nodestatus", "all"), timeout=COMMAND_TIMEOUT).stdout)


def _hook(fn):
    def hook(ctx: EventContext) -> str | None:
        if not ctx.settings.nodes:
            return None
        if service.missing_program("ipvsadm", "ipvsadm"):
            ctx.logger.warning("LVS configured but ipvsadm not found (apt-get install ipvsadm)")
            return None
        out = Output(ctx.logger)
        try:
            fn(ctx, out)
        except Die as exc:
            ctx.logger.error("%s", exc)
            return out.text(str(exc))
        return None

    hook.__name__ = fn.__name__
    hook.__doc__ = fn.__doc__
    return hook


def _setup(ctx: EventContext, out: Output) -> None:
    check_config(ctx)


def _startup(ctx: EventContext, out: Output) -> None:
    s = check_config(ctx)
    _delete_services(ctx, s.public_ip)
    _run(ctx, ("ip", "addr", "add", f"{s.public_ip}/32", "dev", "lo", "scope", "host"), out)
    # do not answer ARPs for addresses with scope host, nor send ARPs from lo's addresses
    common.set_proc_maybe("sys/net/ipv4/conf/all/arp_ignore", "3")
    common.set_proc_maybe("sys/net/ipv4/conf/all/arp_announce", "2")


def _shutdown(ctx: EventContext, out: Output) -> None:
    s = check_config(ctx)
    _delete_services(ctx, s.public_ip, out)
    _run(ctx, ("ip", "addr", "del", f"{s.public_ip}/32", "dev", "lo"))
    common.flush_route_cache()


def _ipreallocated(ctx: EventContext, out: Output) -> None:
    s = check_config(ctx)
    _delete_services(ctx, s.public_ip)
    summary = kill_tcp_connections(ctx, s.public_iface, s.public_ip, oneway=True)
    if summary:
        ctx.logger.info("%s", summary)
    try:
        lines = read_group_file(s.nodes, PROG, "LVS")
    except GroupError as exc:
        ctx.logger.error("%s", exc)
        lines = []
    rows = node_rows(ctx) if lines else []
    leader = lvs_leader(lines, rows) if rows else None
    lo = f"{s.public_ip}/32"
    if leader is None or leader.pnn != ctx.pnn:
        # not the leader: scope host, so this node does not answer ARPs for it
        _run(ctx, ("ip", "addr", "del", lo, "dev", "lo"))
        _run(ctx, ("ip", "addr", "add", lo, "dev", "lo", "scope", "host"), out)
        return
    _run(ctx, ("ip", "addr", "del", lo, "dev", "lo"))
    _run(ctx, ("ip", "addr", "add", lo, "dev", "lo"))
    for proto in ("-t", "-u"):
        _run(ctx, ("ipvsadm", "-A", proto, s.public_ip, "-p", PERSISTENCE, "-s", "lc"), out)
    for r in lvs_usable((g.ip for g in lines), rows):
        if r.pnn == ctx.pnn:
            continue
        for proto in ("-t", "-u"):
            _run(ctx, ("ipvsadm", "-a", proto, s.public_ip, "-r", r.ip, "-g"), out)
    for proto in ("-t", "-u"):
        _run(ctx, ("ipvsadm", "-a", proto, s.public_ip, "-r", "127.0.0.1"), out)
    if s.public_iface:
        try:
            send_gratuitous(s.public_iface, s.public_ip)
        except NetifError as exc:
            ctx.logger.warning("gratuitous ARP for %s on %s failed: %s", s.public_ip, s.public_iface, exc)
    common.flush_route_cache()


def _monitor(ctx: EventContext, out: Output) -> None:
    s = check_config(ctx)
    if s.public_iface:
        problem = interface_problem(s.public_iface)
        if problem:
            raise Die(problem)


ctdb_setup = hookimpl(_hook(_setup))
ctdb_startup = hookimpl(_hook(_startup))
ctdb_ipreallocated = hookimpl(_hook(_ipreallocated))
ctdb_shutdown = hookimpl(_hook(_shutdown))
ctdb_monitor = hookimpl(_hook(_monitor))
