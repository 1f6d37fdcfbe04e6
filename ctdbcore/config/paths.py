"""Where ctdbd finds its files: the rules of 4.17 common/path.c.

``CTDB_TEST_MODE=yes`` moves run and var below ``$CTDB_BASE`` so that several
daemons (the local cluster, the tests) can run on one machine without root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

DEFAULT_ETC_DIR = "/etc/ctdb"
DEFAULT_RUN_DIR = "/run/ctdb"
DEFAULT_VAR_DIR = "/var/lib/ctdb"
DEFAULT_HELPER_DIR = "/usr/libexec/ctdb"


@attrs.frozen
class Paths:
    etc_dir: str = DEFAULT_ETC_DIR
    run_dir: str = DEFAULT_RUN_DIR
    var_dir: str = DEFAULT_VAR_DIR
    socket: str = os.path.join(DEFAULT_RUN_DIR, "ctdbd.socket")
    helper_dir: str = DEFAULT_HELPER_DIR

    def etc(self, name: str) -> str:
        """A file in the etc dir, e.g. ``paths.etc("nodes")``."""
        return os.path.join(self.etc_dir, name)

    @property
    def ctdb_conf(self) -> str:
        return self.etc("ctdb.conf")

    @property
    def nodes(self) -> str:
        return self.etc("nodes")

    @property
    def public_addresses(self) -> str:
        return self.etc("public_addresses")

    @property
    def tunables(self) -> str:
        return self.etc("ctdb.tunables")


def test_mode(env: Mapping[str, str] = os.environ) -> bool:
    """4.17 (common/path.c, server/ctdbd.c): test mode is on when CTDB_TEST_MODE is
    set at all, whatever its value; the client side (client/paths.py) agrees."""
    return env.get("CTDB_TEST_MODE") is not None


def default_paths(env: Mapping[str, str] = os.environ) -> Paths:
    etc_dir = env.get("CTDB_BASE") or DEFAULT_ETC_DIR
    if test_mode(env):
        run_dir = os.path.join(etc_dir, "run")
        var_dir = os.path.join(etc_dir, "var")
    else:
        run_dir = DEFAULT_RUN_DIR
        var_dir = DEFAULT_VAR_DIR
    socket = env.get("CTDB_SOCKET") or os.path.join(run_dir, "ctdbd.socket")
    return Paths(
        etc_dir=etc_dir,
        run_dir=run_dir,
        var_dir=var_dir,
        socket=socket,
        helper_dir=DEFAULT_HELPER_DIR,
    )
