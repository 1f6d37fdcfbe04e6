"""ctdb's own g_lock (4.17 client/client_db.c): a list of holders in a record of the
volatile ``g_lock.tdb``, changed under that record's fetch_lock. Persistent
transactions hold one per database so that writers take turns cluster-wide."""

from __future__ import annotations

import asyncio
import os
import struct
import time
from typing import TYPE_CHECKING

from ctdbcore.client.errors import DbError
from ctdbcore.protocol.constants import Opcode

if TYPE_CHECKING:
    from ctdbcore.client.aio import AsyncClient
    from ctdbcore.client.aiodb import AsyncClientDb

# type, pad, server_id{pid, task_id, vnn, unique_id}
_ENTRY = struct.Struct("<I4xQIIQ")
GLOCK_READ, GLOCK_WRITE = 0, 1
ServerId = tuple[int, int, int, int]


def parse_entries(data: bytes) -> list[tuple[int, ServerId]]:
    """The (lock type, server id) entries of a g_lock record."""
    out = []
    for off in range(0, len(data) - len(data) % _ENTRY.size, _ENTRY.size):
        t, pid, task, vnn, uid = _ENTRY.unpack_from(data, off)
        out.append((t, (pid, task, vnn, uid)))
    return out


def pack_entries(entries: list[tuple[int, ServerId]]) -> bytes:
    return b"".join(_ENTRY.pack(t, *sid) for t, sid in entries)


class GLock:
    """A write g_lock on ``key`` of ``db`` (the client's ``g_lock.tdb``)."""

    def __init__(self, c: AsyncClient, db: AsyncClientDb, key: bytes) -> None:
        self.c = c
        self.db = db
        self.key = key
        self.me: ServerId = (os.getpid(), 0, c.pnn, int.from_bytes(os.urandom(8), "little"))

    async def _alive(self, sid: ServerId) -> bool:
        pid, _, vnn, _ = sid
        r = await self.c.control(Opcode.PROCESS_EXISTS, struct.pack("<i", pid), destnode=vnn)
        return r.status == 0

    async def lock(self, timeout: float) -> None:
        """Take the lock, waiting up to ``timeout`` s for holders that are alive."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            async with self.db.fetch_lock(self.key) as rec:
                entries = [e for e in parse_entries(rec.data) if e[1] != self.me]
                if not entries:
                    rec.store(pack_entries([(GLOCK_WRITE, self.me)]))
                    return
                holders = [e for e in entries if await self._alive(e[1])]
                if len(holders) != len(entries):
                    rec.store(pack_entries(holders))  # the dead do not hold locks
                    continue
            if time.monotonic() > deadline:
                raise DbError(f"g_lock {self.key!r} held by {holders[0][1]}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def unlock(self) -> None:
        async with self.db.fetch_lock(self.key) as rec:
            rec.store(pack_entries([e for e in parse_entries(rec.data) if e[1] != self.me]))
