"""Client library for ctdbd's unix socket.

Quickstart (blocking)::

    from ctdbcore.client import Client

    with Client() as c:                       # $CTDB_SOCKET or /run/ctdb/ctdbd.socket
        print(c.pnn)                          # learnt with GET_PNN at connect, as 4.17
        nodemap = c.get_nodemap()             # typed results (ctdbcore.protocol.types)
        c.register_srvid(0xCE00000000000001)
        data = c.wait_message(0xCE00000000000001, timeout=5.0)

Errors: :class:`ConnectError` (no daemon), :class:`ControlError` (status != 0 from a
typed helper), :class:`ControlTimeout` (no reply in time), :class:`ConnectionClosed`,
:class:`DbError`. Databases (blocking): :func:`ctdbcore.client.db.attach` → fetch_lock /
store / delete / traverse / transaction.

Async (asyncio, or anyio on its asyncio backend): :class:`ctdbcore.client.aio.AsyncClient`
is the one implementation of the client's conversation with the daemon (many tasks on
one connection; databases in :mod:`ctdbcore.client.aiodb`; a chain lock held by another
process is waited for in a helper process, never by blocking the loop). The blocking
:class:`Client` is a facade that runs an AsyncClient in a portal thread of its own;
only the node-local fetch_lock fast path (no daemon traffic) runs in the caller's
thread.
"""

from ctdbcore.client.errors import (
    ConnectError,
    ConnectionClosed,
    ControlError,
    ControlReply,
    ControlTimeout,
    DbError,
)
from ctdbcore.client.paths import default_socket_path
from ctdbcore.client.sync import Client

__all__ = [
    "Client",
    "ConnectError",
    "ConnectionClosed",
    "ControlError",
    "ControlReply",
    "ControlTimeout",
    "DbError",
    "default_socket_path",
]
