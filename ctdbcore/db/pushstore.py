"""Storing a recovery push buffer into a database (4.17's DB_PUSH message handler).

Every record of every database passes through here on every node in a recovery, so
keys and values are handed to libtdb where they lie in the marshall buffer: two
TDB_DATA structs are refilled with addresses inside the buffer, with no per-record
slices and no structs built. Only a record whose header must change is copied.

Header rules (4.17 ``ctdb_ltdb_store`` on push): read-only delegations do not
survive a recovery, and a volatile record this node is data master of gets one more
RSN, as every data master's store does.
"""

from __future__ import annotations

import ctypes
import struct

from ctdbcore.db import tdbfast
from ctdbcore.db.marshall import BadBuffer
from ctdbcore.db.record import HEADER_SIZE, RO_FLAGS
from ctdbcore.db.tdb import TDB_REPLACE, Tdb, load

_HEAD = struct.Struct("<II")  # db_id, count
_REC = struct.Struct("<4I")  # length, reqid, keylen, datalen
_LTDB = struct.Struct("<QII")  # rsn, dmaster, reserved1
_U32 = struct.Struct("<I")


class BadRecord(ValueError):
    """A pushed record too short for its 24-byte header (4.17: "Bad ltdb record")."""


class _Ptr(ctypes.Structure):
    """TDB_DATA whose pointer is a plain address (somewhere inside a bytes object)."""

    _fields_ = [("dptr", ctypes.c_void_p), ("dsize", ctypes.c_size_t)]


_store_at = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, _Ptr, _Ptr, ctypes.c_int)(("tdb_store", load()))
_store_copy = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, _Ptr, tdbfast.Datum, ctypes.c_int)(
    ("tdb_store", load()))


def _address(buf: bytes) -> int:
    # c_char_p over bytes points at the object's own storage; CPython never moves it.
    return ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0


def store_buffer(tdb: Tdb, data: bytes, data_master: int | None) -> int:
    """Store every record of the marshall buffer ``data`` in ``tdb``; returns how many.

    ``data_master``: this node's PNN for a volatile database (its own records get one
    more RSN), None for a persistent or replicated one. Raises :class:`BadBuffer` for a
    buffer that is not one and :class:`BadRecord` for a record without a header, after
    storing the records before it (4.17 does the same; the recovery's transaction is
    then cancelled by the leader's retry); :class:`ctdbcore.db.tdb.TdbError` if libtdb
    fails."""
    n = len(data)
    if n < 8:
        raise BadBuffer("marshall buffer shorter than its header")
    count = _HEAD.unpack_from(data)[1]
    base = _address(data)
    handle = tdb.handle
    ro_flags = int(RO_FLAGS)
    mine = -1 if data_master is None else data_master
    rec, ltdb, u32 = _REC.unpack_from, _LTDB.unpack_from, _U32.unpack_from
    key, value, copied = _Ptr(), _Ptr(), tdbfast.Datum()
    store_at, store_copy = _store_at, _store_copy
    off = 8
    # marshall.records' walk, inlined: offsets are all this loop needs, and a generator
    # step per record is a cost here.
    for i in range(count):
        if off + 16 > n:
            raise BadBuffer(f"marshall buffer ends inside record {i}")
        _length, _reqid, keylen, datalen = rec(data, off)
        k0 = off + 16
        v0 = k0 + keylen
        end = v0 + datalen
        if end > n:
            raise BadBuffer(f"record {i} runs past the end of the buffer")
        if datalen < HEADER_SIZE:
            raise BadRecord(f"record {i} has {datalen} bytes, less than a record header")
        key.dptr = base + k0
        key.dsize = keylen
        rsn, dmaster, reserved = ltdb(data, v0)
        (flags,) = u32(data, v0 + 16)
        if dmaster == mine or flags & ro_flags:
            new = (_LTDB.pack(rsn + 1 if dmaster == mine else rsn, dmaster, reserved)
                   + _U32.pack(flags & ~ro_flags) + data[v0 + 20:end])
            copied.dptr = new
            copied.dsize = datalen
            ok = store_copy(handle, key, copied, TDB_REPLACE)
        else:
            value.dptr = base + v0
            value.dsize = datalen
            ok = store_at(handle, key, value, TDB_REPLACE)
        if ok != 0:
            tdbfast.raise_error(tdb, "store")
        off = end
    return count
