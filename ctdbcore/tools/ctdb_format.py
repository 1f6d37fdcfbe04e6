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
    #: why this node is UNHEALTHY: the failing plugin and its output in the last monitor
    #: run (only known for the node whose event status the tool can read: its own)
    unhealthy_reason: str | None = None


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


_converter: Any = None


def to_json_obj(view: Any) -> Any:
    """Unstructure an attrs view into JSON-ready dicts and lists."""
    global _converter
    if _converter is None:
        import cattrs  # only --json needs it; imported then, for the CLI's start-up

        _converter = cattrs.Converter()
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


# -- public IPs, interfaces, tickles (4.17 control_ip, control_ipinfo, control_ifaces,
#    control_gettickles) -------------------------------------------------------------------

_AF = {4: 2, 6: 10}  # AF_INET, AF_INET6: 4.17 sorts by the family number first


def sock_addr_to_string(addr: Any, with_port: bool = False) -> str:
    """4.17 ``ctdb_sock_addr_to_string``: glibc inet_ntop, ``[v6]:port`` with a port."""
    ip = addr.ip
    if ip.version == 4:
        text = socket.inet_ntop(socket.AF_INET, ip.packed)
    else:
        text = socket.inet_ntop(socket.AF_INET6, ip.packed)
        if with_port:
            text = f"[{text}]"
    return f"{text}:{addr.port}" if with_port else text


def sock_addr_key(addr: Any) -> tuple[int, bytes, int]:
    """Sort key of 4.17 ``ctdb_sock_addr_cmp``: family number, address bytes, then the
    port as the in-memory network-order u16 compared as a host (little-endian) integer."""
    port = int(addr.port)
    return (_AF[addr.ip.version], addr.ip.packed, ((port & 0xFF) << 8) | (port >> 8))


def sort_public_ips(ips: Iterable[Any]) -> list[Any]:
    """4.17 ``qsort(..., ctdb_public_ip_cmp)``: IPv4 before IPv6, then address bytes."""
    return sorted(ips, key=lambda ip: sock_addr_key(ip.addr))


def merge_public_ips(per_node: Iterable[tuple[int, Iterable[Any]]]) -> list[Any]:
    """4.17 ``get_all_public_ips``: (pnn, that node's public IP list) for every active node.
    An IP's owner is p only when p itself claims it; IPs nobody claims are UNKNOWN."""
    merged: dict[tuple[int, bytes, int], Any] = {}
    for pnn, ips in per_node:
        for ip in ips:
            key = sock_addr_key(ip.addr)
            if ip.pnn == pnn:
                merged[key] = ip
            elif key not in merged:
                merged[key] = attrs.evolve(ip, pnn=UNKNOWN_PNN)
    return list(merged.values())


def _signed(pnn: int) -> int:
    """``(int)pnn``: UNKNOWN (0xffffffff) prints as -1."""
    pnn = int(pnn) & 0xFFFFFFFF
    return pnn - (1 << 32) if pnn & 0x80000000 else pnn


@attrs.frozen
class IpIfaces:
    """The three interface columns of ``ip -v`` (empty without ipinfo)."""

    active: str = ""
    available: list[str] = attrs.Factory(list)
    configured: list[str] = attrs.Factory(list)


def ip_ifaces(info: Any) -> IpIfaces:
    """4.17 ``print_ip``'s loop over one ``ctdb_public_ip_info``."""
    if info is None:
        return IpIfaces()
    active = ""
    avail, conf = [], []
    for j, iface in enumerate(info.ifaces):
        conf.append(iface.name)
        if info.active_idx == j:
            active = iface.name
        if iface.link_state != 0:
            avail.append(iface.name)
    return IpIfaces(active, avail, conf)


def format_ip(
    ips: Sequence[Any],
    infos: Sequence[Any] | None,
    *,
    cmd_pnn: int,
    all_nodes: bool,
    machine: bool = False,
    verbose: bool = False,
    sep: str = "|",
) -> str:
    """4.17 ``print_ip``. ``ips`` sorted already; ``infos[i]`` the ipinfo of ``ips[i]``
    (None for unassigned IPs with ``all``), only used with ``verbose``."""
    out = []
    if machine:
        head = f"{sep}Public IP{sep}Node{sep}"
        if verbose:
            head += f"ActiveInterfaces{sep}AvailableInterfaces{sep}ConfiguredInterfaces{sep}"
        out.append(head + "\n")
    elif all_nodes:
        out.append("Public IPs on ALL nodes\n")
    else:
        out.append(f"Public IPs on node {cmd_pnn}\n")
    for i, ip in enumerate(ips):
        addr = sock_addr_to_string(ip.addr)
        pnn = _signed(ip.pnn)
        line = f"{sep}{addr}{sep}{pnn}{sep}" if machine else addr
        if not verbose:
            out.append(line + "\n" if machine else f"{line} {pnn}\n")
            continue
        cols = ip_ifaces(infos[i] if infos is not None else None)
        avail, conf = ",".join(cols.available), ",".join(cols.configured)
        if machine:
            out.append(f"{line}{cols.active}{sep}{avail}{sep}{conf}{sep}\n")
        else:
            out.append(
                f"{line} node[{pnn}] active[{cols.active}] available[{avail}]"
                f" configured[{conf}]\n"
            )
    return "".join(out)


def format_ipinfo(info: Any, cmd_pnn: int) -> str:
    """4.17 ``control_ipinfo``. The interfaces are numbered from 1."""
    addr = sock_addr_to_string(info.ip.addr)
    ifaces = list(info.ifaces)
    out = [
        f"Public IP[{addr}] info on node {cmd_pnn}\n",
        f"IP:{addr}\nCurrentNode:{int(info.ip.pnn) & 0xFFFFFFFF}\nNumInterfaces:{len(ifaces)}\n",
    ]
    for i, iface in enumerate(ifaces):
        link = "down" if iface.link_state == 0 else "up"
        active = " (active)" if i == info.active_idx else ""
        out.append(
            f"Interface[{i + 1}]: Name:{iface.name} Link:{link}"
            f" References:{iface.references}{active}\n"
        )
    return "".join(out)


def format_ifaces(ifaces: Any, cmd_pnn: int, *, machine: bool = False, sep: str = "|") -> str:
    """4.17 ``control_ifaces``."""
    items = ifaces_of(ifaces)
    if not items:
        return f"No interfaces configured on node {cmd_pnn}\n"
    if machine:
        out = [f"{sep}Name{sep}LinkStatus{sep}References{sep}\n"]
        out += [f"{sep}{i.name}{sep}{i.link_state}{sep}{i.references}{sep}\n" for i in items]
    else:
        out = [f"Interfaces on node {cmd_pnn}\n"]
        out += [
            f"name:{i.name} link:{'up' if i.link_state else 'down'} references:{i.references}\n"
            for i in items
        ]
    return "".join(out)


def format_tickles(tickles: Any, *, machine: bool = False, sep: str = "|") -> str:
    """4.17 ``control_gettickles``, with its misspelled ``Destiation IP`` header."""
    conns = list(tickles.conns)
    if machine:
        out = [f"{sep}Source IP{sep}Port{sep}Destiation IP{sep}Port{sep}\n"]
        out += [
            f"{sep}{sock_addr_to_string(c.src)}{sep}{c.src.port}{sep}"
            f"{sock_addr_to_string(c.dst)}{sep}{c.dst.port}{sep}\n"
            for c in conns
        ]
        return "".join(out)
    out = [
        f"Connections for IP: {sock_addr_to_string(tickles.addr)}\n",
        f"Num connections: {len(conns)}\n",
    ]
    out += [
        f"SRC: {sock_addr_to_string(c.src, True)}   DST: {sock_addr_to_string(c.dst, True)}\n"
        for c in conns
    ]
    return "".join(out)


# JSON views of the public-IP commands (ours; documented in ctdbcore/tools/ctdb.py)


def _pnn_or_none(pnn: int) -> int | None:
    return None if int(pnn) & 0xFFFFFFFF == UNKNOWN_PNN else int(pnn)


def ip_json(ips: Sequence[Any], infos: Sequence[Any] | None, *, cmd_pnn: int,
            all_nodes: bool) -> dict[str, Any]:
    rows = []
    for i, ip in enumerate(ips):
        row: dict[str, Any] = {"address": sock_addr_to_string(ip.addr), "pnn": _pnn_or_none(ip.pnn)}
        if infos is not None:
            cols = ip_ifaces(infos[i])
            row.update(active=cols.active or None, available=cols.available,
                       configured=cols.configured)
        rows.append(row)
    return {"node": None if all_nodes else cmd_pnn, "all": all_nodes, "ips": rows}


def ipinfo_json(info: Any, cmd_pnn: int) -> dict[str, Any]:
    return {
        "node": cmd_pnn,
        "address": sock_addr_to_string(info.ip.addr),
        "pnn": _pnn_or_none(info.ip.pnn),
        "interfaces": [
            {"name": f.name, "link_up": f.link_state != 0, "references": f.references,
             "active": i == info.active_idx}
            for i, f in enumerate(info.ifaces)
        ],
    }


def ifaces_json(ifaces: Any, cmd_pnn: int) -> dict[str, Any]:
    return {
        "node": cmd_pnn,
        "interfaces": [
            {"name": f.name, "link_up": f.link_state != 0, "references": f.references}
            for f in ifaces_of(ifaces)
        ],
    }


def tickles_json(tickles: Any) -> dict[str, Any]:
    return {
        "address": sock_addr_to_string(tickles.addr),
        "port": tickles.addr.port,
        "connections": [
            {"src": sock_addr_to_string(c.src), "src_port": c.src.port,
             "dst": sock_addr_to_string(c.dst), "dst_port": c.dst.port}
            for c in tickles.conns
        ],
    }
