"""Blocking client for ctdbd's unix socket: a thin facade over
:class:`ctdbcore.client.aio.AsyncClient`.

Each :class:`Client` owns an event loop thread (:class:`ctdbcore.client.portal.Portal`)
running one AsyncClient, and every method here is that client's method awaited
through the portal: the conversation with the daemon (request ids, replies, messages,
calls) has one implementation. Replies are matched by reqid (1, 2, 3, ...); messages
for a registered srvid are taken in as they arrive and wait, without limit, until
:meth:`Client.wait_message` asks for them. Any thread may use a Client, several at
once. ``close()`` (or leaving the ``with`` block) ends the connection and the thread;
so does collecting a Client nobody closed.

Databases: :mod:`ctdbcore.client.db`, whose node-local fetch_lock is the one path
that does not go through the portal.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ctdbcore.client.errors import (
    DEFAULT_TIMEOUT,
    ConnectError,
    ConnectionClosed,
    ControlError,
    ControlReply,
    ControlTimeout,
)
from ctdbcore.client.paths import DEFAULT_SOCKET, default_socket_path
from ctdbcore.protocol import types
from ctdbcore.protocol.constants import CURRENT_NODE, Srvid

if TYPE_CHECKING:
    from ctdbcore.client.aio import AsyncClient
    from ctdbcore.client.portal import Portal

__all__ = [
    "DEFAULT_SOCKET",
    "Client",
    "ConnectError",
    "ConnectionClosed",
    "ControlError",
    "ControlReply",
    "ControlTimeout",
    "default_socket_path",
]


async def _connect(path: str, timeout: float, srvid_base: int) -> AsyncClient:
    from ctdbcore.client.aio import AsyncClient

    return await (await AsyncClient.connect(path, timeout, srvid_base=srvid_base)).__aenter__()


def _release(aio: AsyncClient, portal: Portal) -> None:
    """Close a client's connection and portal (``close()``, or a client nobody closed
    being collected -- then possibly in the portal's own thread, which cannot wait for
    itself)."""
    if threading.current_thread() is portal.thread:
        threading.Thread(target=_release, args=(aio, portal), daemon=True).start()
        return
    try:
        portal.call(aio.__aexit__, None, None, None)
    finally:
        portal.close()


def _timeout(timeout: float | None) -> float | None:
    """The blocking API's ``None`` is the client's default, not "forever"."""
    return DEFAULT_TIMEOUT if timeout is None else timeout


class Client:
    """Blocking connection to one ctdbd. Use as a context manager or call :meth:`close`.

    Raises :class:`ConnectError` when the socket cannot be connected; learns this
    node's pnn (GET_PNN) before returning, as 4.17's client_connect does.
    """

    def __init__(self, socket_path: str | None = None, timeout: float = 10.0) -> None:
        # Imported here, not at the top: asyncio is a fair part of a `ctdb`
        # command's start-up, and the commands that need no daemon do not need it.
        from ctdbcore.client.portal import Portal

        self.socket_path = socket_path or default_socket_path()
        self._closed = False
        self._portal = Portal()
        # The tools' srvid range, as 4.17's ctdb tool: TOOL_RANGE | pid << 16.
        base = Srvid.TOOL_RANGE | ((os.getpid() & 0xFFFF) << 16)
        try:
            self._aio: AsyncClient = self._portal.call(_connect, self.socket_path, timeout, base)
        except BaseException:
            self._portal.close()
            raise
        self.pnn: int = self._aio.pnn
        self._finalizer = weakref.finalize(self, _release, self._aio, self._portal)
        self._finalizer.atexit = False  # at exit the process's end closes the socket

    # -- plumbing -------------------------------------------------------------------------

    def _run(self, fn: Any, *args: Any, **kw: Any) -> Any:
        if self._closed:
            raise ConnectionClosed("client is closed")
        return self._portal.call(fn, *args, **kw)

    @property
    def aio(self) -> AsyncClient:
        """The async client behind this one (it lives in :attr:`portal`'s thread)."""
        return self._aio

    @property
    def portal(self) -> Portal:
        return self._portal

    @property
    def timeout(self) -> float:
        """Seconds a control waits for its reply unless told otherwise."""
        return self._aio.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._aio.timeout = value

    def close(self) -> None:
        """End the connection and stop the portal thread. Idempotent."""
        if not self._closed:
            self._closed = True
            self._finalizer()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self._aio.fileno()

    def next_srvid(self) -> int:
        """A fresh srvid in the TOOL range (4.17 tools/ctdb.c ``next_srvid``)."""
        return self._aio.next_srvid()

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (tests of the daemon's handling of bad input)."""
        self._run(self._aio.send_raw, data)

    # -- raw API --------------------------------------------------------------------------

    def control(self, opcode: int, data: bytes = b"", *, destnode: int = CURRENT_NODE, srvid: int = 0,
                flags: int = 0, timeout: float | None = None) -> ControlReply:
        """Send one control and wait for its reply (no wait with CTRL_FLAG_NOREPLY).
        ``timeout`` None is the client's timeout. Raises :class:`ControlTimeout`."""
        return self._run(self._aio.control, opcode, data, destnode=destnode, srvid=srvid, flags=flags,
                         timeout=_timeout(timeout))

    def checked(self, opcode: int, data: bytes = b"", **kw: Any) -> ControlReply:
        """:meth:`control`, raising :class:`ControlError` on a non-zero status."""
        if "timeout" in kw:
            kw["timeout"] = _timeout(kw["timeout"])
        return self._run(self._aio.checked, opcode, data, **kw)

    _checked = checked  # the name the CLI and tests have long used

    def control_multi(self, requests: list[tuple[int, int, bytes]], *, flags: int = 0,
                      timeout: float | None = None) -> list[ControlReply | None]:
        """Send every (destnode, opcode, data) at once, then collect the replies within one
        ``timeout`` (4.17 ``ctdb_client_control_multi``). None marks a control that timed
        out; the order is that of ``requests``."""
        return self._run(self._aio.control_multi, requests, flags=flags, timeout=_timeout(timeout))

    def register_srvid(self, srvid: int) -> None:
        self._run(self._aio.register_srvid, srvid, buffer=float("inf"))

    def deregister_srvid(self, srvid: int) -> None:
        """Stop the messages for ``srvid``; those not read yet are dropped."""
        self._run(self._aio.deregister_srvid, srvid)

    def send_message(self, destnode: int, srvid: int, data: bytes = b"") -> None:
        self._run(self._aio.send_message, destnode, srvid, data)

    def wait_message(self, srvid: int, timeout: float | None) -> bytes | None:
        """The oldest queued or next message for ``srvid``; None after ``timeout`` s
        (None: no limit), or at once for a srvid that is not registered."""
        return self._run(self._aio.receive, srvid, timeout)

    def poll_messages(self) -> None:
        """Nothing to do: the portal's reader takes messages in as they arrive. Kept
        for callers of the old blocking client; raises ConnectionClosed once closed."""
        if self._closed:
            raise ConnectionClosed("client is closed")

    # -- typed helpers (ctdbcore.client.aiocontrols) --------------------------------------

    def get_pnn(self, destnode: int = CURRENT_NODE) -> int:
        return self._run(self._aio.get_pnn, destnode)

    def get_nodemap(self, destnode: int = CURRENT_NODE) -> types.NodeMap:
        return self._run(self._aio.get_nodemap, destnode)

    def get_vnnmap(self, destnode: int = CURRENT_NODE) -> types.VnnMap:
        return self._run(self._aio.get_vnnmap, destnode)

    def get_recmode(self, destnode: int = CURRENT_NODE) -> int:
        return self._run(self._aio.get_recmode, destnode)

    def get_runstate(self, destnode: int = CURRENT_NODE) -> int:
        return self._run(self._aio.get_runstate, destnode)

    def ping(self, destnode: int = CURRENT_NODE) -> tuple[float, int]:
        """(round-trip seconds, number of clients connected to that daemon)."""
        return self._run(self._aio.ping, destnode)

    def uptime(self, destnode: int = CURRENT_NODE) -> types.Uptime:
        return self._run(self._aio.uptime, destnode)

    def get_capabilities(self, destnode: int = CURRENT_NODE) -> int:
        return self._run(self._aio.get_capabilities, destnode)

    def get_reclock_file(self, destnode: int = CURRENT_NODE) -> str | None:
        """The cluster lock string, or None when there is none (empty reply)."""
        return self._run(self._aio.get_reclock_file, destnode)

    def get_pid(self, destnode: int = CURRENT_NODE) -> int:
        return self._run(self._aio.get_pid, destnode)

    def get_ifaces(self, destnode: int = CURRENT_NODE) -> types.IfaceList:
        return self._run(self._aio.get_ifaces, destnode)

    def list_tunables(self, destnode: int = CURRENT_NODE) -> list[str]:
        return self._run(self._aio.list_tunables, destnode)

    def get_tunable(self, name: str, destnode: int = CURRENT_NODE) -> int:
        return self._run(self._aio.get_tunable, name, destnode)

    def set_tunable(self, name: str, value: int, destnode: int = CURRENT_NODE) -> int:
        """Returns the status: 0 ok, 1 obsolete tunable; raises on -1 (unknown/bad)."""
        return self._run(self._aio.set_tunable, name, value, destnode)

    def get_all_tunables(self, destnode: int = CURRENT_NODE) -> types.TunableList:
        return self._run(self._aio.get_all_tunables, destnode)

    def disable_node(self, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.disable_node, destnode)

    def enable_node(self, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.enable_node, destnode)

    def stop_node(self, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.stop_node, destnode)

    def continue_node(self, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.continue_node, destnode)

    def set_ban_state(self, pnn: int, seconds: int, destnode: int | None = None) -> None:
        """Ban ``pnn`` for ``seconds`` (0 = unban). Sent to the node itself, as 4.17 must."""
        self._run(self._aio.set_ban_state, pnn, seconds, destnode)

    def get_public_ips(self, destnode: int = CURRENT_NODE, only_available: bool = False) -> types.PublicIpList:
        """GET_PUBLIC_IPS: the IPs ``destnode`` knows, each with the owner it believes in."""
        return self._run(self._aio.get_public_ips, destnode, only_available)

    def get_public_ip_info(self, addr: types.SockAddr, destnode: int = CURRENT_NODE) -> types.PublicIpInfo:
        return self._run(self._aio.get_public_ip_info, addr, destnode)

    def set_iface_link_state(self, iface: types.Iface, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.set_iface_link_state, iface, destnode)

    def release_ip(self, pubip: types.PublicIp, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.release_ip, pubip, destnode)

    def takeover_ip(self, pubip: types.PublicIp, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.takeover_ip, pubip, destnode)

    def add_public_ip(self, addr_info: types.AddrInfo, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.add_public_ip, addr_info, destnode)

    def del_public_ip(self, addr_info: types.AddrInfo, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.del_public_ip, addr_info, destnode)

    def reload_public_ips(self, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.reload_public_ips, destnode)

    def get_tickle_list(self, addr: types.SockAddr, destnode: int = CURRENT_NODE) -> types.TickleList:
        return self._run(self._aio.get_tickle_list, addr, destnode)

    def tcp_add_delayed_update(self, conn: types.Connection, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.tcp_add_delayed_update, conn, destnode)

    def tcp_remove(self, conn: types.Connection, destnode: int = CURRENT_NODE) -> None:
        self._run(self._aio.tcp_remove, conn, destnode)

    def get_leader(self, timeout: float | None = None) -> int:
        """Wait for a LEADER broadcast (the leader sends one a second). UNKNOWN_PNN when
        none arrives in ``timeout`` s or while an election is running (0xFFFFFFFF)."""
        if not self._aio.registered(Srvid.LEADER):
            self.register_srvid(Srvid.LEADER)
        return self._run(self._aio.get_leader, _timeout(timeout))

    def takeover_run(self, timeout: float | None = None, attempts: int | None = None) -> int:
        """4.17 "ipreallocate": ask the leader for a takeover run and wait for its i32
        answer (the leader's pnn, or negative on failure), resending after each
        ``timeout``; ``attempts=None`` retries until answered."""
        return self._run(self._aio.takeover_run, _timeout(timeout), attempts)
