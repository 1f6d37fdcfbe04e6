"""Built-in event plugin ``reclock``: 4.17's ``01.reclock.script``.

Entry point (group ``ctdb.services``): ``reclock = "ctdbcore.builtin.reclock"``.

``init``: if the cluster lock (``[cluster] cluster lock``, or its deprecated alias
``recovery lock``) is a file and not a ``!helper`` command, create its directory
(``mkdir -p``). A directory that cannot be created fails init, so ctdbd does not start,
as 4.17's script exits with mkdir's status. 4.17 reads only ``recovery lock`` here; this
reads the effective lock setting, whichever key set it.
"""

from __future__ import annotations

import os

from ctdbcore.plugins import EventContext, hookimpl

CTDB_ORDER = 1
#: Debian links 01.reclock into events/legacy on install.
CTDB_ENABLED_BY_DEFAULT = True


def cluster_lock(ctx: EventContext) -> str | None:
    cluster = getattr(getattr(ctx.config, "ctdb_conf", None), "cluster", None)
    return getattr(cluster, "cluster_lock", None) if cluster is not None else None


@hookimpl
def ctdb_init(ctx: EventContext) -> str | None:
    lock = cluster_lock(ctx)
    if not lock or lock.startswith("!"):
        return None
    directory = os.path.dirname(lock) or "."
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        return f"mkdir: cannot create directory '{directory}': {exc.strerror or exc}"
    return None
