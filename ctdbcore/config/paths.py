"""Where things live, as 4.17's common/path.c decides it."""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs


@attrs.frozen
class Paths:
    etc_dir: str
    run_dir: str
    var_dir: str
    socket: str
    helper_dir: str = "/usr/libexec/ctdb"

    @property
    def ctdb_conf(self) -> str:
        return os.path.join(self.etc_dir, "ctdb.conf")

    @property
    def nodes(self) -> str:
        return os.path.join(self.etc_dir, "nodes")

    @property
    def public_addresses(self) -> str:
        return os.path.join(self.etc_dir, "public_addresses")

    @property
    def tunables(self) -> str:
        return os.path.join(self.etc_dir, "ctdb.tunables")


def default_paths(env: Mapping[str, str] = os.environ) -> Paths:
    """CTDB_BASE (default /etc/ctdb); with CTDB_TEST_MODE=yes run and var dirs move
    under CTDB_BASE as in 4.17; CTDB_SOCKET overrides the socket."""
    etc = env.get("CTDB_BASE") or "/etc/ctdb"
    if env.get("CTDB_TEST_MODE", "").lower() in ("yes", "true", "1"):
        run, var = os.path.join(etc, "run"), os.path.join(etc, "var")
    else:
        run, var = "/run/ctdb", "/var/lib/ctdb"
    sock = env.get("CTDB_SOCKET") or os.path.join(run, "ctdbd.socket")
    return Paths(etc_dir=etc, run_dir=run, var_dir=var, socket=sock)
