"""LocalCluster: build, drive and tear down N ctdbd nodes on one machine.

All state lives in ``<root>/cluster.json`` so that every method works from a fresh
process (the CLI calls one method per invocation).

Topology in namespace mode (``<name>`` defaults to ``ctdb``)::

    <name>-hub      br-int (192.0.2.0/24 node network), br-pub (198.51.100.0/24)
    <name>-n<pnn>   eth0 192.0.2.(1+pnn)/24 on br-int, eth1 (no address) on br-pub
    <name>-client   eth0 198.51.100.200/24 on br-pub

Loopback mode puts node pnn on 127.0.0.(base+pnn) in the current namespace.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import attrs

from ctdb_localcluster import files, netns

DEFAULT_ROOT = "/tmp/ctdb-localcluster"
DEFAULT_NAME = "ctdb"
REAL_CTDBD = "/usr/sbin/ctdbd"
REAL_CTDB = "/usr/bin/ctdb"
CLIENT_ADDRESS = "198.51.100.200"
PUBLIC6_PREFIX = "2001:db8:100::"  # documentation prefix, /64 on the public bridge
CLIENT_ADDRESS6 = "2001:db8:100::200"
STATE_VERSION = 1


class ClusterError(Exception):
    """A cluster operation could not be carried out (message is for the user)."""


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def default_ctdbd() -> str:
    candidate = _venv_bin() / "ctdbd"
    return str(candidate) if candidate.exists() else "ctdbd"


def default_ctdb() -> str:
    candidate = _venv_bin() / "ctdb"
    return str(candidate) if candidate.exists() else "ctdb"


@attrs.frozen
class Options:
    """The shape of a cluster: two `up` calls with equal Options give the same cluster."""

    n: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    loopback: bool = False
    loopback_base: int = 11
    public_ips: int | None = None  # None = one per node
    ipv6_public: int = 0  # IPv6 public addresses (2001:db8:100::101...) besides the IPv4 ones
    log_level: str = "NOTICE"
    lock: str = attrs.field(default="file", validator=attrs.validators.in_(files.LOCK_MODES))
    tunables: tuple[tuple[str, str], ...] = ()
    impl: str = attrs.field(default="ours", validator=attrs.validators.in_(("ours", "real")))
    ctdbd: str | None = None  # None = the venv's ctdbd (ours) or /usr/sbin/ctdbd (real)
    ctdb: str | None = None  # the ctdb tool used by status/wait-ok
    plugins: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    #: event plugins enabled on every node (``[name] enabled = yes`` in ctdb.conf)
    enable: tuple[str, ...] = ()
    #: more ctdb.conf lines for plugin sections: (section, key, value)
    plugin_conf: tuple[tuple[str, str, str], ...] = ()
    #: impl "real": more of Debian's 4.17 event scripts to enable ("50.samba")
    real_scripts: tuple[str, ...] = ()
    #: lines of every node's $CTDB_BASE/script.options (4.17's script options)
    script_options: tuple[str, ...] = ()
    #: lines of the seed's /etc/sysconfig/ctdb, given to our ctdbd with --sysconfig
    sysconfig: tuple[str, ...] = ()
    #: Per node, the indexes of the cluster's public addresses its `public_addresses`
    #: lists (None: every node lists all of them). Pools may differ and may be empty,
    #: as in 4.17's own test suite. In loopback mode the addresses go on `lo` and the
    #: nodes run with CTDB_TEST_MODE=yes: they share one namespace, so the addresses
    #: are bookkeeping only, as for 4.17's local daemons.
    public_pools: tuple[tuple[int, ...], ...] | None = None

    def __attrs_post_init__(self) -> None:
        if self.public_pools is None:
            return
        if len(self.public_pools) != self.n:
            raise ClusterError(f"public_pools names {len(self.public_pools)} nodes, the cluster has {self.n}")
        k = self.public_address_count()
        for pnn, pool in enumerate(self.public_pools):
            for i in pool:
                if not 0 <= i < k:
                    raise ClusterError(f"public pool of node {pnn}: no public address {i} "
                                       f"(there are {k}: 0..{k - 1})")

    def public_address_count(self) -> int:
        return (self.n if self.public_ips is None else self.public_ips) + self.ipv6_public

    def to_json(self) -> dict:
        d = attrs.asdict(self)
        d["tunables"] = [list(t) for t in self.tunables]
        d["env"] = [list(t) for t in self.env]
        d["enable"] = list(self.enable)
        d["plugin_conf"] = [list(t) for t in self.plugin_conf]
        d["real_scripts"] = list(self.real_scripts)
        d["script_options"] = list(self.script_options)
        d["sysconfig"] = list(self.sysconfig)
        if self.public_pools is not None:
            d["public_pools"] = [list(p) for p in self.public_pools]
        return d

    @classmethod
    def from_json(cls, d: dict) -> Options:
        d = dict(d)
        d["tunables"] = tuple(tuple(t) for t in d.get("tunables", ()))
        d["env"] = tuple(tuple(t) for t in d.get("env", ()))
        d["enable"] = tuple(d.get("enable", ()))
        d["plugin_conf"] = tuple(tuple(t) for t in d.get("plugin_conf", ()))
        d["real_scripts"] = tuple(d.get("real_scripts", ()))
        d["script_options"] = tuple(d.get("script_options", ()))
        d["sysconfig"] = tuple(d.get("sysconfig", ()))
        if d.get("public_pools") is not None:
            d["public_pools"] = tuple(tuple(p) for p in d["public_pools"])
        return cls(**d)


@attrs.define
class NodeState:
    pnn: int
    address: str
    netns: str | None
    dir: str
    public_addresses: list[str] = attrs.Factory(list)
    pid: int | None = None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _pid_is_node(pid: int | None, node_dir: str) -> bool:
    """True when pid is alive and was started by us for this node (guards pid reuse)."""
    if not _pid_alive(pid):
        return False
    # While `ip netns exec` execs the daemon, /proc/PID/environ can read empty for an
    # instant; the working directory (set to the node dir at start) is a second proof.
    for _ in range(20):
        try:
            if os.readlink(f"/proc/{pid}/cwd") == str(node_dir):
                return True
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            return False
        if env:
            return f"CTDB_BASE={node_dir}".encode() in env.split(b"\0")
        time.sleep(0.01)
    return False


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class LocalCluster:
    """One local cluster, identified by its state directory `root` and name prefix `name`."""

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT, name: str = DEFAULT_NAME,
                 *, cleanup_at_exit: bool = False) -> None:
        self.root = Path(root).absolute()
        self.name = name
        self._state: dict | None = None
        if cleanup_at_exit:
            atexit.register(self._atexit_down)

    # ---------------------------------------------------------------- state
    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def hub_ns(self) -> str:
        return f"{self.name}-hub"

    @property
    def client_ns(self) -> str:
        return f"{self.name}-client"

    def node_ns(self, pnn: int) -> str:
        return f"{self.name}-n{pnn}"

    def node_dir(self, pnn: int) -> Path:
        return self.root / f"node{pnn}"

    def load(self) -> dict | None:
        try:
            self._state = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            self._state = None
        return self._state

    def _save(self) -> None:
        assert self._state is not None
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self._state, indent=2) + "\n")
        tmp.replace(self.state_file)

    @property
    def state(self) -> dict:
        if self._state is None and self.load() is None:
            raise ClusterError(f"no cluster in {self.root} (run `localcluster up` first)")
        assert self._state is not None
        return self._state

    @property
    def options(self) -> Options:
        return Options.from_json(self.state["options"])

    @property
    def loopback(self) -> bool:
        return self.state["mode"] == "loopback"

    def nodes(self) -> list[NodeState]:
        return [NodeState(**n) for n in self.state["nodes"]]

    def node(self, pnn: int) -> NodeState:
        nodes = self.state["nodes"]
        if not 0 <= pnn < len(nodes):
            raise ClusterError(f"no node {pnn} (the cluster has {len(nodes)} nodes)")
        return NodeState(**nodes[pnn])

    def _set_pid(self, pnn: int, pid: int | None) -> None:
        self.state["nodes"][pnn]["pid"] = pid
        self._save()

    # ------------------------------------------------------------- queries
    def address(self, pnn: int) -> str:
        return self.node(pnn).address

    def socket(self, pnn: int) -> str:
        return str(Path(self.node(pnn).dir) / "run" / "ctdbd.socket")

    def pid(self, pnn: int) -> int | None:
        node = self.node(pnn)
        return node.pid if _pid_is_node(node.pid, node.dir) else None

    def running(self, pnn: int) -> bool:
        return self.pid(pnn) is not None

    def pnn_of(self, address: str) -> int:
        for node in self.nodes():
            if node.address == address:
                return node.pnn
        raise ClusterError(f"no node has address {address}")

    def nodes_file(self) -> str:
        return str(self.root / "nodes")

    def healthy(self) -> bool:
        """All namespaces exist and every node process is running."""
        if self.load() is None:
            return False
        if not self.loopback:
            wanted = [self.hub_ns, self.client_ns] + [n.netns for n in self.nodes()]
            if not all(netns.exists(ns) for ns in wanted if ns):
                return False
        return all(self.running(n.pnn) for n in self.nodes())

    # ------------------------------------------------------------------ up
    def up(self, n: int = 3, loopback: bool = False, **opts) -> bool:
        """Build and start the cluster; False when an identical healthy one was kept."""
        options = Options(n=n, loopback=loopback, **opts)
        if not loopback:
            reason = netns.available()
            if reason is not None:
                raise ClusterError(f"{reason}; use --loopback")
        if self.load() is not None:
            same = (self.state.get("name") == self.name
                    and Options.from_json(self.state["options"]) == options)
            if same and self.healthy():
                return False
            self.down()
        try:
            self._build(options)
            for node in self.nodes():
                self.start(node.pnn)
        except BaseException:
            self.down()
            raise
        return True

    def _build(self, o: Options) -> None:
        k = o.n if o.public_ips is None else o.public_ips
        all_public = [f"198.51.100.{101 + i}" for i in range(k)]
        all_public += [f"{PUBLIC6_PREFIX}{101 + i}" for i in range(o.ipv6_public)]
        if o.public_pools is not None:
            public = [[all_public[i] for i in pool] for pool in o.public_pools]
        else:
            public = [all_public for _ in range(o.n)]
        if o.loopback:
            addresses = [f"127.0.0.{o.loopback_base + p}" for p in range(o.n)]
            if o.public_pools is None:
                public = [[] for _ in range(o.n)]  # loopback nodes get public addresses only when asked
        else:
            if o.n > 99:
                raise ClusterError("at most 99 nodes in namespace mode")
            addresses = [f"192.0.2.{1 + p}" for p in range(o.n)]
        impl_ctdbd = REAL_CTDBD if o.impl == "real" else default_ctdbd()
        impl_ctdb = REAL_CTDB if o.impl == "real" else default_ctdb()
        ctdbd = o.ctdbd or impl_ctdbd
        if shutil.which(ctdbd) is None:
            raise ClusterError(f"ctdbd {ctdbd!r} is not an executable (see --ctdbd, --impl)")
        self._state = {
            "version": STATE_VERSION,
            "name": self.name,
            "mode": "loopback" if o.loopback else "netns",
            "n": o.n,
            "hub": None if o.loopback else self.hub_ns,
            "client": None if o.loopback else self.client_ns,
            "client_address": None if o.loopback else CLIENT_ADDRESS,
            "ctdbd": shutil.which(ctdbd),
            "ctdb": o.ctdb or impl_ctdb,
            "options": o.to_json(),
            "nodes": [
                attrs.asdict(NodeState(pnn=p, address=addresses[p],
                                       netns=None if o.loopback else self.node_ns(p),
                                       dir=str(self.node_dir(p)), public_addresses=public[p]))
                for p in range(o.n)
            ],
        }
        self._save()  # saved first, so that down() can clean up a half-built cluster
        self._write_files(o)
        if not o.loopback:
            self._build_network()

    def _write_files(self, o: Options) -> None:
        (self.root / "shared" / ".ctdb").mkdir(parents=True, exist_ok=True)
        addresses = [n.address for n in self.nodes()]
        nodes_text = files.nodes_file(addresses)
        (self.root / "nodes").write_text(nodes_text)
        lock = files.cluster_lock_value(self.root, o.lock)
        for node in self.nodes():
            d = Path(node.dir)
            for sub in ("run", "var", "db/volatile", "db/persistent", "db/state"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            conf = files.ctdb_conf(d, node.address, o.log_level, lock)
            conf += files.plugin_sections([*((name, "enabled", "yes") for name in o.enable), *o.plugin_conf])
            (d / "ctdb.conf").write_text(conf)
            if o.script_options:
                (d / "script.options").write_text("".join(f"{line}\n" for line in o.script_options))
            if o.sysconfig:
                (d / "sysconfig").write_text("".join(f"{line}\n" for line in o.sysconfig))
            (d / "nodes").write_text(nodes_text)
            pub = d / "public_addresses"
            if node.public_addresses:
                pub.write_text(files.public_addresses_file(node.public_addresses,
                                                           "lo" if o.loopback else "eth1"))
            elif o.public_pools is not None:
                pub.write_text("")  # an empty pool: the file exists and lists nothing (4.17's suite)
            elif pub.exists():
                pub.unlink()
            tun = d / "ctdb.tunables"
            if o.tunables:
                tun.write_text(files.tunables_file(dict(o.tunables)))
            elif tun.exists():
                tun.unlink()
            if o.impl == "real":
                # 4.17 in test mode looks for event scripts in $CTDB_BASE/events/legacy;
                # 10.interface moves the public addresses (its state goes to var/scripts).
                (d / "events" / "legacy").mkdir(parents=True, exist_ok=True)
                (d / "var" / "scripts").mkdir(parents=True, exist_ok=True)
                files.link_real_event_scripts(d, o.real_scripts)

    def _build_network(self) -> None:
        hub = self.hub_ns
        netns.add(hub)
        netns.add_bridge(hub, netns.INTERNAL_BRIDGE)
        netns.add_bridge(hub, netns.PUBLIC_BRIDGE)
        for node in self.nodes():
            assert node.netns is not None
            netns.add(node.netns)
            netns.add_veth(hub, netns.hub_internal_if(node.pnn), netns.INTERNAL_BRIDGE,
                           node.netns, "eth0")
            netns.add_veth(hub, netns.hub_public_if(node.pnn), netns.PUBLIC_BRIDGE,
                           node.netns, "eth1")
            netns.ip("-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
        netns.add(self.client_ns)
        netns.add_veth(hub, netns.CLIENT_HUB_IF, netns.PUBLIC_BRIDGE, self.client_ns, "eth0")
        netns.ip("-n", self.client_ns, "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", "eth0")
        if self.options.ipv6_public:
            # nodad: usable at once; ctdbd adds its IPv6 public addresses the same way.
            netns.ip("-n", self.client_ns, "addr", "add", f"{CLIENT_ADDRESS6}/64", "dev", "eth0", "nodad")

    # ----------------------------------------------------------- processes
    def env(self, pnn: int) -> dict[str, str]:
        node = self.node(pnn)
        env = dict(os.environ)
        env["PATH"] = f"{_venv_bin()}{os.pathsep}{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        env["CTDB_BASE"] = node.dir
        env["CTDB_SOCKET"] = self.socket(pnn)
        env["CTDB_NODES_FILE"] = self.nodes_file()
        # Event scripts and plugins keep state here (default /var/lib/ctdb/scripts,
        # which the nodes of one machine would share).
        env["CTDB_SCRIPT_VARDIR"] = str(Path(node.dir) / "var" / "scripts")
        if self.loopback and self.options.public_pools is not None:
            env["CTDB_TEST_MODE"] = "yes"  # see Options.public_pools
        if self.options.impl == "real":
            env["CTDB_TEST_MODE"] = "yes"
        extra = dict(self.options.env)
        if "PYTHONPATH" in extra and env.get("PYTHONPATH"):
            # Prepended, not replaced: a plugin directory must not hide which ctdbcore
            # the caller runs (a worktree on PYTHONPATH, say).
            extra["PYTHONPATH"] = f"{extra['PYTHONPATH']}{os.pathsep}{env['PYTHONPATH']}"
        env.update(extra)
        return env

    def _in_ns(self, ns: str | None, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)

    def start(self, pnn: int) -> int:
        """Start node pnn's ctdbd (no-op when it is running); returns its pid."""
        node = self.node(pnn)
        if _pid_is_node(node.pid, node.dir):
            return node.pid  # type: ignore[return-value]
        sock = Path(self.socket(pnn))
        if sock.exists():
            sock.unlink()
        cmd = [self.state["ctdbd"], "-i"]
        if self.options.plugins is not None and self.options.impl == "ours":
            cmd += ["--plugins", self.options.plugins]
        if self.options.sysconfig and self.options.impl == "ours":
            cmd += ["--sysconfig", str(Path(node.dir) / "sysconfig")]
        with open(Path(node.dir) / "ctdbd.out", "ab") as out:
            proc = subprocess.Popen(self._in_ns(node.netns, cmd), env=self.env(pnn),
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=node.dir)
        self._set_pid(pnn, proc.pid)
        return proc.pid

    def _signal(self, pnn: int, sig: int) -> None:
        pid = self.pid(pnn)
        if pid is None:
            raise ClusterError(f"node {pnn} is not running")
        _signal_group(pid, sig)

    def kill(self, pnn: int) -> None:
        pid = self.pid(pnn)
        self._signal(pnn, signal.SIGKILL)
        _wait_gone(pid)

    def stop(self, pnn: int) -> None:
        self._signal(pnn, signal.SIGSTOP)

    def cont(self, pnn: int) -> None:
        self._signal(pnn, signal.SIGCONT)

    def run(self, pnn: int, *cmd: str, check: bool = True, timeout: float | None = 60,
            capture: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        """Run cmd inside node pnn's namespace with CTDB_BASE/CTDB_SOCKET set."""
        node = self.node(pnn)
        return subprocess.run(self._in_ns(node.netns, cmd), env=self.env(pnn), check=check,
                              timeout=timeout, capture_output=capture, text=True, input=input,
                              stdin=None if (input is not None or not capture)
                              else subprocess.DEVNULL)

    def client(self, *cmd: str, check: bool = True, timeout: float | None = 60,
               capture: bool = True) -> subprocess.CompletedProcess:
        """Run cmd in the client namespace (in the current one in loopback mode)."""
        ns = None if self.loopback else self.client_ns
        return subprocess.run(self._in_ns(ns, cmd), check=check, timeout=timeout,
                              capture_output=capture, text=True)

    # -------------------------------------------------------------- waiting
    def wait(self, predicate: Callable[[], bool], timeout: float = 60,
             interval: float = 0.25) -> float:
        """Poll predicate until it is true; returns the seconds taken, TimeoutError after timeout."""
        start = time.monotonic()
        while True:
            try:
                if predicate():
                    return time.monotonic() - start
            except (subprocess.SubprocessError, OSError, ClusterError):
                pass
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"condition not met after {timeout:g}s")
            time.sleep(interval)

    def status_table(self, pnn: int) -> list[dict[str, str]]:
        """`ctdb -X status` on node pnn, as a list of rows keyed by the header names."""
        out = self.run(pnn, self.state["ctdb"], "-X", "status", timeout=10).stdout
        rows = [line.strip().strip("|").split("|") for line in out.splitlines()
                if line.startswith("|")]
        if not rows:
            return []
        header = rows[0]
        return [dict(zip(header, r)) for r in rows[1:]]

    def all_ok(self) -> bool:
        for node in self.nodes():
            if not self.running(node.pnn):
                continue
            try:
                table = self.status_table(node.pnn)
            except (subprocess.SubprocessError, OSError):
                continue
            if not table:
                return False
            return all(v == "0" for row in table for k, v in row.items()
                       if k not in ("Node", "IP", "ThisNode"))
        return False

    def wait_ok(self, timeout: float = 60) -> float:
        return self.wait(self.all_ok, timeout)

    # ----------------------------------------------------------- partitions
    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Cut the internal network between groups of pnns.

        Each group's hub-side internal veths move to a bridge of their own; nodes named in no
        group stay on the internal bridge (together). `heal()` moves everything back.
        """
        if self.loopback:
            raise ClusterError("partitions need namespace mode")
        self.heal()
        seen: set[int] = set()
        for i, group in enumerate(groups):
            bridge = f"{netns.PARTITION_BRIDGE_PREFIX}{i}"
            netns.add_bridge(self.hub_ns, bridge)
            for pnn in group:
                self.node(pnn)
                if pnn in seen:
                    raise ClusterError(f"node {pnn} is in two groups")
                seen.add(pnn)
                netns.set_master(self.hub_ns, netns.hub_internal_if(pnn), bridge)
        self._flush_neighbours()

    def heal(self) -> None:
        if self.loopback:
            raise ClusterError("partitions need namespace mode")
        for node in self.nodes():
            netns.set_master(self.hub_ns, netns.hub_internal_if(node.pnn), netns.INTERNAL_BRIDGE)
        for bridge in netns.bridges(self.hub_ns):
            if bridge.startswith(netns.PARTITION_BRIDGE_PREFIX):
                netns.delete_link(self.hub_ns, bridge)
        self._flush_neighbours()

    def _flush_neighbours(self) -> None:
        # Forget ARP failures from the partition, so traffic resumes at once.
        for node in self.nodes():
            if node.netns:
                netns.ip("-n", node.netns, "neigh", "flush", "dev", "eth0", check=False)

    # ----------------------------------------------------------------- down
    def down(self, purge: bool = False) -> None:
        """Kill all node processes and remove namespaces; tolerant of half-built state."""
        state = self.load()
        namespaces: list[str] = []
        if state is not None:
            for n in state.get("nodes", []):
                if _pid_is_node(n.get("pid"), n["dir"]):
                    _signal_group(n["pid"], signal.SIGCONT)
                    _signal_group(n["pid"], signal.SIGTERM)
            deadline = time.monotonic() + 3
            for n in state.get("nodes", []):
                pid = n.get("pid")
                while _pid_is_node(pid, n["dir"]) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _pid_is_node(pid, n["dir"]):
                    _signal_group(pid, signal.SIGKILL)
                    _wait_gone(pid)
                n["pid"] = None
            namespaces = [n["netns"] for n in state.get("nodes", []) if n.get("netns")]
            if state.get("mode") == "netns":
                namespaces += [state.get("client") or self.client_ns,
                               state.get("hub") or self.hub_ns]
            self._save()
        else:
            namespaces = [self.client_ns, self.hub_ns]
            namespaces += _listed_node_namespaces(self.name)
        for ns in namespaces:
            # Anything still inside one of our namespaces was started by us.
            for pid in netns.pids(ns):
                _signal_group(pid, signal.SIGCONT)
                _signal_group(pid, signal.SIGKILL)
            netns.delete(ns)  # deleting the namespace deletes its veths and bridges
        if purge and self.root.exists():
            shutil.rmtree(self.root)
            self._state = None
        elif state is not None:
            self.state_file.unlink(missing_ok=True)
            self._state = None

    def _atexit_down(self) -> None:
        try:
            self.down()
        except Exception as exc:  # noqa: BLE001 - best effort at interpreter exit
            print(f"localcluster: cleanup of {self.root} failed: {exc}", file=sys.stderr)


def _wait_gone(pid: int | None, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _listed_node_namespaces(name: str) -> list[str]:
    try:
        entries = os.listdir("/run/netns")
    except OSError:
        return []
    prefix = f"{name}-n"
    return [e for e in entries if e.startswith(prefix) and e[len(prefix):].isdigit()]
