"""Samba's libtdb (``libtdb.so.1``, Debian package ``libtdb1``) through ctypes.

Why ctypes and not python3-tdb: the files must be exactly what smbd opens (hash,
mutexes, locking), so we use the real library; python3-tdb is built for Debian's
Python only and has no chain-lock *marking*, which the daemon needs to work under a
lock that a helper process holds (see :mod:`ctdbcore.db.locking`).

Keys and values are ``bytes``. A :class:`Tdb` is one libtdb context: not thread-safe,
and libtdb refuses to open the same file twice in one process (fcntl locks belong to
the process, so a second context could not exclude the first).

Logging: ``tdb_log_func`` is variadic and a ctypes callback cannot be. The named
arguments (context, level, format) arrive the same way whether or not the caller
thinks the callee is variadic, so reading just those is safe on every ABI. On Linux
x86-64 and arm64 the variadic integer/pointer arguments also sit exactly where extra
named 64-bit arguments would, so there the callback declares spare 64-bit slots and
expands the integer, string and pointer conversions itself; slots beyond the ones
the format uses are never interpreted. A format with anything else (floating point,
``*`` widths, too many arguments) -- and every format on other platforms -- is
logged unexpanded rather than guessed at.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import enum
import errno
import logging
import os
import platform
import re
import sys
from collections.abc import Callable, Iterator

log = logging.getLogger("ctdb.tdb")


class TdbFlags(enum.IntFlag):
    """``tdb_flags`` of ``tdb_open`` (tdb.h)."""

    DEFAULT = 0
    CLEAR_IF_FIRST = 1
    INTERNAL = 2
    NOLOCK = 4
    NOMMAP = 8
    CONVERT = 16
    BIGENDIAN = 32
    NOSYNC = 64
    SEQNUM = 128
    VOLATILE = 256
    ALLOW_NESTING = 512
    DISALLOW_NESTING = 1024
    INCOMPATIBLE_HASH = 2048
    MUTEX_LOCKING = 4096


# tdb_store flags
TDB_REPLACE = 1
TDB_INSERT = 2  # fail with TdbExists if the key is there
TDB_MODIFY = 3  # fail with TdbNotFound if it is not


class TdbErrorCode(enum.IntEnum):
    """``enum TDB_ERROR``."""

    SUCCESS = 0
    CORRUPT = 1
    IO = 2
    LOCK = 3
    OOM = 4
    EXISTS = 5
    NOLOCK = 6
    LOCK_TIMEOUT = 7
    NOEXIST = 8
    EINVAL = 9
    RDONLY = 10
    NESTING = 11


class TdbError(Exception):
    """A libtdb call failed; ``ecode`` is a :class:`TdbErrorCode` value."""

    def __init__(self, ecode: int, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.ecode = ecode
        self.errno = errno


class TdbBusy(TdbError):
    """A lock could not be had (at once, for the non-blocking calls)."""


class TdbNotFound(TdbError):
    """No such record (``TDB_MODIFY`` of a missing key)."""


class TdbExists(TdbError):
    """The record is there already (``TDB_INSERT``)."""


_ERROR_CLASSES: dict[int, type[TdbError]] = {
    TdbErrorCode.LOCK: TdbBusy,
    TdbErrorCode.LOCK_TIMEOUT: TdbBusy,
    TdbErrorCode.NOEXIST: TdbNotFound,
    TdbErrorCode.EXISTS: TdbExists,
}


class TDB_DATA(ctypes.Structure):
    _fields_ = [("dptr", ctypes.c_void_p), ("dsize", ctypes.c_size_t)]


_TRAVERSE_FUNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, TDB_DATA, TDB_DATA, ctypes.c_void_p)
_CHECK_FUNC = ctypes.CFUNCTYPE(ctypes.c_int, TDB_DATA, TDB_DATA, ctypes.c_void_p)

# -- logging callback ---------------------------------------------------------------------

_EXPAND_VARARGS = sys.platform.startswith("linux") and platform.machine().lower() in (
    "x86_64", "amd64", "aarch64", "arm64")
_VARARG_SLOTS = 12 if _EXPAND_VARARGS else 0
_LOG_FUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                             *([ctypes.c_uint64] * _VARARG_SLOTS))


class _LoggingContext(ctypes.Structure):
    _fields_ = [("log_fn", _LOG_FUNC), ("log_private", ctypes.c_void_p)]


_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.DEBUG}
_CONVERSION = re.compile(
    r"%(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<prec>\d*))?(?P<len>hh|h|ll|l|z|j|t)?(?P<conv>[diouxXcsp%])"
    r"|%")  # the bare '%' alternative catches everything this does not understand
_INT_BITS = {None: 32, "hh": 8, "h": 16, "l": 64, "ll": 64, "z": 64, "j": 64, "t": 64}


class _CannotExpand(Exception):
    pass


def _expand(fmt: str, slots: tuple[int, ...]) -> str:
    """printf ``fmt`` with the integer/pointer ``slots`` (see the module docstring)."""
    it = iter(slots)

    def one(m: re.Match[str]) -> str:
        conv = m.group("conv")
        if conv is None:
            raise _CannotExpand
        if conv == "%":
            return "%"
        try:
            raw = next(it)
        except StopIteration:
            raise _CannotExpand from None
        spec = "%" + m.group("flags") + m.group("width") + (f".{m.group('prec')}" if m.group("prec") is not None
                                                             else "")
        if conv == "s":
            if not raw:
                return (spec + "s") % "(null)"
            if m.group("prec"):
                raw_s = ctypes.string_at(raw, _LIBC.strnlen(raw, int(m.group("prec"))))
            else:
                raw_s = ctypes.string_at(raw)
            return (spec + "s") % raw_s.decode(errors="backslashreplace")
        if conv == "p":
            return (spec + "s") % (hex(raw) if raw else "(nil)")
        bits = 32 if conv == "c" else _INT_BITS[m.group("len")]
        value = raw & ((1 << bits) - 1)
        if conv in "di" and value >> (bits - 1):
            value -= 1 << bits
        return (spec + ("d" if conv in "diu" else conv)) % value

    return _CONVERSION.sub(one, fmt)


def _log_fn(_tdb: int | None, level: int, fmt: bytes | None, *slots: int) -> None:
    # Runs inside libtdb, which must see neither an exception nor a changed errno
    # (tdb_open_ex logs between a failed open() and reading its errno).
    errno_p = _ERRNO_LOCATION()
    saved_errno = errno_p[0]
    try:
        text = (fmt or b"").decode(errors="backslashreplace")
        if _EXPAND_VARARGS:
            try:
                text = _expand(text, slots)
            except (_CannotExpand, ValueError, TypeError, OverflowError):
                pass
        log.log(_LEVELS.get(level, logging.DEBUG), "libtdb: %s", text.rstrip("\n"))
    except Exception:  # noqa: BLE001 - logging torn down at exit, or worse: stay quiet
        pass
    finally:
        errno_p[0] = saved_errno


# Both live for the life of the process: libtdb keeps the function pointer in every
# context opened with it.
_LOG_CALLBACK = _LOG_FUNC(_log_fn)
_LOG_CTX = _LoggingContext(_LOG_CALLBACK, None)

# -- library ------------------------------------------------------------------------------

# Without use_errno: with it, ctypes would swap the thread's errno for its private
# copy around each call, and __errno_location must see the real one.
_LIBC = ctypes.CDLL(None)
_LIBC.free.argtypes = [ctypes.c_void_p]
_LIBC.free.restype = None
_LIBC.strnlen.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_LIBC.strnlen.restype = ctypes.c_size_t
_ERRNO_LOCATION = _LIBC.__errno_location
_ERRNO_LOCATION.argtypes = []
_ERRNO_LOCATION.restype = ctypes.POINTER(ctypes.c_int)

_lib: ctypes.CDLL | None = None


def _prototypes() -> dict[str, tuple[list, object]]:
    p, i, u, s = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_char_p
    d = TDB_DATA
    return {
        "tdb_open_ex": ([s, i, i, i, u, ctypes.POINTER(_LoggingContext), p], p),
        "tdb_close": ([p], i),
        "tdb_error": ([p], i),
        "tdb_errorstr": ([p], s),
        "tdb_fetch": ([p, d], d),
        "tdb_store": ([p, d, d, i], i),
        "tdb_append": ([p, d, d], i),
        "tdb_delete": ([p, d], i),
        "tdb_exists": ([p, d], i),
        "tdb_traverse": ([p, _TRAVERSE_FUNC, p], i),
        "tdb_traverse_read": ([p, _TRAVERSE_FUNC, p], i),
        "tdb_chainlock": ([p, d], i),
        "tdb_chainlock_nonblock": ([p, d], i),
        "tdb_chainunlock": ([p, d], i),
        "tdb_chainlock_read": ([p, d], i),
        "tdb_chainlock_read_nonblock": ([p, d], i),
        "tdb_chainunlock_read": ([p, d], i),
        "tdb_chainlock_mark": ([p, d], i),
        "tdb_chainlock_unmark": ([p, d], i),
        "tdb_lockall": ([p], i),
        "tdb_lockall_nonblock": ([p], i),
        "tdb_unlockall": ([p], i),
        "tdb_lockall_read": ([p], i),
        "tdb_lockall_read_nonblock": ([p], i),
        "tdb_unlockall_read": ([p], i),
        "tdb_lockall_mark": ([p], i),
        "tdb_lockall_unmark": ([p], i),
        "tdb_transaction_active": ([p], ctypes.c_bool),
        "tdb_transaction_start": ([p], i),
        "tdb_transaction_start_nonblock": ([p], i),
        "tdb_transaction_prepare_commit": ([p], i),
        "tdb_transaction_commit": ([p], i),
        "tdb_transaction_cancel": ([p], i),
        "tdb_wipe_all": ([p], i),
        "tdb_repack": ([p], i),
        "tdb_check": ([p, _CHECK_FUNC, p], i),
        "tdb_get_flags": ([p], i),
        "tdb_add_flags": ([p, u], None),
        "tdb_remove_flags": ([p, u], None),
        "tdb_get_seqnum": ([p], i),
        "tdb_enable_seqnum": ([p], None),
        "tdb_set_max_dead": ([p, i], None),
        "tdb_hash_size": ([p], i),
        "tdb_map_size": ([p], ctypes.c_size_t),
        "tdb_name": ([p], s),
        "tdb_fd": ([p], i),
        "tdb_freelist_size": ([p], i),
        "tdb_runtime_check_for_robust_mutexes": ([], ctypes.c_bool),
    }


def load() -> ctypes.CDLL:
    """The libtdb library with its prototypes declared (loaded once)."""
    global _lib
    if _lib is not None:
        return _lib
    errors = []
    for name in dict.fromkeys([ctypes.util.find_library("tdb"), "libtdb.so.1"]):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name, use_errno=True)
            break
        except OSError as e:
            errors.append(str(e))
    else:
        raise ImportError(f"libtdb.so.1 not found ({'; '.join(errors) or 'no candidates'}); "
                          "install the Debian package libtdb1")
    for fname, (args, res) in _prototypes().items():
        fn = getattr(lib, fname)
        fn.argtypes = args
        fn.restype = res
    _lib = lib
    return lib


def runtime_check_for_robust_mutexes() -> bool:
    """Whether this system can do ``TDB_MUTEX_LOCKING`` (robust, process-shared mutexes)."""
    return bool(load().tdb_runtime_check_for_robust_mutexes())


def _datum(b: bytes) -> tuple[TDB_DATA, ctypes.c_char_p]:
    """A TDB_DATA pointing into ``b`` itself, and the object that keeps it alive.

    libtdb only reads through keys and values passed in, so no copy is needed; the
    caller must keep the second element referenced until the C call returns.
    """
    if not isinstance(b, bytes):
        b = bytes(b)
    keep = ctypes.c_char_p(b)
    return TDB_DATA(ctypes.cast(keep, ctypes.c_void_p).value, len(b)), keep


def _bytes(d: TDB_DATA) -> bytes:
    return ctypes.string_at(d.dptr, d.dsize) if d.dptr and d.dsize else b""


_OPEN_ECODES = {errno.EINVAL: TdbErrorCode.EINVAL, errno.ENOMEM: TdbErrorCode.OOM,
                errno.EROFS: TdbErrorCode.RDONLY, errno.EACCES: TdbErrorCode.RDONLY}


class Tdb:
    """An open tdb file (one libtdb context)."""

    def __init__(self, handle: int, path: str) -> None:
        self._lib = load()
        self._h: int | None = handle
        self._pid = os.getpid()
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str], hash_size: int = 0, tdb_flags: int = 0,
             open_flags: int = os.O_RDWR | os.O_CREAT, mode: int = 0o600, *, quiet: bool = False) -> Tdb:
        """``tdb_open_ex``; hash_size 0 is libtdb's default (131 chains).

        libtdb's log lines go to the ``ctdbcore.db.tdb`` logger unless ``quiet``.
        Raises :class:`TdbError` with ``errno`` set (EBUSY: this process has the
        file open already).
        """
        lib = load()
        spath = os.fspath(path)
        ctypes.set_errno(0)
        h = lib.tdb_open_ex(os.fsencode(spath), hash_size, int(tdb_flags), open_flags, mode,
                            None if quiet else ctypes.byref(_LOG_CTX), None)
        if not h:
            err = ctypes.get_errno()
            why = os.strerror(err) if err else "unknown error"
            raise TdbError(_OPEN_ECODES.get(err, TdbErrorCode.IO), f"tdb_open {spath}: {why}", errno=err or None)
        return cls(h, spath)

    @property
    def handle(self) -> int:
        """The ``struct tdb_context *`` (raises once closed)."""
        if self._h is None:
            raise TdbError(TdbErrorCode.EINVAL, f"{self.path} is closed")
        return self._h

    @property
    def closed(self) -> bool:
        return self._h is None

    def _raise(self, op: str) -> None:
        ecode = self._lib.tdb_error(self.handle)
        msg = (self._lib.tdb_errorstr(self.handle) or b"?").decode(errors="replace")
        raise _ERROR_CLASSES.get(ecode, TdbError)(ecode, f"{op} {self.path}: {msg}")

    def _check(self, ret: int, op: str) -> int:
        if ret == -1:
            self._raise(op)
        return ret

    def close(self) -> None:
        """``tdb_close``; drops every lock this context holds. Idempotent."""
        h, self._h = self._h, None
        # A forked child must not tear down its parent's context (shared mutex area,
        # CLEAR_IF_FIRST bookkeeping): it just forgets it.
        if h is not None and os.getpid() == self._pid:
            if self._lib.tdb_close(h) != 0:
                raise TdbError(TdbErrorCode.IO, f"tdb_close {self.path} failed")

    def __enter__(self) -> Tdb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - e.g. at interpreter exit; nothing to tell anyone
            pass

    def __repr__(self) -> str:
        return f"<Tdb {self.path}{' closed' if self._h is None else ''}>"

    # -- records ---------------------------------------------------------------------------

    def fetch(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None."""
        k, _keep = _datum(key)
        d = self._lib.tdb_fetch(self.handle, k)
        if not d.dptr:
            if self._lib.tdb_error(self.handle) == TdbErrorCode.NOEXIST:
                return None
            self._raise("fetch")
        try:
            return ctypes.string_at(d.dptr, d.dsize)
        finally:
            _LIBC.free(d.dptr)

    def store(self, key: bytes, value: bytes, flag: int = TDB_REPLACE) -> None:
        """Write a record; ``flag`` is TDB_REPLACE, TDB_INSERT or TDB_MODIFY."""
        k, _kk = _datum(key)
        v, _kv = _datum(value)
        self._check(self._lib.tdb_store(self.handle, k, v, flag), "store")

    def append(self, key: bytes, value: bytes) -> None:
        """Append to a record's value (creating it)."""
        k, _kk = _datum(key)
        v, _kv = _datum(value)
        self._check(self._lib.tdb_append(self.handle, k, v), "append")

    def delete(self, key: bytes) -> bool:
        """Remove a record; False if there was none."""
        k, _keep = _datum(key)
        if self._lib.tdb_delete(self.handle, k) != 0:
            if self._lib.tdb_error(self.handle) == TdbErrorCode.NOEXIST:
                return False
            self._raise("delete")
        return True

    def exists(self, key: bytes) -> bool:
        k, _keep = _datum(key)
        return self._lib.tdb_exists(self.handle, k) == 1

    __contains__ = exists

    def traverse_with(self, fn: Callable[[bytes, bytes], object], *, read: bool = False) -> int:
        """Call ``fn(key, value)`` for each record, stopping early when it returns
        something true; returns how many records it was called for.

        ``read=True`` is ``tdb_traverse_read`` (read locks; ``fn`` must not write).
        An exception from ``fn`` stops the traverse and is re-raised.
        """
        failure: list[BaseException] = []

        def cb(_tdb: int, k: TDB_DATA, v: TDB_DATA, _priv: int) -> int:
            try:
                return 1 if fn(_bytes(k), _bytes(v)) else 0
            except BaseException as e:  # noqa: BLE001 - re-raised below, outside libtdb
                failure.append(e)
                return 1

        walk = self._lib.tdb_traverse_read if read else self._lib.tdb_traverse
        callback = _TRAVERSE_FUNC(cb)  # referenced until the call returns
        n = walk(self.handle, callback, None)
        if failure:
            raise failure[0]
        return self._check(n, "traverse_read" if read else "traverse")

    def traverse(self) -> Iterator[tuple[bytes, bytes]]:
        """All (key, value) pairs (``tdb_traverse``), collected first so the caller
        may write to the database while iterating."""
        out: list[tuple[bytes, bytes]] = []
        self.traverse_with(lambda k, v: out.append((k, v)))
        return iter(out)

    def traverse_read(self) -> Iterator[tuple[bytes, bytes]]:
        """Like :meth:`traverse` but through ``tdb_traverse_read``."""
        out: list[tuple[bytes, bytes]] = []
        self.traverse_with(lambda k, v: out.append((k, v)), read=True)
        return iter(out)

    def keys(self) -> list[bytes]:
        return [k for k, _ in self.traverse_read()]

    def __len__(self) -> int:
        return self._check(self._lib.tdb_traverse_read(self.handle, _TRAVERSE_FUNC(), None), "count")

    # -- locks -----------------------------------------------------------------------------
    #
    # Locks are per context and counted: taking one this context holds already succeeds
    # at once. Mark/unmark only update that bookkeeping (no fcntl, no mutex): they let
    # this context read and write under a lock another process holds for it.

    def _key_call(self, fname: str, key: bytes) -> None:
        k, _keep = _datum(key)
        self._check(getattr(self._lib, fname)(self.handle, k), fname.removeprefix("tdb_"))

    def chainlock(self, key: bytes) -> None:
        """Write-lock ``key``'s hash chain, waiting as long as it takes."""
        self._key_call("tdb_chainlock", key)

    def chainlock_nonblock(self, key: bytes) -> None:
        """Write-lock ``key``'s chain or raise :class:`TdbBusy` at once."""
        self._key_call("tdb_chainlock_nonblock", key)

    def chainunlock(self, key: bytes) -> None:
        self._key_call("tdb_chainunlock", key)

    def chainlock_read(self, key: bytes) -> None:
        """Read-lock ``key``'s chain (a write lock where mutexes are in use)."""
        self._key_call("tdb_chainlock_read", key)

    def chainlock_read_nonblock(self, key: bytes) -> None:
        self._key_call("tdb_chainlock_read_nonblock", key)

    def chainunlock_read(self, key: bytes) -> None:
        self._key_call("tdb_chainunlock_read", key)

    def chainlock_mark(self, key: bytes) -> None:
        """Record ``key``'s chain as write-locked by this context without locking it."""
        self._key_call("tdb_chainlock_mark", key)

    def chainlock_unmark(self, key: bytes) -> None:
        """Forget a :meth:`chainlock_mark` (the real lock is someone else's to drop)."""
        self._key_call("tdb_chainlock_unmark", key)

    def lockall(self) -> None:
        """Write-lock the whole database (every chain and the free list)."""
        self._check(self._lib.tdb_lockall(self.handle), "lockall")

    def lockall_nonblock(self) -> None:
        self._check(self._lib.tdb_lockall_nonblock(self.handle), "lockall_nonblock")

    def unlockall(self) -> None:
        self._check(self._lib.tdb_unlockall(self.handle), "unlockall")

    def lockall_read(self) -> None:
        self._check(self._lib.tdb_lockall_read(self.handle), "lockall_read")

    def lockall_read_nonblock(self) -> None:
        self._check(self._lib.tdb_lockall_read_nonblock(self.handle), "lockall_read_nonblock")

    def unlockall_read(self) -> None:
        self._check(self._lib.tdb_unlockall_read(self.handle), "unlockall_read")

    def lockall_mark(self) -> None:
        """Record the whole-database write lock as held without taking it."""
        self._check(self._lib.tdb_lockall_mark(self.handle), "lockall_mark")

    def lockall_unmark(self) -> None:
        self._check(self._lib.tdb_lockall_unmark(self.handle), "lockall_unmark")

    # -- transactions ----------------------------------------------------------------------

    def transaction_start(self) -> None:
        self._check(self._lib.tdb_transaction_start(self.handle), "transaction_start")

    def transaction_start_nonblock(self) -> None:
        """Start a transaction or raise :class:`TdbBusy` if another one is running."""
        self._check(self._lib.tdb_transaction_start_nonblock(self.handle), "transaction_start_nonblock")

    def _in_transaction(self, op: str) -> None:
        # libtdb fails these without a transaction but leaves tdb_error() at whatever
        # an earlier call set (often NOEXIST), so say it ourselves.
        if not self.transaction_active():
            raise TdbError(TdbErrorCode.EINVAL, f"{op} {self.path}: no transaction")

    def transaction_prepare_commit(self) -> None:
        self._in_transaction("transaction_prepare_commit")
        self._check(self._lib.tdb_transaction_prepare_commit(self.handle), "transaction_prepare_commit")

    def transaction_commit(self) -> None:
        self._in_transaction("transaction_commit")
        self._check(self._lib.tdb_transaction_commit(self.handle), "transaction_commit")

    def transaction_cancel(self) -> None:
        self._in_transaction("transaction_cancel")
        self._check(self._lib.tdb_transaction_cancel(self.handle), "transaction_cancel")

    def transaction_active(self) -> bool:
        return bool(self._lib.tdb_transaction_active(self.handle))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit on normal exit, cancel on an exception."""
        self.transaction_start()
        try:
            yield
        except BaseException:
            self.transaction_cancel()
            raise
        self.transaction_commit()

    # -- whole file ------------------------------------------------------------------------

    def wipe_all(self) -> None:
        """Delete every record (keeps the file, its hash size and flags)."""
        self._check(self._lib.tdb_wipe_all(self.handle), "wipe_all")

    def repack(self) -> None:
        """Rewrite the file without free space (takes a transaction)."""
        self._check(self._lib.tdb_repack(self.handle), "repack")

    def check(self) -> None:
        """``tdb_check``: raise :class:`TdbError` if the file is inconsistent."""
        self._check(self._lib.tdb_check(self.handle, _CHECK_FUNC(), None), "check")

    def get_flags(self) -> int:
        """The context's tdb flags (libtdb may add some, e.g. MUTEX_LOCKING from the file)."""
        return self._lib.tdb_get_flags(self.handle)

    def add_flags(self, flags: int) -> None:
        self._lib.tdb_add_flags(self.handle, int(flags))

    def remove_flags(self, flags: int) -> None:
        self._lib.tdb_remove_flags(self.handle, int(flags))

    def get_seqnum(self) -> int:
        """The file's sequence number (bumped by writes only with TDB_SEQNUM)."""
        return self._lib.tdb_get_seqnum(self.handle)

    def enable_seqnum(self) -> None:
        self._lib.tdb_enable_seqnum(self.handle)

    def set_max_dead(self, n: int) -> None:
        """Let up to ``n`` deleted records per chain wait before they are freed."""
        self._lib.tdb_set_max_dead(self.handle, n)

    def hash_size(self) -> int:
        return self._lib.tdb_hash_size(self.handle)

    def map_size(self) -> int:
        return self._lib.tdb_map_size(self.handle)

    def name(self) -> str:
        """The path as libtdb knows it."""
        return (self._lib.tdb_name(self.handle) or b"").decode(errors="replace")

    def fd(self) -> int:
        return self._lib.tdb_fd(self.handle)

    def freelist_size(self) -> int:
        """Number of entries on the free list."""
        return self._check(self._lib.tdb_freelist_size(self.handle), "freelist_size")
