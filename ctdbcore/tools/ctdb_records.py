"""`ctdb` record commands: catdb, cattdb, readkey, writekey, deletekey, pfetch, pstore,
pdelete (4.17 tools/ctdb.c; output and messages as 4.17's, checked against Debian's
tool in tests/interop/test_real_ctdb_db.py).
"""

from __future__ import annotations

import os
import time

from ctdbcore.client.db import ClientDb, DbError, attach
from ctdbcore.client.sync import ControlError
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import DbFlags, Opcode, RecordFlags
from ctdbcore.protocol.records import LtdbHeader

_FLAG_NAMES = (
    (RecordFlags.MIGRATED_WITH_DATA, "MIGRATED_WITH_DATA"),
    (RecordFlags.VACUUM_MIGRATED, "VACUUM_MIGRATED"),
    (RecordFlags.AUTOMATIC, "AUTOMATIC"),
    (RecordFlags.RO_HAVE_DELEGATIONS, "RO_HAVE_DELEGATIONS"),
    (RecordFlags.RO_HAVE_READONLY, "RO_HAVE_READONLY"),
    (RecordFlags.RO_REVOKING_READONLY, "RO_REVOKING_READONLY"),
    (RecordFlags.RO_REVOKE_COMPLETE, "RO_REVOKE_COMPLETE"),
)


def escape(val: bytes) -> str:
    """4.17's dump_tdb_data: printable ASCII except quote and backslash, else \\XX."""
    return "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:02X}" for b in val)


def format_record(key: bytes, header: LtdbHeader, data: bytes) -> str:
    flags = f"flags: 0x{header.flags:08x}" + "".join(f" {n}" for f, n in _FLAG_NAMES if header.flags & f)
    return (f'key({len(key)}) = "{escape(key)}"\n'
            f"dmaster: {header.dmaster}\nrsn: {header.rsn}\n{flags}\n"
            f'data({len(data)}) = "{escape(data)}"\n\n')


_HEX = "0123456789abcdefABCDEF"


def _hex_to_data(t, digits: str, shown: str) -> bytes | None:
    """4.17's hex_decode_talloc of ``digits``; its messages quote ``shown`` (which
    starts with digits and may run on, see ptrans) from the failing pair on."""
    if len(digits) & 1:
        t.eprint(f"Key ({shown}) contains odd number of hex digits\n")
        return None
    out = bytearray()
    for i in range(0, len(digits), 2):
        pair = digits[i:i + 2]
        if pair[0] not in _HEX or pair[1] not in _HEX:
            t.eprint(f"Invalid hex: {shown[i:]}\n")
            return None
        out.append(int(pair, 16))
    return bytes(out)


def hex_str_to_data(t, text: str) -> bytes | None:
    """4.17 ``str_to_data``: ``0x`` then pairs of hex digits, else the bytes of the
    string. None, with 4.17's message, for an odd count or a bad digit (EINVAL)."""
    raw = os.fsencode(text)
    if not raw.startswith(b"0x"):
        return raw
    h = raw[2:].decode("latin-1")
    return _hex_to_data(t, h, h)


def parse_data(t, text: str, what: str) -> bytes:
    """A key or value argument of readkey, writekey, deletekey, pfetch, pstore, pdelete:
    when 4.17's str_to_data fails, its message, "Failed to parse key|value ARG", exit 22."""
    data = hex_str_to_data(t, text)
    if data is None:
        from ctdbcore.tools.ctdb import _Exit

        t.eprint(f"Failed to parse {what} {text}\n")
        raise _Exit(22)  # EINVAL
    return data


def db_lookup(t, arg: str) -> tuple[int, str, int] | None:
    """4.17's db_exists: by ``0x`` id or by name on the target node; None (and 4.17's
    message) when there is no such database."""
    c = t.c
    want_id = None
    if arg.startswith("0x"):
        try:
            want_id = int(arg, 16)
        except ValueError:
            return None
    dbmap = T.DbidMap.unpack(c._checked(Opcode.GET_DBMAP, destnode=t.cmd_pnn).data)
    for e in dbmap.dbs:
        name = c._checked(Opcode.GET_DBNAME, T.pack_u32(e.db_id), destnode=t.cmd_pnn).data.rstrip(b"\0").decode()
        if (want_id is not None and e.db_id == want_id) or (want_id is None and name == arg):
            return e.db_id, name, e.flags
    t.eprint(f"No database matching '{arg}' found\n")
    return None


def _open(t, arg: str, *, volatile_only: bool = False, transactions: bool = False) -> ClientDb | None:
    """Look the database up and attach it, with 4.17's message when it is the wrong kind."""
    found = db_lookup(t, arg)
    if found is None:
        return None
    _, name, flags = found
    kept = flags & (DbFlags.PERSISTENT | DbFlags.REPLICATED)
    if volatile_only and kept:
        t.eprint(f"DB {name} is not a volatile database\n")
        return None
    if transactions and not kept:
        t.eprint(f"Transactions not supported on DB {name}\n")
        return None
    try:
        return attach(t.c, name, persistent=bool(flags & DbFlags.PERSISTENT),
                      replicated=bool(flags & DbFlags.REPLICATED))
    except (ControlError, DbError, OSError):
        t.eprint(f"Failed to attach to DB {name}\n")
        return None


def control_catdb(t, args: list[str]) -> int:
    if len(args) != 1:
        t.usage("catdb")
    db = _open(t, args[0])
    if db is None:
        return 1
    count = 0
    try:
        for rec in db.traverse(timeout=t.timeout):
            t.print(format_record(rec.key, rec.header, rec.data))
            count += 1
    except DbError:
        t.print(f"Dumped {count} records\n")
        return 1
    t.print(f"Dumped {count} records\n")
    return 0


def control_cattdb(t, args: list[str]) -> int:
    if len(args) != 1:
        t.usage("cattdb")
    db = _open(t, args[0])
    if db is None:
        return 1
    count = 0
    for rec in db.traverse_local():
        t.print(format_record(rec.key, rec.header, rec.data))
        count += 1
    t.print(f"Dumped {count} record(s)\n")
    return 0


def control_readkey(t, args: list[str]) -> int:
    if len(args) < 2 or len(args) > 3 or (len(args) == 3 and args[2] != "readonly"):
        t.usage("readkey")
    db = _open(t, args[0], volatile_only=True)
    if db is None:
        return 1
    key = parse_data(t, args[1], "key")
    try:
        with db.fetch_lock(key, readonly=len(args) == 3) as rec:
            data = rec.data
    except (DbError, ControlError, OSError):
        t.eprint(f"Failed to read record for key {args[1]}\n")
        return 1
    t.print(f"Data: size:{len(data)} ptr:[{data.decode('latin-1')}]\n")
    return 0


def control_writekey(t, args: list[str]) -> int:
    if len(args) != 3:
        t.usage("writekey")
    db = _open(t, args[0], volatile_only=True)
    if db is None:
        return 1
    key, value = parse_data(t, args[1], "key"), parse_data(t, args[2], "value")
    try:
        with db.fetch_lock(key) as rec:
            rec.store(value)
    except (DbError, ControlError, OSError):
        t.eprint(f"Failed to lock record for key {args[0]}\n")
        return 1
    return 0


def control_deletekey(t, args: list[str]) -> int:
    if len(args) != 2:
        t.usage("deletekey")
    db = _open(t, args[0], volatile_only=True)
    if db is None:
        return 1
    key = parse_data(t, args[1], "key")
    try:
        with db.fetch_lock(key) as rec:
            rec.delete()
    except (DbError, ControlError, OSError):
        t.eprint(f"Failed to fetch record for key {args[1]}\n")
        return 1
    return 0


def _persistent(t, arg: str) -> ClientDb | None:
    return _open(t, arg, transactions=True)


def control_pfetch(t, args: list[str]) -> int:
    if len(args) != 2:
        t.usage("pfetch")
    db = _persistent(t, args[0])
    if db is None:
        return 1
    data = db.fetch(parse_data(t, args[1], "key")) or b""
    t.print(data.decode("latin-1") + "\n")
    return 0


def _commit(t, db: ClientDb, writes: list[tuple[bytes, bytes]]) -> int:
    try:
        with db.transaction() as tr:
            for key, value in writes:
                tr.store(key, value)
    except (DbError, ControlError, OSError):
        t.eprint(f"Failed to commit transaction on db {db.name}\n")
        return 1
    return 0


def control_pstore(t, args: list[str]) -> int:
    if len(args) != 3:
        t.usage("pstore")
    db = _persistent(t, args[0])
    if db is None:
        return 1
    return _commit(t, db, [(parse_data(t, args[1], "key"), parse_data(t, args[2], "value"))])


def control_pdelete(t, args: list[str]) -> int:
    if len(args) != 2:
        t.usage("pdelete")
    db = _persistent(t, args[0])
    if db is None:
        return 1
    return _commit(t, db, [(parse_data(t, args[1], "key"), b"")])


def _ptrans_string(t, line: str) -> tuple[bytes, str] | None:
    rest = line.lstrip(" \t")
    if not rest.startswith('"'):
        t.eprint(f"Unsupported input format in {line}\n")  # the line keeps its newline too, as fgets
        return None
    end = rest.find('"', 1)
    if end < 0:
        t.eprint(f'Unmatched " in input {line}\n')
        return None
    if end == 1:
        return b"", rest[2:]
    # 4.17 hands str_to_data the quoted length of a C string that runs on to the end of
    # the line, so its hex messages quote the rest of the line
    text = rest[1:end]
    if not text.startswith("0x"):
        data: bytes | None = text.encode("latin-1")
    else:
        data = _hex_to_data(t, text[2:], rest[3:])
    return None if data is None else (data, rest[end + 1:])


def parse_ptrans(t, text: str) -> list[tuple[bytes, bytes]]:
    """4.17's ptrans input: one ``"key" "value"`` per line (``0x`` for hex); a line that
    does not parse is skipped with a message, an empty key is skipped silently."""
    out = []
    for line in text.splitlines(keepends=True):
        got = _ptrans_string(t, line)
        if got is None or not got[0]:
            continue
        key, rest = got
        val = _ptrans_string(t, rest)
        if val is None:
            continue
        out.append((key, val[0]))
    return out


def control_ptrans(t, args: list[str]) -> int:
    if len(args) < 1 or len(args) > 2:
        t.usage("ptrans")
    found = db_lookup(t, args[0])
    if found is None:
        return 1
    if not found[2] & (DbFlags.PERSISTENT | DbFlags.REPLICATED):
        t.eprint(f"Transactions not supported on DB {found[1]}\n")
        return 1
    if len(args) == 2:
        try:
            with open(args[1], encoding="latin-1") as f:
                text = f.read()
        except OSError:
            t.eprint(f"Failed to open file {args[1]}\n")
            return 1
    else:
        text = t.read_stdin()
    db = _persistent(t, args[0])
    if db is None:
        return 1
    return _commit(t, db, parse_ptrans(t, text))


def control_getdbseqnum(t, args: list[str]) -> int:
    if len(args) != 1:
        t.usage("getdbseqnum")
    found = db_lookup(t, args[0])
    if found is None:
        return 1
    db_id, name, _ = found
    r = t.c.control(Opcode.GET_DB_SEQNUM, T.pack_u32(db_id) + bytes(4), destnode=t.cmd_pnn)
    if r.status != 0 or len(r.data) != 8:
        t.eprint(f"Failed to get sequence number for DB {name}\n")
        return 1
    t.print(f"0x{T.unpack_u64(r.data):x}\n")
    return 0


def _db_info(t, db_id: int) -> tuple[str, str, str]:
    c, pnn = t.c, t.cmd_pnn
    name = c._checked(Opcode.GET_DBNAME, T.pack_u32(db_id), destnode=pnn).data.rstrip(b"\0").decode()
    path = c._checked(Opcode.GETDBPATH, T.pack_u32(db_id), destnode=pnn).data.rstrip(b"\0").decode()
    health = c._checked(Opcode.DB_GET_HEALTH, T.pack_u32(db_id), destnode=pnn).data.rstrip(b"\0").decode()
    return name, path, health


def control_getdbmap(t, args: list[str]) -> int:
    if args:
        t.usage("getdbmap")
    dbmap = T.DbidMap.unpack(t.c._checked(Opcode.GET_DBMAP, destnode=t.cmd_pnn).data)
    rows = []
    for e in dbmap.dbs:
        name, path, health = _db_info(t, e.db_id)
        rows.append((e.db_id, e.flags, name, path, health))
    if t.opts.json:
        t.emit_json([{"dbid": i, "name": n, "path": p, "persistent": bool(f & DbFlags.PERSISTENT),
                      "sticky": bool(f & DbFlags.STICKY), "unhealthy": bool(h),
                      "readonly": bool(f & DbFlags.READONLY), "replicated": bool(f & DbFlags.REPLICATED)}
                     for i, f, n, p, h in rows])
        return 0
    if t.opts.machinereadable:
        sep = t.sep
        t.print(sep.join(["", "ID", "Name", "Path", "Persistent", "Sticky", "Unhealthy", "Readonly",
                          "Replicated", ""]) + "\n")
        for i, f, n, p, h in rows:
            cols = [f"0x{i:08X}", n, p] + [str(int(bool(x))) for x in (
                f & DbFlags.PERSISTENT, f & DbFlags.STICKY, h, f & DbFlags.READONLY, f & DbFlags.REPLICATED)]
            t.print(sep.join(["", *cols, ""]) + "\n")
        return 0
    t.print(f"Number of databases:{len(rows)}\n")
    for i, f, n, p, h in rows:
        suffix = "".join(s for flag, s in ((f & DbFlags.PERSISTENT, " PERSISTENT"), (f & DbFlags.STICKY, " STICKY"),
                                           (f & DbFlags.READONLY, " READONLY"),
                                           (f & DbFlags.REPLICATED, " REPLICATED"), (h, " UNHEALTHY")) if flag)
        t.print(f"dbid:0x{i:08x} name:{n} path:{p}{suffix}\n")
    return 0


def control_getdbstatus(t, args: list[str]) -> int:
    if len(args) != 1:
        t.usage("getdbstatus")
    found = db_lookup(t, args[0])
    if found is None:
        return 1
    db_id, _, flags = found
    name, path, health = _db_info(t, db_id)

    def yn(flag: int) -> str:
        return "yes" if flags & flag else "no"

    t.print(f"dbid: 0x{db_id:08x}\nname: {name}\npath: {path}\nPERSISTENT: {yn(DbFlags.PERSISTENT)}\n"
            f"REPLICATED: {yn(DbFlags.REPLICATED)}\nSTICKY: {yn(DbFlags.STICKY)}\n"
            f"READONLY: {yn(DbFlags.READONLY)}\nHEALTH: {health or 'OK'}\n")
    return 0


def control_attach(t, args: list[str]) -> int:
    if len(args) < 1 or len(args) > 2:
        t.usage("attach")
    kind = args[1] if len(args) == 2 else ""
    if kind not in ("", "persistent", "readonly", "sticky", "replicated"):
        t.usage("attach")
    try:
        db = attach(t.c, args[0], persistent=kind == "persistent", replicated=kind == "replicated")
        db.close()
        if kind in ("readonly", "sticky"):
            opcode = Opcode.SET_DB_READONLY if kind == "readonly" else Opcode.SET_DB_STICKY
            t.c._checked(opcode, T.pack_u32(db.db_id))
    except (ControlError, DbError, OSError):
        return 1
    return 0


def _generation(t) -> int:
    """4.17's get_generation: the leader's generation once it is out of recovery."""
    while True:
        leader = t.c.get_leader(timeout=t.timeout)
        if t.c.get_recmode(destnode=leader) == 0:
            gen = t.c.get_vnnmap(destnode=leader).generation
            if gen != 1:  # INVALID_GENERATION
                return gen
        time.sleep(0.2)


def control_recover(t, args: list[str]) -> int:
    if args:
        t.usage("recover")
    try:
        generation = _generation(t)
    except (ControlError, OSError):
        t.eprint("Failed to find recovery master\n")
        return 1
    r = t.c.control(Opcode.SET_RECMODE, T.pack_u32(1), destnode=t.cmd_pnn)
    if r.status != 0:
        t.eprint("Failed to set recovery mode active\n")
        return 1
    while True:
        try:
            if _generation(t) != generation:
                return 0
        except (ControlError, OSError):
            t.eprint("Failed to confirm end of recovery\n")
            return 1
        time.sleep(0.2)


def _volatile_flag(t, args: list[str], command: str, opcode: int, what: str) -> int:
    if len(args) != 1:
        t.usage(command)
    found = db_lookup(t, args[0])
    if found is None:
        return 1
    db_id, _, flags = found
    if flags & (DbFlags.PERSISTENT | DbFlags.REPLICATED):
        t.eprint(f"{what} can be set only on volatile DB\n")
        return 1
    r = t.c.control(opcode, T.pack_u32(db_id), destnode=t.cmd_pnn)
    return 0 if r.status == 0 else 1


def control_setdbreadonly(t, args: list[str]) -> int:
    return _volatile_flag(t, args, "setdbreadonly", Opcode.SET_DB_READONLY, "READONLY")


def control_setdbsticky(t, args: list[str]) -> int:
    return _volatile_flag(t, args, "setdbsticky", Opcode.SET_DB_STICKY, "STICKY")


_DB_STAT_FIELDS = (("db_ro_delegations", None), ("db_ro_revokes", None), ("num_calls", "locks"),
                   ("num_current", "locks"), ("num_pending", "locks"), ("num_failed", "locks"))


def control_dbstatistics(t, args: list[str]) -> int:
    if len(args) != 1:
        t.usage("dbstatistics")
    found = db_lookup(t, args[0])
    if found is None:
        return 1
    db_id, name, _ = found
    r = t.c.control(Opcode.GET_DB_STATISTICS, T.pack_u32(db_id), destnode=t.cmd_pnn)
    if r.status != 0:
        t.eprint(f"Failed to get statistics for DB {name}\n")
        return 1
    s = T.DbStatistics.unpack(r.data)
    out = [f"DB Statistics {name}\n"]
    prefix = None
    for field, group in _DB_STAT_FIELDS:
        value = getattr(s, field if group is None else f"{group}_{field}")
        if group is None:
            out.append(f" {field:<22s}    {value:10d}\n")
            continue
        if group != prefix:
            prefix = group
            out.append(f" {group}\n")
        out.append(f"     {field:<22s}{value:10d}\n")
    out.append(" hop_count_buckets:" + "".join(f" {b}" for b in s.hop_count_bucket) + "\n")
    out.append(" lock_buckets:" + "".join(f" {b}" for b in s.locks_buckets) + "\n")
    for label, lat in (("locks_latency      MIN/AVG/MAX", s.locks_latency),
                       ("vacuum_latency     MIN/AVG/MAX", s.vacuum_latency)):
        avg = lat.total / lat.num if lat.num else 0.0
        out.append(f" {label:<30s}     {lat.min:.6f}/{avg:.6f}/{lat.max:.6f} sec out of {lat.num}\n")
    keys = list(s.hot_keys)  # as many as the reply says, empty slots included
    out.append(f" Num Hot Keys:     {len(keys)}\n")
    for k in keys:
        out.append(f"     Count:{k.count} Key:{k.key.hex()}\n")
    t.print("".join(out))
    return 0


def control_detach(t, args: list[str]) -> int:
    if not args:
        t.usage("detach")
    from ctdbcore.protocol.constants import INACTIVE, NodeFlags

    if t.c.get_recmode(destnode=t.cmd_pnn) == 1:
        t.eprint("Database cannot be detached when recovery is active\n")
        return 1
    for n in t.c.get_nodemap(destnode=t.cmd_pnn).nodes:
        if n.flags & (NodeFlags.DISCONNECTED | NodeFlags.DELETED):
            continue
        if n.flags & INACTIVE:
            t.eprint(f"Database cannot be detached on inactive (stopped or banned) node {n.pnn}\n")
            return 1
        try:
            allowed = t.c.get_tunable("AllowClientDBAttach", destnode=n.pnn)
        except (ControlError, OSError):
            t.eprint(f"Unable to get tunable AllowClientDBAttach from node {n.pnn}\n")
            return 1
        if allowed == 1:
            t.eprint(f"Database access is still active on node {n.pnn}. Set AllowclientDBAttach=0 on all nodes.\n")
            return 1
    ret = 0
    for arg in args:
        found = db_lookup(t, arg)
        if found is None:
            continue
        db_id, name, flags = found
        if flags & (DbFlags.PERSISTENT | DbFlags.REPLICATED):
            t.eprint("Only volatile databases can be detached\n")
            return 1
        if t.c.control(Opcode.DB_DETACH, T.pack_u32(db_id)).status != 0:
            t.eprint(f"Database {name} detach failed\n")
            ret = 1
    return ret
