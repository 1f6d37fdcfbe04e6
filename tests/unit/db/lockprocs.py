"""Processes for the lock tests: another holder of a tdb (smbd's role), and what /proc
says about lock helpers and lock servers."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time

import ctdbcore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(ctdbcore.__file__)))

# The other process: the role smbd plays. One command per line, one answer per line.
_HOLDER = textwrap.dedent("""
    import os, sys
    from ctdbcore.db.tdb import Tdb, TdbBusy
    t = Tdb.open(sys.argv[1], tdb_flags=int(sys.argv[2]) & ~1, open_flags=os.O_RDWR)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, *args = line.split()
        args = [bytes.fromhex(a) for a in args]
        try:
            got = getattr(t, cmd)(*args)
        except TdbBusy:
            print("busy", flush=True)
            continue
        print("ok" if got is None else "ok " + got.hex(), flush=True)
""")


class Holder:
    """Another process with the same tdb open, driven one command at a time."""

    def __init__(self, path: str, flags: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, path, str(flags)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": ROOT})
        self._buf = b""
        assert self._line() == "ready"

    def _line(self, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "holder process did not answer"
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            assert chunk, "holder process died"
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def __call__(self, cmd: str, *keys: bytes) -> str:
        self.proc.stdin.write(" ".join([cmd, *(k.hex() for k in keys)]).encode() + b"\n")
        self.proc.stdin.flush()
        return self._line()

    def try_lock(self, key: bytes) -> bool:
        """Whether the chain is free: lock and unlock it at once if so."""
        if self("chainlock_nonblock", key) == "busy":
            return False
        assert self("chainunlock", key) == "ok"
        return True

    def try_lockall(self) -> bool:
        """Whether the whole database is free: lock and unlock it at once if so."""
        if self("lockall_nonblock") == "busy":
            return False
        assert self("unlockall") == "ok"
        return True

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def _processes() -> dict[int, tuple[list[bytes], int]]:
    """Live (not zombie) processes: pid -> (argv, parent pid)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if state != "Z":
            out[int(entry)] = (argv, int(ppid))
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    return pid in _processes()


def _server_family(parent: int | None) -> tuple[set[int], set[int]]:
    """(lock servers started by ``parent`` -- default this process --, their children).
    A forked child has its server's argv; a server's parent is a requester."""
    me = str(os.getpid() if parent is None else parent).encode()
    procs = _processes()
    family = {pid: ppid for pid, (argv, ppid) in procs.items()
              if b"ctdbcore.db.lock_server" in argv and me in argv}
    children = {pid for pid, ppid in family.items() if ppid in family}
    return set(family) - children, children


def lock_servers(parent: int | None = None) -> list[int]:
    """Lock servers started by ``parent`` (default: this process)."""
    return sorted(_server_family(parent)[0])


def forked_helpers(parent: int | None = None, path: str | None = None) -> list[int]:
    """Lock helpers forked by the lock servers of ``parent`` (default: this process);
    with ``path``, those that have it open: past announcing themselves, and not some
    other child, such as the ldconfig a starting server runs to find libtdb, which has
    the server's argv until it execs."""
    return sorted(pid for pid in _server_family(parent)[1] if path is None or has_open(pid, path))


def spawned_helpers(path: str) -> list[int]:
    """Lock helper processes started directly (python -m ...lock_helper) for ``path``."""
    return [pid for pid, (argv, _) in _processes().items()
            if b"ctdbcore.db.lock_helper" in argv and path.encode() in argv]


def helper_pids(path: str, parent: int | None = None) -> list[int]:
    """Lock helpers of ``parent`` (default: this process) working on ``path``, spawned
    or forked."""
    return spawned_helpers(path) + forked_helpers(parent, path)


def no_helpers_left(path: str) -> bool:
    """Neither a helper for ``path`` nor any child of this process's lock servers."""
    return helper_pids(path) == [] and forked_helpers() == []


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def has_open(pid: int, path: str) -> bool:
    """Whether process ``pid`` has ``path`` open (a helper does once it tries to lock)."""
    real = os.path.realpath(path)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == real:
                return True
        except OSError:
            continue
    return False
