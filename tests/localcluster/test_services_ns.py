"""The service harness (ctdb_localcluster.services): Debian's real daemons in each node's
network namespace of a 3-node cluster of our ctdbd, reached from the client namespace
through the nodes' public addresses.

For each daemon: started on every node with the harness's start command (one
self-contained configuration per node, one shared directory for all), each node's
instance answers through the public address that node holds; the instance on one node is
SIGKILLed (and, for most, another one SIGSTOPped): the probe through that node's address
fails (refused, or times out) while the others answer; the harness's stop commands end
every instance, nothing of them is left (by name in the nodes' namespaces, by working
directory in any command line)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ctdb_localcluster import services as svc
from ctdb_localcluster.services import ftp, httpd, nfs, samba

pytestmark = [pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]

ALL = (0, 1, 2)
HELLO = "hello from the cluster file system\n"


def need(*paths: str) -> None:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (see APT_PKGS in the Makefile)")


@pytest.fixture
def cluster(local_cluster, tmp_path):
    """A 3-node namespace cluster, one public address per node; (lc, {pnn: address},
    shared directory, services' root directory)."""
    lc = local_cluster(n=3)
    lc.wait_ok(timeout=60)
    by_address = svc.wait_public_spread(lc, timeout=60)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text(HELLO)
    return lc, {pnn: a for a, pnn in by_address.items()}, shared, tmp_path / "svc"


class Instances:
    """One spec per node, all stopped (and checked gone) at the end of the test."""

    def __init__(self, lc, root: Path, make, shared: Path, name: str, **kw) -> None:
        self.lc, self.root = lc, root
        self.specs = [make(lc, p, root / f"node{p}" / name, shared, **kw) for p in ALL]

    def as_ctdbd(self, spec: svc.ServiceSpec, command: str) -> None:
        """A shell command string run as node 0's ctdbd would run a plugin's setting:
        from inside the node's namespace, with the node's environment."""
        r = self.lc.run(spec.pnn, "sh", "-c", command, check=False, timeout=60)
        assert r.returncode == 0, (command, r.stdout, r.stderr)

    def start(self) -> None:
        # one after the other (Samba: the first creates the machine SID); node 0's
        # through the shell command strings, from inside its namespace; node 1's
        # through the shell strings from the host's; node 2's through the argvs
        for spec in self.specs:
            if spec.pnn == 0:
                for s in (*spec.requires, spec):
                    self.as_ctdbd(s, s.start_command)
                    self.lc.wait(lambda: svc.ready(s), timeout=30)
            else:
                svc.start(spec, shell=spec.pnn == 1)

    def stop(self) -> dict[int, list[int]]:
        """Stop every instance; {pnn: pids the stop had to signal itself}."""
        if svc.pid(self.specs[0]) is not None:
            for s in (self.specs[0], *self.specs[0].requires):
                self.as_ctdbd(s, s.stop_command)
        cleaned = {spec.pnn: svc.stop(spec, shell=spec.pnn == 1) for spec in self.specs}
        for spec in self.specs:
            assert svc.processes(spec) == [], (spec.name, spec.pnn)
            for req in spec.requires:
                assert svc.processes(req) == [], (req.name, req.pnn)
        r = subprocess.run(["pgrep", "-a", "-f", str(self.root)], capture_output=True, text=True)
        assert r.stdout == "", r.stdout
        return cleaned


@pytest.fixture
def instances(cluster):
    made: list[Instances] = []

    def make(factory, name: str, **kw) -> Instances:
        lc, _, shared, root = cluster
        inst = Instances(lc, root, factory, shared, name, **kw)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        for spec in inst.specs:
            try:
                svc.stop(spec, timeout=10)
            except Exception:  # noqa: BLE001 - best effort; lc.down kills what is left in the namespaces
                pass


def probe_fails(probe, *args, **kw) -> str:
    with pytest.raises(svc.ProbeError) as info:
        probe(*args, **kw)
    return str(info.value)


def check_spec(spec: svc.ServiceSpec, lc) -> None:
    """What a plugin's settings get: shell commands that enter the node's namespace."""
    assert spec.start_command.startswith(f"ip netns exec {lc.node_ns(spec.pnn)} ")
    assert spec.stop[0] in ("pkill", "sh")
    assert spec.dir in spec.pidfile.parents and spec.dir in spec.conf.parents


# ------------------------------------------------------------------------------ tests


def test_vsftpd(cluster, instances) -> None:
    need(ftp.VSFTPD, ftp.CURL)
    lc, addr, shared, _ = cluster
    inst = instances(svc.vsftpd, "vsftpd")
    inst.start()
    for spec in inst.specs:
        check_spec(spec, lc)
        assert spec.tcp_ports == (21,) and svc.listening_ports(spec.netns)["tcp"] >= {21}
    for p in ALL:
        assert svc.ftp_get(lc, addr[p], "hello.txt") == HELLO
        assert "hello.txt" in svc.ftp_get(lc, addr[p])

    svc.kill(inst.specs[1])
    assert "curl: (7) Failed to connect" in probe_fails(svc.ftp_get, lc, addr[1], "hello.txt", timeout=5)
    svc.start(inst.specs[1])  # a restart after a crash (the pid file is stale)
    assert svc.ftp_get(lc, addr[1], "hello.txt") == HELLO
    svc.hang(inst.specs[2])
    assert "timed out" in probe_fails(svc.ftp_get, lc, addr[2], "hello.txt", timeout=3).lower()
    assert svc.ftp_get(lc, addr[0], "hello.txt") == HELLO
    svc.resume(inst.specs[2])
    assert svc.ftp_get(lc, addr[2], "hello.txt") == HELLO
    assert inst.stop() == {0: [], 1: [], 2: []}


def test_apache2(cluster, instances) -> None:
    need(httpd.APACHE2, httpd.CURL)
    lc, addr, shared, _ = cluster
    inst = instances(svc.apache2, "apache2")
    inst.start()
    for spec in inst.specs:
        check_spec(spec, lc)
    for p in ALL:
        assert svc.http_get(lc, addr[p], "hello.txt") == HELLO
    (shared / "new.txt").write_text("written after the start\n")  # one directory for all nodes
    assert {svc.http_get(lc, addr[p], "new.txt") for p in ALL} == {"written after the start\n"}
    assert "404" in probe_fails(svc.http_get, lc, addr[0], "missing.txt")

    # apache's prefork children keep the listening socket: killing the main process
    # alone leaves the site up (node 2); the whole instance crashing takes it down (node 1)
    svc.kill(inst.specs[1], everything=True)
    assert "curl: (7) Failed to connect" in probe_fails(svc.http_get, lc, addr[1], "hello.txt", timeout=5)
    svc.start(inst.specs[1])
    assert svc.http_get(lc, addr[1], "hello.txt") == HELLO
    children = [p for p in svc.processes(inst.specs[2]) if p != svc.pid(inst.specs[2])]
    assert children
    svc.kill(inst.specs[2])
    assert svc.http_get(lc, addr[2], "hello.txt") == HELLO
    svc.hang(inst.specs[0], everything=True)
    assert "timed out" in probe_fails(svc.http_get, lc, addr[0], "hello.txt", timeout=3).lower()
    svc.resume(inst.specs[0])
    assert svc.http_get(lc, addr[0], "hello.txt") == HELLO
    assert inst.stop() == {0: [], 1: [], 2: children}


def test_ganesha_nfs_v3_and_v4(cluster, instances, tmp_path) -> None:
    need(nfs.GANESHA, nfs.FSAL_VFS, nfs.NFS_CAT, nfs.RPCBIND, nfs.RPCINFO)
    lc, addr, shared, _ = cluster
    inst = instances(svc.ganesha, "ganesha")
    inst.start()
    for spec in inst.specs:
        check_spec(spec, lc)
        (rpc,) = spec.requires
        assert rpc.name == "rpcbind" and svc.pid(rpc) is not None
    local = tmp_path / "upload.txt"
    for p in ALL:
        assert "program 100003 version 3 ready and waiting" in svc.rpcinfo(lc, addr[p], "nfs", 3)
        assert svc.nfs_cat(lc, addr[p], "hello.txt", version=3) == HELLO
        assert svc.nfs_cat(lc, addr[p], "hello.txt", version=4) == HELLO
        local.write_text(f"written through node {p}\n")
        svc.nfs_put(lc, addr[p], local, f"from{p}.txt", version=3 if p else 4)
    assert {p: (shared / f"from{p}.txt").read_text() for p in ALL} == {p: f"written through node {p}\n" for p in ALL}
    assert "from2.txt" in svc.nfs_ls(lc, addr[0], version=4)

    svc.kill(inst.specs[1])
    probe_fails(svc.nfs_cat, lc, addr[1], "hello.txt", version=4, timeout=5)
    err = probe_fails(svc.rpcinfo, lc, addr[1], "nfs", 3, timeout=5)
    assert "100003" in err or "nfs" in err.lower(), err
    svc.start(inst.specs[1])  # rpcbind kept running; Ganesha registers again
    assert svc.nfs_cat(lc, addr[1], "hello.txt", version=3) == HELLO
    svc.hang(inst.specs[2])
    assert "no answer within 3 s" in probe_fails(svc.nfs_cat, lc, addr[2], "hello.txt", version=3, timeout=3)
    assert svc.nfs_cat(lc, addr[0], "hello.txt") == HELLO
    svc.resume(inst.specs[2])
    assert svc.nfs_cat(lc, addr[2], "hello.txt") == HELLO
    assert inst.stop() == {0: [], 1: [], 2: []}


def test_ganesha_nfs_v4_without_rpcbind(cluster, instances) -> None:
    need(nfs.GANESHA, nfs.FSAL_VFS, nfs.NFS_CAT)
    lc, addr, shared, _ = cluster
    inst = instances(svc.ganesha, "ganesha4", protocols=(4,))
    inst.start()
    for spec in inst.specs:
        assert spec.requires == () and svc.listening_ports(spec.netns)["tcp"] >= {2049}
        assert 111 not in svc.listening_ports(spec.netns)["tcp"]
    for p in ALL:
        assert svc.nfs_cat(lc, addr[p], "hello.txt", version=4) == HELLO
    probe_fails(svc.nfs_cat, lc, addr[0], "hello.txt", version=3, timeout=5)  # no v3 (and no rpcbind)
    svc.kill(inst.specs[0])
    probe_fails(svc.nfs_cat, lc, addr[0], "hello.txt", version=4, timeout=5)
    assert svc.nfs_cat(lc, addr[2], "hello.txt", version=4) == HELLO
    assert inst.stop() == {0: [], 1: [], 2: []}


def test_smbd(cluster, instances, tmp_path) -> None:
    need(samba.SMBD, samba.SMBCLIENT)
    lc, addr, shared, _ = cluster
    inst = instances(svc.smbd, "smbd")
    inst.start()
    for spec in inst.specs:
        check_spec(spec, lc)
        assert "clustering = yes" in spec.conf.read_text()
        assert f"ctdbd socket = {lc.socket(spec.pnn)}" in spec.conf.read_text()
    svc.add_user(inst.specs[0])  # passdb.tdb: a persistent clustered database
    client = svc.SmbClient(lc, tmp_path / "smbclient")
    for p in ALL:
        assert client.put_get(addr[p], f"from{p}.txt", f"written through node {p}\n") == f"written through node {p}\n"
        assert client.get(addr[(p + 1) % 3], f"from{p}.txt") == f"written through node {p}\n"
    assert (shared / "from2.txt").read_text() == "written through node 2\n"

    svc.kill(inst.specs[1])
    assert "NT_STATUS_CONNECTION_REFUSED" in probe_fails(client.get, addr[1], "hello.txt", timeout=10)
    svc.start(inst.specs[1])
    assert client.get(addr[1], "from0.txt") == "written through node 0\n"
    svc.hang(inst.specs[2])
    assert "no answer within 4 s" in probe_fails(client.get, addr[2], "hello.txt", timeout=4)
    assert client.get(addr[0], "hello.txt") == HELLO
    svc.resume(inst.specs[2])
    assert client.get(addr[2], "hello.txt") == HELLO
    # smbd-notifyd and cleanupd end with their parent, also a SIGKILLed one
    assert inst.stop() == {0: [], 1: [], 2: []}


def test_nmbd(cluster, instances, tmp_path) -> None:
    need(samba.NMBD, samba.NMBLOOKUP)
    lc, addr, shared, _ = cluster
    inst = instances(svc.nmbd, "nmbd")
    inst.start()
    for spec in inst.specs:
        check_spec(spec, lc)
        assert spec.udp_ports == (137, 138)
    conf = svc.SmbClient(lc, tmp_path / "nmbclient").conf

    def answers(p: int) -> bool:
        try:
            return addr[p] in svc.nmb_lookup(lc, addr[p], f"CTDBPYNMB{p}", conf, timeout=5)
        except svc.ProbeError:
            return False
    for p in ALL:  # a name is answered for once its (broadcast, unanswered) registration is over
        lc.wait(lambda: answers(p), timeout=30)
    svc.kill(inst.specs[1])
    assert "name_query failed to find name CTDBPYNMB1" in probe_fails(svc.nmb_lookup, lc, addr[1], "CTDBPYNMB1", conf, timeout=5)
    svc.start(inst.specs[1])
    lc.wait(lambda: answers(1), timeout=30)
    assert answers(0) and answers(2)
    assert inst.stop() == {0: [], 1: [], 2: []}


def test_winbindd(cluster, instances) -> None:
    need(samba.WINBINDD, samba.WBINFO)
    lc, addr, shared, _ = cluster
    inst = instances(svc.winbindd, "winbindd")
    inst.start()  # ready = `wbinfo --ping` answers (there is no port)
    gids = set()
    for spec in inst.specs:
        check_spec(spec, lc)
        assert svc.wbinfo(spec, "--ping").startswith("Ping to winbindd succeeded")
        gids.add(svc.wbinfo(spec, "--sid-to-gid", "S-1-1-0").strip())
    assert len(gids) == 1 and next(iter(gids)).isdigit()  # one clustered idmap
    gid = gids.pop()
    svc.kill(inst.specs[1])
    probe_fails(svc.wbinfo, inst.specs[1], "--ping", timeout=5)
    svc.start(inst.specs[1])  # samba-dcerpcd of the crashed one still runs
    assert svc.wbinfo(inst.specs[1], "--sid-to-gid", "S-1-1-0").strip() == gid
    svc.hang(inst.specs[2])
    assert "no answer within 3 s" in probe_fails(svc.wbinfo, inst.specs[2], "--ping", timeout=3)
    svc.resume(inst.specs[2])
    assert svc.wbinfo(inst.specs[2], "--ping").startswith("Ping to winbindd succeeded")
    assert svc.wbinfo(inst.specs[0], "--ping").startswith("Ping to winbindd succeeded")
    # the new winbindd on node 1 works with the samba-dcerpcd its crashed predecessor
    # started (its pid file); the stop commands end everything
    assert inst.stop() == {0: [], 1: [], 2: []}
