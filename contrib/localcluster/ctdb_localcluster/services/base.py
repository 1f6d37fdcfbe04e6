"""What every service of the harness shares: the spec, starting, stopping, killing,
hanging, finding an instance's processes, and running a probe in the client namespace."""

from __future__ import annotations

import fnmatch
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

DEFAULT_TIMEOUT = 30.0
PROBE_TIMEOUT = 10.0


class ServiceError(RuntimeError):
    """A daemon did not start, stop or die as asked (the message has its log's tail)."""


class ProbeError(RuntimeError):
    """A client probe failed or timed out (the message has the tool's output)."""


@attrs.frozen
class ServiceSpec:
    """One daemon on one node: how to start and stop it, where its main pid is, what it
    listens on. ``start``/``stop`` are argvs run from any network namespace (they enter
    the node's themselves); ``start_command``/``stop_command`` are the same as shell
    command strings, for a plugin's settings."""

    name: str  # "smbd", "vsftpd", ...
    pnn: int
    netns: str
    dir: Path  # the working directory: config, pid file, logs, state
    conf: Path | None  # the configuration file (None: rpcbind has none)
    log: Path
    start: tuple[str, ...]
    stop: tuple[str, ...]
    pidfile: Path
    process: str  # the main process's name (/proc/PID/comm, `pgrep -x`)
    tcp_ports: tuple[int, ...] = ()
    udp_ports: tuple[int, ...] = ()
    # other process names an instance may run (children, helpers it starts)
    helpers: tuple[str, ...] = ()
    # a local health check (argv, run from anywhere) for daemons without a port to watch
    check: tuple[str, ...] | None = None
    # specs that must run first on the node (Ganesha's rpcbind)
    requires: tuple[ServiceSpec, ...] = ()

    @property
    def ports(self) -> tuple[int, ...]:
        return self.tcp_ports + self.udp_ports

    @property
    def start_command(self) -> str:
        return shlex.join(self.start)

    @property
    def stop_command(self) -> str:
        return shlex.join(self.stop)

    @property
    def check_command(self) -> str | None:
        return None if self.check is None else shlex.join(self.check)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.process, *self.helpers)


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def in_ns_with_mounts(ns: str, binds: Sequence[tuple[Path | str, str]], *cmd: str) -> list[str]:
    """cmd in namespace ns and a private mount namespace of its own in which each
    (source, target) of binds is bind-mounted (nothing is mounted on the host)."""
    if not binds:
        return in_ns(ns, *cmd)
    mounts = " && ".join(f"mount --bind {shlex.quote(str(s))} {shlex.quote(t)}" for s, t in binds)
    return in_ns(ns, "unshare", "--mount", "--propagation", "private",
                 "sh", "-c", f'{mounts} && exec "$@"', "sh", *cmd)


def background(cmd: Sequence[str], pidfile: Path, log: Path) -> str:
    """A shell snippet that starts cmd (which stays in the foreground) detached, in a
    session of its own, with its output in log and its pid in pidfile; it returns at
    once. For daemons that write no pid file of their own."""
    return (f"setsid {shlex.join(cmd)} </dev/null >>{shlex.quote(str(log))} 2>&1 & "
            f"echo $! >{shlex.quote(str(pidfile))}")


def kill_by_pidfile(pidfile: Path, process: str, sig: str = "TERM") -> list[str]:
    """Send sig to the process named in pidfile when it is still called process."""
    return ["pkill", f"-{sig}", "-x", "-F", str(pidfile), process]


def require_netns(lc) -> None:
    if lc.loopback:
        raise ServiceError("the service harness needs a cluster in namespace mode (standard ports per node)")


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError as exc:
        return f"({path}: {exc})"


# ------------------------------------------------------------------------- processes


def _stat(pid: int) -> tuple[str, str] | None:
    """(comm, state) of pid, None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    return comm, text[text.rindex(")") + 2:].split()[0]


def alive(pid: int | None) -> bool:
    st = _stat(pid) if pid else None
    return st is not None and st[1] not in ("Z", "X")


def _netns_inode(ns: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return None


def _in_netns(pid: int, inode: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == inode
    except OSError:
        return False


def pid(spec: ServiceSpec) -> int | None:
    """The main process's pid (from the pid file), when it is alive, called spec.process
    and in the node's namespace."""
    try:
        p = int(spec.pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    st = _stat(p)
    inode = _netns_inode(spec.netns)
    if st is None or st[1] in ("Z", "X") or st[0] != spec.process[:15] or inode is None:
        return None
    return p if _in_netns(p, inode) else None


def processes(spec: ServiceSpec) -> list[int]:
    """Every live process of this instance: in the node's namespace and named as the
    daemon or one of its helpers (a node's namespace runs one instance of each)."""
    inode = _netns_inode(spec.netns)
    if inode is None:
        return []
    patterns = [n[:15] for n in spec.names]  # comm is cut at 15 characters; "rpcd_*" globs
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st and st[1] not in ("Z", "X") and any(fnmatch.fnmatchcase(st[0], n) for n in patterns) \
                and _in_netns(int(entry), inode):
            found.append(int(entry))
    return found


def listening_ports(ns: str) -> dict[str, set[int]]:
    """{"tcp": ports, "udp": ports} with a listening/bound socket in namespace ns."""
    out = subprocess.run(in_ns(ns, "ss", "-Hlntu"), capture_output=True, text=True, timeout=10).stdout
    found: dict[str, set[int]] = {"tcp": set(), "udp": set()}
    for line in out.splitlines():
        f = line.split()
        if len(f) > 4 and f[0] in found:
            found[f[0]].add(int(f[4].rsplit(":", 1)[1]))
    return found


def _listening(spec: ServiceSpec) -> bool:
    if not spec.ports:
        return True
    found = listening_ports(spec.netns)
    return set(spec.tcp_ports) <= found["tcp"] and set(spec.udp_ports) <= found["udp"]


def _check_ok(spec: ServiceSpec) -> bool:
    if spec.check is None:
        return True
    return subprocess.run(spec.check, capture_output=True, timeout=15).returncode == 0


def wait_for(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def ready(spec: ServiceSpec) -> bool:
    """The main process runs, every port listens, the check (if any) passes."""
    return pid(spec) is not None and _listening(spec) and _check_ok(spec)


def _command(argv: tuple[str, ...], shell: bool) -> list[str]:
    return ["sh", "-c", shlex.join(argv)] if shell else list(argv)


def start(spec: ServiceSpec, timeout: float = DEFAULT_TIMEOUT, shell: bool = False) -> int:
    """Start the daemon (and what it requires, when not running yet) with its start
    command (shell: the start_command string through `sh -c`, as a plugin would run
    it); returns its main pid once it is ready."""
    for req in spec.requires:
        if not ready(req):
            start(req, timeout, shell)
    if pid(spec) is not None:
        raise ServiceError(f"{spec.name} on node {spec.pnn} is already running (pid {pid(spec)})")
    # A stale pid file goes: apache2 -k start takes the pid of a crashed instance that is
    # still a zombie (this machine's init reaps orphans a second or two late) for a
    # running server and does nothing.
    spec.pidfile.unlink(missing_ok=True)
    r = subprocess.run(_command(spec.start, shell), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, cwd="/")
    if r.returncode != 0:
        raise ServiceError(f"{spec.name} on node {spec.pnn}: `{spec.start_command}` exited with {r.returncode}:\n"
                           f"{r.stdout}{r.stderr}\n--- {spec.log}:\n{tail(spec.log)}")
    deadline = time.monotonic() + timeout
    seen = False
    while True:
        p = pid(spec)
        seen = seen or p is not None
        if p is not None and _listening(spec) and _check_ok(spec):
            return p
        # a daemon that forks may write its pid file a moment after the command returned
        if seen and p is None or time.monotonic() > deadline:
            why = "exited" if seen and p is None else f"was not ready after {timeout:g} s"
            raise ServiceError(f"{spec.name} on node {spec.pnn} {why} (ports {spec.ports}):\n"
                               f"--- {spec.log}:\n{tail(spec.log)}")
        time.sleep(0.1)


def stop(spec: ServiceSpec, timeout: float = DEFAULT_TIMEOUT, requirements: bool = True,
         shell: bool = False) -> list[int]:
    """Stop the daemon with its stop command and wait until none of the instance's
    processes is left. What the stop command left behind (a crashed instance's
    children, helpers the command does not end) is SIGTERMed, then SIGKILLed; their
    pids are returned ([] when the stop command alone did it). A ServiceError when a
    running main process outlives the stop command by timeout. With requirements,
    then stop what it requires."""
    cleaned: list[int] = []
    error = None
    resume(spec)  # a hung (SIGSTOPped) instance would not act on the stop command's signal
    main = pid(spec)
    if main is not None:
        subprocess.run(_command(spec.stop, shell), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       cwd="/")
        try:
            wait_for(lambda: not alive(main), timeout, f"{spec.name} on node {spec.pnn} (pid {main}) to stop")
        except TimeoutError:
            error = (f"{spec.name} on node {spec.pnn}: pid {main} still there {timeout:g} s after "
                     f"`{spec.stop_command}` (killed)\n--- {spec.log}:\n{tail(spec.log)}")
    try:  # children and helpers end with the main process (also a crashed one): a moment
        wait_for(lambda: not processes(spec), 5, "")
    except TimeoutError:
        pass
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        left = processes(spec)
        if not left:
            break
        cleaned += [p for p in left if p not in cleaned]
        for p in left:
            _send(p, signal.SIGCONT)
            _send(p, sig)
        try:
            wait_for(lambda: not processes(spec), grace, f"{spec.name} on node {spec.pnn}: {left} to end")
        except TimeoutError:
            if sig == signal.SIGKILL:
                raise
    if requirements:
        for req in spec.requires:
            cleaned += stop(req, timeout, shell=shell)
    if error:
        raise ServiceError(error)
    return cleaned


def _send(p: int, sig: int) -> None:
    try:
        os.kill(p, sig)
    except ProcessLookupError:
        pass


def _main(spec: ServiceSpec) -> int:
    p = pid(spec)
    if p is None:
        raise ServiceError(f"{spec.name} on node {spec.pnn} is not running")
    return p


def kill(spec: ServiceSpec, everything: bool = False, timeout: float = 10) -> int:
    """SIGKILL the main process; its children live or die as they do when their parent
    crashes (apache's keep serving). everything: every process of the instance (the
    whole service crashes). Returns the main pid once it is gone."""
    p = _main(spec)
    os.kill(p, signal.SIGKILL)
    if everything:
        for q in processes(spec):
            _send(q, signal.SIGKILL)
    wait_for(lambda: not alive(p) and not (everything and processes(spec)), timeout,
             f"{spec.name} pid {p} to die")
    return p


def hang(spec: ServiceSpec, everything: bool = False) -> int:
    """SIGSTOP the main process (everything: every process of the instance): its
    sockets stay open, nothing is answered. Returns the main pid."""
    p = _main(spec)
    for q in [p, *(processes(spec) if everything else ())]:
        _send(q, signal.SIGSTOP)
    return p


def resume(spec: ServiceSpec) -> None:
    """SIGCONT every process of the instance (undoes hang)."""
    for q in processes(spec):
        _send(q, signal.SIGCONT)


# ---------------------------------------------------------------------------- probes


def run_probe(what: str, cmd: Sequence[str], timeout: float, cwd: Path | None = None,
              input: str | None = None) -> str:
    """cmd's stdout; a ProbeError with its output when it fails or times out."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = b"".join(o if isinstance(o, bytes) else o.encode() for o in (exc.stdout, exc.stderr) if o)
        raise ProbeError(f"{what}: no answer within {timeout:g} s ({shlex.join(cmd)}): "
                         f"{out.decode(errors='replace')}") from None
    if r.returncode != 0:
        raise ProbeError(f"{what}: {shlex.join(cmd)} exited with {r.returncode}: {r.stdout}{r.stderr}")
    return r.stdout


def client_cmd(lc, *cmd: str) -> list[str]:
    return in_ns(lc.client_ns, *cmd)


# ------------------------------------------------------------------ public addresses


def public_holders(lc) -> dict[str, int]:
    """Public address -> the node holding it, where `ctdb -X ip` on every running node
    and the nodes' kernels (eth1) agree; addresses in transit are left out."""
    import json

    kernel: dict[str, list[int]] = {}
    running = [n.pnn for n in lc.nodes() if lc.running(n.pnn)]
    for p in running:
        out = lc.run(p, "ip", "-j", "addr", "show", "dev", "eth1", timeout=10).stdout
        for link in json.loads(out or "[]"):
            for a in link.get("addr_info", []):
                kernel.setdefault(a["local"], []).append(p)
    views = []
    for p in running:
        out = lc.run(p, lc.state["ctdb"], "-X", "ip", timeout=10).stdout
        rows = [line.strip("|").split("|") for line in out.splitlines()[1:] if line.strip()]
        views.append({r[0]: int(r[1]) for r in rows})
    result = {}
    for ip in set().union(*views) if views else ():
        holders = {v.get(ip) for v in views}
        if len(holders) == 1 and kernel.get(ip) == [next(iter(holders))]:
            result[ip] = next(iter(holders))
    return result


def wait_public_spread(lc, timeout: float = 60) -> dict[str, int]:
    """Wait until every node holds exactly one public address; address -> node."""
    n = len(lc.nodes())
    want = {a for node in lc.nodes() for a in node.public_addresses}

    def spread() -> bool:
        h = public_holders(lc)
        return set(h) == want and sorted(h.values()) == sorted(range(n))
    lc.wait(spread, timeout)
    return public_holders(lc)


def address_of(lc, pnn: int) -> str:
    """The public address node pnn holds (one per node)."""
    held = [a for a, p in public_holders(lc).items() if p == pnn]
    if len(held) != 1:
        raise ServiceError(f"node {pnn} holds {held or 'no'} public addresses, not one")
    return held[0]
