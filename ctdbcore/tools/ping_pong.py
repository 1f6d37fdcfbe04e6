"""ping_pong: fcntl byte-range lock ping-pong (CTDB 4.17 utils/ping_pong/ping_pong.c).

    ping_pong [-rwmc] <file> <num_locks>
    ping_pong -l <file>

Our own additions, so that tests and benchmarks can bound a run (the C tool loops until
killed): `--count N` stops after N lock iterations, `--time S` after S seconds; either prints
a final newline after the last rate line and exits 0.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import struct
import sys
import time
from typing import Sequence

# struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
_FLOCK = struct.Struct("@hhqqi4x")

USAGE = """\
ping_pong -rwmc <file> <num_locks>
ping_pong -l <file>

Options
 -r    do reads
 -w    do writes
 -m    use mmap
 -c    check locks
 -l    test for working byte range locks
"""


def _fcntl_lock(fd: int, ltype: int, offset: int, length: int, cmd: int) -> None:
    fcntl.fcntl(fd, cmd, _FLOCK.pack(ltype, os.SEEK_SET, offset, length, 0))


def lock_range(fd: int, offset: int, length: int, wait: bool = True) -> None:
    _fcntl_lock(fd, fcntl.F_WRLCK, offset, length, fcntl.F_SETLKW if wait else fcntl.F_SETLK)


def unlock_range(fd: int, offset: int, length: int) -> None:
    _fcntl_lock(fd, fcntl.F_UNLCK, offset, length, fcntl.F_SETLKW)


def check_lock(fd: int, offset: int, length: int) -> int:
    """0 when the lock could be placed, 1 (after saying who holds it) when not, -1 on error."""
    try:
        res = fcntl.fcntl(fd, fcntl.F_GETLK,
                          _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, offset, length, 0))
    except OSError as exc:
        print(f"error calling fcntl F_GETLCK: {os.strerror(exc.errno)}")
        return -1
    ltype, _whence, start, llen, pid = _FLOCK.unpack(res)
    if ltype == fcntl.F_UNLCK:
        return 0
    print(f"check_lock failed: lock held: pid='{pid}', type='{ltype}', start='{start}', "
          f"len='{llen}'")
    return 1


def _err(exc: OSError) -> str:
    return os.strerror(exc.errno or errno.EIO)


def ping_pong(fd: int, num_locks: int, *, reads: bool = False, writes: bool = False,
              use_mmap: bool = False, check: bool = False, count_limit: int | None = None,
              time_limit: float | None = None, out=None) -> int:
    out = out or sys.stdout
    try:
        os.ftruncate(fd, num_locks + 1)
    except OSError as exc:
        print(f"ftruncate failed: {_err(exc)}", file=out)
        return 1
    mm = None
    if use_mmap:
        try:
            mm = mmap.mmap(fd, num_locks + 1, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            print(f"mmap failed: {_err(exc)}", file=out)
            return 1
    val = bytearray(num_locks + 1)
    count = 0
    loops = 0
    incr = last_incr = 0
    started = t0 = time.monotonic()
    try:
        lock_range(fd, 0, 1)
    except OSError as exc:
        print(f"initial lock at 0 failed! - {_err(exc)}", file=out)
        return 1
    i = 0
    while True:
        nxt = (i + 1) % num_locks
        try:
            lock_range(fd, nxt, 1)
        except OSError as exc:
            print(f"lock at {nxt} failed! - {_err(exc)}", file=out)
        if check and check_lock(fd, i, 1) != 0:
            return 1
        if reads:
            if mm is not None:
                c = mm[i]
            else:
                data = os.pread(fd, 1, i)
                if len(data) != 1:
                    print(f"read failed at {i}", file=out)
                c = data[0] if data else 0
            incr = (c - val[i]) & 0xFF
            val[i] = c
        if writes:
            c = (val[i] + 1) & 0xFF
            if mm is not None:
                mm[i] = c
            elif os.pwrite(fd, bytes((c,)), i) != 1:
                print(f"write failed at {i}", file=out)
        try:
            unlock_range(fd, i, 1)
        except OSError as exc:
            print(f"unlock at {i} failed! - {_err(exc)}", file=out)
        i = nxt
        count += 1
        if loops > num_locks and incr != last_incr:
            last_incr = incr
            print(f"data increment = {incr}", file=out, flush=True)
        now = time.monotonic()
        if now - t0 > 1.0:
            out.write("%8u locks/sec\r" % int(2 * count / (now - t0)))
            out.flush()
            t0 = now
            count = 0
        loops += 1
        if (count_limit is not None and loops >= count_limit) or \
                (time_limit is not None and now - started >= time_limit):
            elapsed = now - t0
            if count and elapsed > 0:
                out.write("%8u locks/sec\r" % int(2 * count / elapsed))
            out.write("\n")
            out.flush()
            return 0


def lock_test(fname: str) -> int:
    try:
        fd = os.open(fname, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError:
        return 1
    try:
        lock_range(fd, 0, 1, wait=False)
    except OSError:
        print("file already locked, calling check_lock to tell us who has it locked:")
        check_lock(fd, 0, 1)
        print("Working POSIX byte range locks")
        return 0
    print("Holding lock, press any key to continue...")
    print("You should run the same command on another node now.", flush=True)
    sys.stdin.read(1) if sys.stdin is not None else None
    print("Good bye.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    flags: set[str] = set()
    count_limit: int | None = None
    time_limit: float | None = None
    positional: list[str] = []
    it = iter(args)
    try:
        for arg in it:
            if arg == "--":
                positional += list(it)
            elif arg.startswith("--count"):
                count_limit = int(arg.split("=", 1)[1] if "=" in arg else next(it))
            elif arg.startswith("--time"):
                time_limit = float(arg.split("=", 1)[1] if "=" in arg else next(it))
            elif arg.startswith("-") and len(arg) > 1 and not positional:
                for c in arg[1:]:
                    if c not in "rwmcl":
                        print(f"Unknown option '?'", file=sys.stderr)
                        return 1
                    flags.add(c)
            else:
                positional.append(arg)
    except (StopIteration, ValueError):
        sys.stdout.write(USAGE)
        return 1

    if "l" in flags:
        if len(positional) != 1:
            sys.stdout.write(USAGE)
            return 1
        return lock_test(positional[0])
    if len(positional) < 2:
        sys.stdout.write(USAGE)
        return 1
    fname = positional[0]
    try:
        num_locks = int(positional[1])
    except ValueError:
        num_locks = 0
    if num_locks <= 0:
        print("num_locks should be > 0")
        return 1
    try:
        fd = os.open(fname, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        print(f"open of {fname} failed: {_err(exc)}")
        return 1
    try:
        return ping_pong(fd, num_locks, reads="r" in flags, writes="w" in flags,
                         use_mmap="m" in flags, check="c" in flags,
                         count_limit=count_limit, time_limit=time_limit)
    except KeyboardInterrupt:
        return 130
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
