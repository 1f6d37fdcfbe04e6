"""`ctdb` backupdb, restoredb, dumpdbbackup, wipedb (4.17 tools/ctdb.c): messages,
output and exit codes as 4.17's, the file format in :mod:`ctdbcore.db.backupfile`
(checked against Debian's tool in tests/interop/test_real_ctdb_backup.py).

backupdb copies this node's own file (as 4.17 does: for a volatile database that is
only the records this node holds). restoredb and wipedb replace the database on every
active node the way a recovery does: freeze, transaction, wipe, (push,) commit, thaw.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable
from typing import BinaryIO

from ctdbcore.client.db import ClientDb, DbError, attach
from ctdbcore.client.sync import ControlError, ControlReply
from ctdbcore.db import backupfile as bf
from ctdbcore.db import record
from ctdbcore.db.tdb import TdbError
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import INACTIVE, INVALID_GENERATION, DbFlags, NodeFlags, Opcode, RecMode
from ctdbcore.tools import ctdb_format as fmt
from ctdbcore.tools.ctdb_records import db_lookup, format_record

# 4.17: CTDB_SRVID_TOOL_RANGE | 0x0002000000000000
SRVID_CTDB_PUSHDB = 0xCE00000000000000 | 0x0002000000000000


class _Failed(Exception):
    """A step of the wipe/restore sequence failed; leave with this exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# -- shared steps -----------------------------------------------------------------------


def _attach(t, name: str, flags: int) -> tuple[ClientDb | None, int]:
    """4.17's ctdb_attach: attach by kind, refuse an unhealthy database, then set the
    READONLY/STICKY flags it should have on every connected node."""
    try:
        db = attach(t.c, name, persistent=bool(flags & DbFlags.PERSISTENT),
                    replicated=bool(flags & DbFlags.REPLICATED))
    except ControlError as e:
        return None, e.status
    except (DbError, OSError):
        return None, errno.EIO
    try:
        health = t.c._checked(Opcode.DB_GET_HEALTH, T.pack_u32(db.db_id)).data.rstrip(b"\0")
        if not health:
            _set_db_flags(t, db.db_id, flags)
            return db, 0
        code = errno.EIO
    except ControlError as e:
        code = e.status
    except _Failed as e:
        code = e.code
    db.close()
    return None, code


def _set_db_flags(t, db_id: int, flags: int) -> None:
    wanted = [(flag, opcode) for flag, opcode in ((DbFlags.READONLY, Opcode.SET_DB_READONLY),
                                                  (DbFlags.STICKY, Opcode.SET_DB_STICKY)) if flags & flag]
    if not wanted:
        return
    connected = [n.pnn for n in fmt.nodes_of(t.c.get_nodemap()) if not n.flags & NodeFlags.DISCONNECTED]
    for _, opcode in wanted:
        _multi(t, connected, opcode, T.pack_u32(db_id))


def _multi(t, pnns: list[int], opcode: int, data: bytes) -> list[ControlReply]:
    """One control to every node at once (4.17 ctdb_client_control_multi): the first
    failure's status, or ETIMEDOUT, ends the sequence."""
    replies = t.c.control_multi([(pnn, opcode, data) for pnn in pnns], timeout=t.timeout)
    for reply in replies:
        if reply is None:
            raise _Failed(errno.ETIMEDOUT)
        if reply.status != 0:
            raise _Failed(reply.status)
    return [r for r in replies if r is not None]


def _generation(t) -> int | None:
    """4.17's get_generation: the leader's, once it is out of recovery."""
    while True:
        leader = t.get_leader()
        try:
            recmode = t.c.get_recmode(destnode=leader)
        except ControlError:
            t.eprint(f"Failed to get recovery mode from node {leader}\n")
            return None
        if recmode == RecMode.ACTIVE:
            time.sleep(t.poll_interval)
            continue
        try:
            generation = t.c.get_vnnmap(destnode=leader).generation
        except ControlError:
            t.eprint(f"Failed to get generation from node {leader}\n")
            return None
        if generation != INVALID_GENERATION:
            return generation
        time.sleep(t.poll_interval)


def _cluster(t) -> tuple[int, list[int]] | int:
    """(generation, active nodes) for a wipe or restore, or the exit code."""
    nodemap = t.get_nodemap()
    if nodemap is None:
        t.eprint("Failed to get nodemap\n")
        return errno.ENOMEM
    generation = _generation(t)
    if generation is None:
        t.eprint("Failed to get current generation\n")
        return 1
    pnns = [n.pnn for n in fmt.nodes_of(nodemap) if not n.flags & INACTIVE]
    if not pnns:
        return errno.ENOMEM
    return generation, pnns


def _replace(t, db_id: int, generation: int, pnns: list[int], fill: Callable[[], None]) -> int:
    """Empty the database on every node in one recovery transaction, let ``fill`` put
    records back, and commit."""
    transdb = T.TransDb(db_id=db_id, tid=generation).pack()
    u32 = T.pack_u32(db_id)
    try:
        _multi(t, pnns, Opcode.DB_FREEZE, u32)
        _multi(t, pnns, Opcode.DB_TRANSACTION_START, transdb)
        _multi(t, pnns, Opcode.WIPE_DATABASE, transdb)
        fill()
        _multi(t, pnns, Opcode.DB_SET_HEALTHY, u32)
        _multi(t, pnns, Opcode.DB_TRANSACTION_COMMIT, transdb)
        _multi(t, pnns, Opcode.DB_THAW, u32)
    except _Failed as e:
        # As 4.17: a recovery thaws the databases and drops the half-done transaction.
        with contextlib.suppress(ControlError, OSError):
            t.c.control(Opcode.SET_RECMODE, T.pack_u32(RecMode.ACTIVE), destnode=t.pnn)
        return e.code
    return 0


def _when(timestamp: int) -> str:
    try:
        return time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(timestamp))
    except (OverflowError, OSError, ValueError):
        return ""


def _name(header: bf.Header) -> str:
    return header.name.decode("utf-8", "replace")


def _open_backup(t, path: str) -> tuple[BinaryIO, bf.Header] | int:
    """The file and its header, or the exit code after 4.17's message."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        t.eprint(f"Failed to open file {path} for reading\n")
        return e.errno or errno.EIO
    try:
        # os.read, not a file object: a directory opens and fails here (EISDIR), as in 4.17
        raw = os.read(fd, bf.HEADER_SIZE)
    except OSError as e:
        os.close(fd)
        t.eprint(f"Failed to read db header from file {path}\n")
        return e.errno or errno.EIO
    header = bf.Header.unpack(raw)
    if header.version != bf.VERSION:
        os.close(fd)
        t.eprint(f"Wrong version of backup file, expected {bf.VERSION}, got {header.version}\n")
        return errno.EINVAL
    return os.fdopen(fd, "rb"), header


# -- commands ---------------------------------------------------------------------------


def _lookup_and_attach(t, arg: str) -> tuple[int, str, int, ClientDb] | int:
    """The database named by ``arg``, attached; or the exit code, its message printed."""
    found = db_lookup(t, arg)
    if found is None:
        return 1
    db_id, name, flags = found
    db, code = _attach(t, name, flags)
    if db is None:
        t.eprint(f"Failed to attach to DB {name}\n")
        return code
    return db_id, name, flags, db


def control_backupdb(t, args: list[str]) -> int:
    if len(args) != 2:
        t.usage("backupdb")
    opened = _lookup_and_attach(t, args[0])
    if isinstance(opened, int):
        return opened
    db_id, name, flags, db = opened
    try:
        return _write_backup(t, db, args[1], flags)
    finally:
        db.close()


def _write_backup(t, db: ClientDb, path: str, flags: int) -> int:
    try:
        # No O_TRUNC, as 4.17: a longer old file keeps its tail.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        t.eprint(f"Failed to open file {path} for writing\n")
        return e.errno or errno.EIO
    with os.fdopen(fd, "r+b", buffering=0) as f:
        try:
            f.write(bf.EMPTY_HEADER)  # the real one once the counts are known
        except OSError as e:
            t.eprint(f"Failed to write header to file {path}\n")
            return e.errno or errno.EIO
        try:
            records = list(db.tdb.traverse_read())
        except TdbError:
            t.eprint(f"Failed to collect records from DB {db.name}\n")
            return errno.EIO
        nbuf = nrec = 0
        for chunk in bf.chunks(db.db_id, records):
            try:
                f.write(chunk.data)
            except OSError as e:
                t.eprint("Failed to write records to backup file\n")
                if chunk.full:  # 4.17 failed inside its traverse, which reports too
                    t.eprint(f"Failed to collect records from DB {db.name}\n")
                return e.errno or errno.EIO
            nbuf += 1
            nrec += chunk.count
        header = bf.Header(bf.VERSION, int(time.time()), flags, nbuf, nrec, db.name.encode())
        try:
            f.seek(0)
            f.write(header.pack())
        except OSError as e:
            t.eprint(f"Failed to write header to file {path}\n")
            return e.errno or errno.EIO
    t.print(f"Database backed up to {path}\n")
    return 0


def control_dumpdbbackup(t, args: list[str]) -> int:
    if len(args) != 1:
        t.usage("dumpbackup")  # 4.17 names a command that does not exist: the full usage
    opened = _open_backup(t, args[0])
    if isinstance(opened, int):
        return opened
    f, header = opened
    with f:
        t.print(f"Dumping database {_name(header)} from backup @ {_when(header.timestamp)}\n")
        count = 0
        for _ in range(header.nbuf):
            try:
                buf = bf.read_buffer(f)
            except bf.BackupError as e:
                t.eprint("Failed to read records\n")
                return e.code
            try:
                count += _dump_buffer(t, buf)
            except bf.BackupError as e:
                t.eprint("Failed to dump records\n")
                return e.code
    t.print(f"Dumped {count} record(s)\n")
    return 0


def _dump_buffer(t, buf: bf.RecBuffer) -> int:
    count = 0
    for key, value in buf.records():
        split = record.split_value(value)
        if split is None:
            raise bf.BackupError(errno.EMSGSIZE, "record shorter than its ltdb header")
        t.print(format_record(key, split[0], split[1]))
        count += 1
    return count


def control_restoredb(t, args: list[str]) -> int:
    if len(args) < 1 or len(args) > 2:
        t.usage("restoredb")
    opened = _open_backup(t, args[0])
    if isinstance(opened, int):
        return opened
    f, header = opened
    with f:
        name = args[1] if len(args) == 2 else _name(header)
        t.print(f"Restoring database {name} from backup @ {_when(header.timestamp)}\n")
        db, code = _attach(t, name, header.flags & 0xFF)
        if db is None:
            t.eprint(f"Failed to attach to DB {name}\n")
            return code
        try:
            cluster = _cluster(t)
            if isinstance(cluster, int):
                return cluster
            generation, pnns = cluster
            ret = _replace(t, db.db_id, generation, pnns, lambda: _push(t, db.db_id, pnns, f, header))
        finally:
            db.close()
    if ret == 0:
        t.print(f"Database {name} restored\n")
    return ret


def _push(t, db_id: int, pnns: list[int], f: BinaryIO, header: bf.Header) -> None:
    """The file's buffers to every node, as the recovery pushes (DB_PUSH_START, the
    buffers as messages, DB_PUSH_CONFIRM with each node's count)."""
    start = T.PulldbExt(db_id=db_id, lmaster=0, srvid=SRVID_CTDB_PUSHDB).pack()
    _multi(t, pnns, Opcode.DB_PUSH_START, start)
    for _ in range(header.nbuf):
        try:
            buf = bf.read_buffer(f)
        except bf.BackupError as e:
            raise _Failed(e.code) from None
        message = buf.message()
        for pnn in pnns:
            t.c.send_message(pnn, SRVID_CTDB_PUSHDB, message)
    replies = _multi(t, pnns, Opcode.DB_PUSH_CONFIRM, T.pack_u32(db_id))
    for pnn, reply in zip(pnns, replies):
        if len(reply.data) != 4:
            t.eprint(f"Invalid response from node {pnn}\n")
            raise _Failed(errno.EPROTO)
        got = T.unpack_u32(reply.data)
        if got != header.nrec:
            t.eprint(f"Node {pnn} received {got} of {header.nrec} records\n")
            raise _Failed(0)  # 4.17 gives up here but still exits 0


def control_wipedb(t, args: list[str]) -> int:
    if len(args) != 1:
        t.usage("wipedb")
    opened = _lookup_and_attach(t, args[0])
    if isinstance(opened, int):
        return opened
    db_id, name, flags, db = opened
    try:
        cluster = _cluster(t)
        if isinstance(cluster, int):
            return cluster
        generation, pnns = cluster
        ret = _replace(t, db_id, generation, pnns, lambda: None)
    finally:
        db.close()
    if ret == 0:
        t.print(f"Database {name} wiped\n")
    return ret
