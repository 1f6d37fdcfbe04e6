"""Recovery's bulk record moves: every record of every database passes through these
on every node in a recovery (pull, merge, push, store).

Each function has two implementations with the same results: the compiled one in
``_bulk.c`` (built by ``pip install``), used when it is there, and the pure-Python one
below it, which is the reference (tests/unit/db/test_bulk.py checks them against each
other) and the fallback where no C compiler was at hand. In Python a pass over the
records costs about a microsecond per record before any real work, and a recovery
makes several; that made recovering 100k records 2.5-3x as long as 4.17's.

``CTDB_PURE_PYTHON=1`` in the environment makes a process use the Python versions
(benchmarks compare the two that way).
"""

from __future__ import annotations

import ctypes
import os

from ctdbcore.db import marshall, pushstore, tdbfile, tdbfast
from ctdbcore.db.marshall import BadBuffer
from ctdbcore.db.pushstore import BadRecord
from ctdbcore.db.record import HEADER_SIZE, RO_FLAGS
from ctdbcore.db.tdb import Tdb, load

try:
    if os.environ.get("CTDB_PURE_PYTHON"):
        raise ImportError("CTDB_PURE_PYTHON is set")
    from ctdbcore.db import _bulk as _c
except ImportError:
    _c = None

COMPILED = _c is not None


def implementation() -> str:
    return "C" if COMPILED else "Python"


# -- pull: a frozen copy's records as marshall buffers ------------------------------------

def py_pull_pack(fd: int, db_id: int, min_value: int, limit: int) -> tuple[int, list[bytes]] | None:
    file = tdbfile.read(fd)
    spans = tdbfile.live_spans(file)
    if spans is None:
        return None
    count = sum(1 for span in spans if span[2] >= min_value)
    return count, list(marshall.pack_spans(db_id, file, spans, min_value=min_value, limit=limit))


def pull_pack(fd: int, db_id: int, min_value: int = HEADER_SIZE,
              limit: int = marshall.LIMIT) -> tuple[int, list[bytes]] | None:
    """(count, buffers) of the live records whose value has at least ``min_value``
    bytes of the TDB file open on ``fd`` (quiet: frozen), packed as
    :func:`marshall.pack_spans` packs them; None when the file is not one
    :func:`tdbfile.live_spans` is sure of. The C version maps the file instead of
    reading it; neither opens (and so closes) another descriptor of it."""
    if _c is None:
        return py_pull_pack(fd, db_id, min_value, limit)
    return _c.pull_pack(fd, db_id, min_value, limit)


# -- merge: the newest copy of each record -------------------------------------------------

py_merge_newest = marshall.merge_newest


def merge_newest(buf: bytes, merged: dict[bytes, bytes], leader: int) -> int:
    """:func:`marshall.merge_newest`: each record of ``buf`` replaces the copy in
    ``merged`` unless that one is newer (or as new and the leader's); returns the count.
    :class:`BadBuffer` on a malformed buffer, after merging the records before the fault."""
    if _c is None:
        return py_merge_newest(buf, merged, leader)
    try:
        return _c.merge_newest(buf, merged, leader)
    except ValueError as e:
        raise BadBuffer(str(e)) from None


def py_merge_file(fd: int, merged: dict[bytes, bytes], leader: int, min_value: int, newest: bool) -> int | None:
    records = tdbfile.parse(tdbfile.read(fd))
    if records is None:
        return None
    records = [(k, v) for k, v in records if len(v) >= min_value]
    if newest:
        marshall.merge_newest_records(records, merged, leader)
    else:
        merged.update(records)
    return len(records)


def merge_file(fd: int, merged: dict[bytes, bytes], leader: int, min_value: int = HEADER_SIZE,
               newest: bool = True) -> int | None:
    """The leader's own frozen copy (the TDB file open on ``fd``) merged into ``merged`` with no
    buffers in between: its records whose value has at least ``min_value`` bytes, by
    :func:`merge_newest`'s rule when ``newest``, else each replacing what is there.
    Returns how many; None (``merged`` untouched) when the file is not one
    :func:`tdbfile.live_spans` is sure of."""
    if _c is None:
        return py_merge_file(fd, merged, leader, min_value, newest)
    return _c.merge_file(fd, merged, leader, min_value, newest)


# -- push: the merged records as buffers ---------------------------------------------------

def py_pack_push(db_id: int, merged: dict[bytes, bytes], claim: tuple[int, int] | None,
                 limit: int) -> tuple[int, list[bytes]]:
    items = [(k, v) for k, v in merged.items() if len(v) > HEADER_SIZE]
    return len(items), list(marshall.pack_limited(db_id, items, limit=limit, claim=claim))


def pack_push(db_id: int, merged: dict[bytes, bytes], claim: tuple[int, int] | None = None,
              limit: int = marshall.LIMIT) -> tuple[int, list[bytes]]:
    """(count, buffers) of the records to push: those of ``merged`` with more than a
    header (an empty record is how a deletion wins, and it is not pushed), packed by
    :func:`marshall.pack_limited` in ``merged``'s order, each header claimed for
    ``claim`` = (data master, added flags) when given."""
    if _c is None:
        return py_pack_push(db_id, merged, claim, limit)
    dmaster, flags = claim if claim is not None else (-1, 0)
    return _c.pack_push(db_id, merged, HEADER_SIZE, dmaster, flags, limit)


# -- store: a push buffer into this node's copy --------------------------------------------

_STORE_ADDRESS = ctypes.cast(load().tdb_store, ctypes.c_void_p).value or 0
_SHORT, _ENDS_INSIDE, _PAST_END, _BAD_RECORD, _FAILED = range(1, 6)


py_store_buffer = pushstore.store_buffer


def store_buffer(tdb: Tdb, data: bytes, data_master: int | None) -> int:
    """:func:`pushstore.store_buffer`: every record of ``data`` stored in ``tdb`` (a
    volatile database's own records, ``data_master``, get one more RSN; read-only
    flags are dropped). Raises as that does, after storing the records before a fault."""
    if _c is None:
        return py_store_buffer(tdb, data, data_master)
    code, index, _ret = _c.store_buffer(_STORE_ADDRESS, tdb.handle, data,
                                        -1 if data_master is None else data_master, int(RO_FLAGS))
    if code == 0:
        return index
    if code == _SHORT:
        raise BadBuffer("marshall buffer shorter than its header")
    if code == _ENDS_INSIDE:
        raise BadBuffer(f"marshall buffer ends inside record {index}")
    if code == _PAST_END:
        raise BadBuffer(f"record {index} runs past the end of the buffer")
    if code == _BAD_RECORD:
        raise BadRecord(f"record {index} has {_datalen(data, index)} bytes, less than a record header")
    tdbfast.raise_error(tdb, "store")
    raise AssertionError("unreachable")  # raise_error always raises


def _datalen(data: bytes, index: int) -> int:
    """The value length of record ``index`` of a buffer (for the error message only)."""
    for i, (_key, value) in enumerate(marshall.records(data)):
        if i == index:
            return len(value)
    return 0
