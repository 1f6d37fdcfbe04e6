"""Debian's real Samba 4.17 `smbd` with `clustering = yes` against our ctdbd.

Three of our daemons on 127.0.0.231-233; an smbd on node 0 and one on node 1, each
talking to its own node's unix socket, both exporting the same directory (standing in
for the cluster file system). Debian's `smbclient` puts and gets files through both, and
we look at smbd's clustered databases through our `ctdb` tool: they are attached on every
node (also node 2, which runs no smbd), the share-mode record of a file opened through
both smbds migrates between the nodes, and `smbstatus` on one node sees (through a
cluster-wide traverse of our daemons) a file held open through the other node's smbd.
Everything stays on loopback.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.helpers import wait_for

SMBD = "/usr/sbin/smbd"
SMBCLIENT = "/usr/bin/smbclient"
SMBSTATUS = "/usr/bin/smbstatus"
PORT = 44531
USER = "root%ctdb-py-secret"
BASE = 231

pytestmark = [pytest.mark.slow, pytest.mark.interop,
              pytest.mark.skipif(not os.path.exists(SMBD), reason="Debian's samba package (/usr/sbin/smbd) is not installed")]


def ours(lc, pnn: int, *args: str) -> str:
    tool = os.path.join(os.path.dirname(sys.executable), "ctdb")
    env = dict(os.environ, CTDB_SOCKET=lc.socket(pnn))
    r = subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, pnn, r.stdout, r.stderr)
    return r.stdout


def smb_conf(d: Path, lc, pnn: int, share: Path) -> Path:
    """A self-contained smb.conf: every directory under d, one address, one high port."""
    for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "binddns"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "smb.conf"
    conf.write_text(f"""[global]
	clustering = yes
	ctdbd socket = {lc.socket(pnn)}
	netbios name = CTDBPYSMB{pnn}
	workgroup = CTDBPYTEST
	server role = standalone server
	private dir = {d}/private
	lock directory = {d}/lock
	state directory = {d}/state
	cache directory = {d}/cache
	pid directory = {d}/pid
	ncalrpc dir = {d}/ncalrpc
	binddns dir = {d}/binddns
	passdb backend = tdbsam:{d}/private/passdb.tdb
	smb ports = {PORT}
	interfaces = {lc.address(pnn)}/8
	bind interfaces only = yes
	disable netbios = yes
	disable spoolss = yes
	load printers = no
	printcap name = /dev/null
	rpc start on demand helpers = no
	log level = 3
	kernel oplocks = no
[share]
	path = {share}
	read only = no
""")
    return conf


def client_conf(d: Path) -> Path:
    """smbclient/smbstatus must not read /etc/samba/smb.conf or write under /var."""
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "client.conf"
    conf.write_text(f"""[global]
	lock directory = {d}
	state directory = {d}
	cache directory = {d}
	private dir = {d}
	disable netbios = yes
""")
    return conf


def stop_group(p: subprocess.Popen) -> None:
    """SIGTERM smbd's session (the parent and the children it forked per connection)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            break
        try:
            p.wait(timeout=10)
            time.sleep(0.2)  # children notice their parent's exit
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def listening(address: str) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((address, PORT)) == 0


def smbclient(conf: Path, address: str, commands: str, cwd: Path) -> str:
    r = subprocess.run([SMBCLIENT, f"//{address}/share", "-p", str(PORT), "-U", USER, "-s", str(conf),
                        "-c", commands], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert r.returncode == 0, (address, commands, r.stdout, r.stderr)
    return r.stdout + r.stderr


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


def test_real_smbd_on_our_cluster(local_cluster, tmp_path) -> None:
    # deleted share-mode records must stay until we have looked at them
    lc = local_cluster(n=3, loopback=True, loopback_base=BASE, tunables=(("VacuumInterval", "3600"),))
    lc.wait_ok(timeout=30)
    share = tmp_path / "share"  # the "cluster file system" both smbds export
    share.mkdir()
    cconf = client_conf(tmp_path / "client")
    work = tmp_path / "work"
    work.mkdir()

    smbds: list[tuple[subprocess.Popen, Path]] = []
    try:
        for pnn in (0, 1):
            d = tmp_path / f"smbd{pnn}"
            conf = smb_conf(d, lc, pnn, share)
            log = d / "smbd.log"
            with open(log, "wb") as out:
                # a session of its own: smbd's children are ended with it (killpg)
                p = subprocess.Popen([SMBD, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(conf)],
                                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d,
                                     start_new_session=True)
            smbds.append((p, log))
        for pnn, (p, log) in enumerate(smbds):
            def up(p=p, pnn=pnn, log=log) -> bool:
                assert p.poll() is None, f"smbd on node {pnn} exited:\n{log.read_text()[-4000:]}"
                return listening(lc.address(pnn))
            wait_for(up, timeout=60, interval=0.2, what=f"smbd on node {pnn} to listen")

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

        # a user in passdb.tdb (a persistent database: g_lock + TRANS3_COMMIT) through node 0;
        # node 1's smbd authenticates it from its own copy
        r = subprocess.run(["/usr/bin/smbpasswd", "-a", "-s", "-c", str(tmp_path / "smbd0" / "smb.conf"),
                            USER.split("%")[0]], input=f"{USER.split('%')[1]}\n" * 2,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.stdout, r.stderr)

        # files in through node 0, out through node 1 and back
        (work / "in0.txt").write_text("written through node 0\n")
        out = smbclient(cconf, lc.address(0), "put in0.txt a.txt; ls", work)
        assert re.search(r"^\s+a\.txt\s+A\s+23 ", out, re.M), out
        out = smbclient(cconf, lc.address(1), "get a.txt out1.txt; put out1.txt b.txt; ls", work)
        assert (work / "out1.txt").read_text() == "written through node 0\n"
        assert re.search(r"^\s+b\.txt\s+A\s+23 ", out, re.M), out
        smbclient(cconf, lc.address(0), "get b.txt out0.txt", work)
        assert (work / "out0.txt").read_text() == "written through node 0\n"
        assert (share / "a.txt").read_text() == (share / "b.txt").read_text() == "written through node 0\n"

        # the share-mode record of a.txt (locking.tdb key = file_id: dev, inode, extid)
        st = os.stat(share / "a.txt")
        key = struct.pack("<QQQ", st.st_dev, st.st_ino, 0)
        seen = []
        for pnn in (0, 1, 0):
            smbclient(cconf, lc.address(pnn), "get a.txt again.txt", work)
            hdr = record(lc, pnn, "locking.tdb", key)
            assert hdr is not None and hdr["dmaster"] == pnn, (pnn, hdr)
            seen.append(hdr["rsn"])
        assert seen[0] < seen[1] < seen[2], seen  # each new data master bumped the RSN

        # a file held open through node 0's smbd is seen by smbstatus on node 1
        # (a cluster-wide traverse of locking.tdb by our daemons)
        holder = subprocess.Popen([SMBCLIENT, f"//{lc.address(0)}/share", "-p", str(PORT), "-U", USER, "-s", str(cconf)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, cwd=work)
        try:
            holder.stdin.write("open b.txt\n")
            holder.stdin.flush()
            status_conf = tmp_path / "smbd1" / "smb.conf"

            def held() -> str | None:
                r = subprocess.run([SMBSTATUS, "-L", "-s", str(status_conf)], capture_output=True, text=True, timeout=30)
                return r.stdout if re.search(r"b\.txt", r.stdout) else None
            wait_for(held, timeout=20, interval=0.5, what="smbstatus on node 1 to see b.txt open through node 0")
            locks = held()
            assert locks is not None and re.search(r"^0:\d+ ", locks, re.M), locks  # held by a process on node 0
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)

        for pnn, (p, log) in enumerate(smbds):
            assert p.poll() is None, f"smbd on node {pnn} exited:\n{log.read_text()[-4000:]}"
    finally:
        for p, _ in smbds:
            stop_group(p)
