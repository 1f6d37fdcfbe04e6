"""Debian's real Samba 4.17 `smbd` with `clustering = yes` against our ctdbd.

Each test runs three of our daemons on loopback addresses (127.0.0.231-233, 234-236,
237-239), an smbd on node 0 and one on node 1, each on its own node's unix socket and
its own address, both exporting one directory (standing in for the cluster file
system), and drives them with Debian's `smbclient`, `smbpasswd`, `smbstatus`,
`smbcontrol` and `net`. What smbd keeps in its clustered databases is read back through
our `ctdb` tool: the databases are attached on every node (also node 2, which runs no
smbd), a share-mode record migrates between the nodes, opens through one node are seen
and honoured by the other (cluster-wide traverse, CHECK_PID_SRVID), Samba's messages
and change notifications cross nodes, and a node's death leaves the other serving.
Nothing talks to anything but loopback."""

from __future__ import annotations

import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time

import pytest

from ctdb_localcluster.samba import (  # noqa: F401 (re-exported for the other smbd tests)
    PORT,
    SMBCLIENT,
    SMBD,
    SMBSTATUS,
    USER,
    Samba,
    client_conf,
    listening,
    smb_conf,
    smbclient,
    stop_group,
)
from tests.cluster.helpers import wait_for


pytestmark = [pytest.mark.slow, pytest.mark.interop,
              pytest.mark.skipif(not os.path.exists(SMBD), reason="Debian's samba package (/usr/sbin/smbd) is not installed")]


def ours(lc, pnn: int, *args: str) -> str:
    tool = os.path.join(os.path.dirname(sys.executable), "ctdb")
    env = dict(os.environ, CTDB_SOCKET=lc.socket(pnn))
    r = subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, pnn, r.stdout, r.stderr)
    return r.stdout


def unescape(text: str) -> bytes:
    """A key as ctdb's catdb prints it: printable bytes as they are, others as \\XX."""
    return bytes(int(h, 16) if h else ord(c) for h, c in re.findall(r"\\([0-9A-F]{2})|(.)", text, re.S))


def record(lc, pnn: int, db: str, key: bytes) -> dict[str, int] | None:
    """The header of key in node pnn's own copy of db (`ctdb cattdb`), or None."""
    dump = ours(lc, pnn, "cattdb", db)
    for m in re.finditer(r"^key\((\d+)\) = \"(.*)\"\n((?:[a-z]+: .*\n)+)", dump, re.M):
        if unescape(m.group(2)) == key:
            return {k: int(v, 0) for k, v in re.findall(r"^(dmaster|rsn): (\S+)$", m.group(3), re.M)}
    return None


@pytest.fixture
def samba(local_cluster, tmp_path):
    made: list[Samba] = []

    def make(lc, nodes: tuple[int, ...] = (0, 1)) -> Samba:
        s = Samba(lc, tmp_path, nodes)
        made.append(s)
        s.start()
        return s

    yield make
    for s in made:
        s.stop()


def test_files_databases_and_migration(local_cluster, samba) -> None:
    # deleted share-mode records must stay until we have looked at them
    lc = local_cluster(n=3, loopback=True, loopback_base=231, tunables=(("VacuumInterval", "3600"),))
    lc.wait_ok(timeout=60)
    smb = samba(lc)

    # smbd's clustered databases, seen from node 2, which runs no smbd
    dbmap = ours(lc, 2, "getdbmap")
    names = dict(re.findall(r"^dbid:\S+ name:(\S+) path:\S+( PERSISTENT)?", dbmap, re.M))
    for db in ("locking.tdb", "brlock.tdb", "g_lock.tdb", "leases.tdb", "smbXsrv_version_global.tdb",
               "smbXsrv_client_global.tdb", "smbXsrv_session_global.tdb", "smbXsrv_tcon_global.tdb",
               "smbXsrv_open_global.tdb"):
        assert names.get(db) == "", (db, dbmap)
    for db in ("secrets.tdb", "passdb.tdb", "account_policy.tdb", "group_mapping.tdb", "registry.tdb",
               "share_info.tdb"):
        assert names.get(db) == " PERSISTENT", (db, dbmap)

    # secrets.tdb is one database for the cluster: both nodes have the same machine SID
    sids = [smb.tool(pnn, "/usr/bin/net", "getlocalsid").stdout for pnn in (0, 1)]
    assert sids[0] == sids[1] and re.fullmatch(r"SID for domain CTDBPYSMB is: S-1-5-21-\d+-\d+-\d+\n", sids[0]), sids

    # a user in passdb.tdb (a persistent database: g_lock + TRANS3_COMMIT) through node 0;
    # node 1's smbd authenticates it from its own copy
    smb.add_user(0)

    # files in through node 0, out through node 1 and back
    (smb.work / "in0.txt").write_text("written through node 0\n")
    out = smb.client(0, "put in0.txt a.txt; ls")
    assert re.search(r"^\s+a\.txt\s+A\s+23 ", out, re.M), out
    out = smb.client(1, "get a.txt out1.txt; put out1.txt b.txt; ls")
    assert (smb.work / "out1.txt").read_text() == "written through node 0\n"
    assert re.search(r"^\s+b\.txt\s+A\s+23 ", out, re.M), out
    smb.client(0, "get b.txt out0.txt")
    assert (smb.work / "out0.txt").read_text() == "written through node 0\n"
    assert (smb.share / "a.txt").read_text() == (smb.share / "b.txt").read_text() == "written through node 0\n"

    # the share-mode record of a.txt (locking.tdb key = file_id: dev, inode, extid)
    # moves to the node whose smbd opens the file, and each new data master bumps its RSN
    st = os.stat(smb.share / "a.txt")
    key = struct.pack("<QQQ", st.st_dev, st.st_ino, 0)
    seen = []
    for pnn in (0, 1, 0):
        smb.client(pnn, "get a.txt again.txt")
        hdr = record(lc, pnn, "locking.tdb", key)
        assert hdr is not None and hdr["dmaster"] == pnn, (pnn, hdr)
        seen.append(hdr["rsn"])
    assert seen[0] < seen[1] < seen[2], seen

    # locking.tdb made READONLY (on every node, as 4.17 wants): smbd keeps working. (It
    # asks for read-only copies only in dbwrap_ctdb's parse_record of a stale local
    # copy; these SMB operations did not make Debian's 4.17 ctdbd hand out any either.)
    for pnn in (0, 1, 2):
        ours(lc, pnn, "setdbreadonly", "locking.tdb")
    assert re.search(r"^dbid:\S+ name:locking\.tdb path:\S+ READONLY$", ours(lc, 2, "getdbmap"), re.M)
    for _ in range(3):
        smb.client(0, "get a.txt again.txt")
        assert "a.txt" in smb.client(1, "ls")
        smb.client(1, "get a.txt again.txt")
        assert (smb.work / "again.txt").read_text() == "written through node 0\n"

    # both nodes at once, over and over, on one file: the share-mode record goes back and
    # forth between the nodes while each smbd holds its chain lock now and then
    (smb.work / "c0.txt").write_text("from node 0\n" * 100)
    (smb.work / "c1.txt").write_text("from node 1\n" * 100)
    results: dict[int, str] = {}

    def hammer(pnn: int) -> None:
        cmds = "; ".join(f"put c{pnn}.txt hot.txt; get hot.txt hot{pnn}-{i}.txt" for i in range(15))
        results[pnn] = smb.client(pnn, cmds)

    threads = [threading.Thread(target=hammer, args=(pnn,)) for pnn in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == [0, 1]
    for pnn, out in results.items():
        assert "NT_STATUS" not in out, out
        for i in range(15):  # one version of the file, never a mix (or the moment between truncate and write)
            assert (smb.work / f"hot{pnn}-{i}.txt").read_text() in ("", "from node 0\n" * 100, "from node 1\n" * 100)
    assert (smb.share / "hot.txt").read_text() in ("from node 0\n" * 100, "from node 1\n" * 100)
    smb.check_alive()


def test_cross_node_share_modes_messages_and_recovery(local_cluster, samba) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=234, tunables=(("VacuumInterval", "2"),))
    lc.wait_ok(timeout=60)
    smb = samba(lc)
    smb.add_user(1)
    (smb.work / "x.txt").write_text("x\n")
    smb.client(0, "put x.txt held.txt")

    # Samba's messaging between nodes (REQ_MESSAGE to a pid's srvid on another node)
    for src, dst in ((1, 0), (0, 1)):
        r = smb.tool(src, "/usr/bin/smbcontrol", f"{dst}:{smb.pid(dst)}", "ping")
        assert r.returncode == 0 and r.stdout == f"PONG from pid {dst}:{smb.pid(dst)}\n", (src, dst, r)

    # ... and broadcasts to every Samba process of the cluster (CTDB_BROADCAST_CONNECTED,
    # CTDB_SRVID_SAMBA_PROCESS): both parent smbds answer
    r = smb.tool(0, "/usr/bin/smbcontrol", "-t", "3", "all", "ping")
    for pnn in (0, 1):
        assert f"PONG from pid {pnn}:{smb.pid(pnn)}\n" in r.stdout, r

    # persistent transactions from both nodes at once (Samba's own g_lock on g_lock.tdb,
    # then TRANS3_COMMIT): 10 registry keys each through `net registry`
    seq0 = int(ours(lc, 2, "getdbseqnum", "registry.tdb"), 16)
    failures: list = []

    def create_keys(pnn: int) -> None:
        for i in range(10):
            r = smb.tool(pnn, "/usr/bin/net", "registry", "createkey", f"HKLM\\Software\\ctdbpy\\n{pnn}k{i}")
            if r.returncode != 0:
                failures.append((pnn, i, r.stdout, r.stderr))

    threads = [threading.Thread(target=create_keys, args=(pnn,)) for pnn in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    for pnn in (0, 1):
        r = smb.tool(pnn, "/usr/bin/net", "registry", "enumerate", "HKLM\\Software\\ctdbpy")
        assert r.returncode == 0 and len(re.findall(r"^Keyname += n[01]k\d$", r.stdout, re.M)) == 20, r
    seqs = {int(ours(lc, pnn, "getdbseqnum", "registry.tdb"), 16) for pnn in (0, 1, 2)}
    assert len(seqs) == 1 and seqs.pop() >= seq0 + 20, seqs

    holder = smb.hold_open(0, "held.txt")
    try:
        # node 1's smbstatus sees the open (a cluster-wide traverse), held by a process on node 0
        wait_for(lambda: "held.txt" in smb.open_files(1), timeout=20, interval=0.3,
                 what="smbstatus on node 1 to see held.txt open through node 0")
        assert re.search(r"^0:\d+ .* held\.txt ", smb.open_files(1), re.M), smb.open_files(1)
        # a delete through node 1 conflicts with the open through node 0: node 1's smbd read
        # the migrated share-mode record and our node 0 confirmed the holder (CHECK_PID_SRVID)
        out = smb.client(1, "del held.txt")
        assert "NT_STATUS_SHARING_VIOLATION" in out, out
        # ... also after a database recovery
        gen = re.search(r"^Generation:(\d+)$", ours(lc, 2, "status"), re.M).group(1)
        ours(lc, 2, "recover")
        wait_for(lambda: re.search(r"^Generation:(\d+)$", ours(lc, 2, "status"), re.M).group(1) != gen
                 and "Recovery mode:NORMAL" in ours(lc, 2, "status"), what="a new generation after ctdb recover")
        out = smb.client(1, "del held.txt")
        assert "NT_STATUS_SHARING_VIOLATION" in out, out
        assert (smb.share / "held.txt").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # closed on node 0: now node 1 may delete it
    wait_for(lambda: "held.txt" not in smb.open_files(1), timeout=20, interval=0.3, what="the open to go")
    out = smb.client(1, "del held.txt")
    assert "NT_STATUS" not in out and not (smb.share / "held.txt").exists(), out

    # a holder that died without cleaning up: node 0's parent smbd is stopped (so it cannot
    # tidy up after its child), the child serving the open is killed; node 1's smbd asks our
    # node 0 whether that process still exists (CHECK_PID_SRVID), hears no, and may delete
    smb.client(0, "put x.txt orphan.txt")
    holder = smb.hold_open(0, "orphan.txt")
    try:
        wait_for(lambda: "orphan.txt" in smb.open_files(1), timeout=20, interval=0.3, what="the open of orphan.txt")
        child = int(re.search(r"^0:(\d+) .* orphan\.txt ", smb.open_files(1), re.M).group(1))
        assert child != smb.pid(0)
        assert "NT_STATUS_SHARING_VIOLATION" in smb.client(1, "del orphan.txt")
        os.kill(smb.pid(0), signal.SIGSTOP)
        try:
            os.kill(child, signal.SIGKILL)
            wait_for(lambda: not os.path.exists(f"/proc/{child}") or
                     open(f"/proc/{child}/stat").read().split(")")[1].split()[0] == "Z", what="the child to die")
            out = smb.client(1, "del orphan.txt")
            assert "NT_STATUS" not in out and not (smb.share / "orphan.txt").exists(), out
        finally:
            os.kill(smb.pid(0), signal.SIGCONT)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    # change notify across nodes: a client waiting on node 1 hears of a file put through node 0
    # (notifyd's filters travel as CTDB_SRVID_SAMBA_NOTIFY_PROXY broadcasts)
    watcher = subprocess.Popen(["stdbuf", "-oL", SMBCLIENT, f"//{lc.address(1)}/share", "-p", str(PORT), "-U", USER,
                                "-s", str(smb.cconf)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=smb.work)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        watcher.stdin.write("notify \\\n")
        watcher.stdin.flush()
        time.sleep(1)  # the watch is registered and its filter has reached node 0's notifyd
        smb.client(0, "put x.txt notified.txt")
        wait_for(lambda: any("notified.txt" in ln for ln in lines), timeout=20, what="the change notification on node 1")
        assert any(re.fullmatch(r"[0-9a-f]{4} notified\.txt\n", ln) for ln in lines), lines
    finally:
        watcher.kill()
        watcher.wait()

    # every file is closed: smbd deleted the share-mode records (empty record, then
    # SCHEDULE_FOR_DELETION) and vacuuming takes them out of every node's locking.tdb
    def vacuumed() -> bool:
        return all(ours(lc, pnn, "cattdb", "locking.tdb").endswith("Dumped 0 record(s)\n") for pnn in (0, 1, 2))
    wait_for(vacuumed, timeout=30, interval=0.5, what="the deleted share-mode records to be vacuumed")
    out = smb.client(1, "get notified.txt back.txt")
    assert (smb.work / "back.txt").read_text() == "x\n", out
    smb.check_alive()


def test_surviving_smbd_after_a_node_dies(local_cluster, samba) -> None:
    """A node's ctdbd dies while its smbd serves an open file: that smbd exits (as with
    4.17, it cannot live without its daemon), the other node's smbd keeps serving and
    can delete the file the dead node's client had open."""
    lc = local_cluster(n=3, loopback=True, loopback_base=237)
    lc.wait_ok(timeout=60)
    smb = samba(lc)
    smb.add_user(0)
    (smb.work / "x.txt").write_text("x\n")
    smb.client(0, "put x.txt victim.txt")
    holder = smb.hold_open(1, "victim.txt")
    try:
        wait_for(lambda: re.search(r"^1:\d+ .* victim\.txt ", smb.open_files(0), re.M), timeout=20, interval=0.3,
                 what="smbstatus on node 0 to see victim.txt open through node 1")
        assert "NT_STATUS_SHARING_VIOLATION" in smb.client(0, "del victim.txt")
        lc.kill(1)
        p1 = smb.procs[1][0]
        p1.wait(timeout=30)  # smbd lost its daemon
        wait_for(lambda: "pnn:1 127.0.0.238      DISCONNECTED|UNHEALTHY|INACTIVE" in ours(lc, 0, "status")
                 and "Recovery mode:NORMAL" in ours(lc, 0, "status"), timeout=30, what="node 1 to be gone")
        out = smb.client(0, "del victim.txt")
        assert "NT_STATUS" not in out and not (smb.share / "victim.txt").exists(), out
        out = smb.client(0, "put x.txt after.txt; get after.txt after-copy.txt; ls")
        assert (smb.work / "after-copy.txt").read_text() == "x\n" and "after.txt" in out
        smb.check_alive(0)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    # node 1 comes back and its smbd starts as soon as the daemon's socket is there,
    # before the node has joined: its attaches wait for the recovery, which brings the
    # persistent databases (the user in passdb.tdb, the machine SID in secrets.tdb) back
    stop_group(smb.procs[1][0])
    lc.start(1)
    wait_for(lambda: os.path.exists(lc.socket(1)), timeout=30, interval=0.02, what="node 1's socket")
    smb.start_one(1)
    out = smb.client(1, "get after.txt after-1.txt")
    assert (smb.work / "after-1.txt").read_text() == "x\n", out
    sids = [smb.tool(pnn, "/usr/bin/net", "getlocalsid").stdout for pnn in (0, 1)]
    assert sids[0] == sids[1] and sids[0].startswith("SID for domain CTDBPYSMB is: S-1-5-21-"), sids
    smb.check_alive()
