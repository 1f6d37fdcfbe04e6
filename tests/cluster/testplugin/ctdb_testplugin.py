"""A plugin whose behaviour the test controls through a file, to exercise the daemon's
plugin isolation: `$CTDB_TESTPLUGIN_DIR/<event>` holds "ok", "raise", "fail" or "hang"."""

import os
import time

from ctdbcore.plugins import hookimpl

CTDB_ORDER = 10


def _mode(event: str, pnn: int | None = None) -> str:
    """`<dir>/<event>.<pnn>` (this node only) wins over `<dir>/<event>` (all nodes)."""
    d = os.environ.get("CTDB_TESTPLUGIN_DIR", "")
    for name in ([f"{event}.{pnn}"] if pnn is not None else []) + [event]:
        try:
            with open(os.path.join(d, name)) as f:
                return f.read().strip()
        except OSError:
            continue
    return "ok"


def _act(event: str, pnn: int | None = None):
    mode = _mode(event, pnn)
    if mode == "raise":
        raise RuntimeError(f"testplugin {event} raised on purpose")
    if mode == "fail":
        return f"testplugin {event} failed on purpose"
    if mode == "hang":
        time.sleep(3600)
    with open(os.path.join(os.environ.get("CTDB_TESTPLUGIN_DIR", "."), f"{event}.ran"), "a") as f:
        f.write(f"{os.getpid()}\n")
    return None


@hookimpl
def ctdb_monitor(ctx):
    return _act("monitor", ctx.pnn)


@hookimpl
def ctdb_startup(ctx):
    return _act("startup")


@hookimpl
def ctdb_shutdown(ctx):
    return _act("shutdown")


@hookimpl
def ctdb_takeip(ctx, iface, ip, maskbits):
    return _act("takeip", ctx.pnn)
