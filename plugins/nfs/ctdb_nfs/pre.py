"""Event plugin ``nfs_pre``: 4.17's ``events/legacy/06.nfs.script``.

It runs before 10.interface moves an address: ``takeip IFACE IP BITS`` calls
``callout takeip-pre IFACE IP BITS`` and ``releaseip`` calls ``callout releaseip-pre
...``; a failing callout fails the event. It uses 60.nfs's settings (4.17 loads
``60.nfs.options``) when the ``nfs`` plugin is loaded, else its own ``[nfs_pre]``
section / ``06.nfs.options``.
"""

from __future__ import annotations

from ctdbcore.plugins import EventContext, hookimpl

from ctdb_nfs.common import make_callout
from ctdb_nfs.settings import Settings

CTDB_ORDER = 6
CTDB_SCRIPT = "06.nfs"
CTDB_SETTINGS = Settings


def _pre(ctx: EventContext, event: str, iface: str, ip: str, maskbits: int) -> str | bool | None:
    res = make_callout(ctx).call(f"{event}-pre", iface, ip, str(maskbits))
    if not res.ok:
        return res.output or False
    if res.output:
        ctx.logger.info("%s", res.output)
    return None


@hookimpl
def ctdb_takeip(ctx: EventContext, iface: str, ip: str, maskbits: int) -> str | bool | None:
    return _pre(ctx, "takeip", iface, ip, maskbits)


@hookimpl
def ctdb_releaseip(ctx: EventContext, iface: str, ip: str, maskbits: int) -> str | bool | None:
    return _pre(ctx, "releaseip", iface, ip, maskbits)
