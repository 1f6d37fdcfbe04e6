"""Debian's real Samba `smbd` (4.17, `clustering = yes`) on nodes of a local cluster.

Used by the interop tests and the smbd benchmark: each smbd gets a self-contained
smb.conf (every directory under its own one, its node's daemon socket, one port),
all of them export one directory that stands in for the cluster file system, and the
client tools get a configuration that reads and writes nothing outside the test's
directory. Samba is a peer here, never part of the product.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

SMBD = "/usr/sbin/smbd"
SMBCLIENT = "/usr/bin/smbclient"
SMBSTATUS = "/usr/bin/smbstatus"
PORT = 44531
USER = "root%ctdb-py-secret"


class SambaError(RuntimeError):
    """A Samba process or tool did not do what it was asked."""


def _wait_for(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def smb_conf(d: Path, lc, pnn: int, share: Path, port: int = PORT, own_address: bool = True,
             extra: str = "") -> Path:
    """A self-contained smb.conf: every directory under d, one port, node pnn's daemon
    socket; only the node's own address, or (``own_address=False``) every address of
    its namespace (a public address comes and goes). ``extra``: more [global] lines."""
    listen = (f"interfaces = {lc.address(pnn)}/8\n\tbind interfaces only = yes" if own_address
              else "bind interfaces only = no")
    for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "binddns", "nmbd"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "smb.conf"
    conf.write_text(f"""[global]
	clustering = yes
	ctdbd socket = {lc.socket(pnn)}
	netbios name = CTDBPYSMB
	workgroup = CTDBPYTEST
	server role = standalone server
	private dir = {d}/private
	lock directory = {d}/lock
	state directory = {d}/state
	cache directory = {d}/cache
	pid directory = {d}/pid
	ncalrpc dir = {d}/ncalrpc
	binddns dir = {d}/binddns
	nmbd:socket dir = {d}/nmbd
	passdb backend = tdbsam:{d}/private/passdb.tdb
	smb ports = {port}
	{listen}
	disable netbios = yes
	disable spoolss = yes
	load printers = no
	printcap name = /dev/null
	rpc start on demand helpers = no
	log level = 3
	kernel oplocks = no
{extra}[share]
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


def listening(address: str, port: int = PORT) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((address, port)) == 0


def smbclient(conf: Path, address: str, commands: str, cwd: Path, port: int = PORT,
              netns: str | None = None, timeout: float = 120) -> str:
    """Run smbclient's ``commands`` against //address/share (in network namespace
    ``netns`` if given); its output."""
    cmd = [SMBCLIENT, f"//{address}/share", "-p", str(port), "-U", USER, "-s", str(conf), "-c", commands]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = b"".join(o if isinstance(o, bytes) else o.encode() for o in (exc.stdout, exc.stderr) if o)
        raise SambaError(f"smbclient {commands!r} via {address}: no answer within {timeout:g} s: "
                         f"{out.decode(errors='replace')}") from None
    if r.returncode != 0:
        raise SambaError(f"smbclient {commands!r} via {address} failed: {r.stdout}{r.stderr}")
    return r.stdout + r.stderr


class Samba:
    """smbd on some nodes of a loopback cluster of our daemons, one shared directory."""

    def __init__(self, lc, tmp_path: Path, nodes: tuple[int, ...], port: int = PORT) -> None:
        self.lc, self.tmp, self.nodes, self.port = lc, tmp_path, nodes, port
        self.share = tmp_path / "share"  # the "cluster file system" every smbd exports
        self.share.mkdir(parents=True)
        self.cconf = client_conf(tmp_path / "client")
        self.work = tmp_path / "work"
        self.work.mkdir()
        self.procs: dict[int, tuple[subprocess.Popen, Path]] = {}

    def conf(self, pnn: int) -> Path:
        return self.tmp / f"smbd{pnn}" / "smb.conf"

    def start(self) -> None:
        # one after the other, as nodes come up: the first one creates the cluster-wide
        # machine SID in secrets.tdb, the others find it there
        for pnn in self.nodes:
            self.start_one(pnn)

    def start_one(self, pnn: int) -> None:
        d = self.tmp / f"smbd{pnn}"
        conf = smb_conf(d, self.lc, pnn, self.share, port=self.port)
        log = d / "smbd.log"
        with open(log, "ab") as out:
            # a session of its own: smbd's children are ended with it (killpg)
            p = subprocess.Popen([SMBD, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(conf)],
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d,
                                 start_new_session=True)
        self.procs[pnn] = (p, log)

        def up() -> bool:
            self.check_alive(pnn)
            return listening(self.lc.address(pnn), self.port)
        _wait_for(up, timeout=60, what=f"smbd on node {pnn} to listen")

    def check_alive(self, pnn: int | None = None) -> None:
        for n in (self.nodes if pnn is None else (pnn,)):
            p, log = self.procs[n]
            if p.poll() is not None:
                raise SambaError(f"smbd on node {n} exited with {p.returncode}:\n{log.read_text()[-4000:]}")

    def stop(self) -> None:
        for p, _ in self.procs.values():
            stop_group(p)

    def pid(self, pnn: int) -> int:
        return self.procs[pnn][0].pid

    def client(self, pnn: int, commands: str) -> str:
        return smbclient(self.cconf, self.lc.address(pnn), commands, self.work, self.port)

    def tool(self, pnn: int, *cmd: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """A Samba tool with node pnn's smb.conf (it talks to that node's daemon)."""
        return subprocess.run([cmd[0], "-s" if cmd[0] != "/usr/bin/smbpasswd" else "-c", str(self.conf(pnn)), *cmd[1:]],
                              capture_output=True, text=True, timeout=60, input=stdin)

    def add_user(self, pnn: int) -> None:
        name, password = USER.split("%")
        r = self.tool(pnn, "/usr/bin/smbpasswd", "-a", "-s", name, stdin=f"{password}\n" * 2)
        if r.returncode != 0:
            raise SambaError(f"smbpasswd -a failed: {r.stdout}{r.stderr}")

    def hold_open(self, pnn: int, name: str) -> subprocess.Popen:
        """An smbclient on node pnn keeping name open (until its stdin is closed)."""
        holder = subprocess.Popen([SMBCLIENT, f"//{self.lc.address(pnn)}/share", "-p", str(self.port), "-U", USER,
                                   "-s", str(self.cconf)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, text=True, cwd=self.work)
        holder.stdin.write(f"open {name}\n")
        holder.stdin.flush()
        return holder

    def open_files(self, pnn: int) -> str:
        """`smbstatus -L` with node pnn's smb.conf: a cluster-wide traverse of locking.tdb."""
        r = self.tool(pnn, SMBSTATUS, "-L")
        if r.returncode != 0:
            raise SambaError(f"smbstatus -L failed: {r.stdout}{r.stderr}")
        return r.stdout


class NodeSockets:
    """What smb_conf needs of a cluster before it is up: each node's socket path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def socket(self, pnn: int) -> str:
        return str(self.root / f"node{pnn}" / "run" / "ctdbd.socket")

    def address(self, pnn: int) -> str:
        raise AssertionError("own_address=False: smbd listens on every address of its namespace")


def plugin_options(root: Path, share: Path, n: int = 3) -> dict:
    """``LocalCluster.up()`` options for smbd managed by the samba plugin on every node.

    Each node's smb.conf is written to ``<root>/node<pnn>/samba/`` before the cluster
    starts (port 445, every address of the node's namespace, node pnn's socket); the
    plugin's start command runs smbd from there (ctdbd's child, so in the node's
    namespace), found through ``$CTDB_BASE`` in ctdbd's environment."""
    for p in range(n):
        smb_conf(Path(root) / f"node{p}" / "samba", NodeSockets(Path(root)), p, share, port=445, own_address=False)
    conf = "$CTDB_BASE/samba/smb.conf"
    return dict(
        enable=("samba",),
        plugin_conf=(
            ("samba", "smb conf", conf),
            ("samba", "start command", f"{SMBD} -D -s {conf}"),
            ("samba", "stop command", "kill $(cat $CTDB_BASE/samba/pid/smbd*.pid 2>/dev/null) 2>/dev/null; true"),
        ),
    )


def node_smb_conf(root: Path, pnn: int) -> Path:
    return Path(root) / f"node{pnn}" / "samba" / "smb.conf"


def smbd_pid(root: Path, pnn: int) -> int | None:
    """The main smbd of node pnn (from its pid file), if it runs."""
    for pidfile in sorted((Path(root) / f"node{pnn}" / "samba" / "pid").glob("smbd*.pid")):
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            continue
    return None


INIT_SCRIPT = """#!/bin/sh
# ctdb-py local cluster: smbd of the node whose network namespace this runs in
# (an init script is all an administrator's node has; `service` clears the environment,
# so the node is found by its namespace).
ns=$(ip netns identify $$)
conf=$(cat "{map}/$ns" 2>/dev/null) || exit 1
case "$1" in
start) exec /usr/sbin/smbd -D -s "$conf" ;;
stop) kill $(cat "$(dirname "$conf")"/pid/smbd*.pid 2>/dev/null) 2>/dev/null; exit 0 ;;
*) exit 0 ;;
esac
"""


def install_init_script(name: str, lc, root: Path, map_dir: Path, n: int) -> Path:
    """``/etc/init.d/<name>``: starts and stops each node's smbd (remove it afterwards)."""
    map_dir.mkdir(parents=True, exist_ok=True)
    for p in range(n):
        (map_dir / lc.node_ns(p)).write_text(str(node_smb_conf(root, p)))
    script = Path("/etc/init.d") / name
    script.write_text(INIT_SCRIPT.format(map=map_dir))
    script.chmod(0o755)
    return script
