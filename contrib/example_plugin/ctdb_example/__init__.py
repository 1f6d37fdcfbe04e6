"""Example ctdbd event plugin (entry point ``example`` in group ``ctdb.services``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ctdbcore.plugins import EventContext, hookimpl

#: Like the ``90.`` prefix of ``90.example.script``: runs after lower numbers.
CTDB_ORDER = 90

HEALTH_FILE_ENV = "CTDB_EXAMPLE_HEALTH_FILE"
LOG_NAME = "example-events.log"


def _log_event(ctx: EventContext, *words: object) -> None:
    line = " ".join([time.strftime("%Y-%m-%dT%H:%M:%S"), ctx.event, *map(str, words)])
    ctx.rundir.mkdir(parents=True, exist_ok=True)
    with open(ctx.rundir / LOG_NAME, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


@hookimpl
def ctdb_monitor(ctx: EventContext) -> str | None:
    """Unhealthy while the file named by ``CTDB_EXAMPLE_HEALTH_FILE`` exists."""
    path = os.environ.get(HEALTH_FILE_ENV)
    if not path or not os.path.exists(path):
        return None
    try:
        reason = Path(path).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        reason = []
    detail = f": {reason[0]}" if reason else ""
    return f"ERROR: health file {path} exists{detail}"


@hookimpl
def ctdb_takeip(ctx: EventContext, iface: str, ip: str, maskbits: int) -> None:
    _log_event(ctx, iface, ip, maskbits)


@hookimpl
def ctdb_releaseip(ctx: EventContext, iface: str, ip: str, maskbits: int) -> None:
    _log_event(ctx, iface, ip, maskbits)


@hookimpl
def ctdb_ipreallocated(ctx: EventContext) -> None:
    _log_event(ctx)
