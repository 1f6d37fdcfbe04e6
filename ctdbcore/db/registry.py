"""The databases one node has attached, by id and by name (4.17 ``ctdb_local_attach``)."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator

import attrs

from ctdbcore.db import locking
from ctdbcore.db.database import Database, DbCounters, db_file_name, tdb_flags_for
from ctdbcore.db.dbstats import NodeCounters
from ctdbcore.db.tdb import Tdb, TdbError
from ctdbcore.protocol.constants import DbFlags
from ctdbcore.protocol.hash import db_id as compute_db_id

log = logging.getLogger("ctdb")

KIND_FLAGS = DbFlags.PERSISTENT | DbFlags.REPLICATED


class AttachError(Exception):
    pass


@attrs.define
class DbDirs:
    volatile: str
    persistent: str
    state: str


class Databases:
    def __init__(self, pnn: int, dirs: DbDirs, *, hash_size: int = 10007, max_dead: int = 5,
                 mutexes: bool = True) -> None:
        self.pnn = pnn
        self.dirs = dirs
        self.hash_size = hash_size
        self.max_dead = max_dead
        self.mutexes = mutexes
        self._by_id: dict[int, Database] = {}
        # What all databases add up to in ``ctdb statistics``.
        self.counters = NodeCounters()

    def __iter__(self) -> Iterator[Database]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, db_id: int) -> Database | None:
        return self._by_id.get(db_id)

    def by_name(self, name: str) -> Database | None:
        return next((d for d in self._by_id.values() if d.name == name), None)

    def attach(self, name: str, flags: int) -> tuple[Database, bool]:
        """Attach (or find) ``name``; returns the database and whether it is new.

        Re-attaching with another kind fails, as in 4.17: a persistent database must not
        silently become volatile (its contents would be wiped at the next attach)."""
        if not name or "/" in name or name in (".", ".."):
            raise AttachError(f"invalid database name {name!r}")
        kind = flags & KIND_FLAGS
        existing = self.by_name(name)
        if existing is not None:
            if existing.flags & KIND_FLAGS != kind:
                raise AttachError(f"database {name} is already attached with flags 0x{existing.flags:x}")
            return existing, False
        db_id = compute_db_id(name)
        if db_id in self._by_id:
            raise AttachError(f"database {name} has the db_id 0x{db_id:08x} of {self._by_id[db_id].name}")
        directory = self.dirs.persistent if kind & DbFlags.PERSISTENT else self.dirs.volatile
        os.makedirs(directory, exist_ok=True)
        path = db_file_name(directory, name, self.pnn)
        tdb_flags = tdb_flags_for(kind, self.mutexes)
        try:
            tdb = Tdb.open(path, hash_size=self.hash_size, tdb_flags=tdb_flags,
                           open_flags=os.O_RDWR | os.O_CREAT, mode=0o600)
        except TdbError as e:
            raise AttachError(f"cannot open {path}: {e}") from e
        tdb.set_max_dead(self.max_dead)
        db = Database(name=name, db_id=db_id, flags=int(kind), path=path, tdb=tdb, tdb_flags=tdb_flags,
                      counters=DbCounters(node=self.counters, count_hot_keys=not kind))
        locking.count_locks(tdb, db.counters.locks)
        if db.volatile:
            # CLEAR_IF_FIRST only wipes when nobody else has the file open; a volatile
            # database must start empty whatever a stale opener holds.
            tdb.wipe_all()
        self._by_id[db_id] = db
        log.info("Attached database '%s' with dbid 0x%08x (%s)", path, db_id, kind_name(db.flags))
        return db, True

    def attach_on_disk(self) -> list[Database]:
        """4.17 attaches every ``*.tdb.<pnn>`` it finds in the persistent directory."""
        out = []
        suffix = f".{self.pnn}"
        for path in sorted(glob.glob(os.path.join(self.dirs.persistent, f"*.tdb{suffix}"))):
            name = os.path.basename(path)[: -len(suffix)]
            try:
                out.append(self.attach(name, DbFlags.PERSISTENT)[0])
            except AttachError as e:
                log.error("Could not attach persistent database %s: %s", path, e)
        return out

    def detach(self, db_id: int) -> Database | None:
        db = self._by_id.pop(db_id, None)
        if db is not None:
            db.close()
        return db

    def close(self) -> None:
        for db in list(self._by_id.values()):
            db.close()
        self._by_id.clear()


def kind_name(flags: int) -> str:
    if flags & DbFlags.PERSISTENT:
        return "persistent"
    if flags & DbFlags.REPLICATED:
        return "replicated"
    return "volatile"
