"""``ctdb``: the CTDB administration tool, compatible with Samba 4.17's ctdb/tools/ctdb.c.

Output, stderr messages and exit codes of the implemented commands are those of 4.17.12
(checked against ctdb/tests/UNIT/tool/ctdb.*.sh and Debian's /usr/bin/ctdb; see
tests/unit/cli/). The usage text is 4.17's, byte for byte, including the commands we do
not implement yet; those print ``ctdb: command NAME is not implemented yet`` and exit 1.

Global options (popt-like: they may appear anywhere, ``--`` ends them):
``-n PNN`` (integer, as in 4.17; ``-n all`` is rejected exactly as 4.17 rejects it),
``-t SECS`` timelimit (default 10), ``-T SECS`` maxruntime (default ``$CTDB_TIMEOUT`` or
120), ``-X``, ``-Y``, ``-x SEP``, ``-v``, ``-d LEVEL``, ``-?/--help``, ``--usage``.

``--json`` (ours; not in 4.17's usage text) switches these commands to one JSON document
on stdout, built by cattrs from the same data as the text:

* ``status``: ``{"num_nodes": int, "deleted_nodes": int, "nodes": [NODE...],
  "generation": int, "generation_valid": bool, "vnnmap": [pnn...],
  "recovery_mode": "NORMAL"|"RECOVERY", "recmode": int, "leader": int|null}``
  with NODE = ``{"pnn", "address", "flags", "flags_text", "partially_online",
  "this_node"}`` (deleted nodes omitted, as in the text).
* ``nodestatus``: ``{"nodes": [NODE...], "exit_code": int}`` (exit code as in text mode).
* ``pnn``/``leader``: ``{"pnn": int|null}`` / ``{"leader": int|null}``.
* ``listnodes``: ``[{"pnn": int, "address": str}...]``.
* ``ping``: ``{"pnn", "seconds", "clients"}``; ``uptime``: ``{"pnn", "current_time",
  "ctdbd_start_time", "last_recovery_started", "last_recovery_finished",
  "last_recovery_duration"}`` (times as float epoch seconds).
* ``runstate``: ``{"runstate": name, "value": int}``; ``getcapabilities``:
  ``{"capabilities": int, "leader": bool, "lmaster": bool}``;
  ``getreclock``: ``{"reclock": str|null}``; ``version``: ``{"version": str}``;
  ``getpid``: ``{"pid": int}``.
* ``listvars``: ``{NAME: value...}`` (listvars order); ``getvar``: ``{NAME: value}``.
* ``ip [all]``: ``{"node": int|null, "all": bool, "ips": [{"address", "pnn": int|null}...]}``
  (pnn null = unassigned; with ``-v`` each IP also has ``"active": str|null``,
  ``"available": [str...]``, ``"configured": [str...]``), sorted as the text.
* ``ipinfo IP``: ``{"node", "address", "pnn": int|null, "interfaces": [{"name",
  "link_up": bool, "references", "active": bool}...]}``.
* ``ifaces``: ``{"node", "interfaces": [{"name", "link_up": bool, "references"}...]}``.
* ``gettickles IP [PORT]``: ``{"address", "port", "connections": [{"src", "src_port",
  "dst", "dst_port"}...]}``.
* ``getdbmap``: ``[{"dbid": int, "name", "path", "persistent": bool, "sticky": bool,
  "unhealthy": bool, "readonly": bool, "replicated": bool}...]`` (newest attach first).
* Commands that only act (setvar, disable, moveip, addip, ...) print nothing either way.

``version`` prints this package's version (e.g. ``0.1.0``), where 4.17 prints
``SAMBA_VERSION_STRING`` (``4.17.12-Debian``): same shape, one line.

``event status [legacy] [EVENT]`` (EVENT defaults to ``monitor``) and ``scriptstatus
[EVENT]`` read ``<dir of the socket path>/eventstatus.json`` through
``ctdbcore.plugins.status`` instead of running 4.17's ctdb-event helper; the output and
exit code follow 4.17's event_tool.c.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

import attrs

from ctdbcore.client.sync import (
    Client,
    ConnectError,
    ControlError,
    ControlTimeout,
    default_socket_path,
)
from ctdbcore.protocol.constants import (
    UNKNOWN_PNN,
    Capability,
    NodeFlags,
)
from ctdbcore.tools import ctdb_format as fmt
from ctdbcore.tools import ctdb_admin, ctdb_backup, ctdb_ip, ctdb_lvs, ctdb_natgw, ctdb_records

# -- usage text (4.17.12, popt's help + the command table) ----------------------------------

POPT_HELP = """\
Usage: [OPTION...]
  -d, --debug=STRING       debug level
  -t, --timelimit=INT      timelimit (in seconds)
  -n, --node=INT           node specification - integer
  -Y                       enable machine readable output
  -x, --separator=CHAR     specify separator for machine readable output
  -X                       enable machine parsable output with separator |
  -v, --verbose            enable verbose output
  -T, --maxruntime=INT     die if runtime exceeds this limit (in seconds)

Help options:
  -?, --help               Show this help message
      --usage              Display brief usage message
"""

POPT_USAGE = """\
Usage: [-?YXv] [-?|--help] [--usage] [-d|--debug=STRING]
        [-t|--timelimit=INT] [-n|--node=INT] [-Y] [-x|--separator=CHAR]
        [-X] [-v|--verbose] [-T|--maxruntime=INT]
"""


@attrs.frozen
class Command:
    name: str
    fn: Callable[[Tool, list[str]], int] | None
    without_daemon: bool
    remote: bool
    msg: str
    args: str | None = None


# -- errors ---------------------------------------------------------------------------------


class _Exit(Exception):
    """Leave main() with this code (4.17 calls exit() from deep inside)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@attrs.define
class Options:
    debuglevel: str | None = None
    timelimit: int = 10
    pnn: int = -1
    machinereadable: bool = False
    machineparsable: bool = False
    sep: str = "|"
    verbose: bool = False
    maxruntime: int = 0
    json: bool = False


# -- option parsing (popt semantics as observed on 4.17.12) ---------------------------------

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


class _OptError(Exception):
    def __init__(self, bad: str, why: str) -> None:
        super().__init__(f"Invalid option {bad}: {why}")


def _popt_int(value: str, bad: str) -> int:
    text = value.strip()
    try:
        sign = -1 if text.startswith("-") else 1
        body = text.lstrip("+-")
        if body.lower().startswith("0x"):
            n = int(body[2:], 16)
        elif body.startswith("0") and len(body) > 1:
            n = int(body[1:], 8)
        else:
            n = int(body, 10)
        if not body or not value or value[0].isspace():
            raise ValueError
    except ValueError:
        raise _OptError(bad, "invalid numeric value") from None
    n *= sign
    if n < _INT_MIN or n > _INT_MAX:
        raise _OptError(bad, "number too large or too small")
    return n


_LONG = {
    "debug": "d", "timelimit": "t", "node": "n", "separator": "x",
    "verbose": "v", "maxruntime": "T", "help": "?", "usage": "usage", "json": "json",
}
_TAKES_ARG = {"d", "t", "n", "x", "T"}


def parse_options(argv: Sequence[str], out: TextIO) -> tuple[Options, list[str]]:
    opts = Options()
    args: list[str] = []
    i = 0

    def apply(key: str, value: str | None, bad: str) -> None:
        if key == "d":
            opts.debuglevel = value
        elif key == "t":
            opts.timelimit = _popt_int(value or "", bad)
        elif key == "n":
            opts.pnn = _popt_int(value or "", bad)
        elif key == "x":
            opts.sep = value or ""
        elif key == "T":
            opts.maxruntime = _popt_int(value or "", bad)
        elif key == "Y":
            opts.machinereadable = True
        elif key == "X":
            opts.machineparsable = True
        elif key == "v":
            opts.verbose = True
        elif key == "json":
            opts.json = True
        elif key == "?":
            out.write(POPT_HELP)
            raise _Exit(0)
        elif key == "usage":
            out.write(POPT_USAGE)
            raise _Exit(0)

    while i < len(argv):
        tok = argv[i]
        i += 1
        if tok == "--":
            args.extend(argv[i:])
            break
        if tok.startswith("--") and len(tok) > 2:
            name, eq, value = tok[2:].partition("=")
            key = _LONG.get(name)
            if key is None:
                raise _OptError(tok, "unknown option")
            if key in _TAKES_ARG:
                if eq:
                    apply(key, value, tok)
                elif i < len(argv):
                    apply(key, argv[i], argv[i])
                    i += 1
                else:
                    raise _OptError(tok, "missing argument")
            elif eq:
                raise _OptError(tok, "option does not take an argument")
            else:
                apply(key, None, tok)
            continue
        if tok.startswith("-") and len(tok) > 1:
            j = 1
            while j < len(tok):
                c = tok[j]
                if c not in "dtnxTYXv?":
                    raise _OptError(tok, "unknown option")
                if c in _TAKES_ARG:
                    if j + 1 < len(tok):
                        apply(c, tok[j + 1 :], tok)
                    elif i < len(argv):
                        apply(c, argv[i], argv[i])
                        i += 1
                    else:
                        raise _OptError(tok, "missing argument")
                    break
                apply(c, None, tok)
                j += 1
            continue
        args.append(tok)
    if opts.machineparsable:
        opts.machinereadable = True
    return opts, args


# -- the tool context -----------------------------------------------------------------------


class Tool:
    """One invocation: options, the connection, and 4.17's ``struct ctdb_context``."""

    retry_interval = 3.0  # seconds between moveip/addip attempts (4.17 sleep(3))

    def __init__(self, opts: Options, out: TextIO, err: TextIO) -> None:
        self.opts = opts
        self.out = out
        self.err = err
        self.client: Client | None = None
        self.pnn = UNKNOWN_PNN
        self.cmd_pnn = UNKNOWN_PNN
        self._nodemap: Any = None
        self.poll_interval = 1.0  # wait_for_flags; tests shorten it

    def usage(self, command: str) -> NoReturn:
        usage(command, self.out)

    def read_stdin(self) -> str:
        """Standard input as bytes in a str (latin-1): 4.17 reads bytes, and a record's
        key or value may be any bytes."""
        return sys.stdin.buffer.read().decode("latin-1")

    def parse_nodestring(self, nodestring: str | None) -> Any:
        return _parse_nodestring(self, nodestring)

    # output helpers
    def print(self, text: str) -> None:
        self.out.write(text)

    def eprint(self, text: str) -> None:
        self.err.write(text)

    def emit_json(self, obj: Any) -> None:
        self.out.write(json.dumps(obj, indent=2) + "\n")

    @property
    def sep(self) -> str:
        return self.opts.sep

    @property
    def timeout(self) -> float:
        return float(self.opts.timelimit)

    # control wrapper: 4.17 client_control_sync.c messages and return codes
    def ctrl(self, name: str, destnode: int, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ControlTimeout:
            self.eprint(f"Control {name} failed to node {destnode}, ret=110\n")
            raise _Exit(110) from None
        except ControlError as exc:
            self.eprint(f"Control {name} failed, ret={exc.status}\n")
            raise _Exit(1 if exc.status == -1 else exc.status) from None

    @property
    def c(self) -> Client:
        assert self.client is not None
        return self.client

    def get_nodemap(self, force: bool = False) -> Any:
        """4.17 ``get_nodemap``: cached; taken from another node while this one is banned."""
        if force:
            self._nodemap = None
        if self._nodemap is not None:
            return self._nodemap
        current = self.pnn
        while True:
            try:
                nodemap = self.c.get_nodemap(destnode=current)
            except ControlError:
                self.eprint(f"Failed to get nodemap from node {current}\n")
                return None
            nodes = fmt.nodes_of(nodemap)
            node = next((n for n in nodes if n.pnn == current), None)
            if node is not None and node.flags & NodeFlags.BANNED and nodes:
                while True:
                    current = (current + 1) % len(nodes)
                    cand = next((n for n in nodes if n.pnn == current), None)
                    if cand is not None and not cand.flags & (
                        NodeFlags.DELETED | NodeFlags.DISCONNECTED
                    ):
                        break
                    if current == self.pnn:
                        break
                if current == self.pnn:
                    self.eprint("Warning: All nodes are banned.\n")
                    return None
                continue
            self._nodemap = nodemap
            return nodemap

    def verify_pnn(self, pnn: int) -> bool:
        if pnn == -1:
            return False
        nodemap = self.get_nodemap()
        if nodemap is None:
            return False
        node = next((n for n in fmt.nodes_of(nodemap) if n.pnn == pnn), None)
        if node is None:
            self.eprint(f"Node {pnn} does not exist\n")
            return False
        if node.flags & (NodeFlags.DISCONNECTED | NodeFlags.DELETED):
            self.eprint(f"Node {pnn} has status {fmt.pretty_print_flags(node.flags)}\n")
            return False
        return True

    def nodemap_unknown(self, nodemap: Any) -> Any:
        try:
            runstate = self.c.get_runstate(destnode=self.cmd_pnn)
        except ControlError:
            self.print("Unable to get runstate")
            return None
        return fmt.apply_unknown(nodemap, runstate, self.cmd_pnn)

    def partially_online(self, nodemap: Any) -> set[int]:
        """pnns with flags 0 and an interface with link down (GET_IFACES per such node)."""
        result = set()
        for n in fmt.nodes_of(nodemap):
            if n.flags != 0:
                continue
            try:
                ifaces = self.c.get_ifaces(destnode=n.pnn)
            except ControlError:
                continue
            if fmt.iface_link_down(ifaces):
                result.add(n.pnn)
        return result

    def get_leader(self) -> int:
        return self.c.get_leader(self.timeout)

    def node_flags(self, nodemap: Any, pnn: int) -> int:
        for n in fmt.nodes_of(nodemap):
            if n.pnn == pnn:
                return int(n.flags)
        return 0

    def check_flags(self, desc: str, flag: int, set_flag: bool) -> int:
        """0 = nothing to do (message printed), 1 = go ahead (4.17 ``check_flags``)."""
        nodemap = self.get_nodemap()
        if nodemap is None:
            return 1
        is_set = bool(self.node_flags(nodemap, self.cmd_pnn) & flag)
        if is_set == set_flag:
            if set_flag:
                self.eprint(f"Node {self.cmd_pnn} is already {desc}\n")
            else:
                self.eprint(f"Node {self.cmd_pnn} is not {desc}\n")
            return 0
        return 1

    def wait_for_flags(self, flag: int, set_flag: bool) -> None:
        while True:
            nodemap = self.get_nodemap(force=True)
            if nodemap is None:
                self.eprint("Failed to get nodemap, trying again\n")
                time.sleep(self.poll_interval)
                continue
            if bool(self.node_flags(nodemap, self.cmd_pnn) & flag) == set_flag:
                return
            time.sleep(self.poll_interval)

    def ipreallocate(self) -> int:
        status = self.c.takeover_run(timeout=self.timeout)
        return 0 if status >= 0 else status


# -- commands -------------------------------------------------------------------------------


def usage(command: str | None, out: TextIO) -> NoReturn:
    """4.17 ``usage()``: always exits 1."""
    cmd = match_command(command) if command is not None else None
    if cmd is None:
        out.write(POPT_HELP)
        out.write("\nCommands:\n")
        for c in COMMANDS:
            out.write(f"  {c.name:<15s} {c.args or '':<27s}  {c.msg}\n")
    else:
        out.write(POPT_USAGE)
        out.write("\nCommands:\n")
        out.write(f"  {cmd.name:<15s} {cmd.args or '':<27s}  {cmd.msg}\n")
    raise _Exit(1)


def _no_args(t: Tool, args: list[str], name: str) -> None:
    if args:
        usage(name, t.out)


def control_version(t: Tool, args: list[str]) -> int:
    version = package_version()
    if t.opts.json:
        t.emit_json({"version": version})
    else:
        t.print(f"{version}\n")
    return 0


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("ctdb-core")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0.0.0"


def control_status(t: Tool, args: list[str]) -> int:
    _no_args(t, args, "status")
    nodemap_in = t.get_nodemap()
    if nodemap_in is None:
        return 1
    nodemap = t.nodemap_unknown(nodemap_in)
    if nodemap is None:
        return 1
    partial = t.partially_online(nodemap)
    if t.opts.machinereadable and not t.opts.json:
        t.print(fmt.format_nodemap_machine(nodemap, t.cmd_pnn, sep=t.sep, partially_online=partial))
        return 0
    vnnmap = t.ctrl("GETVNNMAP", t.cmd_pnn, lambda: t.c.get_vnnmap(destnode=t.cmd_pnn))
    recmode = t.ctrl("GET_RECMODE", t.cmd_pnn, lambda: t.c.get_recmode(destnode=t.cmd_pnn))
    leader = t.get_leader()
    if t.opts.json:
        view = fmt.status_view(nodemap, t.cmd_pnn, vnnmap, recmode, leader, partially_online=partial)
        reason = _unhealthy_reason()
        if reason is not None:
            view = attrs.evolve(view, nodes=[attrs.evolve(n, unhealthy_reason=reason)
                                             if n.pnn == t.pnn and n.flags & NodeFlags.UNHEALTHY else n
                                             for n in view.nodes])
        t.emit_json(fmt.to_json_obj(view))
    else:
        t.print(fmt.format_status(nodemap, t.cmd_pnn, vnnmap, recmode, leader, partially_online=partial))
    return 0


def _parse_nodestring(t: Tool, nodestring: str | None) -> Any:
    nodemap = t.get_nodemap()
    if nodemap is None:
        return None
    nodes = fmt.nodes_of(nodemap)
    if nodestring is None:
        chosen = [n for n in nodes if n.pnn == t.cmd_pnn][:1]
    elif nodestring == "all":
        chosen = nodes
    else:
        chosen = []
        for tok in (x for x in nodestring.split(",") if x):
            try:
                pnn = _strtoul(tok)
            except ValueError:
                t.eprint(f"Invalid node {tok}\n")
                return None
            node = next((n for n in nodes if n.pnn == pnn), None)
            if node is None:
                t.eprint(f"Node {pnn} does not exist\n")
                return None
            chosen.append(node)
    return fmt.with_nodes(nodemap, chosen)


def _strtoul(text: str) -> int:
    """samba's ``smb_strtoul(.., 0, .., SMB_STR_STANDARD)``: base 0, no sign, whole string."""
    s = text.strip()
    if not s or s.startswith("-"):
        raise ValueError(text)
    s = s.lstrip("+")
    if s.lower().startswith("0x"):
        n = int(s[2:], 16)
    elif s.startswith("0") and len(s) > 1:
        n = int(s[1:], 8)
    else:
        n = int(s, 10)
    if n > 0xFFFFFFFFFFFFFFFF:
        raise ValueError(text)
    return n & 0xFFFFFFFF


def control_nodestatus(t: Tool, args: list[str]) -> int:
    if len(args) > 1:
        usage("nodestatus", t.out)
    nodestring = args[0] if args else None
    header = nodestring == "all"
    nodemap_in = _parse_nodestring(t, nodestring)
    if nodemap_in is None:
        return 1
    nodemap = t.nodemap_unknown(nodemap_in)
    if nodemap is None:
        return 1
    partial = t.partially_online(nodemap)
    code = fmt.nodestatus_exit_code(nodemap)
    if t.opts.json:
        views = fmt.node_views(nodemap, t.cmd_pnn, partial)
        t.emit_json({"nodes": [fmt.to_json_obj(v) for v in views], "exit_code": code})
    elif t.opts.machinereadable:
        t.print(fmt.format_nodemap_machine(nodemap, t.cmd_pnn, sep=t.sep, partially_online=partial))
    else:
        t.print(fmt.format_nodemap(nodemap, t.cmd_pnn, header=header, partially_online=partial))
    return code


def control_pnn(t: Tool, args: list[str]) -> int:
    if t.opts.json:
        t.emit_json({"pnn": t.c.pnn})
    else:
        t.print(f"{t.c.pnn}\n")
    return 0


def control_leader(t: Tool, args: list[str]) -> int:
    leader = t.get_leader()
    if t.opts.json:
        t.emit_json({"leader": None if leader == UNKNOWN_PNN else leader})
    else:
        t.print(fmt.format_pnn(leader))
    return 0


def control_ping(t: Tool, args: list[str]) -> int:
    elapsed, clients = t.ctrl("PING", t.cmd_pnn, lambda: t.c.ping(destnode=t.cmd_pnn))
    if t.opts.json:
        t.emit_json({"pnn": t.cmd_pnn, "seconds": elapsed, "clients": clients})
    else:
        t.print(fmt.format_ping(t.cmd_pnn, elapsed, clients))
    return 0


def control_uptime(t: Tool, args: list[str]) -> int:
    up = t.ctrl("UPTIME", t.cmd_pnn, lambda: t.c.uptime(destnode=t.cmd_pnn))
    if t.opts.json:

        def f(tv: Any) -> float:
            s, u = fmt.tv_seconds(tv)
            return s + u / 1e6

        t.emit_json(
            {
                "pnn": t.cmd_pnn,
                "current_time": f(up.current_time),
                "ctdbd_start_time": f(up.ctdbd_start_time),
                "last_recovery_started": f(up.last_recovery_started),
                "last_recovery_finished": f(up.last_recovery_finished),
                "last_recovery_duration": f(up.last_recovery_finished)
                - f(up.last_recovery_started),
            }
        )
    else:
        t.print(fmt.format_uptime(t.cmd_pnn, up))
    return 0


def control_runstate(t: Tool, args: list[str]) -> int:
    runstate = t.ctrl("GET_RUNSTATE", t.cmd_pnn, lambda: t.c.get_runstate(destnode=t.cmd_pnn))
    found = True
    for arg in args:
        found = False
        wanted = fmt.runstate_from_string(arg)
        if wanted == 0:
            t.print(f"Invalid run state ({arg})\n")
            return 1
        if wanted == runstate:
            found = True
            break
    if not found:
        t.print(f"CTDB not in required run state (got {fmt.runstate_to_string(runstate)})\n")
        return 1
    if t.opts.json:
        t.emit_json({"runstate": fmt.runstate_to_string(runstate), "value": int(runstate)})
    else:
        t.print(fmt.runstate_to_string(runstate) + "\n")
    return 0


def control_getcapabilities(t: Tool, args: list[str]) -> int:
    _no_args(t, args, "getcapabilities")
    caps = t.ctrl(
        "GET_CAPABILITIES", t.cmd_pnn, lambda: t.c.get_capabilities(destnode=t.cmd_pnn)
    )
    if t.opts.json:
        t.emit_json(
            {
                "capabilities": caps,
                "leader": bool(caps & Capability.RECMASTER),
                "lmaster": bool(caps & Capability.LMASTER),
            }
        )
    else:
        t.print(fmt.format_capabilities(caps, machine=t.opts.machinereadable, sep=t.sep))
    return 0


def control_getreclock(t: Tool, args: list[str]) -> int:
    _no_args(t, args, "getreclock")
    reclock = t.ctrl(
        "GET_RECLOCK_FILE", t.cmd_pnn, lambda: t.c.get_reclock_file(destnode=t.cmd_pnn)
    )
    if t.opts.json:
        t.emit_json({"reclock": reclock})
    elif reclock is not None:
        t.print(f"{reclock}\n")
    return 0


def control_getpid(t: Tool, args: list[str]) -> int:
    pid = t.ctrl("GET_PID", t.cmd_pnn, lambda: t.c.get_pid(destnode=t.cmd_pnn))
    if t.opts.json:
        t.emit_json({"pid": pid})
    else:
        t.print(f"{pid}\n")
    return 0


def _list_tunables(t: Tool) -> list[str] | None:
    try:
        return t.c.list_tunables(destnode=t.cmd_pnn)
    except ControlError as exc:
        t.eprint(f"Failed to get list of variables from node {t.cmd_pnn}\n")
        raise _Exit(1 if exc.status == -1 else abs(exc.status)) from None


def _getvar(t: Tool, name: str, names: list[str]) -> tuple[int, int | None]:
    if not any(n.lower() == name.lower() for n in names):
        t.print(f"No such tunable {name}\n")
        return 1, None
    value = t.ctrl("GET_TUNABLE", t.cmd_pnn, lambda: t.c.get_tunable(name, destnode=t.cmd_pnn))
    return 0, value


def control_getvar(t: Tool, args: list[str]) -> int:
    if len(args) != 1:
        usage("getvar", t.out)
    names = _list_tunables(t) or []
    ret, value = _getvar(t, args[0], names)
    if ret != 0 or value is None:
        return ret
    if t.opts.json:
        t.emit_json({args[0]: value})
    else:
        t.print(fmt.format_var(args[0], value))
    return 0


def control_setvar(t: Tool, args: list[str]) -> int:
    if len(args) != 2:
        usage("setvar", t.out)
    names = _list_tunables(t) or []
    if not any(n.lower() == args[0].lower() for n in names):
        t.print(f"No such tunable {args[0]}\n")
        return 1
    try:
        value = _strtoul(args[1])
    except ValueError:
        return 22  # EINVAL from smb_strtoul
    status = t.ctrl(
        "SET_TUNABLE", t.cmd_pnn, lambda: t.c.set_tunable(args[0], value, destnode=t.cmd_pnn)
    )
    if status == 1:
        t.eprint(f"Setting obsolete tunable variable '{args[0]}'\n")
        return 0
    return status


def control_listvars(t: Tool, args: list[str]) -> int:
    _no_args(t, args, "listvars")
    names = t.ctrl("LIST_TUNABLES", t.cmd_pnn, lambda: t.c.list_tunables(destnode=t.cmd_pnn))
    result: dict[str, int] = {}
    for name in names:
        # 4.17 calls control_getvar per name, which lists the tunables again each time.
        ret, value = _getvar(t, name, _list_tunables(t) or [])
        if ret == 0 and value is not None:
            if t.opts.json:
                result[name] = value
            else:
                t.print(fmt.format_var(name, value))
    if t.opts.json:
        t.emit_json(result)
    return 0


def _flag_command(
    name: str, desc: str, flag: int, set_flag: bool, action: Callable[[Tool], None], failmsg: str
) -> Callable[[Tool, list[str]], int]:
    def run(t: Tool, args: list[str]) -> int:
        _no_args(t, args, name)
        if t.check_flags(desc, flag, set_flag) == 0:
            return 0
        try:
            action(t)
        except ControlError as exc:
            t.eprint(f"{failmsg} {t.cmd_pnn}\n")
            return 1 if exc.status == -1 else abs(exc.status)
        t.wait_for_flags(flag, set_flag)
        return t.ipreallocate()

    run.__name__ = f"control_{name}"
    return run


control_disable = _flag_command(
    "disable", "disabled", NodeFlags.PERMANENTLY_DISABLED, True,
    lambda t: t.c.disable_node(destnode=t.cmd_pnn), "Failed to disable node",
)
control_enable = _flag_command(
    "enable", "disabled", NodeFlags.PERMANENTLY_DISABLED, False,
    lambda t: t.c.enable_node(destnode=t.cmd_pnn), "Failed to enable node",
)
control_stop = _flag_command(
    "stop", "stopped", NodeFlags.STOPPED, True,
    lambda t: t.c.stop_node(destnode=t.cmd_pnn), "Failed to stop node",
)
control_continue = _flag_command(
    "continue", "stopped", NodeFlags.STOPPED, False,
    lambda t: t.c.continue_node(destnode=t.cmd_pnn), "Failed to continue stopped node",
)
control_unban = _flag_command(
    "unban", "banned", NodeFlags.BANNED, False,
    lambda t: t.c.set_ban_state(t.cmd_pnn, 0, destnode=t.cmd_pnn), "Failed to unban node",
)


def control_ban(t: Tool, args: list[str]) -> int:
    if len(args) != 1:
        usage("ban", t.out)
    if t.check_flags("banned", NodeFlags.BANNED, True) == 0:
        return 0
    try:
        seconds = _strtoul(args[0])
    except ValueError:
        return 22
    if seconds == 0:
        t.eprint("Ban time cannot be zero\n")
        return 22
    try:
        t.c.set_ban_state(t.cmd_pnn, seconds, destnode=t.cmd_pnn)
    except ControlError as exc:
        t.eprint(f"Failed to ban node {t.cmd_pnn}\n")
        return 1 if exc.status == -1 else abs(exc.status)
    t.wait_for_flags(NodeFlags.BANNED, True)
    return t.ipreallocate()


def control_ipreallocate(t: Tool, args: list[str]) -> int:
    _no_args(t, args, "ipreallocate")  # "sync" too, as 4.17
    return t.ipreallocate()


def control_listnodes(t: Tool, args: list[str]) -> int:
    _no_args(t, args, "listnodes")
    entries = read_nodes_file(t.err)
    if entries is None:
        return 1
    if t.opts.json:
        t.emit_json(
            [{"pnn": p, "address": a} for p, a, f in entries if not f & NodeFlags.DELETED]
        )
    else:
        t.print(fmt.format_listnodes(entries, machine=t.opts.machinereadable, sep=t.sep))
    return 0


def nodes_file_path() -> str:
    return os.path.join(os.environ.get("CTDB_BASE") or "/etc/ctdb", "nodes")


def read_nodes_file(err: TextIO) -> list[tuple[int, str, int]] | None:
    path = nodes_file_path()
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
        return fmt.parse_nodes_file(text)
    except fmt.NodesFileError as exc:
        err.write(f"{exc}\n")
    except OSError:
        pass
    err.write(f'Failed to read nodes file "{path}"\n')
    return None


def find_node_xpnn(err: TextIO) -> bool:
    """4.17: is one of the nodes file's addresses configured on this host (can we bind)?"""
    import socket

    entries = read_nodes_file(err)
    if entries is None:
        return False
    for _pnn, addr, flags in entries:
        if flags & NodeFlags.DELETED:
            continue
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.bind((addr, 0))
            return True
        except OSError:
            continue
        finally:
            s.close()
    err.write("Failed to detect PNN of the current node.\n")
    return False


def _unhealthy_reason() -> str | None:
    """The failing plugin and its output in this node's last monitor run, if any."""
    from ctdbcore.plugins import status as evstatus

    path = os.path.join(os.path.dirname(default_socket_path()), evstatus.STATUS_FILE_NAME)
    run = evstatus.EventStatusStore(path).get("monitor")
    failed = run.failed_result if run is not None else None
    if failed is None:
        return None
    return f"{failed.name}: {failed.output}" if failed.output else f"{failed.name}: {failed.state}"


def _event_status(t: Tool, component: str, event: str) -> int:
    from ctdbcore.plugins import status as evstatus  # imported lazily: only these commands

    path = os.path.join(os.path.dirname(default_socket_path()), evstatus.STATUS_FILE_NAME)
    text, code = evstatus.EventStatusStore(path).status(event, component)
    if t.opts.json:
        run = evstatus.EventStatusStore(path).get(event) if component == "legacy" else None
        t.emit_json(
            {
                "component": component,
                "event": event,
                "exit_code": code,
                "run": None if run is None else evstatus.converter.unstructure(run),
            }
        )
    else:
        t.print(text)
    return code


def control_event(t: Tool, args: list[str]) -> int:
    """``event status [COMPONENT] [EVENT]`` and ``event script list|enable|disable``."""
    from ctdbcore.tools import ctdb_event

    return ctdb_event.control_event(t, args, os.path.dirname(default_socket_path()), _event_status)


def control_checktcpport(t: Tool, args: list[str]) -> int:
    from ctdbcore.tools import ctdb_event

    code = ctdb_event.control_checktcpport(t, args)
    if code < 0:
        usage("checktcpport", t.out)
    return code


def control_scriptstatus(t: Tool, args: list[str]) -> int:
    if len(args) > 1:
        usage("scriptstatus", t.out)
    _event_status(t, "legacy", args[0] if args else "monitor")
    return 0  # 4.17 ignores the helper's result here


_C = Command
COMMANDS: tuple[Command, ...] = (
    _C("version", control_version, True, False, "show version of ctdb"),
    _C("status", control_status, False, True, "show node status"),
    _C("uptime", control_uptime, False, True, "show node uptime"),
    _C("ping", control_ping, False, True, "ping a node"),
    _C("runstate", control_runstate, False, True, "get/check runstate of a node",
       "[setup|first_recovery|startup|running]"),
    _C("getvar", control_getvar, False, True, "get a tunable variable", "<name>"),
    _C("setvar", control_setvar, False, True, "set a tunable variable", "<name> <value>"),
    _C("listvars", control_listvars, False, True, "list tunable variables"),
    _C("statistics", ctdb_admin.control_statistics, False, True, "show ctdb statistics"),
    _C("statisticsreset", ctdb_admin.control_statisticsreset, False, True, "reset ctdb statistics"),
    _C("stats", ctdb_admin.control_stats, False, True, "show rolling statistics", "[count]"),
    _C("ip", ctdb_ip.control_ip, False, True, "show public ips", "[all]"),
    _C("ipinfo", ctdb_ip.control_ipinfo, False, True, "show public ip details", "<ip>"),
    _C("ifaces", ctdb_ip.control_ifaces, False, True, "show interfaces"),
    _C("setifacelink", ctdb_ip.control_setifacelink, False, True, "set interface link status", "<iface> up|down"),
    _C("process-exists", ctdb_admin.control_process_exists, False, True, "check if a process exists on a node",
       "<pid> [<srvid>]"),
    _C("getdbmap", ctdb_records.control_getdbmap, False, True, "show attached databases"),
    _C("getdbstatus", ctdb_records.control_getdbstatus, False, True, "show database status", "<dbname|dbid>"),
    _C("catdb", ctdb_records.control_catdb, False, False, "dump cluster-wide ctdb database", "<dbname|dbid>"),
    _C("cattdb", ctdb_records.control_cattdb, False, False, "dump local ctdb database", "<dbname|dbid>"),
    _C("getcapabilities", control_getcapabilities, False, True, "show node capabilities"),
    _C("pnn", control_pnn, False, False, "show the pnn of the currnet node"),
    _C("lvs", ctdb_lvs.control_lvs, False, False, "show lvs configuration", "leader|list|status"),
    _C("setdebug", ctdb_admin.control_setdebug, False, True, "set debug level", "ERROR|WARNING|NOTICE|INFO|DEBUG"),
    _C("getdebug", ctdb_admin.control_getdebug, False, True, "get debug level"),
    _C("attach", ctdb_records.control_attach, False, False, "attach a database", "<dbname> [persistent|replicated]"),
    _C("detach", ctdb_records.control_detach, False, False, "detach database(s)", "<dbname|dbid> ..."),
    _C("dumpmemory", None, False, True, "dump ctdbd memory map"),
    _C("rddumpmemory", None, False, True, "dump recoverd memory map"),
    _C("getpid", control_getpid, False, True, "get ctdbd process ID"),
    _C("disable", control_disable, False, True, "disable a node"),
    _C("enable", control_enable, False, True, "enable a node"),
    _C("stop", control_stop, False, True, "stop a node"),
    _C("continue", control_continue, False, True, "continue a stopped node"),
    _C("ban", control_ban, False, True, "ban a node", "<bantime>"),
    _C("unban", control_unban, False, True, "unban a node"),
    _C("shutdown", ctdb_admin.control_shutdown, False, True, "shutdown ctdb daemon"),
    _C("recover", ctdb_records.control_recover, False, True, "force recovery"),
    _C("sync", control_ipreallocate, False, True, "run ip reallocation (deprecated)"),
    _C("ipreallocate", control_ipreallocate, False, True, "run ip reallocation"),
    _C("gratarp", None, False, True, "send a gratuitous arp", "<ip> <interface>"),
    _C("tickle", None, True, False, "send a tcp tickle ack", "<srcip:port> <dstip:port>"),
    _C("gettickles", ctdb_ip.control_gettickles, False, True, "get the list of tickles", "<ip> [<port>]"),
    _C("addtickle", ctdb_ip.control_addtickle, False, True, "add a tickle", "<ip>:<port> <ip>:<port>"),
    _C("deltickle", ctdb_ip.control_deltickle, False, True, "delete a tickle", "<ip>:<port> <ip>:<port>"),
    _C("listnodes", control_listnodes, True, True, "list nodes in the cluster"),
    _C("reloadnodes", None, False, False, "reload the nodes file all nodes"),
    _C("moveip", ctdb_ip.control_moveip, False, False, "move an ip address to another node", "<ip> <node>"),
    _C("addip", ctdb_ip.control_addip, False, True, "add an ip address to a node", "<ip/mask> <iface>"),
    _C("delip", ctdb_ip.control_delip, False, True, "delete an ip address from a node", "<ip>"),
    _C("backupdb", ctdb_backup.control_backupdb, False, False, "backup a database into a file", "<dbname|dbid> <file>"),
    _C("restoredb", ctdb_backup.control_restoredb, False, False, "restore a database from a file", "<file> [dbname]"),
    _C("dumpdbbackup", ctdb_backup.control_dumpdbbackup, True, False, "dump database from a backup file", "<file>"),
    _C("wipedb", ctdb_backup.control_wipedb, False, False, "wipe the contents of a database.", "<dbname|dbid>"),
    _C("leader", control_leader, False, True, "show the pnn of the leader"),
    _C("event", control_event, True, False, "event and event script commands"),
    _C("scriptstatus", control_scriptstatus, True, False, "show event script status",
       "[init|setup|startup|monitor|takeip|releaseip|ipreallocated]"),
    _C("natgw", ctdb_natgw.control_natgw, False, False, "show natgw configuration", "leader|list|status"),
    _C("getreclock", control_getreclock, False, True, "get recovery lock file"),
    _C("setlmasterrole", None, False, True, "set LMASTER role", "on|off"),
    _C("setleaderrole", None, False, True, "set LEADER role", "on|off"),
    _C("setdbreadonly", ctdb_records.control_setdbreadonly, False, True, "enable readonly records", "<dbname|dbid>"),
    _C("setdbsticky", ctdb_records.control_setdbsticky, False, True, "enable sticky records", "<dbname|dbid>"),
    _C("pfetch", ctdb_records.control_pfetch, False, False, "fetch record from persistent database",
       "<dbname|dbid> <key>"),
    _C("pstore", ctdb_records.control_pstore, False, False, "write record to persistent database",
       "<dbname|dbid> <key> <value>"),
    _C("pdelete", ctdb_records.control_pdelete, False, False, "delete record from persistent database",
       "<dbname|dbid> <key>"),
    _C("ptrans", ctdb_records.control_ptrans, False, False, "update a persistent database (from file or stdin)",
       "<dbname|dbid> [<file>]"),
    _C("tfetch", ctdb_admin.control_tfetch, False, True, "fetch a record", "<tdb-file> <key> [<file>]"),
    _C("tstore", ctdb_admin.control_tstore, False, True, "store a record",
       "<tdb-file> <key> <data> [<rsn> <dmaster> <flags>]"),
    _C("readkey", ctdb_records.control_readkey, False, False, "read value of a database key",
       "<dbname|dbid> <key> [readonly]"),
    _C("writekey", ctdb_records.control_writekey, False, False, "write value for a database key",
       "<dbname|dbid> <key> <value>"),
    _C("deletekey", ctdb_records.control_deletekey, False, False, "delete a database key", "<dbname|dbid> <key>"),
    _C("checktcpport", control_checktcpport, True, False,
       "check if a service is bound to a specific tcp port or not", "<port>"),
    _C("getdbseqnum", ctdb_records.control_getdbseqnum, False, False, "get database sequence number", "<dbname|dbid>"),
    _C("nodestatus", control_nodestatus, False, True, "show and return node status",
       "[all|<pnn-list>]"),
    _C("dbstatistics", ctdb_records.control_dbstatistics, False, True, "show database statistics", "<dbname|dbid>"),
    _C("reloadips", ctdb_ip.control_reloadips, False, False, "reload the public addresses file", "[all|<pnn-list>]"),
)


def match_command(name: str) -> Command | None:
    for cmd in COMMANDS:
        if cmd.name == name:
            return cmd
    return None


# -- main -----------------------------------------------------------------------------------


def process_command(cmd: Command, args: list[str], opts: Options, out: TextIO, err: TextIO) -> int:
    tool = Tool(opts, out, err)
    if cmd.fn is None:
        err.write(f"ctdb: command {cmd.name} is not implemented yet\n")
        return 1
    if cmd.without_daemon:
        if opts.pnn != -1:
            err.write(f"Cannot specify node for command {cmd.name}\n")
            return 1
        return cmd.fn(tool, args)

    path = default_socket_path()
    try:
        tool.client = Client(path, timeout=float(opts.timelimit))
    except (ConnectError, OSError) as exc:
        if isinstance(exc, ConnectError):
            err.write(f"{exc}\n")
        err.write(f"Failed to connect to CTDB daemon ({path})\n")
        if not find_node_xpnn(err):
            err.write("Is this node part of CTDB cluster?\n")
        return 1
    try:
        tool.pnn = tool.client.pnn
        if opts.pnn != -1:
            if not tool.verify_pnn(opts.pnn):
                return 1
            tool.cmd_pnn = opts.pnn
        else:
            tool.cmd_pnn = tool.pnn
        if not cmd.remote and tool.pnn != tool.cmd_pnn:
            err.write(f"Node cannot be specified for command {cmd.name}\n")
            return 1
        try:
            tool.client.register_srvid(fmt_srvid_leader())
        except ControlError:
            err.write("Failed to setup leader handler\n")
            return 1
        return cmd.fn(tool, args)
    finally:
        tool.client.close()


def fmt_srvid_leader() -> int:
    from ctdbcore.protocol.constants import Srvid

    return Srvid.LEADER


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    out, err = sys.stdout, sys.stderr
    try:
        try:
            opts, args = parse_options(args_in, out)
        except _OptError as exc:
            err.write(f"{exc}\n")
            return 1
        if opts.maxruntime == 0:
            env = os.environ.get("CTDB_TIMEOUT")
            if env is not None:
                try:
                    opts.maxruntime = _strtoul(env)
                except ValueError:
                    err.write("Invalid value CTDB_TIMEOUT\n")
                    return 1
            else:
                opts.maxruntime = 120
        if not args:
            usage(None, out)
        cmd = match_command(args[0])
        if cmd is None:
            err.write(f"Unknown command '{args[0]}'\n")
            return 1
        with _maxruntime(opts.maxruntime, err):
            ret = process_command(cmd, args[1:], opts, out, err)
        return (1 if ret == -1 else ret) & 0xFF
    except _Exit as exc:
        return exc.code
    finally:
        out.flush()


class _maxruntime:
    """4.17's alarm(maxruntime): exit 1 when the command runs too long (main thread only)."""

    def __init__(self, seconds: int, err: TextIO) -> None:
        self.seconds = seconds
        self.err = err
        self.active = seconds > 0 and threading.current_thread() is threading.main_thread()
        self.old: Any = None

    def _fire(self, signum: int, frame: Any) -> None:
        self.err.write("Maximum runtime exceeded - exiting\n")
        self.err.flush()
        sys.stdout.flush()
        os._exit(1)

    def __enter__(self) -> _maxruntime:
        if self.active:
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, self.old)


if __name__ == "__main__":
    sys.exit(main())
