"""Plumbing of contrib/localcluster, with a fake ctdbd (binds its socket and node:4379)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctdb_localcluster import netns
from ctdb_localcluster.cluster import ClusterError, LocalCluster

HERE = Path(__file__).parent
FAKE = dict(ctdbd=str(HERE / "fake_ctdbd.py"), ctdb=str(HERE / "fake_ctdb.py"))
CONNECT = ("import socket, sys; socket.create_connection((sys.argv[1], 4379), 1); "
           "print('connected')")

pytestmark = pytest.mark.netns


def reaches(lc, pnn, address, port=4379):
    p = lc.run(pnn, sys.executable, "-c", CONNECT.replace("4379", str(port)), address,
               check=False, timeout=10)
    return p.returncode == 0


def proc_state(pid):
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def sockets_ready(lc):
    return all(Path(lc.socket(n.pnn)).exists() for n in lc.nodes())


def test_namespaces_files_and_reachability(local_cluster):
    lc = local_cluster(n=3, public_ips=2, tunables=(("RecoverInterval", "2"),), **FAKE)
    lc.wait(lambda: sockets_ready(lc), timeout=20)
    for ns in [lc.hub_ns, lc.client_ns] + [lc.node_ns(p) for p in range(3)]:
        assert netns.exists(ns)
    assert [lc.address(p) for p in range(3)] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    node1 = Path(lc.node(1).dir)
    conf = (node1 / "ctdb.conf").read_text()
    assert f"location = file:{node1}/log.ctdb" in conf
    assert "node address = 192.0.2.2" in conf
    assert f"cluster lock = {lc.root}/shared/.ctdb/cluster.lock" in conf
    assert (node1 / "nodes").read_text() == "192.0.2.1\n192.0.2.2\n192.0.2.3\n"
    assert (node1 / "public_addresses").read_text() == \
        "198.51.100.101/24 eth1\n198.51.100.102/24 eth1\n"
    assert (node1 / "ctdb.tunables").read_text() == "RecoverInterval=2\n"
    # node 0 reaches node 1's daemon over the internal bridge
    lc.wait(lambda: reaches(lc, 0, "192.0.2.2"), timeout=10)
    env = lc.run(2, "sh", "-c", "echo $CTDB_BASE $CTDB_SOCKET").stdout.split()
    assert env == [lc.node(2).dir, lc.socket(2)]
    # a public address added to eth1 is reachable from the client namespace
    lc.run(0, "ip", "addr", "add", "198.51.100.101/24", "dev", "eth1")
    lc.run(0, sys.executable, "-c",
           "import socket,time; s=socket.socket(); s.bind(('198.51.100.101', 445)); "
           "s.listen(); print('x', flush=True); time.sleep(0)", check=True)
    server = subprocess.Popen(["ip", "netns", "exec", lc.node_ns(0), sys.executable, "-c",
                               "import socket; s=socket.socket(); "
                               "s.bind(('198.51.100.101', 445)); s.listen(); s.accept()"])
    try:
        ok = lc.wait(lambda: lc.client(sys.executable, "-c", CONNECT.replace("4379", "445"),
                                       "198.51.100.101", check=False).returncode == 0,
                     timeout=10)
        assert ok >= 0
    finally:
        server.kill()
        server.wait()


def test_partition_and_heal(local_cluster):
    lc = local_cluster(n=3, **FAKE)
    lc.wait(lambda: sockets_ready(lc), timeout=20)
    lc.wait(lambda: reaches(lc, 0, "192.0.2.3"), timeout=10)
    lc.partition([[0, 1], [2]])
    assert reaches(lc, 0, "192.0.2.2")
    assert not reaches(lc, 0, "192.0.2.3")
    assert not reaches(lc, 2, "192.0.2.1")
    lc.heal()
    lc.wait(lambda: reaches(lc, 0, "192.0.2.3"), timeout=10)


def test_kill_stop_cont_start_and_wait_ok(local_cluster):
    lc = local_cluster(n=2, **FAKE)
    assert lc.wait_ok(timeout=20) >= 0
    pid = lc.pid(1)
    lc.stop(1)
    lc.wait(lambda: proc_state(pid) == "T", timeout=5)
    lc.cont(1)
    lc.kill(1)
    assert lc.pid(1) is None
    new = lc.start(1)
    assert new != pid and lc.pid(1) == new


def test_up_is_idempotent_and_down_cleans(tmp_path):
    if netns.available():
        pytest.skip(netns.available())
    lc = LocalCluster(tmp_path / "c", f"lci{os.getpid() % 100000}", cleanup_at_exit=True)
    assert lc.up(n=2, **FAKE) is True
    pids = [lc.pid(p) for p in range(2)]
    fresh = LocalCluster(lc.root, lc.name)
    assert fresh.up(n=2, **FAKE) is False  # same shape, healthy: left alone
    assert [fresh.pid(p) for p in range(2)] == pids
    fresh.kill(0)
    assert fresh.up(n=2, **FAKE) is True  # stale: rebuilt
    assert fresh.up(n=3, **FAKE) is True  # other shape: rebuilt
    pids = [fresh.pid(p) for p in range(3)]
    fresh.stop(2)  # a stopped node must die too
    LocalCluster(lc.root, lc.name).down()
    assert not any(netns.exists(f"{lc.name}-{s}") for s in ("hub", "client", "n0", "n1", "n2"))
    assert not any(Path(f"/proc/{p}").exists() for p in pids)
    LocalCluster(lc.root, lc.name).down()  # twice is fine


def test_down_after_half_built(tmp_path, monkeypatch):
    if netns.available():
        pytest.skip(netns.available())
    lc = LocalCluster(tmp_path / "c", f"lch{os.getpid() % 100000}")
    with pytest.raises(ClusterError, match="does-not-exist"):
        lc.up(n=2, ctdbd=str(tmp_path / "does-not-exist"))
    calls = []

    def failing_add_veth(*args):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("injected")
        real_add_veth(*args)

    real_add_veth = netns.add_veth
    monkeypatch.setattr(netns, "add_veth", failing_add_veth)
    with pytest.raises(RuntimeError, match="injected"):
        lc.up(n=2, **FAKE)
    monkeypatch.undo()
    assert not netns.exists(lc.hub_ns) and not netns.exists(f"{lc.name}-n0")
    netns.add(f"{lc.name}-n0")  # leftovers without any state file
    LocalCluster(lc.root, lc.name).down()
    assert not netns.exists(f"{lc.name}-n0")


def test_loopback_mode(local_cluster):
    lc = local_cluster(n=2, loopback=True, loopback_base=41, **FAKE)
    assert [lc.address(p) for p in range(2)] == ["127.0.0.41", "127.0.0.42"]
    assert not (Path(lc.node(0).dir) / "public_addresses").exists()
    lc.wait(lambda: reaches(lc, 0, "127.0.0.42"), timeout=20)
    assert lc.wait_ok(timeout=10) >= 0


def test_cli_run_onnode_and_status(local_cluster):
    lc = local_cluster(n=2, **FAKE)
    lc.wait(lambda: sockets_ready(lc), timeout=20)
    base = [sys.executable, "-m", "ctdb_localcluster", "--root", str(lc.root), "--name", lc.name]
    p = subprocess.run([*base, "run", "1", "sh", "-c", "ip -o -4 addr show dev eth0; exit 7"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 7 and "192.0.2.2/24" in p.stdout
    p = subprocess.run([*base, "onnode", "-q", "all", "ip -o -4 addr show dev eth0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "192.0.2.1/24" in p.stdout and "192.0.2.2/24" in p.stdout
    p = subprocess.run([*base, "status"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "|1|192.0.2.2|0|" in p.stdout
    p = subprocess.run([*base, "wait-ok", "--timeout", "10"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("all nodes OK after")
