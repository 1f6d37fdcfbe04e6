"""Built-in event plugin ``natgw``: 4.17's ``11.natgw.script``.

Entry point (group ``ctdb.services``): ``natgw = "ctdbcore.builtin.natgw"``.

One node of a group (``CTDB_NATGW_NODES``, lines ``IP [follower-only]``) is the NAT
gateway: it holds ``CTDB_NATGW_PUBLIC_IP`` on ``CTDB_NATGW_PUBLIC_IFACE`` and
masquerades the traffic of ``CTDB_NATGW_PRIVATE_NETWORK``; every other node routes
``CTDB_NATGW_STATIC_ROUTES`` (default ``0.0.0.0/0``) through the leader's private
address, so nodes without a public address can still reach the outside. Nothing is
done while ``CTDB_NATGW_NODES`` is unset. Per event, as 4.17:

* ``setup``: check the configuration (a missing value stops ctdbd).
* ``startup``: check it; fail if the NAT gateway address is also a public address;
  ``arp_announce=2``. Unlike 4.17, a node that may lead fails here when iptables is
  not installed (4.17 would silently run without masquerading).
* ``ipreallocated``: choose the leader (:func:`ctdbcore.builtin.groups.natgw_leader`,
  4.17's ``ctdb_natgw leader``, from ``ctdb -X nodestatus all``); if neither the
  configuration nor the leader changed since the last time (state in the plugin's
  state directory), do nothing; else undo the old setup and make this node the
  leader (``ip_forward=1``, the MASQUERADE rule, REJECT of incoming SYNs to the public
  address, the address, routes via ``CTDB_NATGW_DEFAULT_GATEWAY`` or ``net@gw``) or a
  follower (routes via the leader's private address, metric 10).
* ``shutdown``: undo the setup.
* ``monitor``: check the configuration and the public interface's link.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import attrs

from ctdbcore.builtin import common
from ctdbcore.builtin.common import Die, Output, ctdb_tool
from ctdbcore.builtin.groups import GroupError, NodeRow, natgw_leader, parse_nodestatus_x, read_group_file
from ctdbcore.netif.addresses import interface_problem
from ctdbcore.plugins import EventContext, hookimpl, service, setting

CTDB_ORDER = 11
CTDB_ENABLED_BY_DEFAULT = False

#: Bound on each ip/iptables command and on ``ctdb -X nodestatus all``.
COMMAND_TIMEOUT = 10.0
PROG = "ctdb_natgw"


@attrs.frozen
class Settings:
    """``[natgw]`` in ctdb.conf, or 4.17's variables in script.options /
    ``events/legacy/11.natgw.options``."""

    nodes: str = setting("", var="CTDB_NATGW_NODES",
                         help="file of the NAT gateway group, lines 'IP [follower-only]' (unset: natgw off)")
    public_ip: str = setting("", var="CTDB_NATGW_PUBLIC_IP", help="the gateway's public address, addr/bits")
    public_iface: str = setting("", var="CTDB_NATGW_PUBLIC_IFACE", help="interface of the public address")
    private_network: str = setting("", var="CTDB_NATGW_PRIVATE_NETWORK", help="the nodes' network, net/bits")
    default_gateway: str = setting("", var="CTDB_NATGW_DEFAULT_GATEWAY", help="the leader's next hop")
    static_routes: str = setting("", var="CTDB_NATGW_STATIC_ROUTES",
                                 help="'net[@gw] ...' routed through the gateway (default 0.0.0.0/0)")


CTDB_SETTINGS = Settings

_VARS = (("nodes", "CTDB_NATGW_NODES"), ("public_ip", "CTDB_NATGW_PUBLIC_IP"),
         ("public_iface", "CTDB_NATGW_PUBLIC_IFACE"), ("default_gateway", "CTDB_NATGW_DEFAULT_GATEWAY"),
         ("private_network", "CTDB_NATGW_PRIVATE_NETWORK"), ("static_routes", "CTDB_NATGW_STATIC_ROUTES"))


@attrs.frozen
class NatgwConfig:
    """The effective configuration; its :meth:`text` is 4.17's saved ``cfg_old``."""

    nodes: str
    public_ip: str = ""
    public_iface: str = ""
    private_network: str = ""
    default_gateway: str = ""
    static_routes: str = "0.0.0.0/0"

    def text(self) -> str:
        return "".join(f'{var}="{getattr(self, name)}"\n' for name, var in _VARS)

    @classmethod
    def from_text(cls, text: str) -> NatgwConfig:
        by_var = {var: name for name, var in _VARS}
        values = {}
        for line in text.splitlines():
            var, sep, value = line.partition("=")
            if sep and var in by_var:
                values[by_var[var]] = value.strip().strip('"')
        return cls(**{"nodes": "", **values})

    @property
    def ip(self) -> str:
        return self.public_ip.partition("/")[0]

    @property
    def maskbits(self) -> str:
        return self.public_ip.partition("/")[2] if "/" in self.public_ip else self.public_ip

    def routes(self) -> list[tuple[str, str | None]]:
        """(net, gateway) of each ``net[@gw]``; the gateway is None for ``net``."""
        out = []
        for word in self.static_routes.split():
            net, at, gw = word.partition("@")
            out.append((net, gw if at else None))
        return out


def my_address(ctx: EventContext) -> str | None:
    for node in getattr(ctx.config, "nodes", None) or ():
        if node.pnn == ctx.pnn and node.address is not None:
            return str(node.address)
    return None


def follower_only(ctx: EventContext, nodes_file: str) -> bool:
    """4.17 ``ctdb_natgw_follower_only``: the first line of this node's address decides
    (its second word contains ``follower-only``); an unlisted node is follower-only."""
    me = my_address(ctx)
    try:
        text = Path(nodes_file).read_text(errors="replace")
    except OSError:
        return True
    for raw in text.splitlines():
        words = raw.split()
        if words and words[0] == me:
            return len(words) > 1 and "follower-only" in words[1]
    return True


def check_config(ctx: EventContext) -> NatgwConfig:
    """4.17 ``natgw_check_config``; :class:`Die` with its message."""
    s = ctx.settings
    if not os.access(s.nodes, os.R_OK):
        raise Die(f"error: CTDB_NATGW_NODES={s.nodes} unreadable")
    if not follower_only(ctx, s.nodes):
        if not s.public_ip:
            raise Die("Invalid configuration: CTDB_NATGW_PUBLIC_IP not set")
        if not s.public_iface:
            raise Die("Invalid configuration: CTDB_NATGW_PUBLIC_IFACE not set")
    if not s.private_network:
        raise Die("Invalid configuration: CTDB_NATGW_PRIVATE_NETWORK not set")
    return NatgwConfig(nodes=s.nodes, public_ip=s.public_ip, public_iface=s.public_iface,
                       private_network=s.private_network, default_gateway=s.default_gateway,
                       static_routes=s.static_routes or "0.0.0.0/0")


def _run(ctx: EventContext, argv: Sequence[str], out: Output | None = None) -> bool:
    done = ctx.runner.run(tuple(argv), timeout=COMMAND_TIMEOUT)
    if not done.ok and out is not None and done.output:
        out.say(done.output)
    return done.ok


def masquerade_rule(cfg: NatgwConfig) -> tuple[str, ...]:
    return ("POSTROUTING", "-t", "nat", "-s", cfg.private_network, "!", "-d", cfg.private_network, "-j", "MASQUERADE")


def reject_rule(cfg: NatgwConfig) -> tuple[str, ...]:
    return ("INPUT", "-p", "tcp", "--syn", "-d", f"{cfg.ip}/32", "-j", "REJECT")


def clear(ctx: EventContext, cfg: NatgwConfig) -> None:
    """4.17 ``_natgw_clear``: remove what a leader or follower set up; errors ignored."""
    if cfg.public_ip and cfg.public_iface:
        common.set_proc(f"sys/net/ipv4/conf/{cfg.public_iface}/promote_secondaries", "1")
        _run(ctx, ("ip", "addr", "del", f"{cfg.ip}/{cfg.maskbits}", "dev", cfg.public_iface))
    for net, _gw in cfg.routes():
        _run(ctx, ("ip", "route", "del", net, "metric", "10"))
    _run(ctx, ("iptables", "-D", *masquerade_rule(cfg)))
    if cfg.public_ip:
        _run(ctx, ("iptables", "-D", *reject_rule(cfg)))


def set_leader(ctx: EventContext, cfg: NatgwConfig, out: Output) -> None:
    """4.17 ``natgw_set_leader``."""
    error = common.set_proc("sys/net/ipv4/ip_forward", "1")
    if error:
        out.say(error)
    _run(ctx, ("iptables", "-A", *masquerade_rule(cfg)), out)
    # block all incoming connections to the NATGW IP address
    _run(ctx, ("iptables", "-D", *reject_rule(cfg)))
    _run(ctx, ("iptables", "-I", *reject_rule(cfg)))
    _run(ctx, ("ip", "addr", "add", cfg.public_ip, "dev", cfg.public_iface), out)
    for net, gw in cfg.routes():
        gw = gw if gw is not None else cfg.default_gateway
        if gw:
            _run(ctx, ("ip", "route", "add", net, "metric", "10", "via", gw), out)


def set_follower(ctx: EventContext, cfg: NatgwConfig, leader_ip: str, out: Output) -> None:
    """4.17 ``natgw_set_follower``."""
    for net, _gw in cfg.routes():
        _run(ctx, ("ip", "route", "add", net, "via", leader_ip, "metric", "10"), out)


def node_rows(ctx: EventContext) -> list[NodeRow]:
    """``ctdb -X nodestatus all`` (its exit status is the nodes' flags: not checked)."""
    return parse_nodestatus_x(ctx.runner.run(ctdb_tool("-X", "nodestatus", "all"), timeout=COMMAND_TIMEOUT).stdout)


def find_leader(ctx: EventContext, cfg: NatgwConfig, out: Output) -> NodeRow:
    """4.17 ``natgw_ensure_leader``."""
    try:
        lines = read_group_file(cfg.nodes, PROG, "NAT gateway")
    except GroupError as exc:
        out.lines.append(str(exc))
        raise Die("There is no NATGW leader node") from None
    leader = natgw_leader(lines, node_rows(ctx))
    if leader is None:
        raise Die("There is no NATGW leader node")
    return leader


def _state(ctx: EventContext) -> tuple[Path, Path, Path]:
    d = ctx.state_dir
    return d / "cfg_new", d / "cfg_old", d / "leader_old"


def config_has_changed(ctx: EventContext, cfg: NatgwConfig, out: Output) -> bool:
    new, old, _ = _state(ctx)
    new.write_text(cfg.text())
    try:
        before = old.read_text()
    except OSError:
        return True
    if before == cfg.text():
        return False
    out.say("NAT gateway configuration has changed", "info")
    return True


def leader_has_changed(ctx: EventContext, leader: NodeRow) -> bool:
    try:
        old = _state(ctx)[2].read_text().split("\n", 1)[0]
    except OSError:
        old = ""
    return old != str(leader.pnn)


def old_config(ctx: EventContext, cfg: NatgwConfig) -> NatgwConfig:
    """What to clear: the configuration last set up, else the current one."""
    try:
        return NatgwConfig.from_text(_state(ctx)[1].read_text())
    except OSError:
        return cfg


def _dies(fn):
    def hook(ctx: EventContext) -> str | None:
        if not ctx.settings.nodes:
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


def _public_address_clash(ctx: EventContext, public_ip: str) -> bool:
    """4.17: ``grep -q "^${CTDB_NATGW_PUBLIC_IP}[[:space:]]" public_addresses``."""
    paths = getattr(ctx.config, "paths", None)
    path = getattr(paths, "public_addresses", None)
    if not path or not public_ip:
        return False
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith(public_ip) and line[len(public_ip):len(public_ip) + 1] in (" ", "\t")
               for line in text.splitlines())


def _startup(ctx: EventContext, out: Output) -> None:
    cfg = check_config(ctx)
    if _public_address_clash(ctx, cfg.public_ip):
        raise Die("ERROR: CTDB_NATGW_PUBLIC_IP same as a public address")
    common.set_proc("sys/net/ipv4/conf/all/arp_announce", "2")
    if not follower_only(ctx, cfg.nodes):
        missing = service.missing_program("iptables", "iptables")
        if missing:
            raise Die(missing)


def _ipreallocated(ctx: EventContext, out: Output) -> None:
    cfg = check_config(ctx)
    leader = find_leader(ctx, cfg, out)
    if not config_has_changed(ctx, cfg, out) and not leader_has_changed(ctx, leader):
        return
    clear(ctx, old_config(ctx, cfg))
    if ctx.pnn == leader.pnn:
        ctx.logger.info("This node is the NAT gateway leader")
        set_leader(ctx, cfg, out)
    else:
        set_follower(ctx, cfg, leader.ip, out)
    common.set_proc("sys/net/ipv4/route/flush", "1")
    new, old, leader_file = _state(ctx)
    leader_file.write_text(f"{leader.pnn}\n")
    os.replace(new, old)


def _shutdown(ctx: EventContext, out: Output) -> None:
    cfg = check_config(ctx)
    clear(ctx, old_config(ctx, cfg))


def _monitor(ctx: EventContext, out: Output) -> None:
    cfg = check_config(ctx)
    if cfg.public_iface:
        problem = interface_problem(cfg.public_iface)
        if problem:
            raise Die(problem)


ctdb_setup = hookimpl(_dies(_setup))
ctdb_startup = hookimpl(_dies(_startup))
ctdb_ipreallocated = hookimpl(_dies(_ipreallocated))
ctdb_shutdown = hookimpl(_dies(_shutdown))
ctdb_monitor = hookimpl(_dies(_monitor))
