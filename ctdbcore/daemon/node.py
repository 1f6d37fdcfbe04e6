"""ctdbd's core: one node's state and the anyio loop that drives it.

The decisions live in the sans-IO state machines of ctdbcore.cluster (election,
liveness, recovery planning); this module carries out their effects, routes
packets between the node transport, local clients and the control handlers, and
runs the plugin events at the points 4.17 runs its event scripts.

4.17 splits this over ctdbd and a forked recovery daemon talking through the unix
socket; we keep both roles in one process and one event loop, which removes the
recovery daemon's one-second polling from every failover path.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
import logging
import os
import socket
import time

import anyio
import attrs

from ctdbcore.cluster import effects as fx
from ctdbcore.cluster.election import Election
from ctdbcore.cluster.liveness import Liveness
from ctdbcore.cluster.recovery import NodeView, active_nodes, new_generation, plan_vnnmap, recovery_reason
from ctdbcore.cluster.takeover import UNASSIGNED, NodeIPs, PlacementError, plan
from ctdbcore.daemon.clients import ClientConn, ClientServer
from ctdbcore.daemon import dbcontrols  # noqa: F401  (registers the database controls)
from ctdbcore.daemon.controls import HANDLERS
from ctdbcore.daemon.databases import DbService
from ctdbcore.daemon.dbrecovery import recover_databases
from ctdbcore.daemon.vacuum import Vacuumer
from ctdbcore.daemon.publicips import PublicIPs
from ctdbcore.daemon.tickles import Tickles
from ctdbcore.protocol import packets as P
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import (
    BROADCAST_ACTIVE,
    BROADCAST_ALL,
    BROADCAST_CONNECTED,
    CTDB_PORT,
    CTRL_FLAG_NOREPLY,
    CURRENT_NODE,
    INACTIVE,
    INVALID_GENERATION,
    KEEPALIVE_VERSION,
    MULTICAST,
    PUBLIC_IP_FLAGS_ONLY_AVAILABLE,
    UNKNOWN_PNN,
    Capability,
    NodeFlags,
    Opcode,
    RecMode,
    Runstate,
    Srvid,
)

log = logging.getLogger("ctdb")
NOTICE = 25

BROADCASTS = (BROADCAST_ALL, BROADCAST_ACTIVE, BROADCAST_CONNECTED, MULTICAST)
# Controls the leader sends while recovering; 4.17's RecoverTimeout is 30 s but a
# healthy peer answers in milliseconds, and a dead one is reported by the transport.
RECOVERY_STEP_TIMEOUT = 10.0
POLL_TIMEOUT = 3.0


class ControlFailed(Exception):
    def __init__(self, pnn: int, opcode: int, status: int, errmsg: str) -> None:
        super().__init__(f"control {Opcode(opcode).name if opcode in Opcode._value2member_map_ else opcode} "
                         f"to node {pnn} failed: status {status} {errmsg}")
        self.status = status
        self.pnn = pnn


@attrs.define
class _Pending:
    pnn: int
    done: anyio.Event = attrs.field(factory=anyio.Event)
    result: tuple[int, bytes, bytes] = (-1, b"", b"")


@attrs.define
class _Forward:
    client: ClientConn
    client_reqid: int
    pnn: int


def _now() -> float:
    return time.monotonic()



def _control_result(res) -> tuple[int, bytes, bytes]:
    """A handler's answer (a status, a payload, or the full triple) as the triple."""
    if isinstance(res, int):
        return (res, b"", b"")
    if isinstance(res, bytes):
        return (0, res, b"")
    return res

class Daemon:
    def __init__(
        self,
        *,
        pnn: int,
        nodes: list,  # NodeEntry(pnn, address, deleted)
        tunables,
        socket_path: str,
        cluster_lock: str | None,
        leader_timeout: float,
        leader_capability: bool = True,
        lmaster_capability: bool = True,
        start_as_disabled: bool = False,
        start_as_stopped: bool = False,
        transport_plugin=None,
        mutex_factory=None,
        events=None,
        port: int = CTDB_PORT,
        socket_group: str | None = None,
        public_addresses=(),
        failover_disabled: bool = False,
        allocator=None,
        public_addresses_path: str | None = None,
        public_interface: str | None = None,
        databases=None,  # ctdbcore.db.registry.Databases
        debug_level: int = 3,  # DBGLVL of the configured log level (NOTICE, 4.17's default)
        test_mode: bool = False,  # CTDB_TEST_MODE: public addresses are bookkeeping only
        on_ready=None,  # called once the unix socket and the node port are listening
        on_stopped=None,  # called at shutdown once both are closed, before the clients are
    ) -> None:
        self.pnn = pnn
        self.test_mode = test_mode
        self.on_ready = on_ready
        self.on_stopped = on_stopped
        # 4.17's ctdb_statistics counters, by field name (``ctdb statistics``); the
        # client server counts client_packets_sent into it.
        self.stats: collections.Counter[str] = collections.Counter()
        self.stats_start = time.time()
        # GET_STAT_HISTORY: one Statistics per StatHistoryInterval, newest first (4.17
        # keeps MAX_STAT_HISTORY = 100); each holds what the counters did in its interval.
        self.stat_history: collections.deque[T.Statistics] = collections.deque(maxlen=100)
        self.stats_mark: collections.Counter[str] = collections.Counter()
        self.stats_mark_time = self.stats_start
        self.nodes = list(nodes)
        self.tunables = tunables
        self.cluster_lock = cluster_lock
        self.port = port
        self.events = events  # ctdbcore.daemon.events.EventHost or None
        self.start_time = time.time()
        self._mono_start = _now()
        self.last_recovery_started = 0.0
        self.last_recovery_finished = 0.0
        self.runstate = Runstate.INIT
        self._normal_waiters: list[anyio.Event] = []
        self.recmode = RecMode.ACTIVE
        self.vnnmap = T.VnnMap(generation=INVALID_GENERATION, map=(pnn,))
        caps = Capability.PARALLEL_RECOVERY | Capability.FRAGMENTED_CONTROLS
        if leader_capability:
            caps |= Capability.RECMASTER
        if lmaster_capability:
            caps |= Capability.LMASTER
        self.capabilities = int(caps)
        self.flags: dict[int, int] = {}
        for n in self.nodes:
            if n.deleted:
                self.flags[n.pnn] = NodeFlags.DELETED | NodeFlags.DISCONNECTED
            elif n.pnn == pnn:
                # 4.17: a node starts unhealthy until its first good monitor run.
                f = NodeFlags.UNHEALTHY if events is not None else 0
                if start_as_disabled:
                    f |= NodeFlags.PERMANENTLY_DISABLED
                if start_as_stopped:
                    f |= NodeFlags.STOPPED
                self.flags[n.pnn] = f
            else:
                self.flags[n.pnn] = NodeFlags.DISCONNECTED | NodeFlags.UNHEALTHY
        self.ban_until: float | None = None
        self.debug_level = debug_level

        self.election = Election(
            pnn=pnn,
            lock_configured=cluster_lock is not None,
            leader_timeout=leader_timeout,
            election_timeout=float(tunables.get("ElectionTimeout")),
            can_lead=self._can_lead(),
        )
        self.liveness = Liveness(
            interval=float(tunables.get("KeepaliveInterval")), limit=int(tunables.get("KeepaliveLimit"))
        )
        self.mutex_factory = mutex_factory
        self.mutex = mutex_factory(cluster_lock) if (cluster_lock and mutex_factory) else None
        addrs = {n.pnn: n.address for n in self.nodes if not n.deleted}
        self.transport = transport_plugin.create(
            own_pnn=pnn, addresses=addrs, port=port, host=self, logger=log
        )
        self.server = ClientServer(
            socket_path, on_packet=self.client_packet, on_close=self.client_closed, logger=log, group=socket_group,
            stats=self.stats,
        )
        self._reqids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._forwards: dict[int, _Forward] = {}
        self._node_waiting: dict[int, int] = {}  # pnn -> its controls whose tasks have not started
        self._srvids: dict[int, set[ClientConn]] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._wake = anyio.Event()
        self._leader_wake = anyio.Event()
        self._startup_ready = anyio.Event()
        self._force_recovery = False
        self._leaderless_since: float | None = None
        self._takeover_requests: list[T.SrvidMessage] = []
        self._leaderless_requests: list[bytes] = []
        self._takeover_failed = False
        self._takeover_disabled_until = 0.0
        self._ban_credits: dict[int, tuple[int, float]] = {}
        self._takeover_done_key: tuple = ()
        self._silent_deaths: dict[int, float] = {}
        self._silent_peers: set[int] = set()  # dead by keepalive timeout, not yet back
        self._lock_contended = False
        self.failover_disabled = failover_disabled
        self.public_addresses_path = public_addresses_path
        self.public_interface = public_interface
        self.allocator = allocator
        self._no_allocator_logged = False
        self.public_ips = PublicIPs(self, public_addresses)
        self.tickles = Tickles(self)
        self._shutdown = anyio.Event()
        self._handlers = HANDLERS
        if databases is None:
            import tempfile

            from ctdbcore.db.registry import Databases, DbDirs

            scratch = tempfile.mkdtemp(prefix=f"ctdbd-{pnn}-")
            databases = Databases(pnn, DbDirs(*(os.path.join(scratch, k) for k in ("volatile", "persistent", "state"))))
        self.dbs = DbService(self, databases)
        self.vacuumer = Vacuumer(self)
        # Messages the daemon itself consumes (recovery pulls), by srvid.
        self.internal_srvids: dict[int, object] = {}
        # Record traffic for a node this one has no connection to yet: a restarted node
        # is in the cluster (the leader sees it) a moment before its connection to each
        # peer is up, and a call dropped then is never resent (no recovery follows, the
        # active nodes did not change). Sent when the connection comes up; forgotten
        # when the node dies (the recovery that follows resends).
        self._held: dict[int, collections.deque[bytes]] = {}

    # ------------------------------------------------------------------ helpers

    @property
    def own_flags(self) -> int:
        return self.flags[self.pnn]

    def _can_lead(self) -> bool:
        return bool(self.capabilities & Capability.RECMASTER) and not (self.flags[self.pnn] & INACTIVE)

    def uptime_seconds(self) -> int:
        return int(_now() - self._mono_start)

    def is_leader(self) -> bool:
        return self.election.leader == self.pnn

    def connected_pnns(self) -> list[int]:
        return [n.pnn for n in self.nodes if not n.deleted and n.pnn != self.pnn and self.transport.is_connected(n.pnn)]

    def spawn(self, fn, *args) -> None:
        assert self._tg is not None
        self._tg.start_soon(fn, *args)

    def poke(self) -> None:
        self._wake.set()

    def poke_leader(self) -> None:
        self._leader_wake.set()

    def nodemap(self) -> T.NodeMap:
        entries = []
        for n in self.nodes:
            ip = n.address if n.address is not None else ipaddress.IPv4Address("0.0.0.0")
            entries.append(T.NodeAndFlags(pnn=n.pnn, flags=int(self.flags[n.pnn]), addr=T.SockAddr(ip=ip, port=self.port)))
        return T.NodeMap(nodes=tuple(entries))

    # ------------------------------------------------------------------ main

    async def run(self) -> None:
        log.log(NOTICE, "Starting CTDB daemon (pnn %d, pid %d)", self.pnn, os.getpid())
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self.runstate = Runstate.INIT
            if self.events and not await self.events.run("init"):
                log.error("Failed to run init event, shutting down")
                raise SystemExit(1)
            # As 4.17 (ctdb_attach_databases after the init event): the init event checks
            # the persistent databases on disk (00.ctdb) before they are opened.
            for db in self.dbs.registry.attach_on_disk():
                log.info("Attached persistent database %s from %s", db.name, db.path)
            await tg.start(self.server.serve)
            transport_scope = anyio.CancelScope()
            transport_done = anyio.Event()

            async def transport(task_status=anyio.TASK_STATUS_IGNORED) -> None:
                try:
                    with transport_scope:
                        await self.transport.serve(task_status=task_status)
                finally:
                    transport_done.set()

            await tg.start(transport)
            if self.on_ready:
                self.on_ready()
            self.runstate = Runstate.SETUP
            if self.events and not await self.events.run("setup"):
                log.error("Failed to run setup event, shutting down")
                raise SystemExit(1)
            self.runstate = Runstate.FIRST_RECOVERY
            self._apply(self.election.start(_now()))
            tg.start_soon(self._timer_loop)
            tg.start_soon(self._stat_history_loop)
            tg.start_soon(self._leader_loop)
            tg.start_soon(self._startup_and_monitor)
            tg.start_soon(self.vacuumer.loop)
            tg.start_soon(self.tickles.update_loop)
            await self._shutdown.wait()
            await self._do_shutdown()
            # `ctdb shutdown` returns when our connection to it closes, and whoever
            # sent it may start a new ctdbd at once: the socket, the node port and the
            # pid file must all be free before any client connection closes.
            self.server.stop_listening()
            transport_scope.cancel()
            with anyio.move_on_after(2):
                await transport_done.wait()
            if self.on_stopped:
                self.on_stopped()
            tg.cancel_scope.cancel()

    async def _stat_history_loop(self) -> None:
        """4.17 ctdb_statistics_update: every StatHistoryInterval seconds the interval's
        counters become the newest history entry: the growth of ``stats`` since the last
        entry, and the hop counts of the interval; the gauges 4.17 does not set per
        interval (num_clients, frozen, ...) stay 0."""
        from ctdbcore.daemon.controls import stats_snapshot

        while True:
            await anyio.sleep(max(1, int(self.tunables.get("StatHistoryInterval"))))
            now = time.time()
            delta = self.stats - self.stats_mark
            buckets, delta["max_hop_count"] = self.dbs.registry.counters.interval_hops()
            self.stat_history.appendleft(stats_snapshot(delta, buckets, self.stats_mark_time, now))
            self.stats_mark = collections.Counter(self.stats)
            self.stats_mark_time = now

    def on_tunables_changed(self) -> None:
        self.liveness.interval = float(self.tunables.get("KeepaliveInterval"))
        self.liveness.limit = int(self.tunables.get("KeepaliveLimit"))
        self.election.election_timeout = float(self.tunables.get("ElectionTimeout"))
        self.poke()

    def on_capabilities_changed(self) -> None:
        self._apply(self.election.set_can_lead(self._can_lead(), self.own_flags, _now()))
        self.poke_leader()

    def poke_leader_takeover(self) -> None:
        """Ask the leader for a takeover run, as 4.17 does on a health change."""
        self.send_message(BROADCAST_CONNECTED, Srvid.TAKEOVER_RUN, T.SrvidMessage(pnn=self.pnn, srvid=0).pack())

    async def reload_public_ips(self) -> tuple[int, bytes, bytes]:
        from ctdbcore.config.errors import ConfigErrors
        from ctdbcore.config.public_addresses import parse_public_addresses_file

        path = self.public_addresses_path
        if not path:
            return (-1, b"", b"no public addresses file")
        try:
            wanted = parse_public_addresses_file(path, default_iface=self.public_interface) if os.path.exists(path) else ()
        except ConfigErrors as e:
            log.error("Not reloading public addresses: %s", e)
            return (-1, b"", str(e).encode())
        keep = {a.ip for a in wanted}
        for v in list(self.public_ips.vnns):
            if v.ip not in keep:
                if v.active_iface is not None:
                    await self.public_ips.release(0xFFFFFFFF, v.ip)
                self.public_ips.vnns.remove(v)
                log.log(NOTICE, "Public address %s removed by reload", v.ip)
        for a in wanted:
            if self.public_ips.add(a.ip, a.prefixlen, tuple(a.ifaces)):
                log.log(NOTICE, "Public address %s/%d added by reload", a.ip, a.prefixlen)
        self.poke_leader_takeover()
        return (0, b"", b"")

    def request_shutdown(self) -> None:
        self._shutdown.set()

    def force_recovery(self, why: str) -> None:
        """Make the leader recover: a node in recovery mode is what it looks for."""
        if self.recmode != RecMode.ACTIVE:
            log.log(NOTICE, "Recovery mode set to ACTIVE (%s)", why)
            self.recmode = RecMode.ACTIVE
        if self.is_leader():
            self._force_recovery = True
        self.wake_leader()

    def wake_leader(self) -> None:
        """Have the leader look at the cluster now rather than at its next
        RecoverInterval tick (4.17 waits for the tick): a node of ours that entered
        recovery mode asks it for a takeover run, which starts with a full round."""
        if self.is_leader():
            self.poke_leader()
        elif self.election.leader not in (UNKNOWN_PNN, self.pnn):
            self.send_message(self.election.leader, Srvid.TAKEOVER_RUN,
                              T.SrvidMessage(pnn=self.pnn, srvid=0).pack())

    async def _do_shutdown(self) -> None:
        log.log(NOTICE, "Shutdown sequence commencing")
        self.runstate = Runstate.SHUTDOWN
        with anyio.move_on_after(float(self.tunables.get("EventScriptTimeout")) + 1):
            await self.public_ips.release_all("shutdown")
        if self.events:
            with anyio.move_on_after(float(self.tunables.get("EventScriptTimeout")) + 1):
                await self.events.run("shutdown")
        if self.mutex is not None:
            with anyio.move_on_after(2):
                await self.mutex.release()
        self.dbs.thaw_all()
        log.log(NOTICE, "Shutdown sequence complete, exiting")

    async def _timer_loop(self) -> None:
        while True:
            now = _now()
            self._apply(self.election.timer(now))
            self._apply(self.liveness.timer(now))
            if self.ban_until is not None and now >= self.ban_until:
                self.ban_until = None
                self.set_own_flags(self.own_flags & ~NodeFlags.BANNED, "ban expired")
            drop_at = None
            if self._leaderless_since is not None and self.public_ips.held_here():
                # 4.17 RecoveryDropAllIPs: a node that has had no leader for this long is
                # cut off; its addresses are served elsewhere, so let them go.
                drop_at = self._leaderless_since + float(self.tunables.get("RecoveryDropAllIPs"))
                if now >= drop_at:
                    drop_at = None
                    self._leaderless_since = None
                    self.spawn(self.public_ips.release_all, "no leader for RecoveryDropAllIPs seconds")
            deadlines = [d for d in (self.election.next_deadline(), self.liveness.next_deadline(), self.ban_until,
                                     drop_at) if d]
            delay = max(0.0, min(deadlines) - _now()) if deadlines else 1.0
            self._wake = anyio.Event()
            with anyio.move_on_after(min(delay, 1.0)):
                await self._wake.wait()

    @property
    def recmode(self) -> RecMode:
        return self._recmode

    @recmode.setter
    def recmode(self, mode: RecMode) -> None:
        self._recmode = mode
        if mode == RecMode.NORMAL:
            waiters, self._normal_waiters = self._normal_waiters, []
            for ev in waiters:
                ev.set()

    async def wait_recmode_normal(self, timeout: float) -> bool:
        """Wait until this node leaves recovery mode; False on timeout."""
        if self._recmode == RecMode.NORMAL:
            return True
        ev = anyio.Event()
        self._normal_waiters.append(ev)
        with anyio.move_on_after(timeout):
            await ev.wait()
        if ev in self._normal_waiters:
            self._normal_waiters.remove(ev)
        return ev.is_set()

    # ------------------------------------------------------------------ effects

    def _apply(self, effects: list) -> None:
        for e in effects:
            if isinstance(e, fx.BroadcastLeader):
                data = T.pack_u32(e.leader)
                self.send_message(e.to if e.to is not None else BROADCAST_CONNECTED, Srvid.LEADER, data)
            elif isinstance(e, fx.SendElection):
                msg = T.ElectionMessage(
                    num_connected=e.num_connected,
                    priority_time=T.Timeval.from_float(e.priority_time),
                    pnn=e.pnn,
                    node_flags=e.node_flags,
                )
                self.send_message(BROADCAST_ALL, Srvid.ELECTION, msg.pack())
            elif isinstance(e, fx.TryLock):
                self.spawn(self._try_lock)
            elif isinstance(e, fx.ReleaseLock):
                if self.mutex is not None:
                    self.spawn(self.mutex.release)
            elif isinstance(e, fx.LeaderChanged):
                log.log(NOTICE, "Leader changed to %s", "UNKNOWN" if e.new == UNKNOWN_PNN else e.new)
                if e.new == self.pnn:
                    self._force_recovery = True
                    self.poke_leader()
                if e.new != UNKNOWN_PNN:
                    self._lock_contended = False  # only a contention seen while leaderless counts
                    held, self._leaderless_requests = self._leaderless_requests, []
                    for data in held:
                        self.send_message(e.new, Srvid.TAKEOVER_RUN, data)
                self._leaderless_since = _now() if e.new == UNKNOWN_PNN else None
                if e.new == UNKNOWN_PNN and self.recmode != RecMode.ACTIVE:
                    # 4.17's force_election puts the nodes into recovery mode: without a
                    # leader nobody may act, and only a leader's recovery ends it.
                    log.log(NOTICE, "Recovery mode set to ACTIVE (no leader)")
                    self.recmode = RecMode.ACTIVE
            elif isinstance(e, fx.NodeDead):
                log.log(NOTICE, "Node %d is silent for %.1f s, declaring it dead", e.pnn, self.liveness.dead_after)
                self.transport.drop(e.pnn, "keepalive timeout")
            elif isinstance(e, fx.SendKeepalive):
                pkt = P.ReqKeepalive(version=KEEPALIVE_VERSION, uptime=self.uptime_seconds())
                self.stats["keepalive_packets_sent"] += 1
                self.send_node(e.pnn, pkt)
        self.poke()

    async def _try_lock(self) -> None:
        from ctdbcore.daemon.mutex import MutexResult

        assert self.mutex is not None
        t0 = _now()
        try:
            res = await self.mutex.acquire(timeout=10.0)
        except Exception as e:  # a broken helper must not take the daemon down
            log.error("Cluster lock attempt failed: %s", e)
            res = MutexResult.ERROR
        held = res == MutexResult.HELD
        if held:
            log.log(NOTICE, "Took cluster lock in %.3f s", _now() - t0)
        else:
            log.info("Cluster lock not taken: %s", res.name)
        self._apply(self.election.lock_result(held, _now()))
        if held and self.mutex.held:
            self.spawn(self._watch_lock)
        self._lock_contended = res == MutexResult.CONTENTION
        self._check_cut_off()

    def _check_cut_off(self) -> None:
        """Someone we cannot reach holds the cluster lock and we cannot see most of the
        cluster: we are the cut-off side of a partition, and the other side is about
        to serve our addresses. Let them go now, not RecoveryDropAllIPs later."""
        if (self._lock_contended and self.election.leader == UNKNOWN_PNN and not self._sees_majority()
                and self.public_ips.held_here()):
            self.spawn(self.public_ips.release_all, "cut off: the cluster lock is held by a node we cannot reach")

    def _seen_of_members(self) -> tuple[int, int]:
        members = [n.pnn for n in self.nodes if not n.deleted]
        alive = [p for p in members if p != self.pnn and not self.flags[p] & NodeFlags.DISCONNECTED]
        return 1 + len(alive), len(members)

    def _sees_majority(self) -> bool:
        seen, members = self._seen_of_members()
        return 2 * seen > members

    def _may_take_silent(self) -> bool:
        """A silent peer may be alive behind a partition, serving its addresses. Only
        the side that can prove it is the cluster takes them: a strict majority, or
        exactly half holding the cluster lock (the other half then cannot, and lets
        its addresses go in _check_cut_off). Without a lock nothing proves anything,
        and half is enough, as 4.17 behaves."""
        seen, members = self._seen_of_members()
        return 2 * seen > members or (2 * seen == members and (self.election.holds_lock or self.mutex is None))

    async def _watch_lock(self) -> None:
        assert self.mutex is not None
        await self.mutex.lost.wait()
        if self.election.holds_lock:
            log.error("Cluster lock lost")
            self._apply(self.election.lock_lost(_now()))

    # ------------------------------------------------------------------ flags

    def set_own_flags(self, new: int, why: str) -> None:
        old = self.own_flags
        if new == old:
            return
        self.flags[self.pnn] = new
        log.log(NOTICE, "Node flags changed 0x%x -> 0x%x (%s)", old, new, why)
        if new & INACTIVE and not old & INACTIVE:
            # 4.17 ctdb_node_become_inactive: drop out of the cluster's generation.
            self.vnnmap = T.VnnMap(generation=INVALID_GENERATION, map=self.vnnmap.map)
            self.dbs.invalidate_generations()
            self.recmode = RecMode.ACTIVE
            self.spawn(self.public_ips.release_all, "node became inactive")
        change = T.NodeFlagChange(pnn=self.pnn, new_flags=new, old_flags=old).pack()
        for pnn in self.connected_pnns():
            self.send_control_noreply(pnn, Opcode.MODIFY_FLAGS, change)
        self._apply(self.election.set_can_lead(self._can_lead(), new, _now()))
        self.poke_leader()

    def modify_remote_flags(self, pnn: int, new: int, old: int) -> None:
        if pnn == self.pnn or pnn not in self.flags:
            return
        before = self.flags[pnn]
        after = (before & NodeFlags.DISCONNECTED) | (new & ~NodeFlags.DISCONNECTED)
        if after != before:
            self.flags[pnn] = after
            log.log(NOTICE, "Node %d has changed flags - 0x%x -> 0x%x", pnn, before, after)
            self.poke_leader()

    # ------------------------------------------------------------------ transport host

    def peer_connected(self, pnn: int) -> None:
        log.log(NOTICE, "Node %d connected", pnn)
        self.flags[pnn] &= ~NodeFlags.DISCONNECTED
        self._silent_peers.discard(pnn)
        now = _now()
        self._apply(self.liveness.connected(pnn, now))
        change = T.NodeFlagChange(pnn=self.pnn, new_flags=self.own_flags, old_flags=self.own_flags).pack()
        self.send_control_noreply(pnn, Opcode.MODIFY_FLAGS, change)
        self._apply(self.election.node_connected(pnn, now))
        for data in self._held.pop(pnn, ()):
            self.transport.send(pnn, data)
        # A newcomer may take one of our addresses later: give it our tickle lists
        # now (4.17 sends them every TickleUpdateInterval).
        for v in self.public_ips.held_here():
            tl = self.tickles.list_for(T.SockAddr(ip=v.ip))
            if tl.conns:
                self.send_control_noreply(pnn, Opcode.SET_TCP_TICKLE_LIST, tl.pack())
        self.poke_leader()

    def peer_lost(self, pnn: int, reason: str) -> None:
        log.log(NOTICE, "Node %d is dead (%s)", pnn, reason)
        if reason == "keepalive timeout":
            # Silent, not closed: it may be alive on the other side of a partition.
            self._silent_deaths[pnn] = _now()
            self._silent_peers.add(pnn)
        else:
            self._silent_peers.discard(pnn)
        self.flags[pnn] |= NodeFlags.DISCONNECTED | NodeFlags.UNHEALTHY
        self.liveness.disconnected(pnn)
        self._held.pop(pnn, None)
        for reqid, p in list(self._pending.items()):
            if p.pnn == pnn:
                p.result = (-1, b"", b"node disconnected")
                p.done.set()
        for reqid, f in list(self._forwards.items()):
            if f.pnn == pnn:
                del self._forwards[reqid]
                self._reply_client(f.client, f.client_reqid, -1, b"", b"node disconnected")
        self._apply(self.election.node_dead(pnn, _now()))
        self.dbs.node_lost(pnn)
        self._check_cut_off()
        self.poke_leader()

    def packet_received(self, pnn: int, pkt) -> None:
        self.liveness.received(pnn, _now())
        kind = _STAT_NAMES.get(type(pkt))
        if pnn != self.pnn:
            self.stats["node_packets_recv"] += 1  # 4.17 counts what the transport delivers
        if kind == "keepalive":
            self.stats["keepalive_packets_recv"] += 1
        elif kind is not None:
            self.stats[f"node_{kind}"] += 1
        if isinstance(pkt, P.ReqKeepalive):
            self._check_keepalive(pnn, pkt)
        elif isinstance(pkt, P.ReqControl):
            self._serve_node_control(pnn, pkt)
        elif isinstance(pkt, P.ReplyControl):
            self._control_reply(pkt)
        elif isinstance(pkt, P.ReqMessage):
            self.deliver_local(pkt.srvid, pkt.data, pnn)
        elif isinstance(pkt, P.ReqCall):
            self._spawn_from(pnn, self.dbs.calls.req_call, pnn, pkt)
        elif isinstance(pkt, P.ReqDmaster):
            self._spawn_from(pnn, self.dbs.calls.req_dmaster, pnn, pkt)
        elif isinstance(pkt, P.ReplyDmaster):
            self._spawn_from(pnn, self.dbs.calls.reply_dmaster, pnn, pkt)
        elif isinstance(pkt, P.ReplyCall):
            self._spawn_from(pnn, self.dbs.calls.reply_call, pnn, pkt)
        elif isinstance(pkt, P.ReplyError):
            self.dbs.calls.reply_error(pnn, pkt)
        else:
            log.debug("Ignoring %s from node %d", type(pkt).__name__, pnn)

    def _check_keepalive(self, pnn: int, pkt) -> None:
        if pkt.version == KEEPALIVE_VERSION or self.tunables.get("AllowMixedVersions"):
            return
        mine = self.uptime_seconds()
        if pkt.uptime > mine or (pkt.uptime == mine and pkt.version > KEEPALIVE_VERSION):
            log.error("CTDB Cluster with mixed versions (node %d: 0x%08x), cannot continue", pnn, pkt.version)
            self.request_shutdown()

    # ------------------------------------------------------------------ sending

    def send_node(self, pnn: int, pkt, srcnode: int | None = None) -> bool:
        """Send to a node (or loop back); ``srcnode`` is kept when a call is redirected,
        because the original requester is who receives the record."""
        pkt = attrs.evolve(pkt, srcnode=self.pnn if srcnode is None else srcnode, destnode=pnn,
                           generation=self.vnnmap.generation)
        self.stats["node_packets_sent"] += 1
        if pnn == self.pnn:
            self.spawn(self._loopback, pkt)
            return True
        data = P.pack(pkt)
        if self.transport.send(pnn, data):
            return True
        if isinstance(pkt, _RECORD_PACKETS) and not self.transport.is_connected(pnn):
            self._held.setdefault(pnn, collections.deque(maxlen=HELD_PACKETS)).append(data)
        return False

    async def _loopback(self, pkt) -> None:
        self.packet_received(self.pnn, pkt)

    def broadcast_targets(self, dest: int) -> list[int]:
        out = []
        for n in self.nodes:
            f = self.flags[n.pnn]
            if n.deleted:
                continue
            if dest == BROADCAST_ACTIVE and f & INACTIVE:
                continue
            if dest == BROADCAST_CONNECTED and f & NodeFlags.DISCONNECTED:
                continue
            out.append(n.pnn)
        return out

    def send_message(self, dest: int, srvid: int, data: bytes) -> None:
        if dest == CURRENT_NODE:
            dest = self.pnn
        targets = self.broadcast_targets(dest) if dest in BROADCASTS else [dest]
        for pnn in targets:
            if pnn == self.pnn:
                self.deliver_local(srvid, data, self.pnn)
            else:
                self.send_node(pnn, P.ReqMessage(srvid=srvid, data=data))

    def deliver_local(self, srvid: int, data: bytes, src: int) -> None:
        internal = self.internal_srvids.get(srvid)
        if internal is not None:
            try:
                internal(data, src)
            except Exception as e:
                log.error("Bad message for srvid 0x%x from node %d: %s", srvid, src, e)
            return
        if self.dbs.push_message(srvid, data):
            return
        if srvid == Srvid.VACUUM_FETCH:
            try:
                self.vacuumer.fetch_home(data)
            except ValueError as e:
                log.warning("Bad VACUUM_FETCH from node %d: %s", src, e)
            return
        if srvid == Srvid.LEADER and len(data) >= 4:
            self._apply(self.election.leader_message(src, T.unpack_u32(data), _now()))
        elif srvid == Srvid.ELECTION:
            try:
                m = T.ElectionMessage.unpack(data)
                self._apply(self.election.election_message(src, m.priority_time.to_float(), m.node_flags, _now()))
            except Exception as e:
                log.warning("Bad election message from node %d: %s", src, e)
        elif srvid == Srvid.TAKEOVER_RUN:
            if self.is_leader() and not self.own_flags & INACTIVE:
                try:
                    self._takeover_requests.append(T.SrvidMessage.unpack(data))
                except Exception as e:
                    log.warning("Bad takeover run request from node %d: %s", src, e)
                self.poke_leader()
            elif (self.is_leader() or self.election.leader == UNKNOWN_PNN) and len(self._leaderless_requests) < 64:
                # Asked during an election (e.g. `ctdb ban` on the leader): keep the
                # request for whoever wins instead of leaving the tool to time out.
                self._leaderless_requests.append(data)
        elif srvid == Srvid.REBALANCE_NODE:
            if self.is_leader():
                self._takeover_failed = True  # forces a takeover run in the next leader round
                self.poke_leader()
        elif srvid == Srvid.DISABLE_TAKEOVER_RUNS:
            if self.is_leader():
                try:
                    m = T.DisableMessage.unpack(data)
                except Exception as e:
                    log.warning("Bad disable-takeover-runs message from node %d: %s", src, e)
                else:
                    self._takeover_disabled_until = _now() + m.timeout if m.timeout else 0.0
                    if m.srvid:
                        self.send_message(m.pnn, m.srvid, T.pack_i32(self.pnn))
        clients = set(self._srvids.get(srvid, ())) | set(self._srvids.get(Srvid.ALL, ()))
        if clients:
            raw = P.pack(P.ReqMessage(srvid=srvid, data=data, srcnode=src, destnode=self.pnn,
                                      generation=self.vnnmap.generation))
            for c in clients:
                c.send(raw)

    def send_control_noreply(self, pnn: int, opcode: int, data: bytes = b"") -> None:
        self.send_node(pnn, P.ReqControl(opcode=opcode, srvid=0, client_id=0, flags=CTRL_FLAG_NOREPLY, data=data))

    async def control(self, pnn: int, opcode: int, data: bytes = b"", *, timeout: float | None = None,
                      srvid: int = 0, flags: int = 0) -> tuple[int, bytes, bytes]:
        """Send a control to a node (self included) and wait for its reply."""
        if pnn == self.pnn:
            req = P.ReqControl(opcode=opcode, srvid=srvid, client_id=0, flags=flags, data=data,
                               srcnode=self.pnn, destnode=self.pnn)
            return await self.dispatch_control(req, self.pnn, None)
        if not self.transport.is_connected(pnn):
            return (-1, b"", b"ctdb_control to disconnected node")
        reqid = next(self._reqids)
        pend = _Pending(pnn)
        self._pending[reqid] = pend
        self.send_node(pnn, P.ReqControl(opcode=opcode, srvid=srvid, client_id=0, flags=flags, data=data, reqid=reqid))
        try:
            with anyio.move_on_after(timeout or float(self.tunables.get("ControlTimeout"))):
                await pend.done.wait()
                return pend.result
            return (-1, b"", b"ctdb_control timed out")
        finally:
            self._pending.pop(reqid, None)

    async def control_ok(self, pnn: int, opcode: int, data: bytes = b"", timeout: float | None = None) -> bytes:
        status, out, err = await self.control(pnn, opcode, data, timeout=timeout)
        if status != 0:
            raise ControlFailed(pnn, opcode, status, err.decode(errors="replace"))
        return out

    def _control_reply(self, pkt) -> None:
        pend = self._pending.get(pkt.reqid)
        if pend is not None:
            pend.result = (pkt.status, pkt.data, pkt.errmsg)
            pend.done.set()
            return
        fwd = self._forwards.pop(pkt.reqid, None)
        if fwd is not None:
            self._reply_client(fwd.client, fwd.client_reqid, pkt.status, pkt.data, pkt.errmsg)

    def _spawn_from(self, pnn: int, fn, *args) -> None:
        """Handle a packet from node ``pnn`` in a task; until that task starts, a later
        control from the node is not run ahead of it (:meth:`_serve_node_control`)."""
        self._node_waiting[pnn] = self._node_waiting.get(pnn, 0) + 1
        self.spawn(self._started_from, pnn, fn, args)

    async def _started_from(self, pnn: int, fn, args) -> None:
        self._node_waiting[pnn] -= 1
        await fn(*args)

    def _serve_node_control(self, src: int, req) -> None:
        """Answer another node's control: at once when its handler does not wait, else
        in a task of its own; behind any earlier packet from that node still waiting for
        its task to start (see :meth:`_serve_client_control`)."""
        if self._node_waiting.get(src):
            self._spawn_from(src, self._serve_node_control_later, src, req, None)
            return
        done, pending = self._start_control(req, src, None)
        if pending is not None:
            self._spawn_from(src, self._serve_node_control_later, src, req, pending)
        elif not req.flags & CTRL_FLAG_NOREPLY:
            status, data, err = done
            self.send_node(src, P.ReplyControl(status=status, data=data, errmsg=err, reqid=req.reqid))

    async def _serve_node_control_later(self, src: int, req, pending) -> None:
        if pending is None:
            status, data, err = await self.dispatch_control(req, src, None)
        else:
            status, data, err = await self._finish_control(req, pending)
        if not req.flags & CTRL_FLAG_NOREPLY:
            self.send_node(src, P.ReplyControl(status=status, data=data, errmsg=err, reqid=req.reqid))

    async def dispatch_control(self, req, src: int, client: ClientConn | None) -> tuple[int, bytes, bytes]:
        done, pending = self._start_control(req, src, client)
        if pending is None:
            return done
        return await self._finish_control(req, pending)

    def _start_control(self, req, src: int, client: ClientConn | None):
        """Run a control's handler: ``(result, None)`` when it is done, ``(None,
        awaitable)`` when it has to wait for something (an async handler, not started)."""
        handler = self._handlers.get(req.opcode)
        if handler is None:
            name = Opcode(req.opcode).name if req.opcode in Opcode._value2member_map_ else str(req.opcode)
            log.warning("Control %s not implemented", name)
            return (-1, b"", b""), None
        try:
            res = handler(self, req, src, client)
        except Exception as e:
            log.exception("Control %s failed", req.opcode)
            return (-1, b"", str(e).encode()), None
        if hasattr(res, "__await__"):
            return None, res
        return _control_result(res), None

    @staticmethod
    async def _finish_control(req, pending) -> tuple[int, bytes, bytes]:
        try:
            res = await pending
        except Exception as e:
            log.exception("Control %s failed", req.opcode)
            return (-1, b"", str(e).encode())
        return _control_result(res)

    # ------------------------------------------------------------------ clients

    def client_packet(self, client: ClientConn, pkt) -> None:
        self.stats["client_packets_recv"] += 1
        kind = _STAT_NAMES.get(type(pkt))
        if kind in ("req_call", "req_message", "req_control"):
            self.stats[f"client_{kind}"] += 1
            if kind == "req_call":
                self.stats["total_calls"] += 1
        if isinstance(pkt, P.ReqControl):
            dest = pkt.destnode
            if dest == CURRENT_NODE or dest == self.pnn:
                self._serve_client_control(client, pkt)
            elif dest in BROADCASTS:
                if not pkt.flags & CTRL_FLAG_NOREPLY:
                    self._reply_client(client, pkt.reqid, -1, b"", b"broadcast control needs NOREPLY")
                    return
                for pnn in self.broadcast_targets(dest):
                    if pnn == self.pnn:
                        self._serve_client_control(client, pkt)
                    else:
                        self.send_node(pnn, attrs.evolve(pkt, client_id=client.client_id, reqid=0))
            else:
                self._forward_control(client, pkt)
        elif isinstance(pkt, P.ReqMessage):
            self.send_message(pkt.destnode, pkt.srvid, pkt.data)
        elif isinstance(pkt, P.ReqCall):
            self.dbs.calls.from_client(client, pkt)
        else:
            log.debug("client pid %d sent %s, ignored", client.pid, type(pkt).__name__)

    def _forward_control(self, client: ClientConn, pkt) -> None:
        dest = pkt.destnode
        if dest not in self.flags or self.flags[dest] & NodeFlags.DELETED:
            self._reply_client(client, pkt.reqid, -1, b"", b"ctdb_control to invalid node")
            return
        if not self.transport.is_connected(dest):
            self._reply_client(client, pkt.reqid, -1, b"", b"ctdb_control to disconnected node")
            return
        if pkt.flags & CTRL_FLAG_NOREPLY:
            self.send_node(dest, attrs.evolve(pkt, client_id=client.client_id))
            return
        reqid = next(self._reqids)
        self._forwards[reqid] = _Forward(client, pkt.reqid, dest)
        self.send_node(dest, attrs.evolve(pkt, client_id=client.client_id, reqid=reqid))

    def _serve_client_control(self, client: ClientConn, pkt) -> None:
        """Answer a local client's control. A handler that does not wait (most of them)
        runs and is answered at once, as the packet is read; one that waits goes on in
        a task of its own. A control from a client with an earlier control or call whose
        task has not started yet waits behind it, so they still start in the order sent."""
        if client.waiting:
            self.spawn_for(client, self._serve_client_control_later, client, pkt, None)
            return
        req = attrs.evolve(pkt, client_id=client.client_id)
        done, pending = self._start_control(req, self.pnn, client)
        if pending is not None:
            self.spawn_for(client, self._serve_client_control_later, client, pkt, pending)
        elif not pkt.flags & CTRL_FLAG_NOREPLY:
            self._reply_client(client, pkt.reqid, *done)

    def spawn_for(self, client: ClientConn, fn, *args) -> None:
        """Handle a client's packet in a task; until that task starts, a later control
        of the client is not run ahead of it."""
        client.waiting += 1
        self.spawn(self._started_for, client, fn, args)

    @staticmethod
    async def _started_for(client: ClientConn, fn, args) -> None:
        client.waiting -= 1
        await fn(*args)

    async def _serve_client_control_later(self, client: ClientConn, pkt, pending) -> None:
        if pending is None:
            req = attrs.evolve(pkt, client_id=client.client_id)
            status, data, err = await self.dispatch_control(req, self.pnn, client)
        else:
            status, data, err = await self._finish_control(pkt, pending)
        if not pkt.flags & CTRL_FLAG_NOREPLY:
            self._reply_client(client, pkt.reqid, status, data, err)

    def _reply_client(self, client: ClientConn, reqid: int, status: int, data: bytes, err: bytes) -> None:
        client.send(P.pack(P.ReplyControl(status=status, data=data, errmsg=err, reqid=reqid,
                                          srcnode=self.pnn, destnode=self.pnn, generation=self.vnnmap.generation)))

    def client_closed(self, client: ClientConn) -> None:
        self.tickles.client_gone(client)
        self.dbs.calls.client_gone(client)
        for srvid in client.srvids:
            s = self._srvids.get(srvid)
            if s:
                s.discard(client)
                if not s:
                    del self._srvids[srvid]
        for reqid, f in list(self._forwards.items()):
            if f.client is client:
                del self._forwards[reqid]

    def register_srvid(self, client: ClientConn, srvid: int) -> None:
        self._srvids.setdefault(srvid, set()).add(client)
        client.srvids.add(srvid)
        if srvid == Srvid.LEADER and self.election.leader != UNKNOWN_PNN:
            # The ctdb tool waits for a LEADER broadcast; tell a new listener at once
            # instead of making it wait up to a broadcast period.
            raw = P.pack(P.ReqMessage(srvid=Srvid.LEADER, data=T.pack_u32(self.election.leader),
                                      srcnode=self.election.leader, destnode=self.pnn,
                                      generation=self.vnnmap.generation))
            client.send(raw)

    def deregister_srvid(self, client: ClientConn, srvid: int) -> bool:
        s = self._srvids.get(srvid)
        if not s or client not in s:
            return False
        s.discard(client)
        client.srvids.discard(srvid)
        if not s:
            del self._srvids[srvid]
        return True

    # ------------------------------------------------------------------ startup, monitor

    async def _startup_and_monitor(self) -> None:
        await self._startup_ready.wait()
        while True:
            if not self.events or await self.events.run("startup"):
                break
            log.error("startup event failed, retrying in 1 s")
            await anyio.sleep(1)
        self.runstate = Runstate.RUNNING
        log.log(NOTICE, "CTDB daemon is RUNNING")
        for pnn in self.connected_pnns():
            self.send_control_noreply(pnn, Opcode.STARTUP)
        # A node that can now host addresses wants its share (4.17 triggers a takeover
        # run when a node reaches RUNNING).
        self.poke_leader_takeover()
        if self.events:
            await self.events.monitor_loop(self)

    def end_first_recovery(self) -> None:
        if self.runstate == Runstate.FIRST_RECOVERY:
            self.runstate = Runstate.STARTUP
            self._startup_ready.set()

    # ------------------------------------------------------------------ leader

    async def _leader_loop(self) -> None:
        while True:
            with anyio.move_on_after(float(self.tunables.get("RecoverInterval"))):
                await self._leader_wake.wait()
            # A poke that arrives while the round below runs is for the next round.
            self._leader_wake = anyio.Event()
            if not self.is_leader() or self.own_flags & INACTIVE:
                # Leadership is going away: the next leader answers these.
                self._leaderless_requests.extend(r.pack() for r in self._takeover_requests)
                self._takeover_requests.clear()
                continue
            if self.mutex is not None and not self.election.holds_lock:
                continue
            try:
                await self._leader_round()
            except ControlFailed as e:
                log.warning("Leader round failed: %s; retrying", e)
                await anyio.sleep(0.2)
                self.poke_leader()
            except Exception:
                log.exception("Leader round crashed; retrying")
                await anyio.sleep(0.5)

    async def _collect_views(self) -> tuple[list[NodeView], dict[int, T.NodeMap]]:
        views: dict[int, NodeView] = {}
        maps: dict[int, T.NodeMap] = {}
        views[self.pnn] = NodeView(self.pnn, True, self.own_flags, self.vnnmap.generation, int(self.recmode),
                                   self.capabilities)

        async def ask(pnn: int) -> None:
            try:
                nm = T.NodeMap.unpack(await self.control_ok(pnn, Opcode.GET_NODEMAP, timeout=POLL_TIMEOUT))
                vm = T.VnnMap.unpack(await self.control_ok(pnn, Opcode.GETVNNMAP, timeout=POLL_TIMEOUT))
                st, _, _ = await self.control(pnn, Opcode.GET_RECMODE, timeout=POLL_TIMEOUT)
                caps = T.unpack_u32(await self.control_ok(pnn, Opcode.GET_CAPABILITIES, timeout=POLL_TIMEOUT))
            except Exception as e:  # a node that dies mid-poll counts as disconnected
                log.info("Could not poll node %d: %s", pnn, e)
                return
            own = next((n.flags for n in nm.nodes if n.pnn == pnn), self.flags[pnn])
            maps[pnn] = nm
            views[pnn] = NodeView(pnn, True, own, vm.generation, st, caps)

        async with anyio.create_task_group() as tg:
            for pnn in self.connected_pnns():
                tg.start_soon(ask, pnn)
        out = []
        for n in self.nodes:
            if n.deleted:
                continue
            out.append(views.get(n.pnn) or NodeView(n.pnn, False, self.flags[n.pnn], INVALID_GENERATION,
                                                    int(RecMode.ACTIVE), 0))
        return out, maps

    async def _leader_round(self) -> None:
        views, maps = await self._collect_views()
        # Flag sync: node j's own flags are the truth; push them where they differ.
        for v in views:
            if not v.connected:
                continue
            if v.pnn != self.pnn:
                self.modify_remote_flags(v.pnn, v.flags, self.flags[v.pnn])
            for k, nm in maps.items():
                seen = next((n.flags for n in nm.nodes if n.pnn == v.pnn), None)
                if k != v.pnn and seen is not None and (seen & ~NodeFlags.DISCONNECTED) != (v.flags & ~NodeFlags.DISCONNECTED):
                    self.send_control_noreply(
                        k, Opcode.MODIFY_FLAGS, T.NodeFlagChange(pnn=v.pnn, new_flags=v.flags, old_flags=seen).pack()
                    )
        reason = recovery_reason(views, list(self.vnnmap.map), self.vnnmap.generation, self.pnn)
        if self._force_recovery and reason is None:
            reason = "this node became leader"
        if reason:
            await self._do_recovery(views, reason)
        wanted = self._takeover_requests or self._takeover_failed or self._takeover_key() != self._takeover_done_key
        if wanted and _now() >= self._takeover_disabled_until:
            await self._takeover_run()

    @staticmethod
    async def _each(items, fn) -> None:
        """Run fn(item) for all items at once; raise the first ControlFailed after all
        finished (inside a task group it would escape as an ExceptionGroup)."""
        errors: list[ControlFailed] = []

        async def one(item) -> None:
            try:
                await fn(item)
            except ControlFailed as e:
                errors.append(e)

        async with anyio.create_task_group() as tg:
            for item in items:
                tg.start_soon(one, item)
        if errors:
            raise errors[0]

    async def _all(self, pnns: list[int], opcode: int, data: bytes = b"") -> None:
        await self._each(pnns, lambda p: self.control_ok(p, opcode, data, timeout=RECOVERY_STEP_TIMEOUT))

    async def _do_recovery(self, views: list[NodeView], reason: str) -> None:
        active = active_nodes(views)
        log.log(NOTICE, "Starting recovery (%s), active nodes %s", reason, active)
        t0 = time.time()
        gen = new_generation(avoid=self.vnnmap.generation)
        vnn = plan_vnnmap(views, self.pnn)
        await self._all(active, Opcode.SET_RECMODE, T.pack_u32(RecMode.ACTIVE))
        await self._all(active, Opcode.START_RECOVERY)
        await self._all(active, Opcode.SETVNNMAP, T.VnnMap(generation=gen, map=tuple(vnn)).pack())
        t1 = time.time()
        records = await recover_databases(self, active, gen, float(self.tunables.get("RecoverTimeout")))
        if len(self.dbs.registry):
            log.log(NOTICE, "Recovered %d databases (%d records) in %.3f s", len(self.dbs.registry), records,
                    time.time() - t1)
        await self._all(active, Opcode.SET_RECMODE, T.pack_u32(RecMode.NORMAL))
        await self._all(active, Opcode.END_RECOVERY)
        self._force_recovery = False
        self.send_message(BROADCAST_CONNECTED, Srvid.RECONFIGURE, b"")
        log.log(NOTICE, "Recovery complete in %.3f s, generation %d, vnnmap %s", time.time() - t0, gen, vnn)
        await self._takeover_run()

    async def _takeover_run(self) -> None:
        """4.17's takeover run: gather every active node's public addresses, let the
        ipalloc policy place them, release what moves, take what is new, then run
        ipreallocated everywhere; reply to whoever asked for the run."""
        requests, self._takeover_requests = self._takeover_requests, []
        ok = True
        try:
            await self._move_public_ips()
        except ControlFailed as e:
            log.warning("Takeover run failed: %s", e)
            ok = False
            self._blame(e.pnn, "takeover run failed")
        except PlacementError as e:
            # The leader's own policy is at fault, not a node: nobody is blamed.
            log.error("Takeover run failed: %s", e)
            ok = False
        self._takeover_failed = not ok
        if ok:
            self._ban_credits.clear()
        result = T.pack_i32(self.pnn if ok else -1)
        for r in requests:
            if r.srvid != 0:
                self.send_message(r.pnn, r.srvid, result)

    def _blame(self, pnn: int, why: str) -> None:
        """4.17's ban credits: each failure a node causes is worth nodemap size credits,
        credits older than RecoveryGracePeriod are forgiven, and twice the nodemap size
        bans the node for RecoveryBanPeriod (so: two failures in a row)."""
        now = _now()
        n = len(self.nodes)
        credits, last = self._ban_credits.get(pnn, (0, now))
        if now - last > float(self.tunables.get("RecoveryGracePeriod")):
            credits = 0
        credits += n
        self._ban_credits[pnn] = (credits, now)
        if credits >= 2 * n and self.tunables.get("EnableBans"):
            self._ban_credits.pop(pnn, None)
            period = int(self.tunables.get("RecoveryBanPeriod"))
            log.log(NOTICE, "Banning node %d for %d seconds (%s)", pnn, period, why)
            self.spawn(self._ban_node, pnn, period)

    async def _ban_node(self, pnn: int, period: int) -> None:
        status, _, err = await self.control(pnn, Opcode.SET_BAN_STATE, T.BanState(pnn=pnn, time=period).pack(),
                                            timeout=POLL_TIMEOUT)
        if status != 0:
            log.warning("Could not ban node %d: %s", pnn, err.decode(errors="replace"))

    def _takeover_key(self) -> tuple:
        return tuple((n.pnn, self.flags[n.pnn]) for n in self.nodes if not n.deleted)

    async def _move_public_ips(self) -> None:
        # A node that fell silent (rather than closed its connections) may be cut off
        # but alive; it lets its addresses go as soon as it finds itself cut off. Give
        # it that moment before taking them, so that no address is up twice.
        now = _now()
        # Both sides notice the silence at the same moment; the cut-off side needs one
        # lock attempt and an address removal (~0.1 s) to let go.
        grace = 0.5 * float(self.tunables.get("KeepaliveInterval"))
        wait = max((t + grace - now for t in self._silent_deaths.values()), default=0.0)
        self._silent_deaths = {p: t for p, t in self._silent_deaths.items() if t + grace > now}
        if wait > 0:
            log.info("Waiting %.2f s before moving addresses of silent nodes", wait)
            await anyio.sleep(wait)
        key = self._takeover_key()
        # 4.17: every connected node is asked what it knows (a stopped or banned node
        # too, so that it learns where its addresses went); only active nodes can host.
        members = sorted([self.pnn, *self.connected_pnns()])
        silent = sorted(p for p in self._silent_peers if self.flags[p] & NodeFlags.DISCONNECTED)
        if silent and not self._may_take_silent():
            # A leader cut off from most of the cluster still holds the lock (the other
            # side cannot take it, so it never takes our addresses): everyone keeps
            # what they hold until the partition heals.
            log.warning("Not moving public addresses: node(s) %s fell silent and this node sees no "
                        "majority of the cluster (it may be the cut-off side of a partition)",
                        ",".join(map(str, silent)))
            self._takeover_done_key = key
            return
        if self.failover_disabled or self.allocator is None:
            if self.allocator is None and not self.failover_disabled and not self._no_allocator_logged:
                self._no_allocator_logged = True
                log.error("Not placing public addresses: no ipalloc policy is installed on this node")
            await self._all(members, Opcode.IPREALLOCATED)
            self._takeover_done_key = key
            return
        infos: list[NodeIPs] = []

        async def gather(pnn: int) -> None:
            known = T.PublicIpList.unpack(await self.control_ok(pnn, Opcode.GET_PUBLIC_IPS, timeout=POLL_TIMEOUT))
            st, avail_raw, err = await self.control(pnn, Opcode.GET_PUBLIC_IPS, timeout=POLL_TIMEOUT,
                                                    flags=PUBLIC_IP_FLAGS_ONLY_AVAILABLE)
            if st != 0:
                raise ControlFailed(pnn, Opcode.GET_PUBLIC_IPS, st, err.decode(errors="replace"))
            avail = T.PublicIpList.unpack(avail_raw)
            rs = T.unpack_u32(await self.control_ok(pnn, Opcode.GET_RUNSTATE, timeout=POLL_TIMEOUT))
            infos.append(NodeIPs(
                pnn=pnn, flags=self.flags[pnn], runstate=rs,
                known={ip.addr.ip: (UNASSIGNED if ip.pnn == 0xFFFFFFFF else ip.pnn) for ip in known.ips},
                available=frozenset(ip.addr.ip for ip in avail.ips),
            ))

        await self._each(members, gather)
        infos.sort(key=lambda n: n.pnn)
        pl = plan(infos, self.allocator)
        # All releases finish before any take starts, so an address is never up on
        # two nodes; within each phase the addresses move in parallel. Releases go to
        # the nodes that know each address (the others learn the holder from them);
        # the take only to the new holder: pools differ per node, and a node asked to
        # take an address it does not have would fail the run.
        await self._each(pl.release_targets, lambda r: self._each(r[2], lambda p: self.control_ok(
            p, Opcode.RELEASE_IP, _pip(r[0], r[1]), timeout=RECOVERY_STEP_TIMEOUT)))
        await self._each(pl.takes, lambda t: self.control_ok(
            t[1], Opcode.TAKEOVER_IP, _pip(t[0], t[1]), timeout=RECOVERY_STEP_TIMEOUT))
        await self._all(members, Opcode.IPREALLOCATED)
        self._takeover_done_key = key
        if pl.releases or any(pl.current.get(ip) != pnn for ip, pnn in pl.takes):
            log.log(NOTICE, "Takeover run moved addresses: %s",
                    ", ".join(f"{ip}->{p}" for ip, p in pl.takes if pl.current.get(ip) != p) or "released only")


def _pip(ip, pnn: int) -> bytes:
    return T.PublicIp(pnn=pnn & 0xFFFFFFFF, addr=T.SockAddr(ip=ip)).pack()


# Calls and record moves: what a peer must get even when sent just before the
# connection to it is up (see Daemon._held); at most this many per peer.
_RECORD_PACKETS = (P.ReqCall, P.ReplyCall, P.ReqDmaster, P.ReplyDmaster, P.ReplyError)
HELD_PACKETS = 10000

_STAT_NAMES = {
    P.ReqCall: "req_call", P.ReplyCall: "reply_call", P.ReqDmaster: "req_dmaster",
    P.ReplyDmaster: "reply_dmaster", P.ReplyError: "reply_error", P.ReqMessage: "req_message",
    P.ReqControl: "req_control", P.ReplyControl: "reply_control", P.ReqKeepalive: "keepalive",
}


def find_own_pnn(nodes: list, node_address) -> int:
    """4.17: `[cluster] node address` if set, else the first nodes-file address this
    host can bind to."""
    if node_address is not None:
        for n in nodes:
            if not n.deleted and str(n.address) == str(node_address):
                return n.pnn
        raise SystemExit(f"ctdbd: node address {node_address} is not in the nodes file")
    for n in nodes:
        if n.deleted:
            continue
        fam = socket.AF_INET6 if n.address.version == 6 else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.bind((str(n.address), 0))
            return n.pnn
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit("ctdbd: no nodes-file address is local to this host")
