"""Pure output formatting for the ``ctdb`` tool: typed data in, text out, no I/O.

Every function mirrors a printf in 4.17's ctdb/tools/ctdb.c (function names given) and is
byte-for-byte what 4.17 prints; ctdb/tests/UNIT/tool/ctdb.*.sh are the executable spec and
tests/unit/cli/ ports them. The JSON views (``*_json``) are ours: plain dicts/lists made
by cattrs from the attrs views below, documented in ctdbcore/tools/ctdb.py.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import attrs
import cattrs

from ctdbcore.protocol.constants import (
    INACTIVE,
    INVALID_GENERATION,
    UNKNOWN_PNN,
    Capability,
    NodeFlags,
    RecMode,
    Runstate,
)

# -- accessors: the few places that know the shape of the protocol types -------------------


def nodes_of(nodemap: Any) -> list[Any]:
    """The NodeAndFlags entries of a NodeMap (or a plain sequence of them)."""
    for name in ("nodes", "node", "entries"):
        value = getattr(nodemap, name, None)
        if value is not None:
            return list(value)
    return list(nodemap)


def with_nodes(nodemap: Any, nodes: Sequence[Any]) -> Any:
    """A copy of ``nodemap`` holding ``nodes``."""
    for name in ("nodes", "node", "entries"):
        if hasattr(nodemap, name):
            return attrs.evolve(nodemap, **{name: type(getattr(nodemap, name))(nodes)})
    return list(nodes)


def addr_to_str(addr: Any) -> str:
    """``ctdb_sock_addr_to_string(addr, false)``: the bare address."""
    if isinstance(addr, str):
        return addr
    for name in ("ip", "address", "addr", "host"):
        value = getattr(addr, name, None)
        if value is not None and not callable(value):
            if isinstance(value, bytes):
                family = socket.AF_INET if len(value) == 4 else socket.AF_INET6
                return socket.inet_ntop(family, value)
            return str(value)
    return str(addr)


def tv_seconds(tv: Any) -> tuple[int, int]:
    """(sec, usec) of a Timeval."""
    if isinstance(tv, (int, float)):
        sec = int(tv)
        return sec, int(round((tv - sec) * 1e6))
    for s, u in (("sec", "usec"), ("tv_sec", "tv_usec"), ("seconds", "microseconds")):
        if hasattr(tv, s):
            return int(getattr(tv, s)), int(getattr(tv, u))
    sec, usec = tv
    return int(sec), int(usec)


def ifaces_of(iface_list: Any) -> list[Any]:
    for name in ("ifaces", "iface", "entries"):
        value = getattr(iface_list, name, None)
        if value is not None:
            return list(value)
    return list(iface_list)


def iface_link_down(ifaces: Any) -> bool:
    """True when some interface has link_state 0 (4.17 ``partially_online``)."""
    return any(int(getattr(i, "link_state", 1)) == 0 for i in ifaces_of(ifaces))


# -- flags ---------------------------------------------------------------------------------

_FLAG_NAMES = (
    (NodeFlags.DISCONNECTED, "DISCONNECTED"),
    (NodeFlags.UNKNOWN, "UNKNOWN"),
    (NodeFlags.PERMANENTLY_DISABLED, "DISABLED"),
    (NodeFlags.BANNED, "BANNED"),
    (NodeFlags.UNHEALTHY, "UNHEALTHY"),
    (NodeFlags.DELETED, "DELETED"),
    (NodeFlags.STOPPED, "STOPPED"),
    (INACTIVE, "INACTIVE"),
)


def pretty_print_flags(flags: int) -> str:
    """4.17 ``pretty_print_flags``: names joined by ``|`` in a fixed order, or ``OK``.
    INACTIVE is a mask: any of its bits shows it."""
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    return "|".join(names) if names else "OK"


def apply_unknown(nodemap: Any, runstate: int, cmd_pnn: int) -> Any:
    """4.17 ``get_nodemap_unknown``: while the queried node's runstate is at or before
    FIRST_RECOVERY, remote nodes that are not deleted or disconnected show as UNKNOWN."""
    out = []
    for node in nodes_of(nodemap):
        if (
            not node.flags & NodeFlags.DELETED
            and runstate <= Runstate.FIRST_RECOVERY
            and not node.flags & NodeFlags.DISCONNECTED
            and node.pnn != cmd_pnn
        ):
            node = attrs.evolve(node, flags=int(NodeFlags.UNKNOWN))
        out.append(node)
    return with_nodes(nodemap, out)


def nodestatus_exit_code(nodemap: Any) -> int:
    """4.17 ``control_nodestatus``: OR of the flags of the shown, non-deleted nodes."""
    ret = 0
    for node in nodes_of(nodemap):
        if not node.flags & NodeFlags.DELETED:
            ret |= int(node.flags)
    return ret


# -- node maps and status ------------------------------------------------------------------


def format_nodemap(
    nodemap: Any,
    mypnn: int,
    *,
    header: bool,
    partially_online: Collection[int] = (),
) -> str:
    """4.17 ``print_nodemap``. ``partially_online``: pnns whose flags are 0 but that have
    an interface with link down."""
    nodes = nodes_of(nodemap)
    deleted = sum(1 for n in nodes if n.flags & NodeFlags.DELETED)
    lines = []
    if header:
        if deleted == 0:
            lines.append(f"Number of nodes:{len(nodes)}")
        else:
            lines.append(f"Number of nodes:{len(nodes)} (including {deleted} deleted nodes)")
    for n in nodes:
        if n.flags & NodeFlags.DELETED:
            continue
        if n.flags == 0 and n.pnn in partially_online:
            text = "PARTIALLYONLINE"
        else:
            text = pretty_print_flags(n.flags)
        this = " (THIS NODE)" if n.pnn == mypnn else ""
        lines.append(f"pnn:{n.pnn} {addr_to_str(n.addr):<16} {text}{this}")
    return "".join(line + "\n" for line in lines)


def format_nodemap_machine(
    nodemap: Any,
    mypnn: int,
    *,
    sep: str = "|",
    partially_online: Collection[int] = (),
) -> str:
    """4.17 ``print_nodemap_machine`` (``-X``/``-Y`` status and nodestatus)."""
    cols = (
        "Node", "IP", "Disconnected", "Unknown", "Banned", "Disabled",
        "Unhealthy", "Stopped", "Inactive", "PartiallyOnline", "ThisNode",
    )
    out = [sep + sep.join(cols) + sep + "\n"]
    for n in nodes_of(nodemap):
        f = int(n.flags)
        if f & NodeFlags.DELETED:
            continue
        values = [
            str(n.pnn),
            addr_to_str(n.addr),
            str(int(bool(f & NodeFlags.DISCONNECTED))),
            str(int(bool(f & NodeFlags.UNKNOWN))),
            str(int(bool(f & NodeFlags.BANNED))),
            str(int(bool(f & NodeFlags.PERMANENTLY_DISABLED))),
            str(int(bool(f & NodeFlags.UNHEALTHY))),
            str(int(bool(f & NodeFlags.STOPPED))),
            str(int(bool(f & INACTIVE))),
            str(int(f == 0 and n.pnn in partially_online)),
            "Y" if n.pnn == mypnn else "N",
        ]
        out.append(sep + sep.join(values) + sep + "\n")
    return "".join(out)


def format_pnn(pnn: int) -> str:
    """4.17 ``print_pnn``."""
    return "UNKNOWN\n" if pnn == UNKNOWN_PNN else f"{pnn}\n"


def format_status(
    nodemap: Any,
    mypnn: int,
    vnnmap: Any,
    recmode: int,
    leader: int,
    *,
    partially_online: Collection[int] = (),
) -> str:
    """4.17 ``print_status``."""
    out = [format_nodemap(nodemap, mypnn, header=True, partially_online=partially_online)]
    if vnnmap.generation == INVALID_GENERATION:
        out.append("Generation:INVALID\n")
    else:
        out.append(f"Generation:{vnnmap.generation}\n")
    lmasters = list(vnnmap.map)
    out.append(f"Size:{len(lmasters)}\n")
    out.extend(f"hash:{i} lmaster:{pnn}\n" for i, pnn in enumerate(lmasters))
    mode = "NORMAL" if recmode == RecMode.NORMAL else "RECOVERY"
    out.append(f"Recovery mode:{mode} ({recmode})\n")
    out.append("Leader:" + format_pnn(leader))
    return "".join(out)


# -- small commands ------------------------------------------------------------------------


def ctime(sec: int) -> str:
    """C ``ctime()``: local time, ``"%a %b %e %H:%M:%S %Y\\n"`` (time.ctime is the same)."""
    return time.ctime(sec) + "\n"


def _dhms(seconds: int) -> str:
    tmp = int(seconds)
    # C's % and / truncate toward zero; keep that for (odd) negative spans.
    def cdivmod(a: int, b: int) -> tuple[int, int]:
        q = abs(a) // b * (1 if a >= 0 else -1)
        return q, a - q * b

    tmp, secs = cdivmod(tmp, 60)
    tmp, mins = cdivmod(tmp, 60)
    days, hours = cdivmod(tmp, 24)
    return f"({days:03d} {hours:02d}:{mins:02d}:{secs:02d})"


def format_uptime(pnn: int, uptime: Any) -> str:
    """4.17 ``control_uptime``."""
    cur, _ = tv_seconds(uptime.current_time)
    start, _ = tv_seconds(uptime.ctdbd_start_time)
    rs_sec, rs_usec = tv_seconds(uptime.last_recovery_started)
    rf_sec, rf_usec = tv_seconds(uptime.last_recovery_finished)
    duration = (rf_sec - rs_sec) + (rf_usec - rs_usec) * 1.0e-6
    return (
        f"Current time of node {pnn:<4d}     :                {ctime(cur)}"
        f"Ctdbd start time              : {_dhms(cur - start)} {ctime(start)}"
        f"Time of last recovery/failover: {_dhms(cur - rf_sec)} {ctime(rf_sec)}"
        f"Duration of last recovery/failover: {duration:f} seconds\n"
    )


def format_ping(pnn: int, elapsed: float, num_clients: int) -> str:
    """4.17 ``control_ping``."""
    return f"response from {pnn} time={elapsed:.6f} sec  ({num_clients} clients)\n"


def format_var(name: str, value: int) -> str:
    """4.17 ``control_getvar`` (listvars prints one per tunable)."""
    return f"{name:<26s} = {value}\n"


def format_capabilities(caps: int, *, machine: bool = False, sep: str = "|") -> str:
    """4.17 ``control_getcapabilities``."""
    leader = bool(caps & Capability.RECMASTER)
    lmaster = bool(caps & Capability.LMASTER)
    if machine:
        return f"{sep}LEADER{sep}LMASTER{sep}\n{sep}{int(leader)}{sep}{int(lmaster)}{sep}\n"
    yn = {True: "YES", False: "NO"}
    return f"LEADER: {yn[leader]}\nLMASTER: {yn[lmaster]}\n"


RUNSTATE_NAMES = {rs.value: rs.name for rs in Runstate}


def runstate_to_string(runstate: int) -> str:
    """4.17 ``ctdb_runstate_to_string`` (unknown numbers print as UNKNOWN)."""
    return RUNSTATE_NAMES.get(int(runstate), "UNKNOWN")


def runstate_from_string(text: str) -> int:
    """4.17 ``ctdb_runstate_from_string``: case-insensitive, UNKNOWN for anything else."""
    for rs in Runstate:
        if rs.name.lower() == text.lower():
            return rs
    return Runstate.UNKNOWN


def format_listnodes(entries: Iterable[tuple[int, str, int]], *, machine: bool, sep: str) -> str:
    """4.17 ``control_listnodes``: (pnn, address, flags) entries of the nodes file."""
    out = []
    for pnn, addr, flags in entries:
        if flags & NodeFlags.DELETED:
            continue
        out.append(f"{sep}{pnn}{sep}{addr}{sep}\n" if machine else f"{addr}\n")
    return "".join(out)


# -- nodes file (4.17 tools/ctdb.c ctdb_read_nodes_file, its own copy) ------------------------


class NodesFileError(ValueError):
    """``str()`` is 4.17's stderr line (e.g. ``Invalid IP address garbage``)."""


def parse_nodes_file(text: str) -> list[tuple[int, str, int]]:
    """(pnn, address, flags) per entry; ``#`` lines are DELETED nodes at 0.0.0.0."""
    lines = text.split("\n")
    if lines and lines[-1] == "":  # file_lines_load: no line after the last newline
        lines.pop()
    while lines and lines[-1] == "":
        lines.pop()
    out: list[tuple[int, str, int]] = []
    for raw in lines:
        node = raw.lstrip(" \t")
        if len(node) > 1:
            node = node.rstrip(" \t") or node[:1]
        if node == "":
            continue
        if node.startswith("#"):
            out.append((len(out), "0.0.0.0", int(NodeFlags.DELETED)))
            continue
        try:
            addr = str(ipaddress.ip_address(node))
        except ValueError:
            raise NodesFileError(f"Invalid IP address {node}") from None
        out.append((len(out), addr, 0))
    return out


# -- JSON views (ours) ---------------------------------------------------------------------


@attrs.frozen
class NodeView:
    pnn: int
    address: str
    flags: int
    flags_text: str
    partially_online: bool
    this_node: bool


@attrs.frozen
class StatusView:
    num_nodes: int
    deleted_nodes: int
    nodes: list[NodeView]
    generation: int
    generation_valid: bool
    vnnmap: list[int]
    recovery_mode: str
    recmode: int
    leader: int | None


_converter = cattrs.Converter()


def to_json_obj(view: Any) -> Any:
    """Unstructure an attrs view into JSON-ready dicts and lists."""
    return _converter.unstructure(view)


def node_views(nodemap: Any, mypnn: int, partially_online: Collection[int] = ()) -> list[NodeView]:
    out = []
    for n in nodes_of(nodemap):
        if n.flags & NodeFlags.DELETED:
            continue
        po = n.flags == 0 and n.pnn in partially_online
        out.append(
            NodeView(
                pnn=int(n.pnn),
                address=addr_to_str(n.addr),
                flags=int(n.flags),
                flags_text="PARTIALLYONLINE" if po else pretty_print_flags(n.flags),
                partially_online=po,
                this_node=n.pnn == mypnn,
            )
        )
    return out


def status_view(
    nodemap: Any,
    mypnn: int,
    vnnmap: Any,
    recmode: int,
    leader: int,
    *,
    partially_online: Collection[int] = (),
) -> StatusView:
    nodes = nodes_of(nodemap)
    return StatusView(
        num_nodes=len(nodes),
        deleted_nodes=sum(1 for n in nodes if n.flags & NodeFlags.DELETED),
        nodes=node_views(nodemap, mypnn, partially_online),
        generation=int(vnnmap.generation),
        generation_valid=vnnmap.generation != INVALID_GENERATION,
        vnnmap=[int(p) for p in vnnmap.map],
        recovery_mode="NORMAL" if recmode == RecMode.NORMAL else "RECOVERY",
        recmode=int(recmode),
        leader=None if leader == UNKNOWN_PNN else int(leader),
    )
