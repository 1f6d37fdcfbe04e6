"""Blocking client for ctdbd's unix socket (what 4.17's client/client_connect.c and
client/client_control.c do, minus tevent).

One socket, one thread. Replies are matched by reqid (1, 2, 3, ... as 4.17's reqid
allocator starts near 1 for a fresh client); REQ_MESSAGE packets that arrive while we wait
for something else are queued per srvid until :meth:`Client.wait_message` asks for them.
"""

from __future__ import annotations

import collections
import errno as errno_mod
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import attrs

from ctdbcore.protocol import packets, types
from ctdbcore.protocol.constants import (
    BROADCAST_CONNECTED,
    CTRL_FLAG_NOREPLY,
    CURRENT_NODE,
    PUBLIC_IP_FLAGS_ONLY_AVAILABLE,
    UNKNOWN_PNN,
    Opcode,
    Srvid,
)
from ctdbcore.protocol.decoder import StreamDecoder

DEFAULT_SOCKET = "/run/ctdb/ctdbd.socket"
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")


def default_socket_path() -> str:
    """``$CTDB_SOCKET``, else the run dir's ``ctdbd.socket`` (4.17 common/path.c:
    ``$CTDB_BASE/run`` when ``CTDB_TEST_MODE`` is set, else /run/ctdb)."""
    env = os.environ.get("CTDB_SOCKET")
    if env:
        return env
    if os.environ.get("CTDB_TEST_MODE") is not None and os.environ.get("CTDB_BASE"):
        return os.path.join(os.environ["CTDB_BASE"], "run", "ctdbd.socket")
    return DEFAULT_SOCKET


class ConnectError(OSError):
    """The daemon's socket could not be connected. ``str()`` is 4.17's log line."""

    def __init__(self, path: str, err: int) -> None:
        super().__init__(err, os.strerror(err), path)
        self.path = path

    def __str__(self) -> str:
        return f"connect() failed, errno={self.errno}"


class ConnectionClosed(ConnectionError):
    """ctdbd closed the socket (4.17: "connection to daemon closed, exiting")."""


@attrs.frozen
class ControlReply:
    status: int
    data: bytes = b""
    errmsg: str | None = None


class ControlError(Exception):
    """A control answered with a non-zero status (or not at all, see ControlTimeout)."""

    def __init__(self, opcode: int, status: int, errmsg: str | None = None) -> None:
        self.opcode = opcode
        self.status = status
        self.errmsg = errmsg
        try:
            name = Opcode(opcode).name
        except ValueError:
            name = str(opcode)
        text = f"Control {name} failed, status={status}"
        if errmsg:
            text += f", {errmsg}"
        super().__init__(text)


class ControlTimeout(ControlError, TimeoutError):
    def __init__(self, opcode: int) -> None:
        super().__init__(opcode, -errno_mod.ETIMEDOUT, "timed out")


def _errmsg(reply: Any) -> str | None:
    msg = getattr(reply, "errmsg", None)
    if msg is None or msg == b"" or msg == "":
        return None
    if isinstance(msg, bytes):
        msg = msg.rstrip(b"\0").decode("utf-8", "replace")
    return msg


def _unpack(cls: Any, data: bytes) -> Any:
    """Decode a payload with a protocol type (``cls.unpack(buf)`` returns the object, or
    ``(object, size)``)."""
    result = cls.unpack(data)
    if isinstance(result, tuple):
        return result[0]
    return result


class Client:
    """Blocking connection to one ctdbd. Use as a context manager or call :meth:`close`."""

    def __init__(self, socket_path: str | None = None, timeout: float = 10.0) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.timeout = timeout
        self.pnn = UNKNOWN_PNN
        self._reqid = 0
        self._decoder = StreamDecoder(strict=False)
        self._replies: dict[int, Any] = {}
        self._messages: collections.deque[tuple[int, bytes]] = collections.deque()
        self._registered: set[int] = set()
        self._tool_srvid = Srvid.TOOL_RANGE | ((os.getpid() & 0xFFFF) << 16)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise ConnectError(self.socket_path, exc.errno or errno_mod.ECONNREFUSED) from exc
        self._sock: socket.socket | None = sock
        # 4.17 client_connect.c: the GET_PNN goes out with no timeout; we keep ours.
        self.pnn = self.get_pnn()

    # -- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        assert self._sock is not None
        return self._sock.fileno()

    def _next_reqid(self) -> int:
        self._reqid = (self._reqid % 0xFFFFFFFE) + 1
        return self._reqid

    def next_srvid(self) -> int:
        """A fresh srvid in the TOOL range (4.17 tools/ctdb.c ``next_srvid``)."""
        self._tool_srvid += 1
        return self._tool_srvid

    def _send(self, pkt: Any) -> None:
        if self._sock is None:
            raise ConnectionClosed("client is closed")
        self._sock.sendall(packets.pack(pkt))

    def _dispatch(self, events: Iterator[Any]) -> None:
        for ev in events:
            if isinstance(ev, (packets.ReplyControl, packets.ReplyCall, packets.ReplyError)):
                self._replies[ev.reqid] = ev
            elif isinstance(ev, packets.ReqMessage):
                self._messages.append((ev.srvid, bytes(ev.data)))
            # Anything else (Dropped, stray calls) is of no interest to a client.

    def _pump(self, deadline: float | None) -> bool:
        """Read once. False on timeout."""
        if self._sock is None:
            raise ConnectionClosed("client is closed")
        if deadline is None:
            self._sock.settimeout(None)
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._sock.settimeout(remaining)
        try:
            buf = self._sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return False
        if not buf:
            self.close()
            raise ConnectionClosed("connection to daemon closed")
        self._decoder.feed(buf)
        self._dispatch(self._decoder.events())
        return True

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        return None if timeout is None else time.monotonic() + timeout

    # -- raw API --------------------------------------------------------------------------

    def control(
        self,
        opcode: int,
        data: bytes = b"",
        *,
        destnode: int = CURRENT_NODE,
        srvid: int = 0,
        flags: int = 0,
        timeout: float | None = None,
    ) -> ControlReply:
        """Send one control and wait for its reply (no wait with CTRL_FLAG_NOREPLY)."""
        reqid = self._next_reqid()
        pkt = packets.ReqControl(
            generation=0,
            destnode=destnode,
            srcnode=self.pnn,
            reqid=reqid,
            opcode=opcode,
            srvid=srvid,
            client_id=0,
            flags=flags,
            data=bytes(data),
        )
        self._send(pkt)
        if flags & CTRL_FLAG_NOREPLY:
            return ControlReply(0)
        deadline = self._deadline(self.timeout if timeout is None else timeout)
        while reqid not in self._replies:
            if not self._pump(deadline):
                raise ControlTimeout(opcode)
        reply = self._replies.pop(reqid)
        return ControlReply(int(reply.status), bytes(reply.data), _errmsg(reply))

    def _checked(self, opcode: int, data: bytes = b"", **kw: Any) -> ControlReply:
        reply = self.control(opcode, data, **kw)
        if reply.status != 0:
            raise ControlError(opcode, reply.status, reply.errmsg)
        return reply

    def register_srvid(self, srvid: int) -> None:
        self._checked(Opcode.REGISTER_SRVID, srvid=srvid)
        self._registered.add(srvid)

    def deregister_srvid(self, srvid: int) -> None:
        self._checked(Opcode.DEREGISTER_SRVID, srvid=srvid)
        self._registered.discard(srvid)
        self._messages = collections.deque(m for m in self._messages if m[0] != srvid)

    def send_message(self, destnode: int, srvid: int, data: bytes = b"") -> None:
        pkt = packets.ReqMessage(
            generation=1,
            destnode=destnode,
            srcnode=self.pnn,
            reqid=0,
            srvid=srvid,
            data=bytes(data),
        )
        self._send(pkt)

    def _take_message(self, srvid: int) -> bytes | None:
        for i, (sid, data) in enumerate(self._messages):
            if sid == srvid:
                del self._messages[i]
                return data
        return None

    def wait_message(self, srvid: int, timeout: float | None) -> bytes | None:
        """The oldest queued or next message for ``srvid``; None after ``timeout`` s."""
        deadline = self._deadline(timeout)
        while True:
            data = self._take_message(srvid)
            if data is not None:
                return data
            if not self._pump(deadline):
                return self._take_message(srvid)

    def poll_messages(self) -> None:
        """Read whatever is already waiting on the socket, without blocking."""
        if self._sock is None:
            return
        while True:
            self._sock.settimeout(0)
            try:
                buf = self._sock.recv(65536)
            except (BlockingIOError, TimeoutError, socket.timeout):
                return
            if not buf:
                self.close()
                raise ConnectionClosed("connection to daemon closed")
            self._decoder.feed(buf)
            self._dispatch(self._decoder.events())

    # -- typed helpers --------------------------------------------------------------------

    def get_pnn(self, destnode: int = CURRENT_NODE) -> int:
        reply = self.control(Opcode.GET_PNN, destnode=destnode)
        if reply.status < 0:
            raise ControlError(Opcode.GET_PNN, reply.status, reply.errmsg)
        return reply.status

    def get_nodemap(self, destnode: int = CURRENT_NODE) -> types.NodeMap:
        return _unpack(types.NodeMap, self._checked(Opcode.GET_NODEMAP, destnode=destnode).data)

    def get_vnnmap(self, destnode: int = CURRENT_NODE) -> types.VnnMap:
        return _unpack(types.VnnMap, self._checked(Opcode.GETVNNMAP, destnode=destnode).data)

    def get_recmode(self, destnode: int = CURRENT_NODE) -> int:
        reply = self.control(Opcode.GET_RECMODE, destnode=destnode)
        if reply.status < 0:
            raise ControlError(Opcode.GET_RECMODE, reply.status, reply.errmsg)
        return reply.status

    def get_runstate(self, destnode: int = CURRENT_NODE) -> int:
        data = self._checked(Opcode.GET_RUNSTATE, destnode=destnode).data
        return _U32.unpack_from(data)[0]

    def ping(self, destnode: int = CURRENT_NODE) -> tuple[float, int]:
        """(round-trip seconds, number of clients connected to that daemon)."""
        start = time.monotonic()
        reply = self.control(Opcode.PING, destnode=destnode)
        elapsed = time.monotonic() - start
        if reply.status < 0:
            raise ControlError(Opcode.PING, reply.status, reply.errmsg)
        return elapsed, reply.status

    def uptime(self, destnode: int = CURRENT_NODE) -> types.Uptime:
        return _unpack(types.Uptime, self._checked(Opcode.UPTIME, destnode=destnode).data)

    def get_capabilities(self, destnode: int = CURRENT_NODE) -> int:
        data = self._checked(Opcode.GET_CAPABILITIES, destnode=destnode).data
        return _U32.unpack_from(data)[0]

    def get_reclock_file(self, destnode: int = CURRENT_NODE) -> str | None:
        """The cluster lock string, or None when there is none (empty reply)."""
        data = self._checked(Opcode.GET_RECLOCK_FILE, destnode=destnode).data
        text = data.split(b"\0", 1)[0]
        return text.decode("utf-8", "replace") if text else None

    def list_tunables(self, destnode: int = CURRENT_NODE) -> list[str]:
        data = self._checked(Opcode.LIST_TUNABLES, destnode=destnode).data
        varlist = _unpack(types.VarList, data)
        names = getattr(varlist, "names", None)
        if names is None:
            names = getattr(varlist, "var", varlist)
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    def get_tunable(self, name: str, destnode: int = CURRENT_NODE) -> int:
        reply = self._checked(
            Opcode.GET_TUNABLE, types.pack_stringn(name), destnode=destnode
        )
        return _U32.unpack_from(reply.data)[0]

    def set_tunable(self, name: str, value: int, destnode: int = CURRENT_NODE) -> int:
        """Returns the status: 0 ok, 1 obsolete tunable; raises on -1 (unknown/bad)."""
        payload = types.SetTunable(name=name, value=value)
        reply = self.control(Opcode.SET_TUNABLE, _pack(payload), destnode=destnode)
        if reply.status < 0:
            raise ControlError(Opcode.SET_TUNABLE, reply.status, reply.errmsg)
        return reply.status

    def get_all_tunables(self, destnode: int = CURRENT_NODE) -> types.TunableList:
        data = self._checked(Opcode.GET_ALL_TUNABLES, destnode=destnode).data
        return _unpack(types.TunableList, data)

    def disable_node(self, destnode: int = CURRENT_NODE) -> None:
        self._checked(Opcode.DISABLE_NODE, destnode=destnode)

    def enable_node(self, destnode: int = CURRENT_NODE) -> None:
        self._checked(Opcode.ENABLE_NODE, destnode=destnode)

    def stop_node(self, destnode: int = CURRENT_NODE) -> None:
        self._checked(Opcode.STOP_NODE, destnode=destnode)

    def continue_node(self, destnode: int = CURRENT_NODE) -> None:
        self._checked(Opcode.CONTINUE_NODE, destnode=destnode)

    def set_ban_state(self, pnn: int, seconds: int, destnode: int | None = None) -> None:
        """Ban ``pnn`` for ``seconds`` (0 = unban). Sent to the node itself, as 4.17 must."""
        payload = _pack(types.BanState(pnn=pnn, time=seconds))
        self._checked(
            Opcode.SET_BAN_STATE, payload, destnode=pnn if destnode is None else destnode
        )

    def get_ifaces(self, destnode: int = CURRENT_NODE) -> types.IfaceList:
        return _unpack(types.IfaceList, self._checked(Opcode.GET_IFACES, destnode=destnode).data)

    # -- public IPs, interfaces, tickles (4.17 client_control_sync.c) --------------------

    def get_public_ips(
        self, destnode: int = CURRENT_NODE, only_available: bool = False
    ) -> types.PublicIpList:
        """GET_PUBLIC_IPS: the IPs ``destnode`` knows, each with the owner it believes in.
        ``only_available`` sets CTDB_PUBLIC_IP_FLAGS_ONLY_AVAILABLE in the control flags."""
        flags = PUBLIC_IP_FLAGS_ONLY_AVAILABLE if only_available else 0
        reply = self._checked(Opcode.GET_PUBLIC_IPS, destnode=destnode, flags=flags)
        return _unpack(types.PublicIpList, reply.data)

    def get_public_ip_info(
        self, addr: types.SockAddr, destnode: int = CURRENT_NODE
    ) -> types.PublicIpInfo:
        reply = self._checked(Opcode.GET_PUBLIC_IP_INFO, _pack(addr), destnode=destnode)
        return _unpack(types.PublicIpInfo, reply.data)

    def set_iface_link_state(self, iface: types.Iface, destnode: int = CURRENT_NODE) -> None:
        """SET_IFACE_LINK_STATE {name, link_state, references (must be 0)}."""
        self._checked(Opcode.SET_IFACE_LINK_STATE, _pack(iface), destnode=destnode)

    def release_ip(self, pubip: types.PublicIp, destnode: int = CURRENT_NODE) -> None:
        """RELEASE_IP {pnn = the new owner, addr}."""
        self._checked(Opcode.RELEASE_IP, _pack(pubip), destnode=destnode)

    def takeover_ip(self, pubip: types.PublicIp, destnode: int = CURRENT_NODE) -> None:
        """TAKEOVER_IP {pnn = destnode, addr}."""
        self._checked(Opcode.TAKEOVER_IP, _pack(pubip), destnode=destnode)

    def add_public_ip(self, addr_info: types.AddrInfo, destnode: int = CURRENT_NODE) -> None:
        self._checked(Opcode.ADD_PUBLIC_IP, _pack(addr_info), destnode=destnode)

    def del_public_ip(self, addr_info: types.AddrInfo, destnode: int = CURRENT_NODE) -> None:
        """DEL_PUBLIC_IP. An empty ``iface`` goes out as 4.17's NULL string (length 0)."""
        self._checked(Opcode.DEL_PUBLIC_IP, _pack_addr_info(addr_info), destnode=destnode)

    def reload_public_ips(self, destnode: int = CURRENT_NODE) -> None:
        self._checked(Opcode.RELOAD_PUBLIC_IPS, destnode=destnode)

    def get_tickle_list(
        self, addr: types.SockAddr, destnode: int = CURRENT_NODE
    ) -> types.TickleList:
        """GET_TCP_TICKLE_LIST; a non-zero port in ``addr`` selects connections to it."""
        reply = self._checked(Opcode.GET_TCP_TICKLE_LIST, _pack(addr), destnode=destnode)
        return _unpack(types.TickleList, reply.data)

    def tcp_add_delayed_update(
        self, conn: types.Connection, destnode: int = CURRENT_NODE
    ) -> None:
        self._checked(Opcode.TCP_ADD_DELAYED_UPDATE, _pack(conn), destnode=destnode)

    def tcp_remove(self, conn: types.Connection, destnode: int = CURRENT_NODE) -> None:
        self._checked(Opcode.TCP_REMOVE, _pack(conn), destnode=destnode)

    def control_multi(
        self,
        requests: list[tuple[int, int, bytes]],
        *,
        flags: int = 0,
        timeout: float | None = None,
    ) -> list[ControlReply | None]:
        """Send every (destnode, opcode, data) at once, then collect the replies within one
        ``timeout`` (4.17 ``ctdb_client_control_multi``). None marks a control that timed
        out; the order is that of ``requests``."""
        reqids = []
        for destnode, opcode, data in requests:
            reqid = self._next_reqid()
            self._send(
                packets.ReqControl(
                    generation=0, destnode=destnode, srcnode=self.pnn, reqid=reqid,
                    opcode=opcode, srvid=0, client_id=0, flags=flags, data=bytes(data),
                )
            )
            reqids.append(reqid)
        deadline = self._deadline(self.timeout if timeout is None else timeout)
        while not all(r in self._replies for r in reqids):
            if not self._pump(deadline):
                break
        out: list[ControlReply | None] = []
        for reqid in reqids:
            reply = self._replies.pop(reqid, None)
            out.append(
                None if reply is None
                else ControlReply(int(reply.status), bytes(reply.data), _errmsg(reply))
            )
        return out

    def get_pid(self, destnode: int = CURRENT_NODE) -> int:
        reply = self.control(Opcode.GET_PID, destnode=destnode)
        if reply.status < 0:
            raise ControlError(Opcode.GET_PID, reply.status, reply.errmsg)
        return reply.status

    def get_leader(self, timeout: float | None = None) -> int:
        """Wait for a LEADER broadcast (the leader sends one a second). UNKNOWN_PNN when
        none arrives in ``timeout`` s or while an election is running (0xFFFFFFFF)."""
        if Srvid.LEADER not in self._registered:
            self.register_srvid(Srvid.LEADER)
        deadline = self._deadline(self.timeout if timeout is None else timeout)
        leader = UNKNOWN_PNN
        # Use the newest broadcast already queued, as 4.17's leader_handler keeps the last.
        while (data := self._take_message(Srvid.LEADER)) is not None:
            if len(data) >= 4:
                leader = _U32.unpack_from(data)[0]
        while leader == UNKNOWN_PNN:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            data = self.wait_message(Srvid.LEADER, remaining)
            if data is None:
                break
            if len(data) >= 4:
                leader = _U32.unpack_from(data)[0]
        return leader

    def takeover_run(self, timeout: float | None = None, attempts: int | None = None) -> int:
        """4.17 "ipreallocate": ask the leader for a takeover run and wait for its i32
        answer (the leader's pnn, or negative on failure). Like 4.17 the request is resent
        after each ``timeout``; ``attempts=None`` retries until answered."""
        srvid = self.next_srvid()
        self.register_srvid(srvid)
        msg = _pack(types.SrvidMessage(pnn=self.pnn, srvid=srvid))
        wait = self.timeout if timeout is None else timeout
        try:
            tries = 0
            while attempts is None or tries < attempts:
                tries += 1
                self.send_message(BROADCAST_CONNECTED, Srvid.TAKEOVER_RUN, msg)
                deadline = self._deadline(wait)
                while True:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    data = self.wait_message(srvid, remaining)
                    if data is None:
                        break
                    if len(data) == 4:  # 4.17 ignores anything but sizeof(int)
                        return _I32.unpack(data)[0]
            raise ControlTimeout(Opcode.REGISTER_SRVID)
        finally:
            try:
                self.deregister_srvid(srvid)
            except (ControlError, OSError):
                pass


def _pack(obj: Any) -> bytes:
    """Encode a payload type: ``obj.pack()`` or the module-level ``types.pack``."""
    method = getattr(obj, "pack", None)
    if callable(method):
        return bytes(method())
    return bytes(types.pack(obj))  # type: ignore[attr-defined]


def _pack_addr_info(info: Any) -> bytes:
    """``ctdb_addr_info``; 4.17's delip sends ``iface = NULL``, a stringn of length 0."""
    if getattr(info, "iface", None):
        return _pack(info)
    return _pack(info.addr) + _U32.pack(info.mask) + _U32.pack(0)
