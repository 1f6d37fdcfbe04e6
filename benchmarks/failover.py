"""Public address failover benchmark: how fast a client's address moves and its
connection is reset, ours vs Debian's 4.17 ctdbd in the same topology, same run.

    .venv/bin/python -m benchmarks.failover [--runs 5] [--real-runs 3] [--no-real]

Each implementation gets a 3-node namespace cluster (contrib/localcluster; public
addresses 198.51.100.101.. on each node's eth1, client namespace at 198.51.100.200).
An echo server (`ctdb_localcluster.echo_server 7000`) runs in every node namespace and
registers each accepted connection with its node's ctdbd (TCP_CLIENT, as smbd does; our
client library speaks 4.17's protocol, so this works with the real daemon too). For
each run and scenario an echo client in the client namespace connects to a public
address, the benchmark waits until the connection is in a second node's tickle list,
then acts on the address's holder:

  kill         SIGKILL a holder that is not the leader
  kill-leader  SIGKILL the leader, which holds the address
  sigstop      SIGSTOP a non-leader holder (SIGCONT afterwards)
  disable      DISABLE_NODE control to a non-leader holder (planned move; enabled afterwards)

and measures from the signal / control (time.monotonic(), CLOCK_MONOTONIC, the clock
the echo client prints) to:

  address  the address appears on another node's eth1 (`ip -o monitor address` in every
           node namespace, timestamped as each kernel event arrives)
  reset    the client's connection is reset (or closed)
  reconn   the client has a new, echoing connection to the same address

Between runs the cluster is healed (restart / SIGCONT / enable) and the benchmark waits
until every node is OK and every address is on exactly one node, one per node.

Debian's 4.17 runs with its own 10.interface event script (see
ctdb_localcluster/files.py for the one wrapper test mode needs). Its SIGSTOP detection
takes ~25 s (KeepaliveInterval 5 x KeepaliveLimit 5), so its runs are bounded at 60 s
per scenario; a scenario that does not finish counts as a failure and prints "fail".
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from ctdb_localcluster.cluster import REAL_CTDBD, LocalCluster
from ctdbcore.client import Client

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 7000
N = 3
SCENARIOS = ("kill", "kill-leader", "sigstop", "disable")
METRICS = ("address", "reset", "reconn")
# Goals for ours (seconds from the signal to the address on the new holder and to the
# client's reset).
GOALS = {"kill": 0.5, "kill-leader": 1.5, "sigstop": 2.0}
LABELS = {
    "kill": "SIGKILL non-leader holder",
    "kill-leader": "SIGKILL leader (holder)",
    "sigstop": "SIGSTOP holder",
    "disable": "ctdb disable holder",
}


class AddressMonitor:
    """`ip -o monitor address` in every node namespace; keeps (time, pnn, added, ip)."""

    def __init__(self, lc: LocalCluster) -> None:
        self.events: list[tuple[float, int, bool, str]] = []
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen] = []
        for p in range(N):
            proc = subprocess.Popen(["ip", "-n", lc.node_ns(p), "-o", "monitor", "address"],
                                    stdout=subprocess.PIPE, text=True, bufsize=1)
            self._procs.append(proc)
            threading.Thread(target=self._read, args=(p, proc), daemon=True).start()
        time.sleep(0.2)

    def _read(self, pnn: int, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            t = time.monotonic()
            f = line.split()
            added = f[0] != "Deleted"
            if not added:
                f = f[1:]
            if len(f) >= 4 and f[2] == "inet":
                with self._lock:
                    self.events.append((t, pnn, added, f[3].split("/")[0]))

    def first_add(self, ip: str, after: float, exclude: int) -> float | None:
        with self._lock:
            for t, pnn, added, a in self.events:
                if added and a == ip and t >= after and pnn != exclude:
                    return t
        return None

    def close(self) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait()


class EchoClient:
    """The echo client in the client namespace; its lines go to a queue as they come."""

    def __init__(self, lc: LocalCluster, ip: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lc.client_ns, sys.executable, "-m",
             "ctdb_localcluster.echo_client", ip, str(PORT)],
            stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[list[str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.split())
        self.lines.put(["eof"])

    def expect(self, words: tuple[str, ...], deadline: float) -> float:
        timeout = max(0.0, deadline - time.monotonic())
        try:
            f = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"echo client: no {'/'.join(words)} in time") from None
        if not f or f[0] not in words:
            raise RuntimeError(f"echo client said {f!r}, expected {'/'.join(words)}")
        return float(f[1])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def serve(port: int) -> None:
    """Echo server (run in a node namespace by `--serve PORT`). Like smbd it registers each
    client connection with TCP_CLIENT and keeps its ctdbd connection open while the TCP
    connection lasts: 4.17 drops a connection from the tickle list when the client that
    registered it disconnects (ctdb_localcluster.echo_server closes it at once, so 4.17
    would have nothing to tickle)."""
    import ipaddress
    import socket

    from ctdbcore.protocol.constants import CTRL_FLAG_NOREPLY, Opcode
    from ctdbcore.protocol.types import Connection, SockAddr

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(16)
    print("listening", flush=True)

    def handle(conn: socket.socket) -> None:
        peer, local = conn.getpeername(), conn.getsockname()
        ctdb = None
        try:
            ctdb = Client(os.environ["CTDB_SOCKET"], timeout=5)
            info = Connection(src=SockAddr(ip=ipaddress.ip_address(peer[0]), port=peer[1]),
                              dst=SockAddr(ip=ipaddress.ip_address(local[0]), port=local[1]))
            ctdb.control(Opcode.TCP_CLIENT, info.pack(), flags=CTRL_FLAG_NOREPLY)
        except Exception as exc:  # noqa: BLE001 - the run then shows a slow reset
            print(f"TCP_CLIENT failed: {exc}", flush=True)
        try:
            while data := conn.recv(1024):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()
            if ctdb is not None:
                try:
                    ctdb.close()
                except Exception:  # noqa: BLE001
                    pass

    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def _wait(pred, timeout: float, what: str, interval: float = 0.02) -> float:
    t0 = time.monotonic()
    while True:
        try:
            if pred():
                return time.monotonic()
        except Exception:  # noqa: BLE001 - a node may be restarting
            pass
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def kernel_holders(lc: LocalCluster) -> dict[str, list[int]]:
    public = lc.node(0).public_addresses
    out: dict[str, list[int]] = {ip: [] for ip in public}
    for p in range(N):
        res = lc.run(p, "ip", "-j", "addr", "show", "dev", "eth1", timeout=10)
        for link in json.loads(res.stdout or "[]"):
            for a in link.get("addr_info", []):
                if a.get("local") in out:
                    out[a["local"]].append(p)
    return out


def placed(lc: LocalCluster) -> bool:
    """Every address on exactly one node's eth1, one per node, and the nodes agree."""
    k = kernel_holders(lc)
    if not all(len(v) == 1 for v in k.values()) or sorted(v[0] for v in k.values()) != list(range(N)):
        return False
    with Client(lc.socket(0), timeout=3) as c:
        seen = {str(ip.addr.ip): ip.pnn for ip in c.get_public_ips().ips}
    return all(seen.get(ip) == k[ip][0] for ip in k)


def nodemap_ok(lc: LocalCluster) -> bool:
    with Client(lc.socket(0), timeout=3) as c:
        nm, recmode = c.get_nodemap(), c.get_recmode()
    return recmode == 0 and len(nm.nodes) == N and all(x.flags == 0 for x in nm.nodes)


def leader(lc: LocalCluster) -> int:
    with Client(lc.socket(0), timeout=5) as c:
        return c.get_leader(5)


def heal(lc: LocalCluster, real: bool) -> None:
    for p in range(N):
        if not lc.running(p):
            lc.start(p)
    timeout = 120 if real else 30
    _wait(lambda: nodemap_ok(lc), timeout, "all nodes OK", 0.1)
    _wait(lambda: placed(lc), timeout, "addresses placed one per node", 0.1)
    # A node that just came back gets an address by a rebalance a moment later:
    # wait until the placement is stable, not just complete once.
    time.sleep(1.0)
    _wait(lambda: placed(lc), timeout, "addresses placed one per node", 0.1)


def client_endpoint(lc: LocalCluster, ip: str) -> str:
    """address:port of the client's established connection to ip:PORT."""
    out = lc.client("ss", "-tnH", "state", "established", "dst", f"{ip}:{PORT}", timeout=10).stdout
    rows = [ln.split() for ln in out.splitlines() if ln.strip()]
    if not rows:
        raise RuntimeError(f"no client connection to {ip}:{PORT}")
    return rows[-1][-2]


def tickled_everywhere(lc: LocalCluster, nodes: list[int], ip: str, endpoint: str) -> bool:
    """Every node in nodes has the client's connection in its tickle list for ip."""
    for p in nodes:
        out = lc.run(p, lc.state["ctdb"], "gettickles", ip, check=False, timeout=10).stdout
        if endpoint not in out:
            return False
    return True


def _arp_note(lc: LocalCluster, ip: str, holder: int) -> str:
    """Which node's eth1 MAC the client's neighbour entry for ip points at (diagnostic)."""
    try:
        neigh = json.loads(lc.client("ip", "-j", "neigh", "show", ip, timeout=5).stdout or "[]")
        mac = neigh[0].get("lladdr") if neigh else None
        for p in range(N):
            link = json.loads(lc.run(p, "ip", "-j", "link", "show", "eth1", timeout=5).stdout)
            if link and link[0].get("address") == mac:
                return f"client's ARP entry for {ip} points at node {p} (old holder {holder})"
        return f"client's ARP entry for {ip}: {mac}"
    except Exception as exc:  # noqa: BLE001
        return f"no ARP diagnostic: {exc}"


def one_run(lc: LocalCluster, scenario: str, mon: AddressMonitor, real: bool) -> dict[str, float | None]:
    heal(lc, real)
    lead = leader(lc)
    holders = {ip: v[0] for ip, v in kernel_holders(lc).items()}
    if scenario == "kill-leader":
        ip = next(a for a in sorted(holders) if holders[a] == lead)
    else:
        ip = next(a for a in sorted(holders) if holders[a] != lead)
    holder = holders[ip]
    client = EchoClient(lc, ip)
    bound = 60.0 if real else 20.0
    try:
        client.expect(("connected",), time.monotonic() + 15)
        endpoint = client_endpoint(lc, ip)
        others = [p for p in range(N) if p != holder]
        _wait(lambda: tickled_everywhere(lc, others, ip, endpoint), 45 if real else 15,
              "connection in the other nodes' tickle lists", 0.05)
        t0 = time.monotonic()
        if scenario in ("kill", "kill-leader"):
            lc.kill(holder)
        elif scenario == "sigstop":
            lc.stop(holder)
        elif scenario == "disable":
            # The tool, not just the DISABLE_NODE control: 4.17's `ctdb disable` itself
            # asks for the takeover run (ipreallocate) that moves the addresses.
            lc.run(holder, lc.state["ctdb"], "disable", timeout=30)
        deadline = t0 + bound
        out: dict[str, float | None] = {m: None for m in METRICS}
        errors = []
        try:
            _wait(lambda: mon.first_add(ip, t0, holder) is not None, bound, f"{ip} on another node")
            out["address"] = mon.first_add(ip, t0, holder) - t0  # type: ignore[operator]
        except TimeoutError as exc:
            errors.append(str(exc))
        try:
            out["reset"] = client.expect(("reset", "closed"), deadline) - t0
            out["reconn"] = client.expect(("reconnected",), deadline) - t0
        except (TimeoutError, RuntimeError) as exc:
            errors.append(f"{exc}; {_arp_note(lc, ip, holder)}")
        out["errors"] = "; ".join(errors) or None  # type: ignore[assignment]
        return out
    finally:
        client.close()
        if scenario == "sigstop":
            lc.cont(holder)
        elif scenario == "disable":
            res = lc.run(holder, lc.state["ctdb"], "enable", check=False, timeout=60)
            if res.returncode:
                print(f"    enable of node {holder} failed: {res.stderr.strip()}", flush=True)
        if real and scenario in ("kill", "kill-leader"):
            # A SIGKILLed 4.17 node's cluster lock helper lingers up to 5 s.
            time.sleep(1.0)


def _server_env(lc: LocalCluster, pnn: int) -> dict[str, str]:
    env = lc.env(pnn)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (REPO, env.get("PYTHONPATH")) if x)
    return env


def run_impl(impl: str, runs: int, log_level: str = "NOTICE",
             scenarios: tuple[str, ...] = SCENARIOS) -> dict[str, dict[str, list[float | None]]]:
    real = impl == "real"
    root = tempfile.mkdtemp(prefix=f"ctdb-failover-{impl}-")
    lc = LocalCluster(root, f"fo{impl[0]}{os.getpid() % 10000}", cleanup_at_exit=True)
    results: dict[str, dict[str, list[float | None]]] = {s: {m: [] for m in METRICS} for s in SCENARIOS}
    servers: list[subprocess.Popen] = []
    mon = None
    try:
        lc.up(n=N, impl=impl, lock="helper" if real else "file", log_level=log_level)
        for p in range(N):
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", lc.node_ns(p), sys.executable, "-m",
                 "benchmarks.failover", "--serve", str(PORT)],
                env=_server_env(lc, p), cwd=REPO, stdout=subprocess.PIPE, text=True,
                start_new_session=True))
        for srv in servers:
            assert srv.stdout is not None and srv.stdout.readline().strip() == "listening"
        mon = AddressMonitor(lc)
        for i in range(runs):
            for s in scenarios:
                try:
                    r: dict[str, float | None] = dict(one_run(lc, s, mon, real))
                    msg = "  ".join(f"{m} " + ("  fail " if r[m] is None else f"{r[m]:6.3f} s")
                                    for m in METRICS)
                    if r.get("errors"):
                        msg += f"  ({r['errors']})"
                except (TimeoutError, RuntimeError, OSError) as exc:
                    r = {m: None for m in METRICS}
                    msg = f"FAILED: {exc}"
                for m in METRICS:
                    results[s][m].append(r[m])
                print(f"  {impl:<4} run {i + 1}/{runs} {s:<11} {msg}", flush=True)
    finally:
        if mon is not None:
            mon.close()
        for srv in servers:
            try:
                os.killpg(srv.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            srv.wait()
        lc.down()
    return results


def _median(xs: list[float | None]) -> float | None:
    ok = [x for x in xs if x is not None]
    # A failed run is slower than any finished one: it takes the median up when it matters.
    if not ok or len(ok) * 2 <= len(xs):
        return None
    padded = sorted(ok) + [float("inf")] * (len(xs) - len(ok))
    return statistics.median(padded)


def _fmt(x: float | None, failed: bool) -> str:
    if x is None:
        return "fail" if failed else "n/a"
    return f"{x:.3f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.failover")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--real-runs", type=int, default=3)
    p.add_argument("--no-real", action="store_true")
    p.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if os.geteuid() != 0:
        print("benchmarks.failover needs root (network namespaces)", file=sys.stderr)
        return 2
    do_real = not args.no_real and os.path.exists(REAL_CTDBD)
    print(f"{N}-node namespace cluster, {args.runs} runs ours"
          + (f", {args.real_runs} runs real 4.17" if do_real else ", real 4.17 not run"), flush=True)
    ours = run_impl("ours", args.runs)
    real = run_impl("real", args.real_runs) if do_real else None
    print()
    print("seconds from the signal / control; median (runs that finished / runs)")
    head = f"{'scenario':<27} {'metric':<8} {'ours':>14} {'real 4.17':>16} {'real/ours':>10} {'goal (ours)':>12}"
    print(head)
    print("-" * len(head))
    for s in SCENARIOS:
        for m in METRICS:
            xs = ours[s][m]
            mo = _median(xs)
            col_o = f"{_fmt(mo, True)} ({sum(x is not None for x in xs)}/{len(xs)})"
            if real is not None:
                ys = real[s][m]
                mr = _median(ys)
                col_r = f"{_fmt(mr, True)} ({sum(y is not None for y in ys)}/{len(ys)})"
                ratio = f"{mr / mo:.1f}x" if mr is not None and mo else "n/a"
            else:
                col_r, ratio = "n/a", "n/a"
            goal = ""
            if m in ("address", "reset") and s in GOALS:
                goal = f"<= {GOALS[s]:g} s " + ("ok" if mo is not None and mo <= GOALS[s] else "MISSED")
            print(f"{LABELS[s] if m == METRICS[0] else '':<27} {m:<8} {col_o:>14} {col_r:>16} {ratio:>10} {goal:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
