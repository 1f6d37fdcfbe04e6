"""Reading a live cluster through the ctdb CLI, as an administrator would."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from pathlib import Path

from ctdb_localcluster.cluster import LocalCluster
from ctdb_localcluster.observe import kernel_holders  # noqa: F401 - its home; the tests import it from here
from ctdbcore.client.sync import Client


def ctdb(lc: LocalCluster, pnn: int, *args: str, check: bool = True) -> str:
    return lc.run(pnn, "ctdb", *args, check=check, timeout=30).stdout


def status_rows(lc: LocalCluster, pnn: int) -> dict[int, dict[str, str]]:
    """`ctdb -X status` on node pnn, by pnn."""
    out = ctdb(lc, pnn, "-X", "status")
    lines = [ln.strip("|").split("|") for ln in out.splitlines() if ln.startswith("|")]
    head, rows = lines[0], lines[1:]
    return {int(r[0]): dict(zip(head, r)) for r in rows}


def leader_seen_by(lc: LocalCluster, pnn: int) -> str:
    return ctdb(lc, pnn, "leader").strip()


def generation(lc: LocalCluster, pnn: int) -> str:
    m = re.search(r"^Generation:(\S+)$", ctdb(lc, pnn, "status"), re.M)
    assert m, "no Generation line"
    return m.group(1)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> float:
    t0 = time.monotonic()
    last_exc: Exception | None = None
    while time.monotonic() - t0 < timeout:
        try:
            if predicate():
                return time.monotonic() - t0
        except Exception as e:  # a node may be briefly unreachable while it restarts
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


def flag(lc: LocalCluster, observer: int, pnn: int, column: str) -> bool:
    return status_rows(lc, observer)[pnn][column] == "1"


def leaders(lc: LocalCluster, alive: list[int]) -> set[str]:
    return {leader_seen_by(lc, p) for p in alive}


def up(local_cluster, base: int):
    """A 3-node loopback cluster on 127.0.0.<base>..<base+2>, all OK."""
    lc = local_cluster(n=3, loopback=True, loopback_base=base)
    lc.wait_ok(timeout=30)
    return lc


@contextlib.contextmanager
def client(lc, pnn: int):
    c = Client(lc.socket(pnn), timeout=20)
    try:
        yield c
    finally:
        c.close()


def waits_for_a_lock(pid: int) -> bool:
    """Whether process ``pid`` sleeps on a futex (a tdb mutex) or in an fcntl lock wait
    (its /proc wchan)."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return any(w in wchan for w in ("futex", "lock", "fcntl", "setlk"))


def vacuum_children(path: str) -> list[int]:
    """The pids of the vacuum scan (or repack) children working on the tdb at ``path``."""
    r = subprocess.run(["pgrep", "-f", f"ctdbcore.db.scan {path} "], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]
