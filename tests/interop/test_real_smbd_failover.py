"""Debian's real Samba 4.17 `smbd` (`clustering = yes`) in a namespace cluster of our
daemons, with public addresses: what an administrator expects when an address moves.

Three of our daemons run in network namespaces (contrib/localcluster), each node has
one public address on its eth1, and each node's namespace runs an smbd on port 445
(all addresses of the namespace), talking to that node's daemon over its unix socket.
All smbds export one directory, which stands in for the cluster file system.
`smbclient` runs in the client namespace and connects to a public address.

* smbd registers the client's connection with TCP_CLIENT: `ctdb gettickles` lists it
  on the holder and, pushed with TCP_ADD, on the other nodes.
* The holder dies (it drops off the public network, its ctdbd and smbd are SIGKILLed):
  a survivor takes the address, sends tickle ACKs, and the client's connection is reset
  within seconds instead of hanging in TCP retransmissions; a new smbclient to the same
  address reads, through the new holder's smbd, what was written before.
* A planned release (`ctdb moveip`, `ctdb disable`): our daemon sends RELEASE_IP to its
  local clients, the holder's smbd logs it and drops the connection, the client is
  disconnected at once and reconnects through the new holder.

Only traffic inside namespaces the test creates."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ctdb_localcluster import netns
from ctdb_localcluster.cluster import CLIENT_ADDRESS, LocalCluster
from tests.cluster.helpers import kernel_holders, wait_for
from tests.interop.test_real_smbd import smb_conf, stop_group

SMBD = "/usr/sbin/smbd"
SMBCLIENT = "/usr/bin/smbclient"
SMBPASSWD = "/usr/bin/smbpasswd"
PORT = 445
USER = "root%ctdb-py-secret"
ALL = [0, 1, 2]
PUBLIC = ["198.51.100.101", "198.51.100.102", "198.51.100.103"]
CONTENT = "written before the address moved\n"

pytestmark = [pytest.mark.slow, pytest.mark.interop, pytest.mark.netns,
              pytest.mark.skipif(not os.path.exists(SMBD), reason="Debian's samba package (/usr/sbin/smbd) is not installed")]


# ------------------------------------------------------------------------------ helpers


def ctdb(lc: LocalCluster, pnn: int, *args: str) -> str:
    return lc.run(pnn, "ctdb", *args, timeout=30).stdout


def holder_of(lc: LocalCluster, ip: str) -> int | None:
    """The node holding ip, when the kernel and `ctdb ip` on every running node agree."""
    h = kernel_holders(lc, PUBLIC, ALL)[ip]
    if len(h) != 1:
        return None
    for p in ALL:
        if lc.running(p):
            rows = [ln.strip("|").split("|") for ln in ctdb(lc, p, "-X", "ip").splitlines()[1:] if ln]
            if {r[0]: int(r[1]) for r in rows}.get(ip) != h[0]:
                return None
    return h[0]


def tickles(lc: LocalCluster, pnn: int, ip: str) -> set[tuple[str, int, str, int]]:
    """`ctdb gettickles ip` on node pnn: {(src ip, src port, dst ip, dst port)}."""
    out = ctdb(lc, pnn, "gettickles", ip)
    return {(m[0], int(m[1]), m[2], int(m[3]))
            for m in re.findall(r"^SRC: (\S+):(\d+)\s+DST: (\S+):(\d+)$", out, re.M)}


def client_ports(lc: LocalCluster, ip: str) -> set[int]:
    """Local ports of the client namespace's established TCP connections to ip:445."""
    out = lc.client("ss", "-Htn", "state", "established", "dst", f"{ip}:{PORT}", timeout=10).stdout
    return {int(m) for m in re.findall(rf"^\S*\s*\S+\s+\S+\s+{re.escape(CLIENT_ADDRESS)}:(\d+)\s", out, re.M)}


class Session:
    """A long-lived interactive smbclient in the client namespace; its output (line
    buffered through stdbuf: a pipe would hold it back) is collected by a thread, one
    (monotonic time, line) per line."""

    def __init__(self, samba: Samba, ip: str) -> None:
        self.ip = ip
        self.lines: list[tuple[float, str]] = []
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", samba.lc.client_ns, "stdbuf", "-oL", "-eL", SMBCLIENT, f"//{ip}/share", "-p", str(PORT), "-U", USER,
             "-s", str(samba.cconf)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=samba.work,
            start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append((time.monotonic(), line))

    def send(self, command: str) -> None:
        """Feed smbclient a command; nothing when it has exited (it does so by itself
        when its keepalive echo finds the connection gone)."""
        assert self.p.stdin is not None
        try:
            self.p.stdin.write(command + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            assert self.p.poll() is not None or self.p.wait(timeout=5) is not None

    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def close(self) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.p.wait()
        try:
            self.p.stdin.close()
        except OSError:
            pass


class Samba:
    """smbd in every node's namespace, one shared directory, clients in the client namespace."""

    def __init__(self, lc: LocalCluster, tmp: Path) -> None:
        self.lc, self.tmp = lc, tmp
        self.share = tmp / "share"
        self.share.mkdir()
        self.work = tmp / "work"
        self.work.mkdir()
        cdir = tmp / "client"
        cdir.mkdir()
        self.cconf = cdir / "client.conf"
        self.cconf.write_text(f"""[global]
	lock directory = {cdir}
	state directory = {cdir}
	cache directory = {cdir}
	private dir = {cdir}
	disable netbios = yes
""")
        self.procs: dict[int, subprocess.Popen] = {}
        self.sessions: list[Session] = []

    def conf(self, pnn: int) -> Path:
        return self.tmp / f"smbd{pnn}" / "smb.conf"

    def log(self, pnn: int) -> str:
        return (self.tmp / f"smbd{pnn}" / "smbd.log").read_text(errors="replace")

    def start(self, pnn: int) -> None:
        d = self.tmp / f"smbd{pnn}"
        conf = smb_conf(d, self.lc, pnn, self.share, port=PORT, own_address=False)
        with open(d / "smbd.log", "ab") as out:
            # `ip netns exec` execs smbd: the pid (and the session) is smbd's
            self.procs[pnn] = subprocess.Popen(
                ["ip", "netns", "exec", self.lc.node_ns(pnn), SMBD, "--foreground", "--no-process-group",
                 "--debug-stdout", "-s", str(conf)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d, start_new_session=True)

        def up() -> bool:
            p = self.procs[pnn]
            assert p.poll() is None, f"smbd on node {pnn} exited with {p.returncode}:\n{self.log(pnn)[-4000:]}"
            return bool(self.lc.run(pnn, "ss", "-Hltn", f"sport = :{PORT}", timeout=10).stdout.strip())
        wait_for(up, timeout=60, interval=0.2, what=f"smbd on node {pnn} to listen")

    def kill(self, pnn: int) -> None:
        p = self.procs.pop(pnn)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def stop(self) -> None:
        for s in self.sessions:
            s.close()
        for p in self.procs.values():
            stop_group(p)
        self.procs.clear()

    def add_user(self, pnn: int) -> None:
        name, password = USER.split("%")
        r = subprocess.run([SMBPASSWD, "-c", str(self.conf(pnn)), "-a", "-s", name], input=f"{password}\n" * 2,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.stdout, r.stderr)

    def client(self, ip: str, commands: str) -> str:
        """One smbclient run in the client namespace against ip."""
        r = self.lc.client(SMBCLIENT, f"//{ip}/share", "-p", str(PORT), "-U", USER, "-s", str(self.cconf),
                           "-c", f"lcd {self.work}; {commands}", check=False, timeout=120)
        assert r.returncode == 0, (ip, commands, r.stdout, r.stderr)
        return r.stdout + r.stderr

    def session(self, ip: str) -> tuple[Session, int]:
        """An interactive smbclient on ip that has listed the share; returns it and its
        client port (the only connection of the client namespace to ip)."""
        before = client_ports(self.lc, ip)
        s = Session(self, ip)
        self.sessions.append(s)
        s.send("ls")
        wait_for(lambda: "before.txt" in s.output() or s.p.poll() is not None, timeout=30,
                 what=f"an smbclient session on {ip} to list the share")
        assert "before.txt" in s.output(), s.output()
        ports = client_ports(self.lc, ip) - before
        assert len(ports) == 1, ports
        return s, ports.pop()


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def cluster(tmp_path):
    reason = netns.available()
    if reason is not None:
        pytest.skip(f"namespace cluster: {reason}")
    lc = LocalCluster(tmp_path / "cluster", f"smbip{os.getpid() % 100000}", cleanup_at_exit=True)
    try:
        # closed connections leave the other nodes' lists at the holder's next tickle
        # update (4.17 default 20 s)
        lc.up(n=3, tunables=(("TickleUpdateInterval", "3"),))
        lc.wait_ok(timeout=60)
        wait_for(lambda: sorted(holder_of(lc, ip) for ip in PUBLIC) == ALL, timeout=60,
                 what="one public address on each node")
        yield lc
    finally:
        lc.down()


@pytest.fixture
def samba(cluster, tmp_path):
    smb = Samba(cluster, tmp_path)
    try:
        # one after the other: the first creates the machine SID in secrets.tdb
        for pnn in ALL:
            smb.start(pnn)
        smb.add_user(0)  # passdb.tdb is a persistent clustered database
        (smb.work / "before.txt").write_text(CONTENT)
        smb.client(PUBLIC[0], "put before.txt")
        assert (smb.share / "before.txt").read_text() == CONTENT
        yield smb
    finally:
        smb.stop()


def reconnect_and_read(smb: Samba, ip: str, node: int) -> None:
    """A new smbclient to ip, served by node's smbd, reads what was written before."""
    (smb.work / "after.txt").unlink(missing_ok=True)
    out = smb.client(ip, "get before.txt after.txt; ls")
    assert "before.txt" in out, out
    assert (smb.work / "after.txt").read_text() == CONTENT
    assert holder_of(smb.lc, ip) == node  # the address, hence the smbd that served us


def registered_everywhere(lc: LocalCluster, ip: str, conn: tuple[str, int, str, int]) -> bool:
    """Every node's tickle list for ip is exactly conn: the connection is there, and
    the earlier, closed ones (the fixture's `put`) are gone."""
    return all(tickles(lc, p, ip) == {conn} for p in ALL if lc.running(p))


# -------------------------------------------------------------------------------- tests


def test_connection_is_registered_and_reset_when_its_holder_dies(samba) -> None:
    lc, smb = samba.lc, samba
    leader = int(ctdb(lc, 0, "leader").strip())
    ip = next(a for a in PUBLIC if holder_of(lc, a) != leader)
    holder = holder_of(lc, ip)
    s, port = smb.session(ip)

    # 1. smbd registered the connection (TCP_CLIENT); the holder pushed it to the others
    conn = (CLIENT_ADDRESS, port, ip, PORT)
    wait_for(lambda: conn in tickles(lc, holder, ip), timeout=10, what="the connection in the holder's tickle list")
    wait_for(lambda: registered_everywhere(lc, ip, conn), timeout=10, what="the tickle list on every node to be just this connection")

    # 2. the holder dies: off the public network first (a dead machine sends no FIN or
    # RST for its sockets), then its ctdbd and smbd are SIGKILLed
    netns.ip("-n", lc.hub_ns, "link", "set", netns.hub_public_if(holder), "down")
    t0 = time.monotonic()
    lc.kill(holder)
    smb.kill(holder)
    others = [p for p in ALL if p != holder]
    wait_for(lambda: holder_of(lc, ip) in others, timeout=30, what=f"{ip} on a survivor")
    new = holder_of(lc, ip)
    t_moved = time.monotonic() - t0
    # the client's TCP connection is reset (it would otherwise hang in retransmissions
    # for minutes), without the client sending anything
    wait_for(lambda: port not in client_ports(lc, ip), timeout=20, interval=0.1,
             what="the client's connection to be reset")
    t_reset = time.monotonic() - t0
    assert t_reset < 20, t_reset
    ctdbd_log = (Path(lc.node(new).dir) / "log.ctdb").read_text(errors="replace")
    assert f"Sent tickle ACKs for 1 connection(s) to {ip}" in ctdbd_log, ctdbd_log[-3000:]
    # the smbclient session sees its connection gone
    s.send("ls")
    wait_for(lambda: s.p.poll() is not None or re.search(r"NT_STATUS_CONNECTION_(RESET|DISCONNECTED)", s.output()),
             timeout=20, what="smbclient to notice the reset")
    print(f"\n{ip}: moved {holder}->{new} after {t_moved:.1f} s, client reset after {t_reset:.1f} s")

    # a new client on the same address works through the new holder's smbd
    reconnect_and_read(smb, ip, new)
    s2, port2 = smb.session(ip)
    wait_for(lambda: (CLIENT_ADDRESS, port2, ip, PORT) in tickles(lc, new, ip), timeout=10,
             what="the new connection in the new holder's tickle list")
    s2.send("quit")


@pytest.mark.parametrize("how", ["moveip", "disable"])
def test_planned_release_disconnects_smb_clients(samba, how) -> None:
    lc, smb = samba.lc, samba
    ip = PUBLIC[1]
    holder = holder_of(lc, ip)
    s, port = smb.session(ip)
    conn = (CLIENT_ADDRESS, port, ip, PORT)
    wait_for(lambda: registered_everywhere(lc, ip, conn), timeout=10, what="the tickle list on every node to be just this connection")
    released = f"Got release IP message for our IP {ip}"

    t0 = time.monotonic()
    if how == "moveip":
        target = (holder + 1) % 3
        ctdb(lc, holder, "moveip", ip, str(target))
    else:
        ctdb(lc, holder, "disable")
    wait_for(lambda: holder_of(lc, ip) not in (None, holder), timeout=30, what=f"{ip} to leave node {holder}")
    new = holder_of(lc, ip)
    if how == "moveip":
        assert new == target
    # the holder's smbd dropped the connection: its socket was reset by the releaseip
    # event's connection killing (10.interface's kill_tcp_connections, one-way for
    # port 445), which 4.17 runs before it sends RELEASE_IP to smbd; had the socket
    # survived that, the RELEASE_IP message would have ended it
    dropped = re.compile(rf"client\[ipv4:{re.escape(CLIENT_ADDRESS)}:{port}\].*reason\[NT_STATUS_CONNECTION_RESET\]"
                         rf"|{re.escape(released)}")
    wait_for(lambda: dropped.search(smb.log(holder)), timeout=10, what="the holder's smbd to drop the connection")
    wait_for(lambda: port not in client_ports(lc, ip), timeout=20, interval=0.1,
             what="the client's connection to be gone")
    t_gone = time.monotonic() - t0
    assert t_gone < 20, t_gone
    s.send("ls")
    wait_for(lambda: s.p.poll() is not None or re.search(r"NT_STATUS_CONNECTION_(RESET|DISCONNECTED)", s.output()),
             timeout=20, what="smbclient to notice the disconnect")
    print(f"\n{how} {ip}: {holder}->{new}, client disconnected after {t_gone:.1f} s")

    reconnect_and_read(smb, ip, new)
    if how == "disable":
        ctdb(lc, holder, "enable")


def test_release_ip_message_makes_smbd_drop_the_connections_to_that_address(samba) -> None:
    """smbd registers CTDB_SRVID_RELEASE_IP with our daemon for each client connection;
    a RELEASE_IP message routed to it by the daemon, naming the connection's server
    address, makes it drop the connection at once; one naming another address does not."""
    from ctdbcore.client.sync import Client
    from ctdbcore.protocol.constants import Srvid

    lc, smb = samba.lc, samba
    ip = PUBLIC[2]
    holder = holder_of(lc, ip)
    other = next(a for a in PUBLIC if a != ip)
    s, port = smb.session(ip)
    wait_for(lambda: registered_everywhere(lc, ip, (CLIENT_ADDRESS, port, ip, PORT)), timeout=10,
             what="the connection in every node's tickle list")
    with Client(lc.socket(holder)) as c:
        c.send_message(holder, Srvid.RELEASE_IP, other.encode() + b"\0")
        n = len(s.lines)
        s.send("put before.txt second.txt")  # still served after a release of another address
        wait_for(lambda: (smb.share / "second.txt").exists() or s.p.poll() is not None, timeout=20,
                 what="a put through the session")
        assert (smb.share / "second.txt").read_text() == CONTENT, s.output()
        assert port in client_ports(lc, ip)
        assert "release IP message for our IP" not in smb.log(holder)
        t0 = time.monotonic()
        c.send_message(holder, Srvid.RELEASE_IP, ip.encode() + b"\0")
        wait_for(lambda: f"Got release IP message for our IP {ip}" in smb.log(holder), timeout=10,
                 what="smbd to log the RELEASE_IP message")
    # smbd closed the connection (the address stays here): the client sees it at once
    wait_for(lambda: port not in client_ports(lc, ip), timeout=10, interval=0.1,
             what="the client's connection to be closed")
    t_gone = time.monotonic() - t0
    s.send("ls")
    wait_for(lambda: s.p.poll() is not None or len(s.lines) > n and
             re.search(r"NT_STATUS_CONNECTION_(RESET|DISCONNECTED)|NT_STATUS_END_OF_FILE", s.output()),
             timeout=20, what="smbclient to notice the disconnect")
    print(f"\nRELEASE_IP {ip} on node {holder}: connection closed after {t_gone:.1f} s")
    assert holder_of(lc, ip) == holder
    reconnect_and_read(smb, ip, holder)
