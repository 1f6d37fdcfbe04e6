"""The nfs plugin (backend ganesha) with Debian's real NFS-Ganesha in every node of a
namespace cluster of our ctdbd.

Every node exports ONE shared directory (the cluster file system's stand-in: each
node's Ganesha, FSAL VFS, on the same directory). Each node's rig — ganesha.conf,
a D-Bus configuration, start.sh/stop.sh that run rpcbind, dbus-daemon and
ganesha.nfsd in a private mount namespace whose /run is the node's own — is written
under ``<root>/node<pnn>/nfs/`` before the cluster starts; one ctdb.conf ``[nfs]``
section for all nodes names it through ``$CTDB_BASE``. The plugin's startup event runs
the start command (ctdbd's child, so in the node's network namespace). libnfs's
``nfs-cat`` in the client namespace reads a file through a public address; SIGKILL of
ganesha.nfsd on its holder makes that node UNHEALTHY at once (the plugin's watcher),
the address moves to a healthy node, the same read is served again through it, and
the check file's restart rule brings Ganesha back, after which the node is healthy."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ctdb_localcluster import observe
from ctdb_localcluster.cluster import LocalCluster
from ctdb_localcluster.rigs import ganesha_missing, ganesha_pid, nfs_cluster_options

PUBLIC = ["198.51.100.101", "198.51.100.102", "198.51.100.103"]
N = 3
CONTENT = "written to the cluster file system\n"

pytestmark = [pytest.mark.slow, pytest.mark.netns]


@pytest.fixture
def nfs_cluster(tmp_path):
    reason = ganesha_missing()
    if reason is not None:
        pytest.skip(reason)
    root = tmp_path / "cluster"
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "file").write_text(CONTENT)
    lc = LocalCluster(root, f"nfsns{os.getpid() % 100000}", cleanup_at_exit=True)
    try:
        lc.up(n=N, **nfs_cluster_options(root, shared))
        yield lc, root
    finally:
        lc.down()
        left = subprocess.run(["pgrep", "-af", str(tmp_path)], capture_output=True, text=True).stdout
        assert left == "", f"processes left behind:\n{left}"


def ctdb(lc, pnn, *args) -> str:
    return lc.run(pnn, "ctdb", *args, timeout=30).stdout


def holders(lc) -> dict[str, int]:
    """Public address -> its holder, as `ctdb -X ip` on a running node says."""
    for p in range(N):
        if lc.running(p):
            rows = [ln.strip("|").split("|") for ln in ctdb(lc, p, "-X", "ip").splitlines()[1:] if ln]
            return {r[0]: int(r[1]) for r in rows}
    return {}


def kernel_holders(lc) -> dict[str, list[int]]:
    """Public address -> the nodes whose eth1 carries it (the kernel's view)."""
    return observe.kernel_holders(lc, PUBLIC, range(N))


def unhealthy(lc, pnn) -> bool:
    return any(r["Unhealthy"] == "1" for r in lc.status_table(0) if int(r["Node"]) == pnn)


def nfs_cat(lc, ip: str, version: int = 3) -> subprocess.CompletedProcess:
    return lc.client("nfs-cat", f"nfs://{ip}/export/file?version={version}", check=False, timeout=20)


def node_log(root: Path, pnn: int) -> str:
    return (root / f"node{pnn}" / "log.ctdb").read_text(errors="replace")


def test_killed_ganesha_moves_its_address_and_the_client_is_served_again(nfs_cluster):
    lc, root = nfs_cluster
    t_up = lc.wait_ok(timeout=90)  # every node healthy: the plugin started Ganesha, its monitor passed
    for p in range(N):
        assert ganesha_pid(root, p) is not None, f"no ganesha.nfsd on node {p}"
    lc.wait(lambda: sorted(holders(lc).get(ip, -1) for ip in PUBLIC) == list(range(N)), timeout=60)
    print(f"\ncluster healthy after {t_up:.1f} s of waiting")
    ip = PUBLIC[0]
    victim = holders(lc)[ip]
    assert kernel_holders(lc)[ip] == [victim]
    r = nfs_cat(lc, ip)
    assert (r.returncode, r.stdout) == (0, CONTENT), r.stderr
    r4 = nfs_cat(lc, PUBLIC[1], version=4)
    assert (r4.returncode, r4.stdout) == (0, CONTENT), r4.stderr

    pid = ganesha_pid(root, victim)
    assert pid is not None
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    lc.wait(lambda: unhealthy(lc, victim), timeout=30, interval=0.05)
    t_unhealthy = time.monotonic()

    def moved() -> bool:
        return holders(lc).get(ip) not in (None, victim) and kernel_holders(lc)[ip] not in ([], [victim])
    lc.wait(moved, timeout=30, interval=0.05)
    t_moved = time.monotonic()
    new = holders(lc)[ip]
    assert kernel_holders(lc)[ip] == [new] and new != victim and not unhealthy(lc, new)

    def served() -> bool:
        return nfs_cat(lc, ip).stdout == CONTENT
    lc.wait(served, timeout=60, interval=0.1)
    t_served = time.monotonic()
    # NFSv4 too, once the new holder's grace period for the address (takeip) is over
    lc.wait(lambda: nfs_cat(lc, ip, version=4).stdout == CONTENT, timeout=30, interval=0.2)
    t_served4 = time.monotonic()
    print(f"ganesha.nfsd SIGKILL on node {victim}: UNHEALTHY after {t_unhealthy - t0:.2f} s, "
          f"{ip} moved to node {new} after {t_moved - t0:.2f} s, "
          f"client served again after {t_served - t0:.2f} s (NFSv3), {t_served4 - t0:.2f} s (NFSv4)")
    # takeip on the new holder gave Ganesha its grace period for the address over D-Bus
    new_log = (root / f"node{new}" / "nfs" / "ganesha.log").read_text(errors="replace")
    assert f"recovery event 5 nodeid -1 ip {ip}" in new_log

    # the watcher made the node unhealthy, with the plugin's reason; the monitor events
    # that follow fail with it until Ganesha is back (scriptstatus shows it)
    assert f"plugin nfs reports its service failed: ERROR: NFS Ganesha (pid {pid}) exited" in node_log(root, victim)

    seen: list[str] = []  # the victim's scriptstatus texts until it is healthy again

    def status_shows(pattern: str) -> bool:
        seen.append(ctdb(lc, victim, "scriptstatus"))
        return re.search(pattern, seen[-1], re.M) is not None
    lc.wait(lambda: status_shows(r"^nfs +ERROR"), timeout=15, interval=0.2)
    assert f"ERROR: NFS Ganesha (pid {pid}) exited" in seen[-1], seen[-1]
    assert t_moved - t0 < 20

    # the shipped check's rule (restart every 2 failures of "check nfs") restarts
    # Ganesha; the next monitor finds it and the node is healthy, the addresses rebalance
    def healthy_again() -> bool:
        seen.append(ctdb(lc, victim, "scriptstatus"))
        return not unhealthy(lc, victim)
    lc.wait(healthy_again, timeout=60, interval=0.2)
    t_healthy = time.monotonic()
    new_pid = ganesha_pid(root, victim)
    assert new_pid is not None and new_pid != pid
    assert any('Trying to restart service "nfs"...' in text for text in seen), seen[-1]
    assert re.search(r"^nfs +OK", ctdb(lc, victim, "scriptstatus"), re.M)
    lc.wait(lambda: sorted(holders(lc).get(i, -1) for i in PUBLIC) == list(range(N)), timeout=60)
    t_balanced = time.monotonic()
    print(f"node {victim} healthy again after {t_healthy - t0:.2f} s (ganesha pid {new_pid}), "
          f"addresses balanced after {t_balanced - t0:.2f} s")
    back = holders(lc)[ip]
    r = nfs_cat(lc, ip)
    assert (r.returncode, r.stdout) == (0, CONTENT), (back, r.stderr)
