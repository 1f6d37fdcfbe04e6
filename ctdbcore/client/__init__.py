"""Client library for ctdbd's unix socket.

Quickstart (blocking)::

    from ctdbcore.client import Client

    with Client() as c:                       # $CTDB_SOCKET or /run/ctdb/ctdbd.socket
        print(c.pnn)                          # learnt with GET_PNN at connect, as 4.17
        nodemap = c.get_nodemap()             # typed results (ctdbcore.protocol.types)
        c.register_srvid(0xCE00000000000001)
        data = c.wait_message(0xCE00000000000001, timeout=5.0)

Errors: :class:`ConnectError` (no daemon), :class:`ControlError` (status != 0 from a
typed helper), :class:`ControlTimeout` (no reply in time), :class:`ConnectionClosed`.
Databases (blocking): :func:`ctdbcore.client.db.attach` → fetch_lock / store / delete /
traverse / transaction. Async (anyio): :class:`ctdbcore.client.aio.AsyncClient`, many
tasks on one connection, with the same database operations; a chain lock held by another
process is waited for in a helper process, never by blocking the loop.
"""

from ctdbcore.client.sync import (
    Client,
    ConnectError,
    ConnectionClosed,
    ControlError,
    ControlReply,
    ControlTimeout,
    default_socket_path,
)

__all__ = [
    "Client",
    "ConnectError",
    "ConnectionClosed",
    "ControlError",
    "ControlReply",
    "ControlTimeout",
    "default_socket_path",
]
