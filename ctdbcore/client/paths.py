"""Where the daemon's unix socket is."""

from __future__ import annotations

import os

DEFAULT_SOCKET = "/run/ctdb/ctdbd.socket"


def default_socket_path() -> str:
    """``$CTDB_SOCKET``, else the run dir's ``ctdbd.socket`` (4.17 common/path.c:
    ``$CTDB_BASE/run`` when ``CTDB_TEST_MODE`` is set, else /run/ctdb)."""
    env = os.environ.get("CTDB_SOCKET")
    if env:
        return env
    if os.environ.get("CTDB_TEST_MODE") is not None and os.environ.get("CTDB_BASE"):
        return os.path.join(os.environ["CTDB_BASE"], "run", "ctdbd.socket")
    return DEFAULT_SOCKET
