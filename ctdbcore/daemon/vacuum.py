"""Vacuuming deleted volatile records (the guarantees of 4.17's server/ctdb_vacuum.c,
by a simpler scheme).

A deleted record is an empty record (header only) on its data master. Every
``VacuumInterval`` seconds each node looks at the empty records it is data master of:

* when it is also the key's lmaster, it asks every other active node to drop its copy
  of the key (TRY_DELETE_RECORDS: a node refuses when it is the data master or holds a
  newer RSN), and only when all agreed deletes the record itself, if it is still the
  same empty record. No stale copy with data is left to be resurrected by a recovery.
* otherwise it sends the keys to their lmaster (VACUUM_FETCH message), which migrates
  them home; its next run deletes them as above.

Files then only hold live records and a bounded number of deleted ones. The space the
deleted records leave goes to the file's free list; when that reaches ``RepackLimit``
entries the scan child repacks the file first (4.17's vacuum child does the same after
its deletions), so that a file's size stays bounded over fill/delete cycles.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TYPE_CHECKING

import anyio
from anyio.abc import Process

from ctdbcore.db import marshall, record
from ctdbcore.db.database import Database
from ctdbcore.db.locking import record_lock
from ctdbcore.db.tdb import TdbBusy
from ctdbcore.protocol.constants import INACTIVE, Opcode, RecMode, Srvid

if TYPE_CHECKING:
    from ctdbcore.daemon.node import Daemon

log = logging.getLogger("ctdb")
HEADER = record.HEADER_SIZE
NOTICE = 25


async def _read_all(stream) -> bytes:
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
    return b"".join(chunks)


class Vacuumer:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self.deleted = 0  # records removed by this node, for tests and statistics
        self.runs = 0
        self.repacks = 0  # tdb_repack runs of the scan child (4.17 only logs them)
        self._run: anyio.CancelScope | None = None
        self._scan: Process | None = None

    async def loop(self) -> None:
        while True:
            await anyio.sleep(max(0.1, float(self.d.tunables.get("VacuumInterval"))))
            if self.d.recmode != RecMode.NORMAL or self.d.own_flags & INACTIVE:
                continue
            with anyio.CancelScope() as self._run:
                for db in self.d.dbs.registry:
                    if db.volatile and not db.frozen:
                        try:
                            await db.counters.timed_vacuum(self.vacuum(db))
                        except Exception as e:  # one bad run must not stop vacuuming
                            log.warning("Vacuuming %s failed: %s", db.name, e)
                self.runs += 1
            self._run = None

    def stop(self) -> None:
        """Abort the run in progress, as 4.17 does at every freeze: the scan child's
        traverse holds a record lock while it waits for the next chain, and a freeze
        holds every chain while it waits for that record lock."""
        if self._run is None:
            return
        log.log(25, "Aborting vacuuming%s", f" (scan pid {self._scan.pid})" if self._scan else "")
        self._run.cancel()
        if self._scan is not None and self._scan.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._scan.kill()

    def _others(self) -> list[int]:
        return [p for p in self.d.vnnmap.map if p != self.d.pnn and not self.d.flags.get(p, 0) & INACTIVE]

    async def vacuum(self, db: Database) -> int:
        me = self.d.pnn
        vnn_map = self.d.vnnmap.map
        home: dict[bytes, bytes] = {}
        away: dict[int, list[tuple[bytes, bytes]]] = {}
        limit = int(self.d.tunables.get("VacuumLimit")) or 5000
        repack_limit = int(self.d.tunables.get("RepackLimit"))
        async with await anyio.open_process(
                [sys.executable, "-m", "ctdbcore.db.scan", db.path, str(db.tdb_flags), str(me),
                 str(repack_limit)]) as scan:
            self._scan = scan
            errors: list[bytes] = []
            try:
                # 4.17 kills a vacuum child that runs longer than VacuumMaxRunTime (a
                # repack or a scan may wait on a chain for ever).
                with anyio.move_on_after(float(self.d.tunables.get("VacuumMaxRunTime"))) as timer:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._repack_reports, db, scan.stderr, errors)
                        out = await _read_all(scan.stdout)
                if timer.cancelled_caught:
                    log.error("Vacuuming child process timed out for db %s", db.name)
                    with contextlib.suppress(ProcessLookupError):
                        scan.kill()
                    await scan.wait()
                    return 0
                err = b"".join(errors)
                await scan.wait()
            finally:
                self._scan = None
        if scan.returncode != 0:
            log.warning("Scanning %s for deleted records failed: %s", db.name, err.decode(errors="replace").strip())
            return 0
        for key, value in marshall.unpack(out)[1][:limit]:
            lm = record.lmaster(key, vnn_map)
            if lm == me:
                home[key] = value
            else:
                away.setdefault(lm, []).append((key, value))
        for lm, recs in away.items():
            self.d.send_message(lm, Srvid.VACUUM_FETCH, marshall.pack(db.db_id, recs))
        if not home:
            return 0
        refused: set[bytes] = set()
        buf = marshall.pack(db.db_id, list(home.items()))

        async def ask(pnn: int) -> None:
            status, out, _ = await self.d.control(pnn, Opcode.TRY_DELETE_RECORDS, buf, timeout=10)
            if status != 0:
                refused.update(home)
                return
            refused.update(k for k, _ in marshall.unpack(out)[1])

        async with anyio.create_task_group() as tg:
            for pnn in self._others():
                tg.start_soon(ask, pnn)
        deleted = 0
        for key, value in home.items():
            if key in refused or db.frozen or self.d.recmode != RecMode.NORMAL:
                continue
            async with record_lock(db.tdb, key):
                if db.tdb.fetch(key) == value:
                    db.tdb.delete(key)
                    deleted += 1
        self.deleted += deleted
        return deleted

    async def _repack_reports(self, db: Database, stream, rest: list[bytes]) -> None:
        """Log the scan child's repack lines as they come (before a long repack, as
        4.17 logs it); anything else is kept as the child's error text."""
        buf = b""
        async for chunk in stream:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                if text.startswith("repack failed "):
                    log.error("Failed to repack '%s': %s", db.name, text.partition(": ")[2])
                elif text.startswith("repack "):
                    log.log(NOTICE, "Repacking %s with %s freelist entries", db.name, text.split()[1])
                elif text.startswith("repacked "):
                    self.repacks += 1
                else:
                    rest.append(line + b"\n")
        rest.append(buf)

    def try_delete(self, db: Database, data: bytes) -> bytes:
        """Drop the copies another node (the lmaster and data master) is deleting; the
        reply lists the records this node kept."""
        _, recs = marshall.unpack(data)
        kept = []
        for key, value in recs:
            rsn, _ = marshall.rsn_dmaster(value)
            try:
                db.tdb.chainlock_nonblock(key)
            except TdbBusy:
                kept.append((key, value))
                continue
            try:
                mine = db.tdb.fetch(key)
                if mine is None or len(mine) < HEADER:
                    continue
                my_rsn, my_dmaster = marshall.rsn_dmaster(mine)
                # A read-only copy (or a record being revoked) is left to the revoke and
                # to recovery, as 4.17's try_delete does.
                if my_dmaster == self.d.pnn or my_rsn > rsn or marshall.flags_of(mine) & record.RO_FLAGS:
                    kept.append((key, value))
                    continue
                db.tdb.delete(key)
            finally:
                db.tdb.chainunlock(key)
        return marshall.pack(db.db_id, kept)

    def fetch_home(self, data: bytes) -> None:
        """VACUUM_FETCH: bring deleted records home so that this node can vacuum them."""
        db_id, recs = marshall.unpack(data)
        db = self.d.dbs.get(db_id)
        if db is None:
            return
        for key, _ in recs:
            self.d.dbs.calls.migrate_here(db, key)
