"""The public-IP commands of the ``ctdb`` tool, as 4.17's ctdb/tools/ctdb.c runs them.

``ip``, ``ipinfo``, ``ifaces``, ``setifacelink``, ``moveip``, ``addip``, ``delip``,
``reloadips``, ``gettickles``, ``addtickle``, ``deltickle``. Every function takes the
:class:`ctdbcore.tools.ctdb.Tool` of the invocation (duck-typed here so that this module
does not import ctdb.py) and returns the command's exit status; the texts come from
:mod:`ctdbcore.tools.ctdb_format`. Messages, their stream (stdout or stderr), the control
sequence and the return codes follow samba-4.17.12 (function named per command); the
``Control X failed, ret=N`` lines are those of 4.17's client/client_control_sync.c.

The address parsers at the top are 4.17's protocol/protocol_util.c
(``ctdb_sock_addr_from_string``, ``ctdb_sock_addr_mask_from_string``,
``ctdb_connection_from_string``) and lib/util/smb_strtox.c (``smb_strtoul``), quirks
included: ``fd00::1:80`` with a port is ``fd00::1`` port 80, ``::ffff:a.b.c.d`` is the
IPv4 address, and a port is truncated to 16 bits as ``htons()`` does.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from ctdbcore.client.sync import ControlError, ControlReply, ControlTimeout
from ctdbcore.protocol import types
from ctdbcore.protocol.constants import (
    BROADCAST_CONNECTED,
    INACTIVE,
    UNKNOWN_PNN,
    NodeFlags,
    Opcode,
    Srvid,
)
from ctdbcore.tools import ctdb_format as fmt

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
IFACE_SIZE = 16  # CTDB_IFACE_SIZE
RETRIES = 5  # moveip, addip: 5 attempts, 3 s apart (Tool.retry_interval)

# -- parsing (pure) --------------------------------------------------------------------------


def c_strtoul(text: str, base: int = 10, *, full: bool = False) -> tuple[int, int]:
    """samba ``smb_strtoul(text, NULL, base, &err, SMB_STR_STANDARD or
    SMB_STR_FULL_STR_CONV)`` on glibc: (value, err), err 0, EINVAL or ERANGE."""
    i, n = 0, len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    neg = False
    if i < n and text[i] in "+-":
        neg = text[i] == "-"
        i += 1
    if base in (0, 16) and text[i : i + 2].lower() == "0x" and i + 2 < n and (
        text[i + 2] in "0123456789abcdefABCDEF"
    ):
        i += 2
        base = 16
    elif base == 0:
        base = 8 if text[i : i + 1] == "0" else 10
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:base]
    start = i
    while i < n and text[i].lower() in digits:
        i += 1
    if i == start:
        return 0, errno.EINVAL  # no conversion
    value = int(text[start:i], base)
    if value > 0xFFFFFFFFFFFFFFFF:
        return 0xFFFFFFFFFFFFFFFF, errno.ERANGE
    if neg:  # glibc negates; smb_strtoul then rejects the '-'
        return (-value) & 0xFFFFFFFFFFFFFFFF, errno.EINVAL
    if full and i != n:
        return value, errno.EINVAL
    return value, 0


_V4_MAPPED = bytes(10) + b"\xff\xff"


def _ip_from_string(text: str) -> types.SockAddr | None:
    """4.17 ``ip_from_string``."""
    try:
        if ":" not in text:
            return types.SockAddr.parse(socket.inet_ntop(socket.AF_INET,
                                                         socket.inet_pton(socket.AF_INET, text)))
        if len(text.encode()) >= 64:
            return None
        if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
            text = text[1:-1]
        packed = socket.inet_pton(socket.AF_INET6, text)
        if packed[:12] == _V4_MAPPED:
            tail = text[text.rindex(":") + 1 :]
            packed = socket.inet_pton(socket.AF_INET, tail)
            return types.SockAddr.parse(socket.inet_ntop(socket.AF_INET, packed))
        return types.SockAddr.parse(socket.inet_ntop(socket.AF_INET6, packed))
    except (OSError, ValueError, UnicodeError):
        return None


def parse_sock_addr(text: str, with_port: bool = False) -> types.SockAddr | None:
    """4.17 ``ctdb_sock_addr_from_string``; None where it returns an error."""
    if not with_port:
        return _ip_from_string(text)
    if len(text.encode("utf-8", "surrogateescape")) >= 64 or ":" not in text:
        return None
    head, _, tail = text.rpartition(":")
    port, err = c_strtoul(tail, 10, full=True)
    if err:
        return None
    addr = _ip_from_string(head)
    if addr is None:
        return None
    return types.SockAddr(ip=addr.ip, port=port & 0xFFFF)


def parse_addr_mask(text: str) -> tuple[types.SockAddr, int] | None:
    """4.17 ``ctdb_sock_addr_mask_from_string``: ``ADDR/BITS`` (bits unchecked)."""
    if len(text.encode("utf-8", "surrogateescape")) >= 64 or "/" not in text:
        return None
    head, _, tail = text.rpartition("/")
    mask, err = c_strtoul(tail, 10, full=True)
    if err:
        return None
    addr = _ip_from_string(head)
    return None if addr is None else (addr, mask & 0xFFFFFFFF)


def parse_connection(line: str) -> types.Connection | None:
    """4.17 ``ctdb_connection_from_string(line, client_first=false)``: ``SRC DST``."""
    if len(line.encode("utf-8", "surrogateescape")) >= 128:
        return None
    toks = [t for t in line.replace("\t", " ").replace("\n", " ").split(" ") if t]
    if len(toks) < 2:
        return None
    src = parse_sock_addr(toks[0], True)
    if src is None:
        return None
    dst = parse_sock_addr(toks[1], True)
    if dst is None or src.ip.version != dst.ip.version:
        return None
    return types.Connection(src=src, dst=dst)


def parse_connection_list(data: str) -> tuple[list[types.Connection], int]:
    """4.17 ``ctdb_connection_list_read`` on stdin: only newline-terminated lines count,
    empty and ``#`` lines are skipped; the first bad line stops it with EINVAL."""
    conns = []
    for line in data.split("\n")[:-1]:
        if line == "" or line.startswith("#"):
            continue
        conn = parse_connection(line)
        if conn is None:
            return conns, errno.EINVAL
        conns.append(conn)
    return conns, 0


def active_pnns(nodemap: Any, exclude: int = UNKNOWN_PNN) -> list[int]:
    """4.17 ``list_of_active_nodes``."""
    return [int(n.pnn) for n in fmt.nodes_of(nodemap)
            if not n.flags & INACTIVE and n.pnn != exclude]


def connected_pnns(nodemap: Any, exclude: int = UNKNOWN_PNN) -> list[int]:
    """4.17 ``list_of_connected_nodes``."""
    return [int(n.pnn) for n in fmt.nodes_of(nodemap)
            if not n.flags & NodeFlags.DISCONNECTED and n.pnn != exclude]


# -- control plumbing ------------------------------------------------------------------------


def call(t: Any, name: str, destnode: int, fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run a typed control: (result, 0), or (None, ret) after 4.17's DEBUG line."""
    try:
        return fn(), 0
    except ControlTimeout:
        t.eprint(f"Control {name} failed to node {destnode}, ret={errno.ETIMEDOUT}\n")
        return None, errno.ETIMEDOUT
    except ControlError as exc:
        t.eprint(f"Control {name} failed, ret={exc.status}\n")
        return None, exc.status


def multi_error(replies: list[ControlReply | None]) -> int:
    """4.17 ``ctdb_client_control_multi``'s result: the first error, 0 if none."""
    for reply in replies:
        if reply is None:
            return errno.ETIMEDOUT
        if reply.status != 0:
            return reply.status
    return 0


def multi(t: Any, pnns: list[int], opcode: int, data: bytes = b"") -> list[ControlReply | None]:
    return t.c.control_multi([(p, opcode, data) for p in pnns], timeout=t.timeout)


# -- ip, ipinfo, ifaces, setifacelink ------------------------------------------------------


def _get_all_public_ips(t: Any) -> list[Any] | None:
    """4.17 ``get_all_public_ips``: None (exit 1) on any failure."""
    nodemap = t.get_nodemap()
    if nodemap is None:
        return None
    pnns = active_pnns(nodemap)
    if not pnns:
        return None
    per_node = []
    for pnn in pnns:
        ips, ret = call(t, "GET_PUBLIC_IPS", pnn, lambda: t.c.get_public_ips(destnode=pnn))
        if ret:
            return None
        per_node.append((pnn, ips.ips))
    return fmt.merge_public_ips(per_node)


def control_ip(t: Any, args: list[str]) -> int:
    if len(args) > 1:
        t.usage("ip")
    do_all = False
    if args:
        if args[0] != "all":
            t.usage("ip")
        do_all = True
    if do_all:
        ips = _get_all_public_ips(t)
        if ips is None:
            return 1
    else:
        lst, ret = call(t, "GET_PUBLIC_IPS", t.cmd_pnn,
                        lambda: t.c.get_public_ips(destnode=t.cmd_pnn))
        if ret:
            return ret
        ips = list(lst.ips)
    ips = fmt.sort_public_ips(ips)
    infos: list[Any] = []
    for ip in ips:  # 4.17 asks for the details with or without -v
        pnn = int(ip.pnn) if do_all else t.cmd_pnn
        if pnn == UNKNOWN_PNN:
            infos.append(None)
            continue
        info, ret = call(t, "GET_PUBLIC_IP_INFO", pnn,
                         lambda: t.c.get_public_ip_info(ip.addr, destnode=pnn))
        if ret:
            return ret
        infos.append(info)
    if t.opts.json:
        t.emit_json(fmt.ip_json(ips, infos if t.opts.verbose else None,
                                cmd_pnn=t.cmd_pnn, all_nodes=do_all))
    else:
        t.print(fmt.format_ip(ips, infos, cmd_pnn=t.cmd_pnn, all_nodes=do_all,
                              machine=t.opts.machinereadable, verbose=t.opts.verbose,
                              sep=t.sep))
    return 0


def control_ipinfo(t: Any, args: list[str]) -> int:
    if len(args) != 1:
        t.usage("ipinfo")
    addr = parse_sock_addr(args[0])
    if addr is None:
        t.eprint(f"Invalid IP address {args[0]}\n")
        return 1
    info, ret = call(t, "GET_PUBLIC_IP_INFO", t.cmd_pnn,
                     lambda: t.c.get_public_ip_info(addr, destnode=t.cmd_pnn))
    if ret:
        if ret == -1:
            t.print(f"Node {t.cmd_pnn} does not know about IP {args[0]}\n")
        return ret
    if t.opts.json:
        t.emit_json(fmt.ipinfo_json(info, t.cmd_pnn))
    else:
        t.print(fmt.format_ipinfo(info, t.cmd_pnn))
    return 0


def control_ifaces(t: Any, args: list[str]) -> int:
    if args:
        t.usage("ifaces")
    ifaces, ret = call(t, "GET_IFACES", t.cmd_pnn, lambda: t.c.get_ifaces(destnode=t.cmd_pnn))
    if ret:
        return ret
    if t.opts.json:
        t.emit_json(fmt.ifaces_json(ifaces, t.cmd_pnn))
    else:
        t.print(fmt.format_ifaces(ifaces, t.cmd_pnn, machine=t.opts.machinereadable, sep=t.sep))
    return 0


def control_setifacelink(t: Any, args: list[str]) -> int:
    if len(args) != 2:
        t.usage("setifacelink")
    name, state = args
    if len(name.encode("utf-8", "surrogateescape")) > IFACE_SIZE:
        t.eprint(f"Interface name '{name}' too long\n")
        return 1
    ifaces, ret = call(t, "GET_IFACES", t.cmd_pnn, lambda: t.c.get_ifaces(destnode=t.cmd_pnn))
    if ret:
        t.eprint(f"Failed to get interface information from node {t.cmd_pnn}\n")
        return ret
    if not any(i.name == name for i in fmt.ifaces_of(ifaces)):
        t.print(f"Interface {name} not configured on node {t.cmd_pnn}\n")
        return 1
    if state == "up":
        link = 1
    elif state == "down":
        link = 0
    else:
        t.usage("setifacelink")
        return 1
    iface = types.Iface(name=name, link_state=link, references=0)
    _, ret = call(t, "SET_IFACE_LINK_STATE", t.cmd_pnn,
                  lambda: t.c.set_iface_link_state(iface, destnode=t.cmd_pnn))
    return ret


# -- moveip, addip, delip, reloadips ---------------------------------------------------------


def _knows(ips: Any, addr: types.SockAddr) -> bool:
    """4.17 ``ctdb_same_ip``: family and address, not the port."""
    return any(ip.addr.ip == addr.ip for ip in ips.ips)


def _moveip(t: Any, addr: types.SockAddr, pnn: int) -> int:
    """4.17 ``moveip``: one attempt."""
    t.c.send_message(BROADCAST_CONNECTED, Srvid.DISABLE_IP_CHECK,
                     _U32.pack((2 * t.opts.timelimit) & 0xFFFFFFFF))
    ips, ret = call(t, "GET_PUBLIC_IPS", pnn, lambda: t.c.get_public_ips(destnode=pnn))
    if ret:
        t.eprint(f"Failed to get Public IPs from node {pnn}\n")
        return ret
    if not _knows(ips, addr):
        t.eprint(f"Node {pnn} CANNOT host IP address {fmt.sock_addr_to_string(addr)}\n")
        return 1
    nodemap = t.get_nodemap()
    if nodemap is None:
        return 1
    others = active_pnns(nodemap, exclude=pnn)
    if not others:
        t.eprint("Memory allocation error\n")
        return 1
    pubip = types.PublicIp(pnn=pnn, addr=addr)
    ret = multi_error(multi(t, others, Opcode.RELEASE_IP, pubip.pack()))
    if ret:
        t.eprint("Failed to release IP on nodes\n")
        return ret
    _, ret = call(t, "TAKEOVER_IP", pnn, lambda: t.c.takeover_ip(pubip, destnode=pnn))
    if ret:
        t.eprint(f"Failed to takeover IP on node {pnn}\n")
        return ret
    return 0


def control_moveip(t: Any, args: list[str]) -> int:
    if len(args) != 2:
        t.usage("moveip")
    addr = parse_sock_addr(args[0])
    if addr is None:
        t.eprint(f"Invalid IP address {args[0]}\n")
        return 1
    value, err = c_strtoul(args[1], 10)
    pnn = value & 0xFFFFFFFF
    if pnn == UNKNOWN_PNN or err:
        t.eprint(f"Invalid PNN {args[1]}\n")
        return 1
    ret = 0
    for _ in range(RETRIES):
        ret = _moveip(t, addr, pnn)
        if ret == 0:
            break
        time.sleep(t.retry_interval)
    if ret:
        t.eprint(f"Failed to move IP {args[0]} to node {pnn}\n")
        return ret
    return 0


def control_addip(t: Any, args: list[str]) -> int:
    if len(args) != 2:
        t.usage("addip")
    parsed = parse_addr_mask(args[0])
    if parsed is None:
        t.eprint(f"Invalid IP/Mask {args[0]}\n")
        return 1
    addr, mask = parsed
    ips, ret = call(t, "GET_PUBLIC_IPS", t.cmd_pnn,
                    lambda: t.c.get_public_ips(destnode=t.cmd_pnn))
    if ret:
        t.eprint(f"Failed to get Public IPs from node {t.cmd_pnn}\n")
        return 1
    if _knows(ips, addr):
        t.eprint(f"Node already knows about IP {fmt.sock_addr_to_string(addr)}\n")
        return 0
    info = types.AddrInfo(addr=addr, mask=mask, iface=args[1])
    for _ in range(RETRIES):
        _, ret = call(t, "ADD_PUBLIC_IP", t.cmd_pnn,
                      lambda: t.c.add_public_ip(info, destnode=t.cmd_pnn))
        if ret == 0:
            break
        time.sleep(t.retry_interval)
    if ret:
        t.eprint(f"Failed to add public IP to node {t.cmd_pnn}. Giving up\n")
        return ret
    # rebalancenode(): ask the leader to give this node IPs at the next takeover run
    t.c.send_message(BROADCAST_CONNECTED, Srvid.REBALANCE_NODE, _U32.pack(t.cmd_pnn))
    return 0


def control_delip(t: Any, args: list[str]) -> int:
    if len(args) != 1:
        t.usage("delip")
    addr = parse_sock_addr(args[0])
    if addr is None:
        t.eprint(f"Invalid IP address {args[0]}\n")
        return 1
    ips, ret = call(t, "GET_PUBLIC_IPS", t.cmd_pnn,
                    lambda: t.c.get_public_ips(destnode=t.cmd_pnn))
    if ret:
        t.eprint(f"Failed to get Public IPs from node {t.cmd_pnn}\n")
        return 1
    if not _knows(ips, addr):
        t.eprint(f"Node does not know about IP address {fmt.sock_addr_to_string(addr)}\n")
        return 0
    info = types.AddrInfo(addr=addr, mask=0, iface="")
    _, ret = call(t, "DEL_PUBLIC_IP", t.cmd_pnn,
                  lambda: t.c.del_public_ip(info, destnode=t.cmd_pnn))
    if ret:
        t.eprint(f"Failed to delete public IP from node {t.cmd_pnn}\n")
        return ret
    return 0


def disable_takeover_runs(t: Any, timeout: int, pnns: list[int]) -> int:
    """4.17 ``disable_takeover_runs``: DISABLE_TAKEOVER_RUNS {own pnn, fresh srvid,
    timeout} to each node's recovery daemon, then wait one timelimit for every node to
    answer with its pnn (an answer < 0 fails it)."""
    srvid = t.c.next_srvid()
    try:
        t.c.register_srvid(srvid)
    except ControlError as exc:
        return exc.status
    try:
        msg = types.DisableMessage(pnn=t.pnn, srvid=srvid, timeout=timeout).pack()
        for pnn in pnns:
            t.c.send_message(pnn, Srvid.DISABLE_TAKEOVER_RUNS, msg)
        replied: set[int] = set()
        status = 0
        deadline = time.monotonic() + t.timeout
        while True:
            if set(pnns) <= replied:
                break
            data = t.c.wait_message(srvid, max(0.0, deadline - time.monotonic()))
            if data is None:
                t.eprint("Timed out waiting to disable takeover runs\n")
                return errno.ETIME
            if len(data) != 4:
                continue
            (value,) = _I32.unpack(data)
            if value < 0:
                status = value
                break
            replied.add(value)
        return 0 if status >= 0 else 1
    finally:
        try:
            t.c.deregister_srvid(srvid)
        except (ControlError, OSError):
            pass


def control_reloadips(t: Any, args: list[str]) -> int:
    if len(args) > 1:
        t.usage("reloadips")
    nodemap = t.get_nodemap()
    if nodemap is None:
        return 1
    nodemap2 = t.parse_nodestring(args[0] if args else None)
    if nodemap2 is None:
        return 1
    pnns = connected_pnns(nodemap)
    if not pnns:
        t.eprint("Memory allocation error\n")
        return 1
    targets = active_pnns(nodemap2)
    if not targets:
        t.eprint("Memory allocation error\n")
        return 1
    ret = disable_takeover_runs(t, 2 * t.opts.timelimit, pnns)
    if ret:
        t.eprint("Failed to disable takeover runs\n")
        return ret
    if multi_error(multi(t, targets, Opcode.RELOAD_PUBLIC_IPS)):
        t.eprint("Failed to reload IPs on some nodes.\n")
    ret = disable_takeover_runs(t, 0, pnns)
    if ret:
        t.eprint("Failed to enable takeover runs\n")
        return ret
    return t.ipreallocate()


# -- gettickles, addtickle, deltickle --------------------------------------------------------


def control_gettickles(t: Any, args: list[str]) -> int:
    if len(args) < 1 or len(args) > 2:
        t.usage("gettickles")
    port = 0
    if len(args) == 2:
        port, err = c_strtoul(args[1], 10)
        if err:
            return err
    addr = parse_sock_addr(args[0])
    if addr is None:
        t.eprint(f"Invalid IP address {args[0]}\n")
        return 1
    addr = types.SockAddr(ip=addr.ip, port=port & 0xFFFF)
    tickles, ret = call(t, "GET_TCP_TICKLE_LIST", t.cmd_pnn,
                        lambda: t.c.get_tickle_list(addr, destnode=t.cmd_pnn))
    if ret:
        t.eprint("Failed to get list of connections\n")
        return ret
    if t.opts.json:
        t.emit_json(fmt.tickles_json(tickles))
    else:
        t.print(fmt.format_tickles(tickles, machine=t.opts.machinereadable, sep=t.sep))
    return 0


def _tickle_command(name: str, opcode: int, ctrl_name: str, method: str, verb: str,
                    failmsg: str) -> Callable[[Any, list[str]], int]:
    def run(t: Any, args: list[str]) -> int:
        if len(args) not in (0, 2):
            t.usage(name)
        if not args:
            conns, ret = parse_connection_list(t.read_stdin())
            if ret:
                return ret
            if not conns:
                return 0
            # process_clist_send: all at once to the command node, no DEBUG lines
            replies = t.c.control_multi(
                [(t.cmd_pnn, opcode, c.pack()) for c in conns], timeout=t.timeout
            )
            failed = sum(1 for r in replies if r is None or r.status != 0)
            if failed:
                t.eprint(f"Failed to {verb} {failed} tickles\n")
                return 1
            return 0
        src = parse_sock_addr(args[0], True)
        if src is None:
            t.eprint(f"Invalid IP address {args[0]}\n")
            return 1
        dst = parse_sock_addr(args[1], True)
        if dst is None:
            t.eprint(f"Invalid IP address {args[1]}\n")
            return 1
        conn = types.Connection(src=src, dst=dst)
        _, ret = call(t, ctrl_name, t.cmd_pnn,
                      lambda: getattr(t.c, method)(conn, destnode=t.cmd_pnn))
        if ret:
            t.eprint(f"{failmsg}\n")
            return ret
        return 0

    run.__name__ = f"control_{name}"
    return run


control_addtickle = _tickle_command(
    "addtickle", Opcode.TCP_ADD_DELAYED_UPDATE, "TCP_ADD_DELAYED_UPDATE",
    "tcp_add_delayed_update", "add", "Failed to register connection",
)
control_deltickle = _tickle_command(
    "deltickle", Opcode.TCP_REMOVE, "TCP_REMOVE", "tcp_remove", "remove",
    "Failed to unregister connection",
)
