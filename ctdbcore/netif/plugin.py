"""Built-in event plugin ``interface``: 4.17's ``events/legacy/10.interface.script`` as hooks.

Entry point (group ``ctdb.services``): ``interface = "ctdbcore.netif.plugin"``.

Like the script, the plugin does nothing when the node has no public addresses
(``ctx.config.public_addresses`` empty or missing). Per event:

* ``init``: require ``net.ipv4.conf.all.promote_secondaries``; drop every configured
  public address still on an interface (a previous ctdbd may have been killed).
* ``startup``, ``monitor``: check every interface named in ``public_addresses``
  (:func:`~ctdbcore.netif.addresses.interface_problem`). Fail when all are down, or
  when some are down unless ``CTDB_PARTIALLY_ONLINE_INTERFACES=yes``. (4.17 also
  reports each link with ``ctdb setifacelink``; the daemon's job here.)
* ``takeip IF IP BITS``: ``ip link set IF up``, add the address, unblock, flush route
  caches; then one gratuitous ARP/NA burst (in 4.17 the daemon sends those after the
  event; sending one here makes the plugin useful on its own, and repeats are harmless).
* ``releaseip IF IP BITS``: find where the address really is (warn on a mismatch),
  block it with iptables when available, kill its TCP connections, delete it
  (``promote_secondaries`` first), unblock, flush route caches. The connections are
  killed **before** the delete as in 4.17: the local server sockets can only be reset
  while the address is still local.
* ``updateip OLD NEW IP BITS``: redundant if already on NEW; else block on OLD, delete
  from OLD and NEW, add to NEW, unblock, flush, gratuitous ARP on NEW, tickle every
  connection both ways.
* ``shutdown``: drop every configured public address.

Under ``CTDB_TEST_MODE`` (``ctx.test_mode``) every hook does nothing: several nodes
share one machine, often one namespace and ``lo``, so public addresses are bookkeeping
in the daemons only, as with 4.17's local daemons (which run without 10.interface and
with ``do_checkpublicip`` off). The daemon then skips its gratuitous ARPs and tickle
ACKs too (ctdbcore/daemon/tickles.py).
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from ctdbcore.netif import addresses as _addr
from ctdbcore.netif.addresses import NetifError
from ctdbcore.netif.garp import send_gratuitous
from ctdbcore.netif.tickle import TcpConnection, connections_for_ip, kill_connections, send_tickle_ack
from ctdbcore.plugins import EventContext, hookimpl, setting

#: Like the ``10.`` of ``10.interface.script``.
CTDB_ORDER = 10
#: Debian links 10.interface into events/legacy on install.
CTDB_ENABLED_BY_DEFAULT = True


@attrs.frozen
class Settings:
    """``[interface]`` in ctdb.conf, or 4.17's variables in script.options /
    ``events/legacy/10.interface.options``."""

    partially_online_interfaces: bool = setting(
        False, var="CTDB_PARTIALLY_ONLINE_INTERFACES",
        help="healthy while at least one public interface is up (else: all must be up)")


CTDB_SETTINGS = Settings

#: Ports whose connections 4.17 only kills on the local side (``kill_tcp_connections``).
ONEWAY_PORTS = frozenset({139, 445})

#: Bound on the killtcp step of one releaseip (4.17: 50 × 100 ms ≈ 5 s).
KILL_TIMEOUT = 5.0


def _public_addresses(ctx: EventContext) -> tuple[Any, ...]:
    if ctx.test_mode:
        return ()  # nothing of ours is on an interface (see the module docstring)
    return tuple(getattr(ctx.config, "public_addresses", None) or ())


def _public_ifaces(ctx: EventContext) -> list[str]:
    seen: dict[str, None] = {}
    for pa in _public_addresses(ctx):
        for iface in pa.ifaces:
            seen.setdefault(iface, None)
    return list(seen)


def _partially_online(ctx: EventContext) -> bool:
    return ctx.settings is not None and ctx.settings.partially_online_interfaces


def monitor_interfaces(ctx: EventContext) -> str | None:
    """Check every public interface (4.17 ``monitor_interfaces``); the error text or ``None``."""
    problems: list[str] = []
    up = 0
    for iface in _public_ifaces(ctx):
        problem = _addr.interface_problem(iface)
        if problem is None:
            up += 1
        else:
            problems.append(problem)
    if not problems:
        return None
    text = "\n".join(problems)
    if up == 0 or not _partially_online(ctx):
        return text
    ctx.logger.warning("%s", text)
    return None


def kill_tcp_connections(ctx: EventContext, iface: str, ip: str, *, oneway: bool = False, timeout: float = KILL_TIMEOUT) -> str:
    """Reset every established connection on ``ip`` (4.17 ``kill_tcp_connections``); return the summary line.

    Each local server socket is reset (impersonating its client); the client is reset
    too (impersonating the public address) unless ``oneway`` or the server port is
    139/445, as in 4.17.
    """
    conns = connections_for_ip(ip)
    if not conns:
        return ""
    pairs = []
    for c in conns:
        pairs.append((c.server, c.client))
        if not oneway and c.server[1] not in ONEWAY_PORTS:
            pairs.append((c.client, c.server))
    try:
        kill_connections(pairs, iface, timeout)
    except NetifError as exc:
        ctx.logger.error("Failed to kill TCP connections: %s", exc)
        return "Failed to kill TCP connections"
    remaining = connections_for_ip(ip)
    lines = [f"Killed {len(conns) - len(remaining)}/{len(conns)} TCP connections to released IP {ip}"]
    if remaining:
        lines.append("Remaining connections:")
        lines += [f"  {r.server[0]}:{r.server[1]} {r.client[0]}:{r.client[1]}" for r in remaining]
    return "\n".join(lines)


def tickle_tcp_connections(ctx: EventContext, ip: str) -> None:
    """Send tickle ACKs both ways for every connection on ``ip`` (4.17 ``tickle_tcp_connections``)."""
    conn: TcpConnection
    for conn in connections_for_ip(ip):
        for src, dst in ((conn.server, conn.client), (conn.client, conn.server)):
            ctx.logger.info("Tickle TCP connection %s:%d %s:%d", *src, *dst)
            try:
                send_tickle_ack(src, dst)
            except NetifError as exc:
                ctx.logger.warning("%s", exc)


def _gratuitous(ctx: EventContext, iface: str, ip: str) -> None:
    try:
        send_gratuitous(iface, ip)
    except NetifError as exc:
        ctx.logger.warning("gratuitous ARP for %s on %s failed: %s", ip, iface, exc)


@hookimpl
def ctdb_init(ctx: EventContext) -> str | None:
    if ctx.test_mode:
        ctx.logger.info("CTDB_TEST_MODE: public addresses are bookkeeping only, no interface is touched")
        return None
    if not _public_addresses(ctx):
        ctx.logger.info("No public addresses file found")
        return None
    if not os.path.exists("/proc/sys/net/ipv4/conf/all/promote_secondaries"):
        return "Public IPs only supported if promote_secondaries is available"
    for pa in _public_addresses(ctx):
        _addr.drop_ip(pa.ip)
    return None


@hookimpl
def ctdb_startup(ctx: EventContext) -> str | None:
    if not _public_addresses(ctx):
        return None
    monitor_interfaces(ctx)  # 4.17 ignores the result at startup
    return None


@hookimpl
def ctdb_monitor(ctx: EventContext) -> str | None:
    if not _public_addresses(ctx):
        return None
    return monitor_interfaces(ctx)


@hookimpl
def ctdb_shutdown(ctx: EventContext) -> None:
    for pa in _public_addresses(ctx):
        _addr.drop_ip(pa.ip)


@hookimpl
def ctdb_takeip(ctx: EventContext, iface: str, ip: str, maskbits: int) -> str | None:
    if ctx.test_mode:
        return None
    try:
        _addr.add_ip(iface, ip, int(maskbits))
    except NetifError as exc:
        return str(exc)
    _addr.unblock_ip(ip, iface)  # a previous releaseip may have been killed
    _addr.flush_route_cache()
    _gratuitous(ctx, iface, ip)
    return None


@hookimpl
def ctdb_releaseip(ctx: EventContext, iface: str, ip: str, maskbits: int) -> str | None:
    if ctx.test_mode:
        return None
    found = _addr.ip_maskbits_iface(ip)
    if found is None:
        return f"ERROR: Unable to determine interface for IP {ip}"
    real_bits, real_iface = found
    if real_iface != iface:
        ctx.logger.warning("WARNING: Public IP %s hosted on interface %s but VNN says %s", ip, real_iface, iface)
    if real_bits != int(maskbits):
        ctx.logger.warning("WARNING: Public IP %s has %s bit netmask but VNN says %s", ip, real_bits, maskbits)
    try:
        _addr.block_ip(ip, real_iface)
    except NetifError as exc:
        ctx.logger.warning("%s", exc)
    summary = kill_tcp_connections(ctx, real_iface, ip)
    if summary:
        ctx.logger.info("%s", summary)
    try:
        _addr.del_ip(real_iface, ip, real_bits)
    except NetifError as exc:
        _addr.unblock_ip(ip, real_iface)
        return str(exc)
    _addr.unblock_ip(ip, real_iface)
    _addr.flush_route_cache()
    return None


@hookimpl
def ctdb_updateip(ctx: EventContext, old_iface: str, new_iface: str, ip: str, maskbits: int) -> str | None:
    if ctx.test_mode:
        return None
    found = _addr.ip_maskbits_iface(ip)
    if found is None:
        return f"ERROR: Unable to determine interface for IP {ip}"
    real_bits, oiface = found
    if oiface != old_iface:
        ctx.logger.warning("WARNING: Public IP %s hosted on interface %s but VNN says %s", ip, oiface, old_iface)
    if oiface == new_iface:
        ctx.logger.info('Redundant "updateip" - %s already on %s', ip, new_iface)
        return None
    try:
        _addr.block_ip(ip, oiface)
    except NetifError as exc:
        ctx.logger.warning("%s", exc)
    for dev in (oiface, new_iface):
        try:
            _addr.del_ip(dev, ip, real_bits)
        except NetifError:
            pass
    try:
        _addr.add_ip(new_iface, ip, real_bits)
    except NetifError as exc:
        _addr.unblock_ip(ip, oiface)
        return str(exc)
    _addr.unblock_ip(ip, oiface)
    _addr.flush_route_cache()
    _gratuitous(ctx, new_iface, ip)
    tickle_tcp_connections(ctx, ip)
    return None
