"""A tiny threaded fake ctdbd for client and CLI tests (speaks packets via ctdbcore.protocol).

It models what 4.17's tests/UNIT/tool fake_ctdbd models: a nodemap (the NODEMAP blocks
of the .sh files), vnnmap, recmode, runstate, tunables, capabilities, ifaces, reclock,
the flag-changing controls, and public IPs as 4.17's fake_ctdbd.c does them (the
PUBLICIPS block: per node, the IPs it knows and the owner it believes in; RELEASE_IP /
TAKEOVER_IP update those beliefs; GET_PUBLIC_IP_INFO reports every interface with
active_idx 0). Tickle lists follow 4.17 server/ctdb_takeover.c (TCP_ADD_DELAYED_UPDATE,
TCP_REMOVE, GET_TCP_TICKLE_LIST). The real /usr/bin/ctdb can be pointed at it too.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from ctdbcore.protocol import packets, types
from ctdbcore.protocol.constants import (
    CURRENT_NODE,
    CTRL_FLAG_NOREPLY,
    DEFAULT_CAPABILITIES,
    DISABLED,
    INACTIVE,
    PUBLIC_IP_FLAGS_ONLY_AVAILABLE,
    NodeFlags,
    Opcode,
    Srvid,
)
from ctdbcore.protocol.decoder import StreamDecoder

# 4.17 common/tunable.c: listvars order, default values (obsolete ones hidden).
TUNABLES = {
    "SeqnumInterval": 1000, "ControlTimeout": 60, "TraverseTimeout": 20,
    "KeepaliveInterval": 5, "KeepaliveLimit": 5, "RecoverTimeout": 30, "RecoverInterval": 1,
    "ElectionTimeout": 3, "TakeoverTimeout": 9, "MonitorInterval": 15,
    "TickleUpdateInterval": 20, "EventScriptTimeout": 30, "MonitorTimeoutCount": 20,
    "RecoveryGracePeriod": 120, "RecoveryBanPeriod": 300, "DatabaseHashSize": 100001,
    "DatabaseMaxDead": 5, "RerecoveryTimeout": 10, "EnableBans": 1, "NoIPFailback": 0,
    "VerboseMemoryNames": 0, "RecdPingTimeout": 60, "RecdFailCount": 10, "LogLatencyMs": 0,
    "RecLockLatencyMs": 1000, "RecoveryDropAllIPs": 120, "VacuumInterval": 10,
    "VacuumMaxRunTime": 120, "RepackLimit": 10000, "VacuumFastPathCount": 60,
    "MaxQueueDropMsg": 1000000, "AllowUnhealthyDBRead": 0, "StatHistoryInterval": 1,
    "DeferredAttachTO": 120, "AllowClientDBAttach": 1, "FetchCollapse": 1,
    "HopcountMakeSticky": 50, "StickyDuration": 600, "StickyPindown": 200, "NoIPTakeover": 0,
    "DBRecordCountWarn": 100000, "DBRecordSizeWarn": 10000000, "DBSizeWarn": 100000000,
    "PullDBPreallocation": 10485760, "LockProcessesPerDB": 200, "RecBufferSizeLimit": 1000000,
    "QueueBufferSize": 1024, "IPAllocAlgorithm": 2, "AllowMixedVersions": 0,
}
OBSOLETE_TUNABLES = {"MaxRedirectCount": 3, "DeterministicIPs": 0}

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
UNKNOWN = 0xFFFFFFFF


def parse_publicips_block(text: str, numnodes: int) -> dict[int, list[types.PublicIp]]:
    """A PUBLICIPS block (4.17 ipalloc_read_known_ips): ``IP OWNER [pnn,pnn...]`` per
    line; the IP is known, with that owner, on the listed nodes (default: all)."""
    known: dict[int, list[types.PublicIp]] = {p: [] for p in range(numnodes)}
    for line in text.strip().splitlines():
        f = line.split()
        if not f:
            continue
        owner = int(f[1]) & 0xFFFFFFFF
        pnns = [int(x) for x in f[2].split(",")] if len(f) > 2 else list(range(numnodes))
        for p in pnns:
            known[p].append(types.PublicIp(pnn=owner, addr=types.SockAddr.parse(f[0])))
    return known


def parse_ifaces_block(text: str) -> list[types.Iface]:
    """An IFACES block: ``:Name:LinkStatus:References:`` header, then ``:eth2:1:2:``."""
    out = []
    for line in text.strip().splitlines():
        f = line.strip().split(":")
        if len(f) < 5 or f[1] == "Name":
            continue
        out.append(types.Iface(name=f[1], link_state=int(f[2]), references=int(f[3])))
    return out


def parse_nodemap_block(text: str) -> tuple[list[tuple[int, str, int]], int, int | None, dict[int, int]]:
    """A NODEMAP block of ctdb/tests/UNIT/tool/*.sh -> (nodes, current, leader, caps)."""
    nodes, current, leader, caps = [], 0, None, {}
    for line in text.strip().splitlines():
        f = line.split()
        if not f:
            continue
        pnn, ip, flags = int(f[0]), f[1], int(f[2], 0)
        nodes.append((pnn, ip, flags))
        cap = DEFAULT_CAPABILITIES
        for word in f[3:]:
            if word == "CURRENT":
                current = pnn
            elif word == "RECMASTER":
                leader = pnn
            elif word == "-CTDB_CAP_LMASTER":
                cap &= ~0x2
            elif word == "-CTDB_CAP_RECMASTER":
                cap &= ~0x1
        caps[pnn] = cap
    return nodes, current, leader, caps


@attrs.define
class FakeState:
    nodes: list[tuple[int, str, int]]
    current: int = 0
    leader: int | None = 0
    caps: dict[int, int] = attrs.Factory(dict)
    generation: int = 654321
    vnnmap: list[int] | None = None
    recmode: int = 0
    runstate: int = 5
    ifaces: list[types.Iface] = attrs.Factory(
        lambda: [types.Iface(name="eth2", link_state=1, references=2),
                 types.Iface(name="eth1", link_state=1, references=4)]
    )
    reclock: str | None = None
    public_ips: dict[int, list[types.PublicIp]] | None = None  # known IPs per node
    tickles: dict[Any, list[types.Connection]] = attrs.Factory(dict)  # by ip address
    reload_ips: dict[int, list[types.PublicIp]] = attrs.Factory(dict)  # RELOAD_PUBLIC_IPS
    tunables: dict[str, int] = attrs.Factory(lambda: dict(TUNABLES))
    start_time: float = attrs.Factory(time.time)


class FakeCtdbd:
    def __init__(self, path: str, state: FakeState, *, leader_interval: float = 0.05) -> None:
        self.path = path
        self.state = state
        self.leader_interval = leader_interval
        self.received: list[packets.Packet] = []
        self.hooks: dict[int, Callable[[packets.ReqControl], tuple[int, bytes] | None]] = {}
        self.before_reply: list[tuple[int, bytes]] = []  # messages pushed before next reply
        self._lock = threading.RLock()
        self._conns: dict[socket.socket, set[int]] = {}
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        self._sock.listen(16)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True),
                         threading.Thread(target=self._leader_loop, daemon=True)]
        for t in self._threads:
            t.start()

    @classmethod
    def from_block(cls, path: str, block: str, **kw: Any) -> FakeCtdbd:
        nodes, current, leader, caps = parse_nodemap_block(block)
        return cls(path, FakeState(nodes=nodes, current=current, leader=leader, caps=caps), **kw)

    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            for c in list(self._conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self._conns.clear()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until every client has disconnected (all it sent is then processed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._conns:
                    return
            time.sleep(0.002)

    def set_public_ips(self, block: str) -> None:
        self.state.public_ips = parse_publicips_block(block, len(self.state.nodes))

    def messages(self, srvid: int | None = None) -> list[packets.ReqMessage]:
        return [p for p in self.received if isinstance(p, packets.ReqMessage)
                and (srvid is None or p.srvid == srvid)]

    def controls(self, opcode: int) -> list[packets.ReqControl]:
        return [p for p in self.received
                if isinstance(p, packets.ReqControl) and p.opcode == opcode]

    def opcodes(self) -> list[int]:
        return [p.opcode for p in self.received if isinstance(p, packets.ReqControl)]

    # -- plumbing
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns[conn] = set()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket, pkt: packets.Packet) -> None:
        try:
            conn.sendall(packets.pack(pkt))
        except OSError:
            pass

    def message(self, srvid: int, data: bytes) -> None:
        """Deliver a message to every client that registered ``srvid``."""
        with self._lock:
            targets = [c for c, ids in self._conns.items() if srvid in ids]
        for c in targets:
            self._send(c, packets.ReqMessage(generation=1, destnode=self.state.current,
                                             srcnode=self.state.current, srvid=srvid, data=data))

    def _leader_loop(self) -> None:
        while not self._stop.wait(self.leader_interval):
            if self.state.leader is not None:
                self.message(Srvid.LEADER, _U32.pack(self.state.leader))

    def _serve(self, conn: socket.socket) -> None:
        dec = StreamDecoder(strict=False)
        try:
            while True:
                buf = conn.recv(65536)
                if not buf:
                    break
                dec.feed(buf)
                for pkt in dec.events():
                    self.received.append(pkt)
                    if isinstance(pkt, packets.ReqControl):
                        self._control(conn, pkt)
                    elif isinstance(pkt, packets.ReqMessage):
                        self._message(pkt)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.pop(conn, None)
            conn.close()

    def _message(self, pkt: packets.ReqMessage) -> None:
        if pkt.srvid == Srvid.TAKEOVER_RUN and self.state.leader is not None:
            req = types.SrvidMessage.unpack(pkt.data)
            if req.srvid:
                self.message(req.srvid, _I32.pack(self.state.leader))
        elif pkt.srvid == Srvid.DISABLE_TAKEOVER_RUNS:
            # Each node's recoverd answers with its pnn (4.17 disable_takeover_runs).
            req = types.DisableMessage.unpack(pkt.data)
            if req.srvid:
                self.message(req.srvid, _I32.pack(pkt.destnode))
        elif pkt.srvid in (Srvid.DISABLE_IP_CHECK, Srvid.REBALANCE_NODE):
            pass  # recorded in self.received
        else:
            self.message(pkt.srvid, pkt.data)

    def _flags(self, pnn: int) -> int:
        return next(f for p, _, f in self.state.nodes if p == pnn)

    def _set_flags(self, pnn: int, set_: int = 0, clear: int = 0) -> None:
        self.state.nodes = [(p, ip, (f | set_) & ~clear if p == pnn else f)
                            for p, ip, f in self.state.nodes]

    def _control(self, conn: socket.socket, req: packets.ReqControl) -> None:
        st = self.state
        dest = st.current if req.destnode == CURRENT_NODE else req.destnode
        status, data, errmsg = 0, b"", b""
        op = req.opcode
        hook = self.hooks.get(op)
        result = hook(req) if hook else None
        if result is not None:
            status, data = result
        elif op == Opcode.GET_PNN:
            status = dest
        elif op == Opcode.PING:
            status = len(self._conns)
        elif op == Opcode.GET_PID:
            status = os.getpid()
        elif op == Opcode.REGISTER_SRVID:
            with self._lock:
                self._conns[conn].add(req.srvid)
        elif op == Opcode.DEREGISTER_SRVID:
            with self._lock:
                self._conns[conn].discard(req.srvid)
        elif op == Opcode.GET_NODEMAP:
            data = types.NodeMap(nodes=[
                types.NodeAndFlags(pnn=p, flags=f, addr=types.SockAddr.parse(ip))
                for p, ip, f in st.nodes]).pack()
        elif op == Opcode.GETVNNMAP:
            vmap = st.vnnmap if st.vnnmap is not None else [p for p, _, _ in st.nodes]
            data = types.VnnMap(generation=st.generation, map=vmap).pack()
        elif op == Opcode.GET_RECMODE:
            status = st.recmode
        elif op == Opcode.GET_RUNSTATE:
            data = _U32.pack(st.runstate)
        elif op == Opcode.GET_CAPABILITIES:
            data = _U32.pack(st.caps.get(dest, DEFAULT_CAPABILITIES))
        elif op == Opcode.GET_IFACES:
            data = types.IfaceList(ifaces=st.ifaces).pack()
        elif op == Opcode.GET_RECLOCK_FILE:
            data = types.pack_string(st.reclock) if st.reclock else b""
        elif op == Opcode.UPTIME:
            now = time.time()
            data = types.Uptime(
                current_time=types.Timeval.from_float(now),
                ctdbd_start_time=types.Timeval.from_float(st.start_time),
                last_recovery_started=types.Timeval.from_float(st.start_time + 0.5),
                last_recovery_finished=types.Timeval.from_float(st.start_time + 0.6),
            ).pack()
        elif op == Opcode.LIST_TUNABLES:
            data = types.VarList(names=list(st.tunables)).pack()
        elif op == Opcode.GET_TUNABLE:
            name = types.unpack_stringn(req.data)
            match = [k for k in st.tunables if k.lower() == name.lower()]
            if match:
                data = _U32.pack(st.tunables[match[0]])
            else:
                status = -22
        elif op == Opcode.SET_TUNABLE:
            tun = types.SetTunable.unpack(req.data)
            match = [k for k in st.tunables if k.lower() == tun.name.lower()]
            if match:
                st.tunables[match[0]] = tun.value
            elif any(k.lower() == tun.name.lower() for k in OBSOLETE_TUNABLES):
                status = 1
            else:
                status = -1
        elif op == Opcode.DISABLE_NODE:
            self._set_flags(dest, set_=NodeFlags.PERMANENTLY_DISABLED)
        elif op == Opcode.ENABLE_NODE:
            self._set_flags(dest, clear=NodeFlags.PERMANENTLY_DISABLED)
        elif op == Opcode.STOP_NODE:
            self._set_flags(dest, set_=NodeFlags.STOPPED)
        elif op == Opcode.CONTINUE_NODE:
            self._set_flags(dest, clear=NodeFlags.STOPPED)
        elif op == Opcode.SET_BAN_STATE:
            ban = types.BanState.unpack(req.data)
            if ban.pnn != dest:
                status = -1
            elif ban.time:
                self._set_flags(dest, set_=NodeFlags.BANNED)
            else:
                self._set_flags(dest, clear=NodeFlags.BANNED)
        elif op in _IP_CONTROLS:
            status, data, errmsg = self._ip_control(dest, req)
        else:
            status, errmsg = -1, b"not implemented in fake"
        if req.flags & CTRL_FLAG_NOREPLY:
            return
        for srvid, payload in self.before_reply:
            self.message(srvid, payload)
        self.before_reply = []
        self._send(conn, packets.ReplyControl(
            generation=st.generation, destnode=req.srcnode, srcnode=dest, reqid=req.reqid,
            status=status, data=data, errmsg=errmsg))

    # -- public IPs (4.17 tests/src/fake_ctdbd.c) and tickles (server/ctdb_takeover.c)
    def _known(self, pnn: int) -> list[types.PublicIp]:
        if self.state.public_ips is None:
            return []
        return self.state.public_ips.setdefault(pnn, [])

    def _find(self, pnn: int, addr: types.SockAddr) -> int | None:
        for i, ip in enumerate(self._known(pnn)):
            if ip.addr.ip == addr.ip:
                return i
        return None

    def _ip_control(self, dest: int, req: packets.ReqControl) -> tuple[int, bytes, bytes]:
        st, op = self.state, req.opcode
        if op == Opcode.GET_PUBLIC_IPS:
            ips = self._known(dest)
            if req.flags & PUBLIC_IP_FLAGS_ONLY_AVAILABLE and (
                st.runstate != 5 or self._flags(dest) & (INACTIVE | DISABLED)
            ):
                ips = []
            return 0, types.PublicIpList(ips=ips).pack(), b""
        if op == Opcode.GET_PUBLIC_IP_INFO:
            addr = types.SockAddr.unpack(req.data)
            i = self._find(dest, addr)
            if i is None:
                return -1, b"", b"Unknown address"
            info = types.PublicIpInfo(ip=self._known(dest)[i], active_idx=0, ifaces=st.ifaces)
            return 0, info.pack(), b""
        if op == Opcode.SET_IFACE_LINK_STATE:
            iface = types.Iface.unpack(req.data)
            if iface.link_state not in (0, 1):
                return -1, b"", b"invalid link state"
            if iface.references != 0:
                return -1, b"", b"references should be 0"
            for n, cur in enumerate(st.ifaces):
                if cur.name == iface.name:
                    st.ifaces[n] = attrs.evolve(cur, link_state=iface.link_state)
                    return 0, b"", b""
            return -1, b"", b"interface not found"
        if op in (Opcode.RELEASE_IP, Opcode.TAKEOVER_IP):
            pip = types.PublicIp.unpack(req.data)
            i = self._find(dest, pip.addr)
            if i is None:
                return 0, b"", b""  # "not a public IP"
            known = self._known(dest)
            cur = known[i]
            if op == Opcode.RELEASE_IP and cur.pnn != dest and dest == pip.pnn:
                return -1, b"", b"RELEASE_IP to TAKE_IP node"
            if op == Opcode.RELEASE_IP or cur.pnn != dest:
                known[i] = attrs.evolve(cur, pnn=pip.pnn)
            return 0, b"", b""
        if op == Opcode.ADD_PUBLIC_IP:
            info = types.AddrInfo.unpack(req.data)
            if st.public_ips is None:
                st.public_ips = {p: [] for p, _, _ in st.nodes}
            if self._find(dest, info.addr) is not None:
                return -1, b"", b""
            self._known(dest).append(types.PublicIp(pnn=UNKNOWN, addr=info.addr))
            return 0, b"", b""
        if op == Opcode.DEL_PUBLIC_IP:
            info = types.AddrInfo.unpack(req.data)
            i = self._find(dest, info.addr)
            if i is None:
                return -1, b"", b""
            del self._known(dest)[i]
            return 0, b"", b""
        if op == Opcode.RELOAD_PUBLIC_IPS:
            if dest in st.reload_ips:
                if st.public_ips is None:
                    st.public_ips = {}
                st.public_ips[dest] = list(st.reload_ips[dest])
            return 0, b"", b""
        if op == Opcode.GET_TCP_TICKLE_LIST:
            addr = types.SockAddr.unpack(req.data)
            if self._find(dest, addr) is None:
                return 1, b"", b""  # "is not a public address"
            conns = [c for c in st.tickles.get(addr.ip, [])
                     if addr.port == 0 or c.dst.port == addr.port]
            return 0, types.TickleList(addr=addr, conns=conns).pack(), b""
        if op == Opcode.TCP_ADD_DELAYED_UPDATE:
            conn = types.Connection.unpack(req.data)
            if st.public_ips is None:
                return 0, b"", b""
            if self._find(dest, conn.dst) is None:
                return -1, b"", b""
            conns = st.tickles.setdefault(conn.dst.ip, [])
            if conn not in conns:
                conns.append(conn)
            return 0, b"", b""
        if op == Opcode.TCP_REMOVE:
            conn = types.Connection.unpack(req.data)
            conns = st.tickles.get(conn.dst.ip, [])
            if conn in conns:  # 4.17 moves the last entry into the hole
                i = conns.index(conn)
                conns[i] = conns[-1]
                conns.pop()
            return 0, b"", b""
        raise AssertionError(op)


_IP_CONTROLS = frozenset({
    Opcode.GET_PUBLIC_IPS, Opcode.GET_PUBLIC_IP_INFO, Opcode.SET_IFACE_LINK_STATE,
    Opcode.RELEASE_IP, Opcode.TAKEOVER_IP, Opcode.ADD_PUBLIC_IP, Opcode.DEL_PUBLIC_IP,
    Opcode.RELOAD_PUBLIC_IPS, Opcode.GET_TCP_TICKLE_LIST, Opcode.TCP_ADD_DELAYED_UPDATE,
    Opcode.TCP_REMOVE,
})
