"""Debian's real Apache httpd (apache2) managed by the plugin in a namespace cluster of
our ctdbd.

Three of our daemons run in network namespaces (contrib/localcluster), each with one
public address on eth1 and the plugin enabled, whose start and stop commands run
Debian's apache2 in the node's namespace with a private configuration (its own pid
file, logs, runtime directory and document root, which serves a page naming the node).
curl in the client namespace fetches that page through every public address. Then the
main apache2 process on the holder of one address is SIGKILLed: the plugin's ctdb_watch
makes that node UNHEALTHY at once (its reason in `ctdb scriptstatus`), the address moves
to a healthy node whose apache2 serves it, and the next monitor event, the 2nd failure
by 4.17's count, restarts apache2 (stop, kill -9 of the orphaned workers, start) and the
node is healthy again.

Only traffic inside namespaces the test creates."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

APACHE2 = "/usr/sbin/apache2"
CURL = "/usr/bin/curl"
MODULES = "/usr/lib/apache2/modules"
ALL = [0, 1, 2]
PUBLIC = ["198.51.100.101", "198.51.100.102", "198.51.100.103"]

pytestmark = [pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(not os.path.exists(APACHE2), reason="Debian's apache2 package is not installed"),
              pytest.mark.skipif(not os.path.exists(CURL), reason="Debian's curl package is not installed")]

# The plugin runs these with sh -c in ctdbd's environment: $CTDB_BASE is the node's directory.
CONF = '"$CTDB_BASE/httpd/apache2.conf"'
START = f'{APACHE2} -f {CONF} -k start >>"$CTDB_BASE/httpd/out.log" 2>&1 </dev/null'
STOP = f'{APACHE2} -f {CONF} -k stop >>"$CTDB_BASE/httpd/out.log" 2>&1 </dev/null ; sleep 0.5'


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> float:
    t0 = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - t0 < timeout:
        try:
            if predicate():
                return time.monotonic() - t0
        except Exception as e:  # noqa: BLE001 - a node may be busy for a moment
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last})" if last else ""))


def apache_conf(node_dir: Path, docroot: Path, pnn: int) -> None:
    d = node_dir / "httpd"
    (d / "run").mkdir(parents=True)
    (docroot / "who.txt").write_text(f"node {pnn}\n")
    (d / "apache2.conf").write_text(f"""ServerRoot {d}
ServerName node{pnn}.test
Listen 80
PidFile {d}/apache2.pid
DefaultRuntimeDir {d}/run
Mutex file:{d}/run default
ErrorLog {d}/error.log
LogLevel info
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
User www-data
Group www-data
StartServers 1
ServerLimit 2
MinSpareThreads 5
MaxSpareThreads 10
ThreadsPerChild 5
MaxRequestWorkers 10
DocumentRoot {docroot}
<Directory {docroot}>
    Require all granted
</Directory>
""")


def ctdbd_log(lc, pnn: int) -> str:
    return (Path(lc.node(pnn).dir) / "log.ctdb").read_text(errors="replace")


def ctdb(lc, pnn: int, *args: str) -> str:
    return lc.run(pnn, "ctdb", *args, timeout=30).stdout


class Observer:
    """Node flags and address holders as the daemons of some nodes see them, read over
    their unix sockets (a control round trip, not a `ctdb` process: the states of a
    failover can last less than a second). Each node knows the holders of the addresses
    it has been told about; the new holder of an address always knows it holds it."""

    def __init__(self, lc, pnns) -> None:
        from ctdbcore.client.sync import Client

        self.clients = [Client(lc.socket(p), timeout=10) for p in pnns]

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def unhealthy(self, pnn: int) -> bool:
        return any(n.pnn == pnn and n.flags & 0x2 for n in self.clients[0].get_nodemap().nodes)

    def holders(self, ip: str) -> set[int | None]:
        seen: set[int | None] = set()
        for c in self.clients:
            for i in c.get_public_ips().ips:
                if str(i.addr).split(":")[0] == ip:
                    seen.add(None if i.pnn == 0xFFFFFFFF else i.pnn)
        return seen

    def moved(self, ip: str, old: int) -> int | None:
        """A node other than old that holds ip in some observed node's view."""
        return next((h for h in self.holders(ip) if h not in (None, old)), None)


def holder_of(lc, ip: str) -> int | None:
    """The node holding ip, when the kernel and `ctdb ip` on every node agree."""
    kernel = []
    for p in ALL:
        out = lc.run(p, "ip", "-j", "addr", "show", "dev", "eth1", timeout=10).stdout
        if any(a.get("local") == ip for link in json.loads(out or "[]") for a in link.get("addr_info", [])):
            kernel.append(p)
    if len(kernel) != 1:
        return None
    for p in ALL:
        rows = [ln.strip("|").split("|") for ln in ctdb(lc, p, "-X", "ip").splitlines()[1:] if ln]
        if {r[0]: int(r[1]) for r in rows}.get(ip) != kernel[0]:
            return None
    return kernel[0]


def fetch(lc, ip: str, timeout: float = 10.0) -> str:
    """The page through ip, retried for up to timeout s: the plugin restarts the server
    when addresses change (vsftpd at ipreallocated), which closes the port for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        r = lc.client(CURL, "-sS", "--max-time", "10", f"http://{ip}/who.txt", check=False, timeout=30)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.returncode == 0, (ip, r.returncode, r.stdout, r.stderr)
    return r.stdout.strip()


def main_pid(lc, pnn: int) -> int | None:
    try:
        pid = int((Path(lc.node(pnn).dir) / "httpd" / "apache2.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


@pytest.fixture
def cluster(tmp_path):
    from ctdb_localcluster import netns
    from ctdb_localcluster.cluster import LocalCluster

    reason = netns.available()
    if reason is not None:
        pytest.skip(f"namespace cluster: {reason}")
    # the workers run as www-data: their documents must not be under pytest's 0700 tmp
    docs = Path(tempfile.mkdtemp(prefix="ctdb-httpd-test-"))
    lc = LocalCluster(tmp_path / "cluster", f"www{os.getpid() % 100000}", cleanup_at_exit=True)
    try:
        for p in ALL:
            root = docs / f"node{p}"
            root.mkdir()
            for d in (docs, root):
                d.chmod(0o755)
            apache_conf(lc.node_dir(p), root, p)
        lc.up(n=3, enable=("httpd",), plugin_conf=(("httpd", "start command", START),
                                                   ("httpd", "stop command", STOP),
                                                   ("httpd", "pid file", "$CTDB_BASE/httpd/apache2.pid")))
        lc.wait_ok(timeout=90)
        wait_for(lambda: sorted(holder_of(lc, ip) for ip in PUBLIC) == ALL, timeout=60,
                 what="one public address on each node")
        yield lc
    finally:
        lc.down()
        shutil.rmtree(docs, ignore_errors=True)


def test_killed_apache_makes_its_node_unhealthy_and_its_address_move(cluster) -> None:
    lc = cluster
    for ip in PUBLIC:
        assert fetch(lc, ip) == f"node {holder_of(lc, ip)}"
    for p in ALL:
        assert re.search(r"^httpd\s+OK", ctdb(lc, p, "scriptstatus"), re.M), ctdb(lc, p, "scriptstatus")

    ip = PUBLIC[0]
    node = holder_of(lc, ip)
    obs = Observer(lc, [p for p in ALL if p != node])
    try:
        pid = main_pid(lc, node)
        assert pid is not None
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        wait_for(lambda: obs.unhealthy(node), timeout=15, interval=0.02, what=f"node {node} to be UNHEALTHY")
        t_unhealthy = time.monotonic() - t0
        status = ctdb(lc, node, "scriptstatus")
        recovered = not obs.unhealthy(node)  # a monitor event after the restart may have run already
        moved_to: list[int] = []

        def moved() -> bool:
            h = obs.moved(ip, node)
            if h is not None:
                moved_to.append(h)
            return h is not None
        wait_for(moved, timeout=15, interval=0.02, what=f"{ip} to leave node {node}")
        t_moved = time.monotonic() - t0
        new = moved_to[0]
        assert not obs.unhealthy(new)
        served = fetch(lc, ip)
        assert served in (f"node {new}", f"node {node}"), served
        print(f"\napache2 SIGKILLed on node {node}: UNHEALTHY after {t_unhealthy:.2f} s, "
              f"{ip} moved to node {new} after {t_moved:.2f} s; then served by {served}")
    finally:
        obs.close()
    # the watcher's report made the node unhealthy ...
    assert (f"Node flags changed 0x0 -> 0x2 (monitor: unhealthy (httpd: ERROR: apache2 (pid {pid}) exited))"
            in ctdbd_log(lc, node)), ctdbd_log(lc, node)[-3000:]
    # ... and is what `ctdb scriptstatus` shows, unless the next monitor event has already
    # run (the 2nd failure: it restarted apache2 and succeeded)
    if not recovered:
        assert re.search(r"^httpd\s+ERROR", status, re.M), status
        assert f"OUTPUT: ERROR: apache2 (pid {pid}) exited" in status, status
    else:
        assert "HTTPD is not running. Trying to restart HTTPD." in ctdbd_log(lc, node)
    assert t_unhealthy < 15 and t_moved < 15

    # the next monitor event is the 2nd failure: stop, kill -9 leftovers, start; healthy
    wait_for(lambda: main_pid(lc, node) not in (None, pid), timeout=40, what=f"apache2 restarted on node {node}")
    obs = Observer(lc, [node])
    try:
        wait_for(lambda: not obs.unhealthy(node), timeout=40, interval=0.2, what=f"node {node} healthy again")
    finally:
        obs.close()
    print(f"node {node} healthy again after {time.monotonic() - t0:.2f} s")
    assert re.search(r"^httpd\s+OK", ctdb(lc, node, "scriptstatus"), re.M)
    for a in PUBLIC:
        h = holder_of(lc, a)
        assert h is not None and fetch(lc, a) == f"node {h}"
