"""Debian's real Samba 4.17 `winbindd` with `clustering = yes` against our ctdbd.

Each test runs three of our daemons on loopback addresses (127.0.0.17-19, 24-26) and a
winbindd on node 0 and one on node 1, each with its own self-contained smb.conf (made by
test_real_smbd.smb_conf) on its own node's unix socket, as a standalone server whose
local SAM (passdb.tdb), machine SID (secrets.tdb) and idmap (the tdb backend's
winbindd_idmap.tdb) are persistent clustered databases. winbindd serves the local SAM
through samba-dcerpcd, which it starts on demand (`--np-helper`: named pipes under the
node's own directory, no TCP listener). `wbinfo` has no option for winbindd's socket
directory (the 4.17 libwbclient always uses /run/samba/winbindd), so it runs in a
private mount namespace in which the node's own run directory is mounted on /run/samba.
Nothing talks to anything but loopback (winbindd itself opens no network socket here).

What the tests show: winbindd starts on both nodes and answers; a user added through node
0 (`smbpasswd -a`) is listed, looked up and authenticated by node 1's winbindd with one
SID (one machine SID in the clustered secrets.tdb); SIDs mapped to ids on one node get
the same ids on the other, ids allocated through both nodes at once never collide (the
high-water marks are in the clustered winbindd_idmap.tdb, changed in Samba's g_lock +
TRANS3_COMMIT transactions), and node 2, which runs no winbindd, holds every mapping;
winbindd on a node whose ctdbd dies exits, and after the node comes back a new winbindd
there finds every mapping and allocates after them. Debian's nmbd with clustering = yes
also runs here (see test_nmbd_with_clustering for how its broadcasts stay in our base)."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from tests.cluster.helpers import wait_for
from tests.interop.test_real_smbd import ours, smb_conf, stop_group

WINBINDD = "/usr/sbin/winbindd"
WBINFO = "/usr/bin/wbinfo"
NMBD = "/usr/sbin/nmbd"
PORT = 44571  # smbd is not started, but the conf names a port of our own all the same
NMB_PORT = 44577  # nmbd's name service port (-p), instead of 137
PASSWORD = "ctdb-py-secret"
IDS = (100000, 199999)

pytestmark = [pytest.mark.slow, pytest.mark.interop,
              pytest.mark.skipif(not os.path.exists(WINBINDD),
                                 reason="Debian's winbind package (/usr/sbin/winbindd) is not installed"),
              pytest.mark.skipif(os.geteuid() != 0, reason="wbinfo runs in a mount namespace of its own (root)")]


def winbind_globals(d: Path) -> str:
    return f"""	winbindd socket directory = {d}/run/winbindd
	idmap config * : backend = tdb
	idmap config * : range = {IDS[0]}-{IDS[1]}
	winbind enum users = yes
	winbind enum groups = yes
	rpc start on demand helpers = yes
"""


class Winbind:
    """winbindd on some nodes of a loopback cluster of our daemons."""

    def __init__(self, lc, tmp_path: Path, nodes: tuple[int, ...]) -> None:
        self.lc, self.tmp, self.nodes = lc, tmp_path, nodes
        self.share = tmp_path / "share"  # only for the conf's [share]
        self.share.mkdir()
        self.procs: dict[int, tuple[subprocess.Popen, Path]] = {}

    def dir(self, pnn: int) -> Path:
        return self.tmp / f"winbindd{pnn}"

    def conf(self, pnn: int) -> Path:
        return self.dir(pnn) / "smb.conf"

    def start(self) -> None:
        for pnn in self.nodes:  # one after the other: node 0's creates the machine SID
            self.start_one(pnn)

    def start_one(self, pnn: int) -> None:
        d = self.dir(pnn)
        (d / "run").mkdir(parents=True, exist_ok=True)
        conf = smb_conf(d, self.lc, pnn, self.share, port=PORT, extra=winbind_globals(d))
        log = d / "winbindd.log"
        with open(log, "ab") as out:
            p = subprocess.Popen([WINBINDD, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(conf)],
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d,
                                 start_new_session=True)
        self.procs[pnn] = (p, log)

        def up() -> bool:
            self.check_alive(pnn)
            return self.ping(pnn)
        wait_for(up, timeout=60, interval=0.2, what=f"winbindd on node {pnn} to answer a ping")

    def in_namespace(self, pnn: int, *cmd: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """cmd with node pnn's run directory on /run/samba (where libwbclient looks)."""
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               'mount --bind "$0" /run/samba && exec "$@"', str(self.dir(pnn) / "run"), *cmd],
                              capture_output=True, text=True, timeout=60, input=stdin)

    def wbinfo(self, pnn: int, *args: str) -> subprocess.CompletedProcess:
        return self.in_namespace(pnn, WBINFO, *args)

    def ok(self, pnn: int, *args: str) -> str:
        r = self.wbinfo(pnn, *args)
        assert r.returncode == 0, (pnn, args, r.stdout, r.stderr)
        return r.stdout

    def ping(self, pnn: int) -> bool:
        r = self.wbinfo(pnn, "--ping")
        return r.returncode == 0 and "Ping to winbindd succeeded" in r.stdout

    def tool(self, pnn: int, *cmd: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """A Samba tool with node pnn's smb.conf, seeing node pnn's winbindd."""
        return self.in_namespace(pnn, cmd[0], "-c" if cmd[0] == "/usr/bin/smbpasswd" else "-s", str(self.conf(pnn)),
                                 *cmd[1:], stdin=stdin)

    def check_alive(self, pnn: int | None = None) -> None:
        for n in (self.nodes if pnn is None else (pnn,)):
            p, log = self.procs[n]
            assert p.poll() is None, f"winbindd on node {n} exited with {p.returncode}:\n{log.read_text()[-4000:]}"

    def stop_one(self, pnn: int) -> None:
        stop_group(self.procs[pnn][0])
        # samba-dcerpcd, started on demand by winbindd, is a daemon in a session of its
        # own; its rpcd_* workers exit when it does
        pidfile = self.dir(pnn) / "pid" / "samba-dcerpcd.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                ours_ = str(self.conf(pnn)).encode() in f.read()
        except (OSError, ValueError, IndexError):
            return
        if ours_:
            try:
                os.kill(pid, signal.SIGTERM)
                wait_for(lambda: not os.path.exists(f"/proc/{pid}/cmdline") or
                         open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z",
                         timeout=10, what="samba-dcerpcd to exit")
            except (ProcessLookupError, AssertionError):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop(self) -> None:
        for pnn in self.procs:
            self.stop_one(pnn)

    def add_user(self, pnn: int, name: str = "root") -> None:
        r = self.tool(pnn, "/usr/bin/smbpasswd", "-a", "-s", name, stdin=f"{PASSWORD}\n" * 2)
        assert r.returncode == 0, (r.stdout, r.stderr)

    def gid(self, pnn: int, sid: str) -> int:
        return int(self.ok(pnn, "--sid-to-gid", sid))

    def unix_ids(self, pnn: int, sids: list[str]) -> dict[str, str]:
        out = self.ok(pnn, "--sids-to-unix-ids", ",".join(sids))
        return dict(re.findall(r"^(S-[\d-]+) -> (.*)$", out, re.M))


@pytest.fixture
def winbind(local_cluster, tmp_path):
    made: list[Winbind] = []

    def make(lc, nodes: tuple[int, ...] = (0, 1)) -> Winbind:
        w = Winbind(lc, tmp_path, nodes)
        made.append(w)
        w.start()
        return w

    yield make
    for w in made:
        w.stop()


def idmap_records(lc, pnn: int) -> dict[str, str]:
    """The SID -> id mappings in node pnn's copy of winbindd_idmap.tdb."""
    dump = ours(lc, pnn, "catdb", "winbindd_idmap.tdb")
    return dict(re.findall(r'^key\(\d+\) = "(S-[\d-]+)\\00"\n(?:[a-z]+: .*\n)*data\(\d+\) = "((?:GID|UID) \d+)\\00"$',
                           dump, re.M))


def test_users_sids_and_idmap_shared_by_both_nodes(local_cluster, winbind) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=17)
    lc.wait_ok(timeout=60)
    wb = winbind(lc)

    # a local SAM user added through node 0: both winbindds list it and give it one SID,
    # in the one machine SID's domain; node 1's authenticates it against node 0's password
    wb.add_user(0)
    machine = re.fullmatch(r"SID for domain CTDBPYSMB is: (S-1-5-21-\d+-\d+-\d+)\n",
                           wb.tool(1, "/usr/bin/net", "getlocalsid").stdout).group(1)
    sids = set()
    for pnn in (0, 1):
        assert wb.ok(pnn, "--domain-users", "--domain=CTDBPYSMB") == "CTDBPYSMB\\root\n"
        m = re.fullmatch(r"(S-1-5-21-\d+-\d+-\d+-\d+) SID_USER \(1\)\n", wb.ok(pnn, "--name-to-sid", "CTDBPYSMB\\root"))
        assert m, pnn
        sids.add(m.group(1))
        assert wb.ok(pnn, "--uid-to-sid", "0") == m.group(1) + "\n"  # root: uid 0 through passdb
    (sid,) = sids
    assert sid.rsplit("-", 1)[0] == machine, (sid, machine)
    assert wb.ok(1, "--sid-to-name", sid) == "CTDBPYSMB\\root 1\n"
    assert wb.ok(0, "--sid-to-name", "S-1-5-32-544") == "BUILTIN\\Administrators 4\n"
    r = wb.wbinfo(1, "--authenticate", f"root%{PASSWORD}")
    assert "plaintext password authentication succeeded" in r.stdout, (r.stdout, r.stderr)
    r = wb.wbinfo(1, "--authenticate", "root%wrong")
    assert "plaintext password authentication failed" in r.stdout, (r.stdout, r.stderr)

    # idmap: well-known SIDs (idmap config * : backend = tdb) mapped through one node or
    # the other in turn; each node then gives every SID the id the first one allocated
    wellknown = ["S-1-1-0", "S-1-5-11", "S-1-5-2", "S-1-5-4", "S-1-5-6", "S-1-5-7"]
    first = {sid: wb.gid(i % 2, sid) for i, sid in enumerate(wellknown)}
    assert len(set(first.values())) == len(wellknown) and all(IDS[0] <= g <= IDS[1] for g in first.values()), first
    for pnn in (0, 1):
        assert {s: wb.gid(pnn, s) for s in wellknown} == first
        assert wb.unix_ids(pnn, wellknown) == {s: f"gid {g}" for s, g in first.items()}
        assert wb.ok(pnn, "--gid-to-sid", str(first["S-1-5-11"])) == "S-1-5-11\n"

    # ids allocated through both nodes, in turn and then at once, are never handed out twice
    gids = [int(re.fullmatch(r"New gid: (\d+)\n", wb.ok(i % 2, "--allocate-gid")).group(1)) for i in range(6)]
    assert gids == sorted(gids) and len(set(gids)) == 6 and not set(gids) & set(first.values()), gids
    uids: dict[int, list[int]] = {0: [], 1: []}
    failures: list = []

    def allocate(pnn: int) -> None:
        for _ in range(10):
            r = wb.wbinfo(pnn, "--allocate-uid")
            m = re.fullmatch(r"New uid: (\d+)\n", r.stdout)
            if r.returncode != 0 or not m:
                failures.append((pnn, r.stdout, r.stderr))
            else:
                uids[pnn].append(int(m.group(1)))

    threads = [threading.Thread(target=allocate, args=(pnn,)) for pnn in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    every = uids[0] + uids[1]
    assert len(every) == 20 and len(set(every)) == 20 and all(IDS[0] <= u <= IDS[1] for u in every), uids

    # node 2 runs no winbindd and holds every mapping: the idmap database is clustered
    assert re.search(r"^dbid:\S+ name:winbindd_idmap\.tdb path:\S+ PERSISTENT$", ours(lc, 2, "getdbmap"), re.M)
    assert idmap_records(lc, 2) == {s: f"GID {g}" for s, g in first.items()}

    # a BUILTIN group mapped through node 0 (`net sam createbuiltingroup` asks node 0's
    # winbindd for a gid and writes group_mapping.tdb): node 1 maps the SID to that gid
    r = wb.tool(0, "/usr/bin/net", "sam", "createbuiltingroup", "Administrators")
    assert r.returncode == 0, (r.stdout, r.stderr)
    admins = wb.gid(0, "S-1-5-32-544")
    assert wb.gid(1, "S-1-5-32-544") == admins and admins not in set(first.values()) | set(gids), admins
    wb.check_alive()


def test_winbindd_when_its_node_dies(local_cluster, winbind) -> None:
    """A node's ctdbd dies: its winbindd exits at once (as smbd does, it cannot live
    without its daemon); the other node's winbindd keeps mapping and allocating; a
    winbindd started on the node when it is back finds what was allocated meanwhile."""
    lc = local_cluster(n=3, loopback=True, loopback_base=24)
    lc.wait_ok(timeout=60)
    wb = winbind(lc)
    everyone = wb.gid(1, "S-1-1-0")
    assert wb.gid(0, "S-1-1-0") == everyone

    lc.kill(1)
    p1, log1 = wb.procs[1]
    assert p1.wait(timeout=30) != 0
    assert "cluster fatal event: failed to read data from ctdbd" in log1.read_text()
    assert not wb.ping(1)
    wait_for(lambda: "pnn:1 127.0.0.25       DISCONNECTED|UNHEALTHY|INACTIVE" in ours(lc, 0, "status")
             and "Recovery mode:NORMAL" in ours(lc, 0, "status"), timeout=30, what="node 1 to be gone")
    assert wb.gid(0, "S-1-1-0") == everyone
    auth = wb.gid(0, "S-1-5-11")  # allocated while node 1 is away
    assert auth != everyone
    wb.check_alive(0)

    # node 1 comes back; a winbindd started there as soon as the daemon's socket is up
    # (before the node has joined) has the mapping made without it, and allocates after it
    wb.stop_one(1)
    lc.start(1)
    wait_for(lambda: os.path.exists(lc.socket(1)), timeout=30, interval=0.02, what="node 1's socket")
    wb.start_one(1)
    assert wb.gid(1, "S-1-5-11") == auth and wb.gid(1, "S-1-1-0") == everyone
    new = wb.gid(1, "S-1-5-2")
    assert new not in (auth, everyone) and wb.gid(0, "S-1-5-2") == new
    assert idmap_records(lc, 1) == idmap_records(lc, 2) == {"S-1-1-0": f"GID {everyone}", "S-1-5-11": f"GID {auth}",
                                                           "S-1-5-2": f"GID {new}"}
    wb.check_alive()


def name_query(address: str, name: str, suffix: int = 0x20, timeout: float = 1.0) -> list[str] | None:
    """A unicast NetBIOS name query (RFC 1002 4.2.12) for name<suffix> to nmbd's name
    service port at address; the addresses of a positive answer ([] if negative, None
    if none came)."""
    raw = name.upper().ljust(15).encode()[:15] + bytes([suffix])
    encoded = bytes([32]) + bytes(b for c in raw for b in (0x41 + (c >> 4), 0x41 + (c & 15))) + b"\0"
    xid = os.getpid() & 0xFFFF
    query = struct.pack(">HHHHHH", xid, 0x0100, 1, 0, 0, 0) + encoded + struct.pack(">HH", 0x20, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.17", 0))  # our own base, not the wildcard address
        s.settimeout(timeout)
        s.sendto(query, (address, NMB_PORT))
        try:
            reply, _ = s.recvfrom(1024)
        except TimeoutError:
            return None
    rxid, flags, _qd, an = struct.unpack(">HHHH", reply[:8])
    assert rxid == xid and flags & 0x8000, reply
    if flags & 0xF or an == 0:
        return []
    pos = 12
    while reply[pos]:  # the answer's name
        pos += reply[pos] + 1
    rdlength = struct.unpack(">H", reply[pos + 9:pos + 11])[0]
    rdata = reply[pos + 11:pos + 11 + rdlength]
    return [socket.inet_ntoa(rdata[i + 2:i + 6]) for i in range(0, len(rdata), 6)]


def test_nmbd_with_clustering(local_cluster, tmp_path) -> None:
    """Debian's nmbd with clustering = yes on nodes 0 and 1, only on their loopback
    addresses: the interface is a /30 (127.0.0.16/30), so nmbd's broadcasts go to
    127.0.0.19 (node 2's address, where nothing listens on UDP) and never to another
    base; its name service is on port 44577. nmbd reaches our daemon only for Samba's
    messaging (no database): an `smbcontrol` ping crosses nodes, and when a node's
    ctdbd dies its nmbd exits as winbindd does, while the other keeps answering."""
    if not os.path.exists(NMBD):
        pytest.skip("Debian's samba package (/usr/sbin/nmbd) is not installed")
    lc = local_cluster(n=3, loopback=True, loopback_base=17)
    lc.wait_ok(timeout=60)
    share = tmp_path / "share"
    share.mkdir()
    procs: dict[int, tuple[subprocess.Popen, Path, Path]] = {}
    try:
        for pnn in (0, 1):
            d = tmp_path / f"nmbd{pnn}"
            # one NetBIOS name per node: two nmbds on one broadcast subnet defend a name
            # against each other (smb_conf gives each its own socket directory: in the
            # system's /run/samba/nmbd, shared, the second nmbd's bind of its
            # "unexpected" socket failed now and then)
            extra = f"""	interfaces = {lc.address(pnn)}/30
	disable netbios = no
	netbios name = CTDBPYNMB{pnn}
	local master = no
	preferred master = no
	domain master = no
	dns proxy = no
"""
            conf = smb_conf(d, lc, pnn, share, port=PORT, extra=extra)
            log = d / "nmbd.log"
            with open(log, "ab") as out:
                p = subprocess.Popen([NMBD, "--foreground", "--no-process-group", "--debug-stdout", "-p", str(NMB_PORT),
                                      "-s", str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=d, start_new_session=True)
            procs[pnn] = (p, log, conf)

        def answers(pnn: int) -> bool:
            p, log, _ = procs[pnn]
            assert p.poll() is None, f"nmbd on node {pnn} exited with {p.returncode}:\n{log.read_text()[-4000:]}"
            return name_query(lc.address(pnn), f"CTDBPYNMB{pnn}") == [lc.address(pnn)]

        for pnn in (0, 1):  # the name is registered (broadcast, unanswered) and then answered for
            wait_for(lambda: answers(pnn), timeout=60, interval=0.5, what=f"nmbd on node {pnn} to answer for its name")
        # not a WINS server: each answers for its own names only
        assert name_query(lc.address(0), "CTDBPYNMB1") is None

        # Samba's messaging between the nodes' nmbds runs through our daemons
        for src, dst in ((0, 1), (1, 0)):
            pid = procs[dst][0].pid
            r = subprocess.run(["/usr/bin/smbcontrol", "-s", str(procs[src][2]), f"{dst}:{pid}", "ping"],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and r.stdout == f"PONG from pid {dst}:{pid}\n", (src, dst, r)

        lc.kill(1)
        p1, log1, _ = procs[1]
        assert p1.wait(timeout=30) != 0
        assert "cluster fatal event: failed to read data from ctdbd" in log1.read_text()
        assert answers(0)
    finally:
        for p, _, _ in procs.values():
            stop_group(p)
