"""A node's public addresses and interfaces (4.17 server/ctdb_takeover.c), and the
controls that read and move them.

Every node keeps the list of public addresses it may host (its `public_addresses`
file; per-node lists need not agree), which node it believes holds each, and the
link state of each public interface. Only the holder runs takeip/releaseip; the
others just record the new holder, as 4.17's "redundant release" does.
"""

from __future__ import annotations

import ipaddress
import logging

import anyio
import attrs

from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import PUBLIC_IP_FLAGS_ONLY_AVAILABLE, Srvid

log = logging.getLogger("ctdb")
NOTICE = 25
NO_ACTIVE = 0xFFFFFFFF
UNASSIGNED = 0xFFFFFFFF  # -1 as u32, the "no node" pnn in public_ip lists


@attrs.define(eq=False)
class Vnn:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    prefixlen: int
    ifaces: tuple[str, ...]
    pnn: int = UNASSIGNED  # who holds it, as far as this node knows
    active_iface: str | None = None  # set only while this node holds it
    releasing: anyio.Event | None = None  # set while a releaseip event for it runs


@attrs.define(eq=False)
class IfaceState:
    name: str
    link_up: bool = True
    references: int = 0


class PublicIPs:
    def __init__(self, daemon, addresses) -> None:
        self.d = daemon
        self.vnns: list[Vnn] = []
        self.ifaces: list[IfaceState] = []
        for a in addresses:
            self.add(a.ip, a.prefixlen, tuple(a.ifaces))

    # -- configuration ------------------------------------------------------------

    def _iface(self, name: str) -> IfaceState:
        for i in self.ifaces:
            if i.name == name:
                return i
        i = IfaceState(name, link_up=_link_up(name))
        # 4.17 prepends (DLIST_ADD): `ctdb ifaces` lists the newest first.
        self.ifaces.insert(0, i)
        return i

    def add(self, ip, prefixlen: int, ifaces: tuple[str, ...]) -> bool:
        if self.find(ip) is not None:
            return False
        for name in ifaces:
            self._iface(name)
        self.vnns.insert(0, Vnn(ip, prefixlen, ifaces))
        return True

    def find(self, ip) -> Vnn | None:
        ip = ipaddress.ip_address(ip)
        for v in self.vnns:
            if v.ip == ip:
                return v
        return None

    def available(self, v: Vnn) -> bool:
        return any(i.link_up for i in self.ifaces if i.name in v.ifaces)

    def held_here(self) -> list[Vnn]:
        return [v for v in self.vnns if v.pnn == self.d.pnn]

    # -- wire views -----------------------------------------------------------------

    def public_ip_list(self, flags: int) -> T.PublicIpList:
        only_available = bool(flags & PUBLIC_IP_FLAGS_ONLY_AVAILABLE)
        return T.PublicIpList(ips=tuple(
            T.PublicIp(pnn=v.pnn, addr=T.SockAddr(ip=v.ip))
            for v in self.vnns if not only_available or self.available(v)
        ))

    def ip_info(self, ip) -> T.PublicIpInfo | None:
        v = self.find(ip)
        if v is None:
            return None
        ifs = []
        for name in v.ifaces:
            st = next(i for i in self.ifaces if i.name == name)
            ifs.append(T.Iface(name=name, link_state=int(st.link_up), references=st.references))
        active = v.ifaces.index(v.active_iface) if v.active_iface in v.ifaces else NO_ACTIVE
        return T.PublicIpInfo(ip=T.PublicIp(pnn=v.pnn, addr=T.SockAddr(ip=v.ip)), active_idx=active, ifaces=tuple(ifs))

    def iface_list(self) -> T.IfaceList:
        return T.IfaceList(ifaces=tuple(
            T.Iface(name=i.name, link_state=int(i.link_up), references=i.references) for i in self.ifaces
        ))

    def set_link(self, name: str, up: bool) -> bool:
        for i in self.ifaces:
            if i.name == name:
                if i.link_up != up:
                    log.log(NOTICE, "Public interface %s link is %s", name, "up" if up else "down")
                    i.link_up = up
                return True
        return False

    # -- moving addresses -----------------------------------------------------------------

    def _best_iface(self, v: Vnn) -> str | None:
        # 4.17 ctdb_vnn_best_iface: a link-up interface with the fewest references.
        cands = [i for i in self.ifaces if i.name in v.ifaces and i.link_up]
        if not cands:
            return None
        order = {n: k for k, n in enumerate(v.ifaces)}
        return min(cands, key=lambda i: (i.references, order[i.name])).name

    def _ref(self, name: str | None, delta: int) -> None:
        for i in self.ifaces:
            if i.name == name:
                i.references = max(0, i.references + delta)

    async def takeover(self, pnn: int, ip) -> tuple[int, str]:
        v = self.find(ip)
        if v is None:
            # 4.17 answers 0 ("not a public address"): the leader only asks the node
            # it placed the address on, where it was available when it looked, so
            # this is a delip racing the run; the next run places it elsewhere.
            log.warning("Not taking over IP %s: it is not in this node's public addresses", ip)
            return 0, ""
        if pnn != self.d.pnn:
            if v.pnn == self.d.pnn:
                # We still hold it: release first (the leader releases before takes,
                # but a lost release must not leave the address on two nodes).
                status, why = await self.release(pnn, ip)
                if status != 0:
                    return status, why
            v.pnn = pnn
            return 0, ""
        best = self._best_iface(v)
        if best is None:
            return -1, f"no interface with link up for {ip}"
        if v.pnn == self.d.pnn and v.active_iface is not None:
            if v.active_iface == best or self.d.events is None:
                return 0, ""
            ok = await self.d.events.run("updateip", old_iface=v.active_iface, new_iface=best,
                                         ip=str(v.ip), maskbits=v.prefixlen)
            if not ok:
                return -1, f"updateip event failed for {ip}"
            self._ref(v.active_iface, -1)
            self._ref(best, +1)
            v.active_iface = best
            return 0, ""
        log.log(NOTICE, "Takeover of IP %s/%d on interface %s", v.ip, v.prefixlen, best)
        if self.d.events is not None:
            ok = await self.d.events.run("takeip", iface=best, ip=str(v.ip), maskbits=v.prefixlen)
            if not ok:
                # Plugins before the failing one may have brought the address up: undo
                # it, or it would stay on this node while the leader places it elsewhere.
                await self.d.events.run("releaseip", iface=best, ip=str(v.ip), maskbits=v.prefixlen)
                return -1, f"takeip event failed for {ip}"
        v.pnn, v.active_iface = self.d.pnn, best
        self._ref(best, +1)
        self.d.spawn(self.d.tickles.announce, v.ip, best)
        self.d.send_message(self.d.pnn, Srvid.TAKE_IP, T.pack_string(str(v.ip)))
        return 0, ""

    async def release(self, pnn: int, ip) -> tuple[int, str]:
        v = self.find(ip)
        if v is None:
            log.info("Not releasing unknown IP %s", ip)
            return 0, ""
        while v.releasing is not None:
            # Already being released (a node that stops releases everything while the
            # leader's run tells it the same): one releaseip, then this one is redundant.
            await v.releasing.wait()
        if v.pnn != self.d.pnn or v.active_iface is None:
            v.pnn = pnn  # 4.17's redundant release: just learn the new holder
            return 0, ""
        log.log(NOTICE, "Release of IP %s/%d on interface %s, node %s", v.ip, v.prefixlen, v.active_iface,
                "-1" if pnn == UNASSIGNED else pnn)
        iface = v.active_iface
        if self.d.events is not None:
            v.releasing = anyio.Event()
            try:
                ok = await self.d.events.run("releaseip", iface=iface, ip=str(v.ip), maskbits=v.prefixlen)
            finally:
                v.releasing.set()
                v.releasing = None
            if not ok:
                # 4.17's release_ip_callback: a failed event (a service plugin's
                # releaseip, say) only fails the release while the address is still on
                # an interface; otherwise it is gone and the node must say so, or the
                # address stays "held" here and every retry fails.
                still = await anyio.to_thread.run_sync(self._still_hosted, v.ip)
                if still:
                    return -1, f"IP {ip} still hosted during release IP callback, failing"
                log.warning("releaseip event failed for %s, but the address is no longer on any "
                            "interface: released", ip)
        self._ref(iface, -1)
        v.pnn, v.active_iface = pnn, None
        self.d.send_message(self.d.pnn, Srvid.RELEASE_IP, T.pack_string(str(v.ip)))
        return 0, ""

    def _still_hosted(self, ip) -> bool:
        """Whether ``ip`` is on an interface of this node (never, in test mode: there
        public addresses are bookkeeping only)."""
        events = self.d.events
        if events is not None and events.ctx.test_mode:
            return False
        from ctdbcore.netif.addresses import NetifError, has_ip

        try:
            return has_ip(ip) is not None
        except (NetifError, OSError):
            return True  # cannot tell: do not claim it is gone

    async def release_all(self, why: str) -> None:
        held = [v for v in self.vnns if v.active_iface is not None]
        if held:
            log.log(NOTICE, "Releasing all %d public IPs (%s)", len(held), why)
        for v in held:
            with anyio.move_on_after(float(self.d.tunables.get("EventScriptTimeout")) + 1):
                await self.release(UNASSIGNED, v.ip)


def _link_up(name: str) -> bool:
    try:
        with open(f"/sys/class/net/{name}/operstate") as f:
            state = f.read().strip()
        # veths in a namespace report "up"; some virtual links say "unknown" but work.
        return state in ("up", "unknown")
    except OSError:
        return True  # interface not visible here (loopback mode): assume usable
