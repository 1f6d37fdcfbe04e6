"""Typed controls (4.17 client/client_control_sync.c): encode the request, check the
status, decode the reply into :mod:`ctdbcore.protocol.types`.

A mixin of :class:`ctdbcore.client.aio.AsyncClient`, written against its
:meth:`control` and :meth:`checked` only; the blocking client reaches these through its
portal, so every control has one implementation.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from ctdbcore.client.errors import DEFAULT_TIMEOUT, ControlError, ControlReply
from ctdbcore.protocol import types
from ctdbcore.protocol.constants import CURRENT_NODE, PUBLIC_IP_FLAGS_ONLY_AVAILABLE, Opcode

_U32 = struct.Struct("<I")


def unpack_payload(cls: Any, data: bytes) -> Any:
    """Decode a payload with a protocol type (``cls.unpack(buf)`` returns the object, or
    ``(object, size)``)."""
    result = cls.unpack(data)
    if isinstance(result, tuple):
        return result[0]
    return result


def pack_payload(obj: Any) -> bytes:
    """Encode a payload type: ``obj.pack()`` or the module-level ``types.pack``."""
    method = getattr(obj, "pack", None)
    if callable(method):
        return bytes(method())
    return bytes(types.pack(obj))  # type: ignore[attr-defined]


def pack_addr_info(info: Any) -> bytes:
    """``ctdb_addr_info``; 4.17's delip sends ``iface = NULL``, a stringn of length 0."""
    if getattr(info, "iface", None):
        return pack_payload(info)
    return pack_payload(info.addr) + _U32.pack(info.mask) + _U32.pack(0)


class TypedControls:
    """The controls the CLI, recovery and failover tools use, one method each."""

    # Provided by the client (AsyncClient).
    async def control(self, opcode: int, data: bytes = b"", *, destnode: int = CURRENT_NODE, srvid: int = 0,
                      flags: int = 0, timeout: float | None = DEFAULT_TIMEOUT) -> ControlReply:
        raise NotImplementedError

    async def checked(self, opcode: int, data: bytes = b"", **kw: Any) -> ControlReply:
        raise NotImplementedError

    async def _status(self, opcode: int, destnode: int) -> int:
        """A control that answers in its status (negative = failure)."""
        reply = await self.control(opcode, destnode=destnode)
        if reply.status < 0:
            raise ControlError(opcode, reply.status, reply.errmsg)
        return reply.status

    async def _typed(self, cls: Any, opcode: int, data: bytes = b"", **kw: Any) -> Any:
        return unpack_payload(cls, (await self.checked(opcode, data, **kw)).data)

    # -- node state ----------------------------------------------------------------------

    async def get_pnn(self, destnode: int = CURRENT_NODE) -> int:
        return await self._status(Opcode.GET_PNN, destnode)

    async def get_nodemap(self, destnode: int = CURRENT_NODE) -> types.NodeMap:
        return await self._typed(types.NodeMap, Opcode.GET_NODEMAP, destnode=destnode)

    async def get_vnnmap(self, destnode: int = CURRENT_NODE) -> types.VnnMap:
        return await self._typed(types.VnnMap, Opcode.GETVNNMAP, destnode=destnode)

    async def get_recmode(self, destnode: int = CURRENT_NODE) -> int:
        return await self._status(Opcode.GET_RECMODE, destnode)

    async def get_runstate(self, destnode: int = CURRENT_NODE) -> int:
        return _U32.unpack_from((await self.checked(Opcode.GET_RUNSTATE, destnode=destnode)).data)[0]

    async def ping(self, destnode: int = CURRENT_NODE) -> tuple[float, int]:
        """(round-trip seconds, number of clients connected to that daemon)."""
        start = time.monotonic()
        reply = await self.control(Opcode.PING, destnode=destnode)
        elapsed = time.monotonic() - start
        if reply.status < 0:
            raise ControlError(Opcode.PING, reply.status, reply.errmsg)
        return elapsed, reply.status

    async def uptime(self, destnode: int = CURRENT_NODE) -> types.Uptime:
        return await self._typed(types.Uptime, Opcode.UPTIME, destnode=destnode)

    async def get_capabilities(self, destnode: int = CURRENT_NODE) -> int:
        return _U32.unpack_from((await self.checked(Opcode.GET_CAPABILITIES, destnode=destnode)).data)[0]

    async def get_reclock_file(self, destnode: int = CURRENT_NODE) -> str | None:
        """The cluster lock string, or None when there is none (empty reply)."""
        data = (await self.checked(Opcode.GET_RECLOCK_FILE, destnode=destnode)).data
        text = data.split(b"\0", 1)[0]
        return text.decode("utf-8", "replace") if text else None

    async def get_pid(self, destnode: int = CURRENT_NODE) -> int:
        return await self._status(Opcode.GET_PID, destnode)

    async def get_ifaces(self, destnode: int = CURRENT_NODE) -> types.IfaceList:
        return await self._typed(types.IfaceList, Opcode.GET_IFACES, destnode=destnode)

    # -- tunables ------------------------------------------------------------------------

    async def list_tunables(self, destnode: int = CURRENT_NODE) -> list[str]:
        varlist = await self._typed(types.VarList, Opcode.LIST_TUNABLES, destnode=destnode)
        names = getattr(varlist, "names", None)
        if names is None:
            names = getattr(varlist, "var", varlist)
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    async def get_tunable(self, name: str, destnode: int = CURRENT_NODE) -> int:
        reply = await self.checked(Opcode.GET_TUNABLE, types.pack_stringn(name), destnode=destnode)
        return _U32.unpack_from(reply.data)[0]

    async def set_tunable(self, name: str, value: int, destnode: int = CURRENT_NODE) -> int:
        """Returns the status: 0 ok, 1 obsolete tunable; raises on -1 (unknown/bad)."""
        payload = pack_payload(types.SetTunable(name=name, value=value))
        reply = await self.control(Opcode.SET_TUNABLE, payload, destnode=destnode)
        if reply.status < 0:
            raise ControlError(Opcode.SET_TUNABLE, reply.status, reply.errmsg)
        return reply.status

    async def get_all_tunables(self, destnode: int = CURRENT_NODE) -> types.TunableList:
        return await self._typed(types.TunableList, Opcode.GET_ALL_TUNABLES, destnode=destnode)

    # -- node flags ----------------------------------------------------------------------

    async def disable_node(self, destnode: int = CURRENT_NODE) -> None:
        await self.checked(Opcode.DISABLE_NODE, destnode=destnode)

    async def enable_node(self, destnode: int = CURRENT_NODE) -> None:
        await self.checked(Opcode.ENABLE_NODE, destnode=destnode)

    async def stop_node(self, destnode: int = CURRENT_NODE) -> None:
        await self.checked(Opcode.STOP_NODE, destnode=destnode)

    async def continue_node(self, destnode: int = CURRENT_NODE) -> None:
        await self.checked(Opcode.CONTINUE_NODE, destnode=destnode)

    async def set_ban_state(self, pnn: int, seconds: int, destnode: int | None = None) -> None:
        """Ban ``pnn`` for ``seconds`` (0 = unban). Sent to the node itself, as 4.17 must."""
        payload = pack_payload(types.BanState(pnn=pnn, time=seconds))
        await self.checked(Opcode.SET_BAN_STATE, payload, destnode=pnn if destnode is None else destnode)

    # -- public IPs, interfaces, tickles -------------------------------------------------

    async def get_public_ips(self, destnode: int = CURRENT_NODE, only_available: bool = False) -> types.PublicIpList:
        """GET_PUBLIC_IPS: the IPs ``destnode`` knows, each with the owner it believes in.
        ``only_available`` sets CTDB_PUBLIC_IP_FLAGS_ONLY_AVAILABLE in the control flags."""
        flags = PUBLIC_IP_FLAGS_ONLY_AVAILABLE if only_available else 0
        return await self._typed(types.PublicIpList, Opcode.GET_PUBLIC_IPS, destnode=destnode, flags=flags)

    async def get_public_ip_info(self, addr: types.SockAddr, destnode: int = CURRENT_NODE) -> types.PublicIpInfo:
        return await self._typed(types.PublicIpInfo, Opcode.GET_PUBLIC_IP_INFO, pack_payload(addr), destnode=destnode)

    async def set_iface_link_state(self, iface: types.Iface, destnode: int = CURRENT_NODE) -> None:
        """SET_IFACE_LINK_STATE {name, link_state, references (must be 0)}."""
        await self.checked(Opcode.SET_IFACE_LINK_STATE, pack_payload(iface), destnode=destnode)

    async def release_ip(self, pubip: types.PublicIp, destnode: int = CURRENT_NODE) -> None:
        """RELEASE_IP {pnn = the new owner, addr}."""
        await self.checked(Opcode.RELEASE_IP, pack_payload(pubip), destnode=destnode)

    async def takeover_ip(self, pubip: types.PublicIp, destnode: int = CURRENT_NODE) -> None:
        """TAKEOVER_IP {pnn = destnode, addr}."""
        await self.checked(Opcode.TAKEOVER_IP, pack_payload(pubip), destnode=destnode)

    async def add_public_ip(self, addr_info: types.AddrInfo, destnode: int = CURRENT_NODE) -> None:
        await self.checked(Opcode.ADD_PUBLIC_IP, pack_payload(addr_info), destnode=destnode)

    async def del_public_ip(self, addr_info: types.AddrInfo, destnode: int = CURRENT_NODE) -> None:
        """DEL_PUBLIC_IP. An empty ``iface`` goes out as 4.17's NULL string (length 0)."""
        await self.checked(Opcode.DEL_PUBLIC_IP, pack_addr_info(addr_info), destnode=destnode)

    async def reload_public_ips(self, destnode: int = CURRENT_NODE) -> None:
        await self.checked(Opcode.RELOAD_PUBLIC_IPS, destnode=destnode)

    async def get_tickle_list(self, addr: types.SockAddr, destnode: int = CURRENT_NODE) -> types.TickleList:
        """GET_TCP_TICKLE_LIST; a non-zero port in ``addr`` selects connections to it."""
        return await self._typed(types.TickleList, Opcode.GET_TCP_TICKLE_LIST, pack_payload(addr), destnode=destnode)

    async def tcp_add_delayed_update(self, conn: types.Connection, destnode: int = CURRENT_NODE) -> None:
        await self.checked(Opcode.TCP_ADD_DELAYED_UPDATE, pack_payload(conn), destnode=destnode)

    async def tcp_remove(self, conn: types.Connection, destnode: int = CURRENT_NODE) -> None:
        await self.checked(Opcode.TCP_REMOVE, pack_payload(conn), destnode=destnode)
