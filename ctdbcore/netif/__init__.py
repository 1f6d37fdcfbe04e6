"""Public addresses on this node's interfaces: what 4.17's ``10.interface`` script and its helpers do.

* :mod:`ctdbcore.netif.addresses`: add/remove/query addresses with iproute2, interface
  link checks, the ``iptables`` block used while releasing (``config/functions``).
* :mod:`ctdbcore.netif.garp`: gratuitous ARP / unsolicited NA (``ctdb_sys_send_arp``).
* :mod:`ctdbcore.netif.tickle`: tickle ACKs (``ctdb_sys_send_tcp``) and connection
  killing (``ctdb_killtcp``), plus the ``ss`` query for a public address's connections.
* :mod:`ctdbcore.netif.plugin`: the built-in event plugin ``interface`` (order 10).

Everything here is synchronous and bounded in time; it acts in the network namespace
of the calling thread. ctdbd calls it from worker threads (plain ``def`` hooks).
"""

from __future__ import annotations

from ctdbcore.netif.addresses import (
    Address,
    NetifError,
    add_ip,
    list_addresses,
    del_ip,
    has_ip,
    interface_problem,
    link_state,
    list_ifaces,
)
from ctdbcore.netif.garp import send_gratuitous
from ctdbcore.netif.tickle import (
    TcpConnection,
    connections_for_ip,
    kill_connections,
    send_tcp,
    send_tickle_ack,
)

__all__ = [
    "Address",
    "NetifError",
    "TcpConnection",
    "add_ip",
    "list_addresses",
    "connections_for_ip",
    "del_ip",
    "has_ip",
    "interface_problem",
    "kill_connections",
    "link_state",
    "list_ifaces",
    "send_gratuitous",
    "send_tcp",
    "send_tickle_ack",
]
