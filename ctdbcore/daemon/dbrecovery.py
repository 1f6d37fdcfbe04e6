"""The leader's database recovery (4.17 server/ctdb_recovery_helper.c, §4.4).

For every database, on every active node and all databases at once: freeze, open a
transaction, collect the newest copy of each record on the leader (highest RSN for
volatile databases; the copy with the highest sequence number for persistent ones),
wipe, push the result back, commit, thaw. Any failed step raises ``ControlFailed``; the
leader then retries the whole recovery, as 4.17 does.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING

import anyio
import attrs

from ctdbcore.db import record
from ctdbcore.db.registry import kind_name
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import CTRL_FLAG_ATTACH_RECOVERY, DbFlags, Opcode, RecordFlags, Srvid
from ctdbcore.protocol.records import LtdbHeader, RecBuffer, RecData

if TYPE_CHECKING:
    from ctdbcore.daemon.node import Daemon

log = logging.getLogger("ctdbd")

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
    await all_nodes(Opcode.DB_FREEZE, u32)
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

    merged: dict[bytes, tuple[LtdbHeader, bytes]] = {}
    for pnn in sources:
        await _pull(d, pnn, info, merged, volatile, timeout)

    await all_nodes(Opcode.WIPE_DATABASE, trans)
    buffers, count = _push_buffers(d.pnn, db_id, merged, volatile)
    srvid = Srvid.RECOVERY + next(_srvids)
    push = T.PulldbExt(db_id=db_id, lmaster=ALL_LMASTERS, srvid=srvid).pack()
    await all_nodes(Opcode.DB_PUSH_START, push)
    for buf in buffers:
        for pnn in nodes:
            d.send_message(pnn, srvid, buf)

    async def confirm(pnn: int) -> None:
        got = T.unpack_u32(await d.control_ok(pnn, Opcode.DB_PUSH_CONFIRM, u32, timeout=timeout))
        if got != count:
            raise _fail(pnn, Opcode.DB_PUSH_CONFIRM, f"{info.name}: node stored {got} of {count} records")

    await d._each(nodes, confirm)
    await all_nodes(Opcode.DB_TRANSACTION_COMMIT, trans)
    await all_nodes(Opcode.DB_THAW, u32)
    log.info("Recovered %s database %s: %d records", kind_name(info.flags), info.name, count)
    return count


async def _pull(d: Daemon, pnn: int, info: DbInfo, merged: dict[bytes, tuple[LtdbHeader, bytes]],
                volatile: bool, timeout: float) -> None:
    srvid = Srvid.RECOVERY + next(_srvids)
    received = 0
    leader = d.pnn

    def collect(data: bytes, src: int) -> None:
        nonlocal received
        buf = RecBuffer.unpack(data, with_header=True)
        for rec in buf.records:
            received += 1
            h = rec.header
            assert h is not None
            if not volatile or record.newer_for_recovery(h, merged.get(rec.key, (None,))[0], leader):
                merged[rec.key] = (h, rec.data)

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


def _push_buffers(leader: int, db_id: int, merged: dict[bytes, tuple[LtdbHeader, bytes]],
                  volatile: bool) -> tuple[list[bytes], int]:
    """Marshall buffers of at most RecBufferSizeLimit bytes; empty records are dropped
    (that is how a deletion wins), volatile ones all start out on the leader."""
    out: list[bytes] = []
    batch: list[RecData] = []
    size = 0
    count = 0
    for key, (h, data) in merged.items():
        if not data:
            continue
        if volatile:
            h = LtdbHeader(rsn=h.rsn, dmaster=leader, flags=h.flags | RecordFlags.MIGRATED_WITH_DATA)
        batch.append(RecData(reqid=0, key=key, data=data, header=h))
        size += 40 + len(key) + len(data)
        count += 1
        if size >= 1_000_000:
            out.append(RecBuffer(db_id, tuple(batch)).pack())
            batch, size = [], 0
    if batch or not out:
        out.append(RecBuffer(db_id, tuple(batch)).pack())
    return out, count
