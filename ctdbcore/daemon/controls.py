"""Control handlers with 4.17's semantics (server/ctdb_control.c and friends).

Each handler takes (daemon, request, source pnn, client or None) and returns an int
(the status, for controls that answer in the status field), bytes (status 0 plus
data) or a (status, data, errmsg) tuple. Sizes are checked as 4.17's
CHECK_CONTROL_DATA_SIZE does: a wrong size is status -1.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import time

import anyio
import attrs

from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import INACTIVE, Capability, NodeFlags, Opcode, RecMode

log = logging.getLogger("ctdb")
NOTICE = 25
HANDLERS: dict[int, object] = {}


def control(opcode: Opcode, size: int | None = None):
    def deco(fn):
        if size is None:
            HANDLERS[opcode] = fn
        else:
            def checked(d, req, src, client):
                if len(req.data) != size:
                    log.error("Control %s: wrong data size %d, expected %d", opcode.name, len(req.data), size)
                    return -1
                return fn(d, req, src, client)

            HANDLERS[opcode] = checked
        return fn

    return deco


def _timeval(t: float) -> T.Timeval:
    return T.Timeval.from_float(t)


# -- identity and liveness -------------------------------------------------------


@control(Opcode.GET_PNN, 0)
def get_pnn(d, req, src, client):
    return d.pnn


@control(Opcode.PING, 0)
def ping(d, req, src, client):
    return len(d.server.clients)


@control(Opcode.GET_PID, 0)
def get_pid(d, req, src, client):
    return os.getpid()


@control(Opcode.PROCESS_EXISTS, 4)
def process_exists(d, req, src, client):
    """4.17: only a process that is a client of this daemon exists (Samba asks about
    smbd processes); on an inactive (banned, stopped, ...) node that client is
    disconnected -- its smbd exits -- and the answer is "no", so that other nodes
    may clean up what it held. Otherwise kill(pid, 0)."""
    pid = struct.unpack("<i", req.data)[0]
    conn = next((c for c in d.server.clients.values() if c.pid == pid), None)
    if conn is None:
        return -1
    if d.own_flags & INACTIVE:
        log.log(NOTICE, "Killing client with pid:%d on banned/stopped node", pid)
        conn.close()
        return -1
    try:
        os.kill(pid, 0)
    except OSError:
        return -1
    return 0


@control(Opcode.CHECK_PID_SRVID, 12)
def check_pid_srvid(d, req, src, client):
    ps = T.PidSrvid.unpack(req.data)
    for c in d.server.clients.values():
        if c.pid == ps.pid and ps.srvid in c.srvids:
            return 0
    return -1


@control(Opcode.UPTIME, 0)
def uptime(d, req, src, client):
    return T.Uptime(
        current_time=_timeval(time.time()),
        ctdbd_start_time=_timeval(d.start_time),
        last_recovery_started=_timeval(d.last_recovery_started),
        last_recovery_finished=_timeval(d.last_recovery_finished),
    ).pack()


@control(Opcode.GET_RUNSTATE, 0)
def get_runstate(d, req, src, client):
    return T.pack_u32(int(d.runstate))


@control(Opcode.GET_CAPABILITIES, 0)
def get_capabilities(d, req, src, client):
    return T.pack_u32(d.capabilities)


@control(Opcode.GET_RECLOCK_FILE, 0)
def get_reclock_file(d, req, src, client):
    return T.pack_string(d.cluster_lock) if d.cluster_lock else b""


@control(Opcode.GET_DEBUG, 0)
def get_debug(d, req, src, client):
    return T.pack_i32(d.debug_level)


@control(Opcode.SET_DEBUG, 4)
def set_debug(d, req, src, client):
    """4.17 debuglevel_set: any number is kept as is (GET_DEBUG gives it back); the
    logger follows Samba's DBGLVL thresholds (ERROR 0, WARNING 1, NOTICE 3, INFO 5,
    DEBUG 10)."""
    from ctdbcore.daemon.logsetup import python_level

    level = struct.unpack("<i", req.data)[0]
    d.debug_level = level
    logging.getLogger("ctdb").setLevel(python_level(level))
    return 0

@control(Opcode.RECD_PING)
def recd_ping(d, req, src, client):
    return 0


@control(Opcode.ECHO_DATA)
def echo_data(d, req, src, client):
    return req.data


@control(Opcode.STATISTICS, 0)
def statistics(d, req, src, client):
    """4.17 fills num_clients, frozen, recovering and the current time at the time of
    the control; the counters are kept as they happen (d.stats). Not kept by us, so 0:
    memory_used (talloc bytes), timeouts.*, childwrite_*, the call latencies."""
    fields = {k: v for k, v in d.stats.items() if k in _STAT_FIELDS}
    fields.update(d.dbs.registry.counters.statistics_fields())  # locks and hop counts
    registry = list(d.dbs.registry)
    return T.Statistics(
        num_clients=len(d.server.clients),
        # 4.17: freeze_mode == FROZEN, i.e. recovery mode froze every database
        frozen=int(d.recmode == RecMode.ACTIVE and all(db.frozen for db in registry)),
        recovering=int(d.recmode == RecMode.ACTIVE),
        pending_calls=len(d.dbs.calls.pending),
        statistics_start_time=_timeval(d.stats_start),
        statistics_current_time=_timeval(time.time()),
        **fields,
    ).pack()


_STAT_FIELDS = {f.name for f in attrs.fields(T.Statistics) if f.type in ("int", int)} - {
    "num_clients", "frozen", "recovering", "pending_calls"}


def stats_snapshot(counts, hop_buckets: list[int], start: float, now: float) -> T.Statistics:
    """A GET_STAT_HISTORY entry from interval counts (same keys as Daemon.stats) and
    hop count buckets."""
    return T.Statistics(
        hop_count_bucket=tuple(hop_buckets),
        statistics_start_time=_timeval(start),
        statistics_current_time=_timeval(now),
        **{k: v for k, v in counts.items() if k in _STAT_FIELDS},
    )


@control(Opcode.GET_STAT_HISTORY, 0)
def get_stat_history(d, req, src, client):
    """4.17 always answers MAX_STAT_HISTORY (100) entries; unused ones are all zero
    (start time 0, which ``ctdb stats`` skips)."""
    entries = list(d.stat_history)
    entries += [T.Statistics()] * (100 - len(entries))
    return T.StatisticsList(entries).pack()


@control(Opcode.STATISTICS_RESET, 0)
def statistics_reset(d, req, src, client):
    """4.17: zero the daemon's and every database's statistics; the collection starts
    again now."""
    d.stats.clear()
    d.stats_mark.clear()
    d.stats_start = time.time()
    d.dbs.registry.counters.reset()
    for db in d.dbs.registry:
        db.counters.reset()
    return 0


@control(Opcode.SHUTDOWN)
def shutdown(d, req, src, client):
    log.log(NOTICE, "Received SHUTDOWN command.")
    d.request_shutdown()
    return 0


# -- maps -------------------------------------------------------------------------


@control(Opcode.GET_NODEMAP)
def get_nodemap(d, req, src, client):
    return d.nodemap().pack()


@control(Opcode.GET_NODES_FILE)
def get_nodes_file(d, req, src, client):
    return d.nodemap().pack()


@control(Opcode.GETVNNMAP, 0)
def getvnnmap(d, req, src, client):
    return d.vnnmap.pack()


@control(Opcode.SETVNNMAP)
def setvnnmap(d, req, src, client):
    if d.recmode != RecMode.ACTIVE:
        log.error("Attempt to set vnnmap when not in recovery")
        return -1
    d.vnnmap = T.VnnMap.unpack(req.data)
    return 0


@control(Opcode.GET_IFACES, 0)
def get_ifaces(d, req, src, client):
    return d.public_ips.iface_list().pack()


@control(Opcode.GET_PUBLIC_IPS)
def get_public_ips(d, req, src, client):
    return d.public_ips.public_ip_list(req.flags).pack()


@control(Opcode.GET_PUBLIC_IP_INFO)
def get_public_ip_info(d, req, src, client):
    try:
        addr = T.SockAddr.unpack(req.data)
    except ValueError:
        return -1
    info = d.public_ips.ip_info(addr.ip)
    if info is None:
        return (-1, b"", f"IP {addr.ip} is not a public address of this node".encode())
    return info.pack()


@control(Opcode.SET_IFACE_LINK_STATE, 24)
def set_iface_link_state(d, req, src, client):
    i = T.Iface.unpack(req.data)
    if not d.public_ips.set_link(i.name, bool(i.link_state)):
        return (-1, b"", f"interface {i.name} not found".encode())
    d.poke_leader_takeover()
    return 0


@control(Opcode.RELEASE_IP, 32)
async def release_ip(d, req, src, client):
    pip = T.PublicIp.unpack(req.data)
    status, why = await d.public_ips.release(pip.pnn, pip.addr.ip)
    return (status, b"", why.encode())


@control(Opcode.TAKEOVER_IP, 32)
async def takeover_ip(d, req, src, client):
    pip = T.PublicIp.unpack(req.data)
    status, why = await d.public_ips.takeover(pip.pnn, pip.addr.ip)
    return (status, b"", why.encode())


@control(Opcode.ADD_PUBLIC_IP)
def add_public_ip(d, req, src, client):
    a = T.AddrInfo.unpack(req.data)
    ifaces = tuple(x for x in a.iface.split(",") if x)
    if not ifaces:
        return (-1, b"", b"no interface given")
    if not d.public_ips.add(a.addr.ip, a.mask, ifaces):
        return (-1, b"", f"IP {a.addr.ip} is already a public address".encode())
    d.poke_leader_takeover()
    return 0


@control(Opcode.DEL_PUBLIC_IP)
async def del_public_ip(d, req, src, client):
    a = T.AddrInfo.unpack(req.data)
    v = d.public_ips.find(a.addr.ip)
    if v is None:
        return (-1, b"", f"IP {a.addr.ip} is not a public address".encode())
    if v.active_iface is not None:
        status, why = await d.public_ips.release(0xFFFFFFFF, v.ip)
        if status != 0:
            return (status, b"", why.encode())
    d.public_ips.vnns.remove(v)
    d.poke_leader_takeover()
    return 0


@control(Opcode.RELOAD_PUBLIC_IPS, 0)
async def reload_public_ips(d, req, src, client):
    return await d.reload_public_ips()


# -- tunables ---------------------------------------------------------------------


@control(Opcode.LIST_TUNABLES, 0)
def list_tunables(d, req, src, client):
    return T.VarList(names=tuple(name for name, _ in d.tunables.listvars())).pack()


@control(Opcode.GET_TUNABLE)
def get_tunable(d, req, src, client):
    try:
        name = T.unpack_stringn(req.data)
        if isinstance(name, tuple):
            name = name[0]
        if isinstance(name, bytes):
            name = name.rstrip(b"\0").decode()
        return T.pack_u32(d.tunables.get(name))
    except (KeyError, ValueError, UnicodeDecodeError):
        return -errno.EINVAL


@control(Opcode.SET_TUNABLE)
def set_tunable(d, req, src, client):
    try:
        t = T.SetTunable.unpack(req.data)
    except ValueError:
        return -1
    status = d.tunables.set(t.name, t.value)
    if status == 0:
        log.log(NOTICE, "Tunable %s set to %d", t.name, t.value)
        d.on_tunables_changed()
    return status


@control(Opcode.GET_ALL_TUNABLES, 0)
def get_all_tunables(d, req, src, client):
    return T.TunableList(values=tuple(d.tunables.to_list())).pack()


# -- srvids -------------------------------------------------------------------------


@control(Opcode.REGISTER_SRVID)
def register_srvid(d, req, src, client):
    if client is None:
        return -1
    d.register_srvid(client, req.srvid)
    return 0


@control(Opcode.DEREGISTER_SRVID)
def deregister_srvid(d, req, src, client):
    if client is None:
        return -1
    return 0 if d.deregister_srvid(client, req.srvid) else -1


# -- recovery ---------------------------------------------------------------------


@control(Opcode.GET_RECMODE, 0)
def get_recmode(d, req, src, client):
    return int(d.recmode)


async def _lock_is_contended(d) -> tuple[bool, str]:
    """4.17 makes every node prove that someone else holds the cluster lock before it
    leaves recovery mode, so that a partition without the lock can never finish a
    recovery. For a plain lock file we ask the kernel with F_GETLK (no process to
    start); for a helper we must try to take the lock through it."""
    spec = d.cluster_lock
    if not spec.startswith("!"):
        def probe() -> tuple[bool, str]:
            try:
                fd = os.open(spec, os.O_RDWR)
            except OSError as e:
                return False, f"cannot open cluster lock {spec}: {e}"
            try:
                res = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 1, 0))
                l_type = struct.unpack("hhqqi4x", res)[0]
                if l_type == fcntl.F_UNLCK:
                    return False, "cluster lock is not held by the leader"
                return True, ""
            finally:
                os.close(fd)

        with anyio.move_on_after(5):
            return await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
        return False, "cluster lock check timed out"
    from ctdbcore.daemon.mutex import MutexResult

    m = d.mutex_factory(spec)
    res = await m.acquire(timeout=5.0)
    if res == MutexResult.HELD:
        await m.release()
        return False, "took the cluster lock: the leader does not hold it"
    if res == MutexResult.CONTENTION:
        return True, ""
    return False, f"cluster lock check failed: {res.name}"


@control(Opcode.SET_RECMODE, 4)
async def set_recmode(d, req, src, client):
    mode = T.unpack_u32(req.data)
    if mode == RecMode.ACTIVE:
        if d.recmode != RecMode.ACTIVE:
            log.log(NOTICE, "Recovery mode set to ACTIVE")
        d.recmode = RecMode.ACTIVE
        if client is not None:
            d.wake_leader()  # `ctdb recover`; the leader's own request needs no wake-up
        return 0
    if mode != RecMode.NORMAL:
        return -1
    if d.own_flags & INACTIVE:
        return (-1, b"", b"node is inactive")
    if d.recmode != RecMode.NORMAL:
        bad = d.dbs.check_generation()
        if bad:
            log.error("%s", bad)
            log.error("Recovery mode set to ACTIVE")
            return (-1, b"", bad.encode())
        d.dbs.thaw_all()
    if d.cluster_lock and not d.election.holds_lock:
        ok, why = await _lock_is_contended(d)
        if not ok:
            log.error("Refusing to leave recovery mode: %s", why)
            return (-1, b"", why.encode())
    if d.recmode != RecMode.NORMAL:
        log.log(NOTICE, "Recovery mode set to NORMAL")
    d.recmode = RecMode.NORMAL
    d.dbs.calls.resume()
    return 0


@control(Opcode.START_RECOVERY)
async def start_recovery(d, req, src, client):
    d.last_recovery_started = time.time()
    if d.events:
        # 4.17 ignores startrecovery failures and timeouts.
        await d.events.run("startrecovery")
    return 0


@control(Opcode.END_RECOVERY)
async def end_recovery(d, req, src, client):
    d.last_recovery_finished = time.time()
    d.stats["num_recoveries"] += 1
    d.dbs.recovery_finished()
    if d.events:
        await d.events.run("recovered")
    d.end_first_recovery()
    return 0


@control(Opcode.IPREALLOCATED)
async def ipreallocated(d, req, src, client):
    if d.events:
        await d.events.run("ipreallocated")
    return 0


@control(Opcode.STARTUP)
def startup(d, req, src, client):
    return 0


@control(Opcode.FREEZE)
def freeze(d, req, src, client):
    return 0


# -- node flags ---------------------------------------------------------------------


@control(Opcode.MODIFY_FLAGS, 12)
def modify_flags(d, req, src, client):
    c = T.NodeFlagChange.unpack(req.data)
    d.modify_remote_flags(c.pnn, c.new_flags, c.old_flags)
    return 0


@control(Opcode.DISABLE_NODE)
def disable_node(d, req, src, client):
    d.set_own_flags(d.own_flags | NodeFlags.PERMANENTLY_DISABLED, "disabled by administrator")
    return 0


@control(Opcode.ENABLE_NODE)
def enable_node(d, req, src, client):
    d.set_own_flags(d.own_flags & ~NodeFlags.PERMANENTLY_DISABLED, "enabled by administrator")
    return 0


@control(Opcode.STOP_NODE)
def stop_node(d, req, src, client):
    d.set_own_flags(d.own_flags | NodeFlags.STOPPED, "stopped by administrator")
    return 0


@control(Opcode.CONTINUE_NODE)
def continue_node(d, req, src, client):
    d.set_own_flags(d.own_flags & ~NodeFlags.STOPPED, "continued by administrator")
    return 0


@control(Opcode.SET_BAN_STATE, 8)
def set_ban_state(d, req, src, client):
    b = T.BanState.unpack(req.data)
    if b.pnn != d.pnn:
        log.error("SET_BAN_STATE for node %d sent to node %d", b.pnn, d.pnn)
        return -1
    if b.time == 0:
        d.ban_until = None
        d.set_own_flags(d.own_flags & ~NodeFlags.BANNED, "unbanned")
        return 0
    if not d.tunables.get("EnableBans"):
        log.log(NOTICE, "Bans are disabled, ignoring ban of %d s", b.time)
        return 0
    d.ban_until = time.monotonic() + b.time
    log.log(NOTICE, "Banning this node for %d seconds", b.time)
    d.set_own_flags(d.own_flags | NodeFlags.BANNED, f"banned for {b.time} s")
    d.poke()
    return 0


@control(Opcode.GET_BAN_STATE, 0)
def get_ban_state(d, req, src, client):
    left = 0
    if d.ban_until is not None:
        left = max(0, int(round(d.ban_until - time.monotonic())))
    return T.BanState(pnn=d.pnn, time=left).pack()


@control(Opcode.SET_RECMASTERROLE, 4)
def set_recmasterrole(d, req, src, client):
    on = T.unpack_u32(req.data)
    if on:
        d.capabilities |= Capability.RECMASTER
    else:
        d.capabilities &= ~Capability.RECMASTER
    d.on_capabilities_changed()
    return 0


@control(Opcode.SET_LMASTERROLE, 4)
def set_lmasterrole(d, req, src, client):
    on = T.unpack_u32(req.data)
    if on:
        d.capabilities |= Capability.LMASTER
    else:
        d.capabilities &= ~Capability.LMASTER
    d.poke_leader()
    return 0



# -- tickles ------------------------------------------------------------------------


@control(Opcode.TCP_CLIENT, 56)
def tcp_client(d, req, src, client):
    return d.tickles.client_connection(client, T.Connection.unpack(req.data))


@control(Opcode.TCP_ADD, 56)
def tcp_add(d, req, src, client):
    d.tickles.add(T.Connection.unpack(req.data))
    return 0


@control(Opcode.TCP_ADD_DELAYED_UPDATE, 56)
def tcp_add_delayed_update(d, req, src, client):
    conn = T.Connection.unpack(req.data)
    if not d.tickles.add(conn):
        return -1
    for pnn in d.connected_pnns():
        d.send_control_noreply(pnn, Opcode.TCP_ADD, conn.pack())
    return 0


@control(Opcode.TCP_REMOVE, 56)
def tcp_remove(d, req, src, client):
    conn = T.Connection.unpack(req.data)
    d.tickles.remove(conn)
    if src == d.pnn:
        for pnn in d.connected_pnns():
            d.send_control_noreply(pnn, Opcode.TCP_REMOVE, conn.pack())
    return 0


@control(Opcode.GET_TCP_TICKLE_LIST, 28)
def get_tcp_tickle_list(d, req, src, client):
    addr = T.SockAddr.unpack(req.data)
    if d.public_ips.find(addr.ip) is None:
        return -1
    return d.tickles.list_for(addr).pack()


@control(Opcode.SET_TCP_TICKLE_LIST)
def set_tcp_tickle_list(d, req, src, client):
    d.tickles.set_list(T.TickleList.unpack(req.data))
    return 0
