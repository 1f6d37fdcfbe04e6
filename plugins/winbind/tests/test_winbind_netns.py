"""Debian's real winbindd managed by the plugin in a namespace cluster of our ctdbd.

Three of our daemons run in network namespaces (contrib/localcluster), each with one
public address and the plugin enabled. Its start and stop commands run a standalone
winbindd (clustering = yes, on the node's ctdbd socket, every directory under the
node's own directory) in the node's namespace; its monitor command runs `wbinfo -p` in
a private mount namespace in which the node's winbindd socket directory is mounted on
/run/samba, where the 4.17 libwbclient looks (it has no option for another place).

The nodes become healthy only once `wbinfo -p` answers on each. Then winbindd on the
holder of one address is SIGKILLed: the plugin's ctdb_watch makes the node UNHEALTHY at
once (`ERROR: winbindd (pid N) exited` in `ctdb scriptstatus`), its address moves, the
following monitor events keep it unhealthy ("ERROR: wbinfo -p returned error"), and once
the test starts winbindd again (4.17 does not restart it) the node is healthy again.

Nothing talks to anything but the namespaces' own addresses (winbindd opens no TCP port here)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from ctdb_localcluster.observe import Observer, ctdb, ctdbd_log, wait_for

WINBINDD = "/usr/sbin/winbindd"
WBINFO = "/usr/bin/wbinfo"
ALL = [0, 1, 2]
PUBLIC = ["198.51.100.101", "198.51.100.102", "198.51.100.103"]

pytestmark = [pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(not os.path.exists(WINBINDD), reason="Debian's winbind package is not installed"),
              pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed")]

W = "$CTDB_BASE/winbind"
START = f'{WINBINDD} -D -s "{W}/smb.conf" >>"{W}/out.log" 2>&1 </dev/null'
# winbindd's children exit with it; samba-dcerpcd (started on demand) names the conf
STOP = (f'kill $(cat "{W}/pid/winbindd.pid") 2>/dev/null ; pkill -f "[s]amba-dcerpcd.*{W}/smb.conf" ; '
        'sleep 0.5')
PING = (f"unshare --mount --propagation private sh -c 'mount --bind \"$0\" /run/samba && exec {WBINFO} -p' "
        f'"{W}/run"')


def smb_conf(node_dir: Path, short: Path, address: str) -> None:
    """smb.conf in node_dir/winbind, a link to the short directory that holds winbindd's
    files (its socket paths must fit a sockaddr_un: 108 bytes)."""
    d = short
    d.mkdir(parents=True)
    (node_dir).mkdir(parents=True, exist_ok=True)
    (node_dir / "winbind").symlink_to(d)
    for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "binddns", "run/winbindd", "share"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "smb.conf").write_text(f"""[global]
	clustering = yes
	ctdbd socket = {node_dir}/run/ctdbd.socket
	netbios name = CTDBPYWB
	workgroup = CTDBPYTEST
	server role = standalone server
	private dir = {d}/private
	lock directory = {d}/lock
	state directory = {d}/state
	cache directory = {d}/cache
	pid directory = {d}/pid
	ncalrpc dir = {d}/ncalrpc
	binddns dir = {d}/binddns
	winbindd socket directory = {d}/run/winbindd
	passdb backend = tdbsam:{d}/private/passdb.tdb
	interfaces = {address}/24
	bind interfaces only = yes
	disable netbios = yes
	load printers = no
	printcap name = /dev/null
	idmap config * : backend = tdb
	idmap config * : range = 100000-199999
	rpc start on demand helpers = yes
	log file = {d}/winbindd.log
	log level = 2
[share]
	path = {d}/share
""")


def winbindd_pid(lc, pnn: int) -> int | None:
    try:
        pid = int((Path(lc.node(pnn).dir) / "winbind" / "pid" / "winbindd.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def ping(lc, pnn: int) -> bool:
    r = lc.run(pnn, "sh", "-c", PING, check=False, timeout=30)
    return r.returncode == 0 and "Ping to winbindd succeeded" in r.stdout


@pytest.fixture
def cluster(tmp_path):
    from ctdb_localcluster import netns
    from ctdb_localcluster.cluster import LocalCluster

    reason = netns.available()
    if reason is not None:
        pytest.skip(f"namespace cluster: {reason}")
    if os.geteuid() != 0:
        pytest.skip("wbinfo runs in a mount namespace of its own (root)")
    lc = LocalCluster(tmp_path / "cluster", f"wb{os.getpid() % 100000}", cleanup_at_exit=True)
    short = Path(tempfile.mkdtemp(prefix="ctdbwb"))
    for p in ALL:
        smb_conf(lc.node_dir(p), short / f"n{p}", f"192.0.2.{1 + p}")  # the nodes' addresses in namespace mode
    try:
        lc.up(n=3, enable=("winbind",), plugin_conf=(("winbind", "start command", START),
                                                     ("winbind", "stop command", STOP),
                                                     ("winbind", "wbinfo command", PING),
                                                     ("winbind", "pid file", f"{W}/pid/winbindd.pid")))
        assert [lc.address(p) for p in ALL] == [f"192.0.2.{1 + p}" for p in ALL]
        lc.wait_ok(timeout=120)
        yield lc
    finally:
        lc.down()
        shutil.rmtree(short, ignore_errors=True)


def test_killed_winbindd_makes_its_node_unhealthy(cluster) -> None:
    lc = cluster
    for p in ALL:
        assert ping(lc, p)
        status = ctdb(lc, p, "scriptstatus")
        assert re.search(r"^winbind\s+OK", status, re.M), status

    ip = PUBLIC[2]
    obs = Observer(lc, ALL)
    try:
        wait_for(lambda: len(obs.holders(ip)) == 1 and None not in obs.holders(ip), timeout=30,
                 what=f"{ip} to be hosted")
        node = obs.holders(ip).pop()
        obs.close()
        obs = Observer(lc, [p for p in ALL if p != node])
        pid = winbindd_pid(lc, node)
        assert pid is not None
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: obs.unhealthy(node), timeout=15, interval=0.02, what=f"node {node} to be UNHEALTHY")
        t_unhealthy = time.monotonic() - t0
        status = ctdb(lc, node, "scriptstatus")
        moved_to: list[int] = []

        def moved() -> bool:
            h = obs.moved(ip, node)
            if h is not None:
                moved_to.append(h)
            return h is not None
        wait_for(moved, timeout=15, interval=0.02, what=f"{ip} to leave node {node}")
        t_moved = time.monotonic() - t0
        print(f"\nwinbindd SIGKILLed on node {node}: UNHEALTHY after {t_unhealthy:.2f} s, "
              f"{ip} moved to node {moved_to[0]} after {t_moved:.2f} s")
        assert (f"Node flags changed 0x0 -> 0x2 (monitor: unhealthy (winbind: ERROR: winbindd (pid {pid}) exited))"
                in ctdbd_log(lc, node)), ctdbd_log(lc, node)[-3000:]
        # the watcher's reason, or the next monitor event's if it has run already
        assert re.search(r"^winbind\s+ERROR", status, re.M), status
        assert re.search(rf"OUTPUT: ERROR: (winbindd \(pid {pid}\) exited|wbinfo -p returned error)", status), status
        assert t_unhealthy < 15 and t_moved < 15

        # 4.17 does not restart winbindd: the monitor events keep the node unhealthy
        wait_for(lambda: "ERROR: wbinfo -p returned error" in ctdb(lc, node, "scriptstatus"), timeout=40,
                 interval=0.5, what="a monitor event to fail on wbinfo -p")
        assert obs.unhealthy(node)
        assert not ping(lc, node)

        # started again (by hand, as an administrator would): healthy at the next monitor event
        r = lc.run(node, "sh", "-c", START, check=False, timeout=30)
        assert r.returncode == 0, (r.stdout, r.stderr)
        wait_for(lambda: ping(lc, node), timeout=30, interval=0.5, what=f"winbindd on node {node} to answer")
        wait_for(lambda: not obs.unhealthy(node), timeout=40, interval=0.2, what=f"node {node} healthy again")
        print(f"node {node} healthy again after {time.monotonic() - t0:.2f} s")
    finally:
        obs.close()
    assert re.search(r"^winbind\s+OK", ctdb(lc, node, "scriptstatus"), re.M)
