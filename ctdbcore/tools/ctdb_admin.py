"""`ctdb` daemon administration commands: statistics, statisticsreset, stats, setdebug,
getdebug, process-exists, shutdown, and the local tdb file commands tfetch and tstore
(4.17 tools/ctdb.c; output, messages and exit codes as 4.17's, checked against Debian's
tool in tests/interop/test_real_ctdb_admin.py).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from ctdbcore.client.sync import ConnectionClosed
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import CTRL_FLAG_NOREPLY, Opcode, Srvid
from ctdbcore.protocol.records import LtdbHeader
from ctdbcore.tools import ctdb_format as fmt
from ctdbcore.tools.ctdb_ip import c_strtoul
from ctdbcore.tools.ctdb_records import format_record
from ctdbcore.tools.ctdb_records import hex_str_to_data as str_to_data

CTDB_PROTOCOL = 1

# 4.17 stats_fields[], as printed; our Statistics attribute is the name with '.' -> '_'
STATS_FIELDS: tuple[str, ...] = (
    "num_clients", "frozen", "recovering", "num_recoveries",
    "client_packets_sent", "client_packets_recv", "node_packets_sent", "node_packets_recv",
    "keepalive_packets_sent", "keepalive_packets_recv",
    "node.req_call", "node.reply_call", "node.req_dmaster", "node.reply_dmaster",
    "node.reply_error", "node.req_message", "node.req_control", "node.reply_control",
    "node.req_tunnel",
    "client.req_call", "client.req_message", "client.req_control", "client.req_tunnel",
    "timeouts.call", "timeouts.control", "timeouts.traverse",
    "locks.num_calls", "locks.num_current", "locks.num_pending", "locks.num_failed",
    "total_calls", "pending_calls", "childwrite_calls", "pending_childwrite_calls",
    "memory_used", "max_hop_count", "total_ro_delegations", "total_ro_revokes",
)  # fmt: skip


def _field(s: Any, name: str) -> int:
    return int(getattr(s, name.replace(".", "_"))) & 0xFFFFFFFF


def _avg(lat: Any) -> float:
    return lat.total / lat.num if lat.num else 0.0


def _tv_sec(tv: Any) -> int:
    return fmt.tv_seconds(tv)[0]


_MACHINE_LATENCIES = (("reclock_ctdbd", "reclock_ctdbd"), ("reclock_recd", "reclock_recd"),
                      ("call", "call_latency"), ("lockwait", "locks_latency"),
                      ("childwrite", "childwrite_latency"))


def format_statistics_machine(s: Any, sep: str, show_header: bool) -> str:
    """4.17 ``print_statistics_machine`` (no leading separator, unlike other -X output)."""
    out = []
    if show_header:
        names = ["CTDB version", "Current time of statistics", "Statistics collected since",
                 *STATS_FIELDS]
        for label, _ in _MACHINE_LATENCIES:
            names += [f"{w}_{label}_latency" for w in ("num", "min", "avg", "max")]
        out.append("".join(f"{n}{sep}" for n in names) + "\n")
    values = [str(CTDB_PROTOCOL), str(_tv_sec(s.statistics_current_time) & 0xFFFFFFFF),
              str(_tv_sec(s.statistics_start_time) & 0xFFFFFFFF)]
    values += [str(_field(s, n)) for n in STATS_FIELDS]
    for _, attr in _MACHINE_LATENCIES:
        lat = getattr(s, attr)
        values += [str(lat.num), f"{lat.min:.6f}", f"{_avg(lat):.6f}", f"{lat.max:.6f}"]
    out.append("".join(f"{v}{sep}" for v in values) + "\n")
    return "".join(out)


def format_statistics(s: Any) -> str:
    """4.17 ``print_statistics``."""
    cur, start = _tv_sec(s.statistics_current_time), _tv_sec(s.statistics_start_time)
    out = [f"CTDB version {CTDB_PROTOCOL}\n",
           f"Current time of statistics  :                {fmt.ctime(cur)}",
           f"Statistics collected since  : {fmt._dhms(cur - start)} {fmt.ctime(start)}"]
    prefix = None
    for name in STATS_FIELDS:
        group, dot, leaf = name.partition(".")
        if dot:
            if group != prefix:
                prefix = group
                out.append(f" {group}\n")
            out.append(f"     {leaf:<22s}{_field(s, name):10d}\n")
        else:
            out.append(f" {name:<22s}    {_field(s, name):10d}\n")
    out.append(" hop_count_buckets:" + "".join(f" {b}" for b in s.hop_count_bucket) + "\n")
    out.append(" lock_buckets:" + "".join(f" {b}" for b in s.locks_buckets) + "\n")
    for label, lat in (("locks_latency      MIN/AVG/MAX", s.locks_latency),
                       ("reclock_ctdbd      MIN/AVG/MAX", s.reclock_ctdbd),
                       ("reclock_recd       MIN/AVG/MAX", s.reclock_recd),
                       ("call_latency       MIN/AVG/MAX", s.call_latency),
                       ("childwrite_latency MIN/AVG/MAX", s.childwrite_latency)):
        out.append(f" {label:<30s}     {lat.min:.6f}/{_avg(lat):.6f}/{lat.max:.6f} sec out of {lat.num}\n")
    return "".join(out)


def control_statistics(t, args: list[str]) -> int:
    if args:
        t.usage("statistics")
    r = t.ctrl("STATISTICS", t.cmd_pnn, lambda: t.c.checked(Opcode.STATISTICS, destnode=t.cmd_pnn))
    s = T.Statistics.unpack(r.data)
    if t.opts.machinereadable:
        t.print(format_statistics_machine(s, t.sep, True))
    else:
        t.print(format_statistics(s))
    return 0


def control_statisticsreset(t, args: list[str]) -> int:
    if args:
        t.usage("statisticsreset")
    t.ctrl("STATISTICS_RESET", t.cmd_pnn, lambda: t.c.checked(Opcode.STATISTICS_RESET, destnode=t.cmd_pnn))
    return 0


def _atoi_wide(text: str) -> int:
    """C ``atol``: leading blanks, a sign, then digits as far as they go; 0 if none."""
    s = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    digits = ""
    for ch in s:
        if not ch.isascii() or not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


def _atoi(text: str) -> int:
    """C ``atoi``: as atol, the result wrapping as a C int would."""
    n = _atoi_wide(text) & 0xFFFFFFFF
    return n - (1 << 32) if n >= 1 << 31 else n


def control_stats(t, args: list[str]) -> int:
    if len(args) > 1:
        t.usage("stats")
    count = _atoi(args[0]) if args else 0
    r = t.ctrl("GET_STAT_HISTORY", t.cmd_pnn, lambda: t.c.checked(Opcode.GET_STAT_HISTORY, destnode=t.cmd_pnn))
    slist = T.StatisticsList.unpack(r.data)
    show_header = True
    out = []
    for i, s in enumerate(slist.stats):
        if _tv_sec(s.statistics_start_time) == 0:
            continue
        if t.opts.machinereadable:
            out.append(format_statistics_machine(s, t.sep, show_header))
            show_header = False
        else:
            out.append(format_statistics(s))
        if count > 0 and i == count:
            break
    t.print("".join(out))
    return 0


# -- debug levels (4.17 common/logging.c log_string_map) ------------------------------------

_LOG_LEVELS = ((0, "ERROR"), (1, "WARNING"), (2, "WARNING"), (3, "NOTICE"), (4, "NOTICE"),
               (5, "INFO"), (6, "INFO"), (7, "INFO"), (8, "INFO"), (9, "INFO"), (10, "DEBUG"))


def debug_level_parse(text: str) -> int | None:
    """4.17 ``debug_level_parse``: a number 0-10 (atoi of a string starting with a
    digit), or a case-insensitive prefix of a level name (the first that matches)."""
    if text[:1].isascii() and text[:1].isdigit():
        level = _atoi(text)
        return level if 0 <= level < len(_LOG_LEVELS) else None
    for level, name in _LOG_LEVELS:
        if name[: len(text)].lower() == text.lower() and len(text) <= len(name):
            return level
    return None


def debug_level_to_string(level: int) -> str:
    for n, name in _LOG_LEVELS:
        if n == level:
            return name
    return "UNKNOWN"


def control_setdebug(t, args: list[str]) -> int:
    if len(args) != 1:
        t.usage("setdebug")
    level = debug_level_parse(args[0])
    if level is None:
        t.eprint(f"Invalid debug level '{args[0]}'. Valid levels are:\n")
        t.eprint("\tERROR | WARNING | NOTICE | INFO | DEBUG\n")
        return 1
    t.ctrl("SET_DEBUG", t.cmd_pnn,
           lambda: t.c.checked(Opcode.SET_DEBUG, T.pack_i32(level), destnode=t.cmd_pnn))
    return 0


def control_getdebug(t, args: list[str]) -> int:
    if args:
        t.usage("getdebug")
    r = t.ctrl("GET_DEBUG", t.cmd_pnn, lambda: t.c.checked(Opcode.GET_DEBUG, destnode=t.cmd_pnn))
    level = int.from_bytes(bytes(r.data[:4]), "little", signed=True)
    t.print(f"{debug_level_to_string(level)}\n")
    return 0


# -- process-exists -------------------------------------------------------------------------


def _strtoull(text: str) -> int:
    """samba ``smb_strtoull(.., 0, .., SMB_STR_STANDARD)``: a '-' anywhere is refused,
    a conversion must happen (trailing junk is allowed); ValueError (EINVAL) or
    OverflowError (ERANGE) otherwise."""
    if "-" in text:
        raise ValueError(text)
    value, err = c_strtoul(text, 0)
    if err == errno.ERANGE:
        raise OverflowError(text)
    if err:
        raise ValueError(text)
    return value


def control_process_exists(t, args: list[str]) -> int:
    if len(args) not in (1, 2):
        t.usage("process-exists")
    pid = _atoi(args[0])
    srvid = 0
    if len(args) == 2:
        try:
            srvid = _strtoull(args[1])
        except ValueError:
            return 22  # EINVAL, silently, as 4.17
        except OverflowError:
            return 34  # ERANGE
    if srvid == 0:
        r = t.ctrl("PROCESS_EXISTS", t.cmd_pnn, lambda: t.c.control(
            Opcode.PROCESS_EXISTS, T.pack_i32(pid), destnode=t.cmd_pnn))
    else:
        r = t.ctrl("CHECK_PID_SRVID", t.cmd_pnn, lambda: t.c.control(
            Opcode.CHECK_PID_SRVID, T.PidSrvid(pid=pid, srvid=srvid).pack(), destnode=t.cmd_pnn))
    status = r.status
    what = "exists" if status == 0 else "does not exist"
    if srvid == 0:
        t.print(f"PID {pid} {what}\n")
    else:
        t.print(f"PID {pid} with SRVID 0x{srvid:x} {what}\n")
    return status


# -- shutdown -------------------------------------------------------------------------------


def control_shutdown(t, args: list[str]) -> int:
    if args:
        t.usage("shutdown")
    try:
        t.c.control(Opcode.SHUTDOWN, destnode=t.cmd_pnn, flags=CTRL_FLAG_NOREPLY)
    except (ConnectionClosed, OSError):
        t.eprint(f"Unable to shutdown node {t.cmd_pnn}\n")
        return 1
    if t.pnn == t.cmd_pnn:
        # 4.17 waits until the daemon closes the connection.
        try:
            while True:
                t.c.wait_message(Srvid.LEADER, None)
        except (ConnectionClosed, OSError):
            pass
    return 0


# -- tfetch / tstore ------------------------------------------------------------------------


def _open_tdb(t, path: str) -> Any:
    from ctdbcore.db.tdb import Tdb, TdbError

    try:
        return Tdb.open(path, 0, 0, os.O_RDWR, 0, quiet=True)
    except (TdbError, OSError):
        t.eprint(f"Failed to open TDB file {path}\n")
        return None


def control_tfetch(t, args: list[str]) -> int:
    if len(args) < 2 or len(args) > 3:
        t.usage("tfetch")
    tdb = _open_tdb(t, args[0])
    if tdb is None:
        return 1
    key = str_to_data(t, args[1])
    if key is None:
        t.eprint(f"Failed to parse key {args[1]}\n")
        tdb.close()
        return 22
    try:
        data = tdb.fetch(key)
    finally:
        tdb.close()
    if data is None:
        t.eprint(f"No record for key {args[1]}\n")
        return 1
    if len(data) < LtdbHeader.SIZE:
        t.eprint(f"Invalid record for key {args[1]}\n")
        return 1
    if len(args) == 3:
        try:
            fd = os.open(args[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError:
            t.eprint(f"Failed to open output file {args[2]}\n")
            fd = None
        if fd is not None:
            try:
                if os.write(fd, data) != len(data):
                    t.eprint("Failed to write record to file\n")
            except OSError:
                t.eprint("Failed to write record to file\n")
            finally:
                os.close(fd)
    header = LtdbHeader.unpack(data[: LtdbHeader.SIZE])
    # format_record's dmaster..data lines are 4.17's dump_ltdb_header + dump_tdb_data
    text = format_record(b"", header, data[LtdbHeader.SIZE:])
    t.print(text.split("\n", 1)[1][:-1])
    return 0


def control_tstore(t, args: list[str]) -> int:
    # 4.17 accepts 3 to 5 arguments: <flags>, the 6th, is in the usage text but refused.
    if len(args) < 3 or len(args) > 5:
        t.usage("tstore")
    tdb = _open_tdb(t, args[0])
    if tdb is None:
        return 1
    try:
        key = str_to_data(t, args[1])
        if key is None:
            t.eprint(f"Failed to parse key {args[1]}\n")
            return 22
        value = str_to_data(t, args[2])
        if value is None:
            t.eprint(f"Failed to parse value {args[2]}\n")
            return 22
        rsn = dmaster = 0
        if len(args) > 3:
            try:
                rsn = _strtoull(args[3])
            except ValueError:
                return 22
            except OverflowError:
                return 34
        if len(args) > 4:
            dmaster = _atol_u32(args[4])
        header = LtdbHeader(rsn=rsn, dmaster=dmaster, flags=0)
        try:
            tdb.store(key, header.pack() + value)
        except Exception:  # noqa: BLE001 - any tdb failure is 4.17's one message
            t.eprint(f"Failed to write record {args[1]} to file {args[0]}\n")
            return 1
        return 0
    finally:
        tdb.close()


def _atol_u32(text: str) -> int:
    """``(uint32_t)atol(text)``."""
    return _atoi_wide(text) & 0xFFFFFFFF
