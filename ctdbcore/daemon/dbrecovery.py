"""The leader's database recovery (4.17 server/ctdb_recovery_helper.c, §4.4).

For every database, on every active node and all databases at once: freeze, open a
transaction, collect the newest copy of each record on the leader (highest RSN for
volatile databases; the copy with the highest sequence number for persistent ones),
wipe, push the result back, commit, thaw. Any failed step raises ``ControlFailed``; the
leader then retries the whole recovery, as 4.17 does.
"""

from __future__ import annotations

import itertools
import time
import logging
from typing import TYPE_CHECKING

import anyio
import attrs

from ctdbcore.db import bulk, marshall
from ctdbcore.db.registry import kind_name
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import CTRL_FLAG_ATTACH_RECOVERY, DbFlags, Opcode, RecordFlags, Srvid

if TYPE_CHECKING:
    from ctdbcore.daemon.node import Daemon

log = logging.getLogger("ctdb")

ALL_LMASTERS = 0xFFFFFFFF
_srvids = itertools.count(1)


@attrs.define
class DbInfo:
    db_id: int
    flags: int
    name: str = ""
    holders: list[int] = attrs.Factory(list)


def _fail(pnn: int, opcode: int, why: str):
    from ctdbcore.daemon.node import ControlFailed

    return ControlFailed(pnn, opcode, -1, why)


async def recover_databases(d: Daemon, nodes: list[int], generation: int, timeout: float) -> int:
    """Rebuild every database on ``nodes``; returns the number of records pushed."""
    dbs: dict[int, DbInfo] = {}

    async def dbmap(pnn: int) -> None:
        m = T.DbidMap.unpack(await d.control_ok(pnn, Opcode.GET_DBMAP, timeout=timeout))
        for e in m.dbs:
            info = dbs.setdefault(e.db_id, DbInfo(e.db_id, e.flags))
            info.flags |= e.flags & (DbFlags.PERSISTENT | DbFlags.REPLICATED)
            info.holders.append(pnn)

    await d._each(nodes, dbmap)
    if not dbs:
        return 0
    total = 0

    async def one(info: DbInfo) -> None:
        nonlocal total
        total += await _recover_one(d, nodes, info, generation, timeout)

    await d._each(list(dbs.values()), one)
    return total


async def _recover_one(d: Daemon, nodes: list[int], info: DbInfo, gen: int, timeout: float) -> int:
    db_id = info.db_id
    u32 = T.pack_u32(db_id)
    name_raw = await d.control_ok(info.holders[0], Opcode.GET_DBNAME, u32, timeout=timeout)
    info.name = name_raw.rstrip(b"\0").decode(errors="replace")
    attach = (Opcode.DB_ATTACH_PERSISTENT if info.flags & DbFlags.PERSISTENT else
              Opcode.DB_ATTACH_REPLICATED if info.flags & DbFlags.REPLICATED else Opcode.DB_ATTACH)
    missing = [p for p in nodes if p not in info.holders]

    async def attach_on(pnn: int) -> None:
        status, _, err = await d.control(pnn, attach, info.name.encode() + b"\0", timeout=timeout,
                                         flags=CTRL_FLAG_ATTACH_RECOVERY)
        if status != 0:
            raise _fail(pnn, attach, f"attach of {info.name}: {err.decode(errors='replace')}")

    await d._each(missing, attach_on)

    async def all_nodes(opcode: int, data: bytes) -> None:
        await d._each(nodes, lambda p: d.control_ok(p, opcode, data, timeout=timeout))

    trans = T.TransDb(db_id=db_id, tid=gen).pack()
    marks = [("start", time.perf_counter())]
    await all_nodes(Opcode.DB_FREEZE, u32)
    marks.append(("freeze", time.perf_counter()))
    await all_nodes(Opcode.DB_TRANSACTION_START, trans)

    volatile = not info.flags & (DbFlags.PERSISTENT | DbFlags.REPLICATED)
    if volatile:
        sources = list(nodes)
    else:
        seqnums: dict[int, int] = {}

        async def seqnum(pnn: int) -> None:
            raw = await d.control_ok(pnn, Opcode.GET_DB_SEQNUM, u32 + bytes(4), timeout=timeout)
            seqnums[pnn] = T.unpack_u64(raw) if len(raw) == 8 else 0

        await d._each(nodes, seqnum)
        best = max(nodes, key=lambda p: (seqnums.get(p, 0), -nodes.index(p)))
        sources = [best]

    merged: dict[bytes, bytes] = {}
    marks.append(("txn", time.perf_counter()))
    # All sources stream at once (4.17 pulls in parallel too); the merge rule does not
    # depend on the order in which the copies arrive, except between equal RSNs.
    # The leader's own copy is read last: by then the others are streaming theirs.
    sources.sort(key=lambda p: p == d.pnn)
    await d._each(sources, lambda pnn: _pull(d, pnn, info, merged, volatile, timeout))
    marks.append(("pull", time.perf_counter()))

    await all_nodes(Opcode.WIPE_DATABASE, trans)
    # Volatile records all start out on the leader.
    claim = (d.pnn, int(RecordFlags.MIGRATED_WITH_DATA)) if volatile else None
    # Empty records are dropped: that is how a deletion wins.
    count, buffers = bulk.pack_push(db_id, merged, claim=claim)
    merged.clear()  # the buffers hold what is left of it
    srvid = Srvid.RECOVERY + next(_srvids)
    push = T.PulldbExt(db_id=db_id, lmaster=ALL_LMASTERS, srvid=srvid).pack()
    marks.append(("wipe", time.perf_counter()))
    await all_nodes(Opcode.DB_PUSH_START, push)
    # The leader's own copy last: the others start storing each buffer meanwhile.
    order = sorted(nodes, key=lambda p: p == d.pnn)
    for buf in buffers:
        for pnn in order:
            d.send_message(pnn, srvid, buf)
        # Let keepalives and the transport's writers run between buffers (a stalled
        # leader is declared dead by its peers).
        await anyio.sleep(0)

    async def confirm(pnn: int) -> None:
        got = T.unpack_u32(await d.control_ok(pnn, Opcode.DB_PUSH_CONFIRM, u32, timeout=timeout))
        if got != count:
            raise _fail(pnn, Opcode.DB_PUSH_CONFIRM, f"{info.name}: node stored {got} of {count} records")

    await d._each(nodes, confirm)
    marks.append(("push", time.perf_counter()))
    await all_nodes(Opcode.DB_TRANSACTION_COMMIT, trans)
    await all_nodes(Opcode.DB_THAW, u32)
    marks.append(("commit", time.perf_counter()))
    steps = ", ".join(f"{n} {1000 * (t - p):.0f} ms" for (_, p), (n, t) in zip(marks, marks[1:]))
    log.log(25, "Recovered %s database %s: %d records (%s)", kind_name(info.flags), info.name, count, steps)
    return count


async def _pull(d: Daemon, pnn: int, info: DbInfo, merged: dict[bytes, bytes], volatile: bool,
                timeout: float) -> None:
    if pnn == d.pnn:
        _pull_local(d, info, merged, volatile)
        return
    srvid = Srvid.RECOVERY + next(_srvids)
    received = 0
    leader = d.pnn

    def collect(data: bytes, src: int) -> None:
        nonlocal received
        if volatile:
            received += bulk.merge_newest(data, merged, leader)
            return
        _, records = marshall.unpack(data)
        received += len(records)
        merged.update(records)

    d.internal_srvids[srvid] = collect
    try:
        req = T.PulldbExt(db_id=info.db_id, lmaster=ALL_LMASTERS, srvid=srvid).pack()
        expected = T.unpack_u32(await d.control_ok(pnn, Opcode.DB_PULL, req, timeout=timeout))
        # The records travel ahead of the reply on the same connection; a short grace
        # covers a loopback delivery still queued behind it.
        with anyio.move_on_after(1.0):
            while received < expected:
                await anyio.sleep(0.001)
        if received != expected:
            raise _fail(pnn, Opcode.DB_PULL, f"{info.name}: got {received} of {expected} records")
    finally:
        d.internal_srvids.pop(srvid, None)


def _pull_local(d: Daemon, info: DbInfo, merged: dict[bytes, bytes], volatile: bool) -> None:
    """DB_PULL from the leader itself, without packing its records into buffers only to
    unpack them again."""
    db = d.dbs.get(info.db_id)
    if db is None or not db.frozen:
        raise _fail(d.pnn, Opcode.DB_PULL, f"{info.name} is not frozen here")
    # A tdb holds each key once: with nothing merged yet there is nothing to compare.
    newest = volatile and bool(merged)
    if bulk.merge_file(db.tdb.fd(), merged, d.pnn, newest=newest) is not None:
        return
    records = d.dbs.traversed_records(db)
    if newest:
        marshall.merge_newest_records(records, merged, d.pnn)
    else:
        merged.update(records)
