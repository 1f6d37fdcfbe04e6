"""Tickle lists: the TCP connections clients have on each public address.

smbd registers every client connection with TCP_CLIENT; the node that receives it
tells all others (TCP_ADD), so that whichever node takes the address over knows
whom to "tickle": a TCP ACK with sequence and ack number 0, which makes the client
answer with its real numbers and, since the new holder has no such connection, get
reset at once instead of waiting for its TCP timeouts (4.17 ctdb_takeover.c).

Connections also leave the lists (4.17): when the client that registered one goes
away (smbd's per-connection process exits), the holder of the address forgets it;
the holder that takes an address over hands its list to the announcement and starts
afresh (clients re-register). Either way the holder marks the address "update
needed" and, every TickleUpdateInterval, pushes the list of each such address it
holds to the other nodes (SET_TCP_TICKLE_LIST), so that they do not keep (and later
tickle) connections that are long gone.
"""

from __future__ import annotations

import logging

import anyio

from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import Opcode

log = logging.getLogger("ctdb")
NOTICE = 25
# 4.17 sends gratuitous ARPs (with tickles) 3 times, 1.1 s apart. A Linux client
# ignores a gratuitous ARP for an entry it confirmed less than `locktime` (1 s) ago,
# and a tickle answered while its ARP entry still names the old holder resets
# nothing; so we announce often during the first second, then as 4.17 does.
ANNOUNCE_AT = (0.0, 0.15, 0.3, 0.5, 0.75, 1.05, 1.5, 2.2, 3.3)


def _key(c: T.Connection) -> tuple:
    return (str(c.src.ip), c.src.port, str(c.dst.ip), c.dst.port)


class Tickles:
    def __init__(self, daemon) -> None:
        self.d = daemon
        self.by_ip: dict[str, dict[tuple, T.Connection]] = {}
        self.by_client: dict[int, set[tuple]] = {}
        self.update_needed: set[str] = set()  # addresses whose list the others must get

    def add(self, conn: T.Connection) -> bool:
        if self.d.public_ips.find(conn.dst.ip) is None:
            return False
        self.by_ip.setdefault(str(conn.dst.ip), {})[_key(conn)] = conn
        return True

    def remove(self, conn: T.Connection) -> None:
        if self.by_ip.get(str(conn.dst.ip), {}).pop(_key(conn), None) is not None:
            self.update_needed.add(str(conn.dst.ip))

    def list_for(self, addr: T.SockAddr) -> T.TickleList:
        conns = [c for c in self.by_ip.get(str(addr.ip), {}).values() if addr.port in (0, c.dst.port)]
        return T.TickleList(addr=addr, conns=tuple(conns))

    def set_list(self, tl: T.TickleList) -> None:
        self.by_ip[str(tl.addr.ip)] = {_key(c): c for c in tl.conns}

    def client_connection(self, client, conn: T.Connection) -> int:
        """TCP_CLIENT from a local client (smbd)."""
        v = self.d.public_ips.find(conn.dst.ip)
        if v is not None and v.pnn != self.d.pnn:
            # 4.17 ctdb_control_tcp_client: failing tells smbd to drop the connection,
            # which reached an address this node no longer (or not yet) holds.
            log.error("Attempt to register tcp client for IP %s we don't hold - failing (client_id %s)",
                      conn.dst.ip, getattr(client, "client_id", None))
            return -1
        if not self.add(conn):
            log.info("Not tracking %s -> %s: not a public address", conn.src, conn.dst)
            return 0  # 4.17 ignores connections to non-public addresses
        if client is not None:
            self.by_client.setdefault(client.client_id, set()).add(_key(conn))
        for pnn in self.d.connected_pnns():
            self.d.send_control_noreply(pnn, Opcode.TCP_ADD, conn.pack())
        return 0

    def client_gone(self, client) -> None:
        """4.17 ctdb_takeover_client_destructor_hook: the connections a client
        registered are forgotten if this node still holds their address (otherwise it
        was released, and the node that took it over tickles them)."""
        for k in self.by_client.pop(client.client_id, set()):
            ip = k[2]
            v = self.d.public_ips.find(ip)
            if v is None or v.pnn != self.d.pnn:
                continue
            if self.by_ip.get(ip, {}).pop(k, None) is not None:
                self.update_needed.add(ip)

    def push_updates(self) -> None:
        """4.17 ctdb_update_tcp_tickles: send the list of every address held here whose
        list changed to all connected nodes."""
        for v in self.d.public_ips.held_here():
            ip = str(v.ip)
            if ip not in self.update_needed:
                continue
            self.update_needed.discard(ip)
            tl = self.list_for(T.SockAddr(ip=v.ip))
            for pnn in self.d.connected_pnns():
                self.d.send_control_noreply(pnn, Opcode.SET_TCP_TICKLE_LIST, tl.pack())

    async def update_loop(self) -> None:
        while True:
            await anyio.sleep(max(1.0, float(self.d.tunables.get("TickleUpdateInterval"))))
            self.push_updates()

    async def announce(self, ip, iface: str) -> None:
        """After taking an address: gratuitous ARP and tickle ACKs, repeated as 4.17."""
        if self.d.test_mode:
            # 4.17 announces only when it manages addresses (do_checkpublicip, off in
            # test mode); the tickle list stays where it is, as there.
            return
        try:
            from ctdbcore.netif.garp import send_gratuitous
            from ctdbcore.netif.tickle import send_tickle_ack
        except ImportError:  # pragma: no cover - netif is part of ctdb-core
            return
        # 4.17 moves the list into the announcement (ctdb_announce_vnn_iface): the
        # connections tickled are those known at takeover; the list starts afresh
        # (clients re-register) and the others learn that at the next update.
        conns = list(self.by_ip.pop(str(ip), {}).values())
        self.update_needed.add(str(ip))
        t0 = anyio.current_time()
        for round_, at in enumerate(ANNOUNCE_AT):
            await anyio.sleep(max(0.0, t0 + at - anyio.current_time()))
            v = self.d.public_ips.find(ip)
            if v is None or v.active_iface != iface:
                return  # released or moved meanwhile: stop announcing it

            def work() -> None:
                try:
                    send_gratuitous(iface, str(ip))
                except Exception as e:
                    log.warning("Gratuitous ARP for %s on %s failed: %s", ip, iface, e)
                for c in conns:
                    try:
                        send_tickle_ack((str(c.dst.ip), c.dst.port), (str(c.src.ip), c.src.port))
                    except Exception as e:
                        log.warning("Tickle to %s:%d failed: %s", c.src.ip, c.src.port, e)

            await anyio.to_thread.run_sync(work)
            if round_ == 0 and conns:
                log.log(NOTICE, "Sent tickle ACKs for %d connection(s) to %s", len(conns), ip)

