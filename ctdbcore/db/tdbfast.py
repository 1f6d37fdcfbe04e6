"""The libtdb calls of a record's hot path -- try the chain lock, fetch, store, unlock --
bound once, for the client's node-local fetch_lock.

:class:`ctdbcore.db.tdb.Tdb` turns every key into a TDB_DATA through a ``c_char_p``
and a pointer cast, and looks its function up per call; that costs more than the C
calls themselves. A record this node is data master of is used with nothing but
these four calls, so here a key is a :class:`Datum` -- TDB_DATA with a ``char *``
pointer, to which ``bytes`` are assigned as they are -- built once per record and
handed to prototypes made once. Same library, same struct layout, same ABI as tdb.py.

The raw prototypes return libtdb's own results (0 / -1, a TDB_DATA to free); the
helpers below them are for the paths where a Python call more does not matter.
"""

from __future__ import annotations

import ctypes

from ctdbcore.db.tdb import _LIBC, TDB_DATA, TDB_REPLACE, Tdb, TdbError, TdbErrorCode, load


class Datum(ctypes.Structure):
    """TDB_DATA as libtdb reads it: ``Datum(b, len(b))`` points into ``b`` itself
    (ctypes keeps ``b`` referenced for as long as the Datum lives)."""

    _fields_ = [("dptr", ctypes.c_char_p), ("dsize", ctypes.c_size_t)]


def _fn(name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    # A prototype of our own, not an attribute of the shared CDLL: tdb.py's
    # prototypes for the same functions take its TDB_DATA.
    return ctypes.CFUNCTYPE(restype, *argtypes)((name, load()))


_p, _i = ctypes.c_void_p, ctypes.c_int
chainlock_nonblock = _fn("tdb_chainlock_nonblock", _i, _p, Datum)
"""(handle, key) -> 0, or -1 (busy or failed: see :func:`busy`)."""
chainunlock = _fn("tdb_chainunlock", _i, _p, Datum)
"""(handle, key) -> 0 or -1."""
fetch_datum = _fn("tdb_fetch", TDB_DATA, _p, Datum)
"""(handle, key) -> TDB_DATA, NULL ``dptr`` when missing or failed; free the copy."""
store_datum = _fn("tdb_store", _i, _p, Datum, Datum, _i)
"""(handle, key, value, flag) -> 0 or -1."""
_error = _fn("tdb_error", _i, _p)
string_at = ctypes.string_at
free = _LIBC.free
_BUSY = (TdbErrorCode.LOCK, TdbErrorCode.LOCK_TIMEOUT)


def fetch(handle: int, key: Datum) -> bytes | None:
    """The value under ``key``; None when there is none or the fetch failed (see
    :func:`missing`)."""
    d = fetch_datum(handle, key)
    p = d.dptr
    if not p:
        return None
    value = string_at(p, d.dsize)
    free(p)
    return value


def store(handle: int, key: Datum, value: bytes) -> int:
    """``tdb_store`` with TDB_REPLACE: 0, or -1 on failure (see :func:`raise_error`)."""
    return store_datum(handle, key, Datum(value, len(value)), TDB_REPLACE)


def busy(handle: int) -> bool:
    """Whether the lock call that just failed on ``handle`` found the lock taken."""
    return _error(handle) in _BUSY


def missing(handle: int) -> bool:
    """Whether a fetch that returned nothing found no record (rather than failing)."""
    return _error(handle) == TdbErrorCode.NOEXIST


def raise_error(tdb: Tdb, op: str) -> None:
    """Raise the :class:`ctdbcore.db.tdb.TdbError` of the call that just failed on ``tdb``."""
    tdb._raise(op)


def error(tdb: Tdb, op: str) -> TdbError:
    """The :class:`ctdbcore.db.tdb.TdbError` of the call that just failed on ``tdb``."""
    try:
        tdb._raise(op)
    except TdbError as exc:
        return exc
    raise AssertionError("Tdb._raise returned")
