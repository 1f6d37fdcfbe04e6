"""Membership benchmark: cold start, leader failover, hung-node detection.

    .venv/bin/python -m benchmarks.cluster [--runs 5] [--real-runs 3] [--no-real]

Each scenario runs on a 3-node cluster in network namespaces (contrib/localcluster),
first with our ctdbd and then, when Debian's ctdb package is installed, with the real
4.17 ctdbd in the same topology, in the same run. Observations go through each
node's unix socket with our client library (unix sockets are files, so no namespace
hop is needed), polling every 10 ms; the real daemon is observed the same way.

Scenarios (seconds, median over the runs):
  cold start   all nodes started at once -> node 0 sees every node OK, NORMAL mode
  leader kill  SIGKILL the leader -> a survivor receives a LEADER broadcast naming
               a live node
  sigstop      SIGSTOP a non-leader -> the leader's nodemap shows it DISCONNECTED
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from ctdb_localcluster.cluster import LocalCluster
from ctdbcore.client import Client
from ctdbcore.protocol.constants import UNKNOWN_PNN, NodeFlags, Srvid
from ctdbcore.protocol.types import unpack_u32

REAL_CTDBD = "/usr/sbin/ctdbd"
POLL = 0.01


def _nodemap(lc: LocalCluster, pnn: int):
    with Client(lc.socket(pnn), timeout=2) as c:
        return c.get_nodemap(), c.get_recmode()


def _wait(pred, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if pred():
                return time.monotonic()
        except Exception:
            pass
        time.sleep(POLL)
    raise TimeoutError(f"no result within {timeout} s")


def _all_ok(lc: LocalCluster, n: int) -> bool:
    nm, recmode = _nodemap(lc, 0)
    return recmode == 0 and len(nm.nodes) == n and all(x.flags == 0 for x in nm.nodes)


def _leader(lc: LocalCluster, pnn: int, timeout: float = 3.0) -> int:
    with Client(lc.socket(pnn), timeout=timeout) as c:
        return c.get_leader(timeout)


def cold_start(lc: LocalCluster, n: int, real: bool) -> float:
    for p in range(n):
        if lc.running(p):
            lc.kill(p)
    # A SIGKILLed 4.17 node's lock helper lingers up to 5 s; start from a free lock.
    time.sleep(6.0 if real else 0.3)
    t0 = time.monotonic()
    for p in range(n):
        lc.start(p)
    return _wait(lambda: _all_ok(lc, n), 120) - t0


def leader_kill(lc: LocalCluster, n: int, real: bool) -> float:
    _wait(lambda: _all_ok(lc, n), 120)
    old = _leader(lc, 0)
    survivor = next(p for p in range(n) if p != old)
    with Client(lc.socket(survivor), timeout=60) as c:
        c.register_srvid(Srvid.LEADER)
        t0 = time.monotonic()
        lc.kill(old)
        while True:
            data = c.wait_message(Srvid.LEADER, 60)
            if data is None:
                raise TimeoutError("no new leader within 60 s")
            leader = unpack_u32(data)
            if leader not in (old, UNKNOWN_PNN):
                took = time.monotonic() - t0
                break
    lc.start(old)
    if real:
        time.sleep(6.0)
    return took


def sigstop(lc: LocalCluster, n: int, real: bool) -> float:
    _wait(lambda: _all_ok(lc, n), 120)
    leader = _leader(lc, 0)
    victim = next(p for p in range(n) if p != leader)
    t0 = time.monotonic()
    lc.stop(victim)
    try:
        t = _wait(lambda: _nodemap(lc, leader)[0].nodes[victim].flags & NodeFlags.DISCONNECTED, 120)
    finally:
        lc.cont(victim)
    return t - t0


SCENARIOS = {"cold start": cold_start, "leader kill": leader_kill, "sigstop": sigstop}
GOALS = {"cold start": 5.0, "leader kill": 1.5, "sigstop": 2.0}


def run_impl(impl: str, runs: int, n: int) -> dict[str, list[float]]:
    real = impl == "real"
    root = tempfile.mkdtemp(prefix=f"ctdb-bench-{impl}-")
    lc = LocalCluster(root, f"bn{impl[0]}{os.getpid() % 10000}", cleanup_at_exit=True)
    results: dict[str, list[float]] = {k: [] for k in SCENARIOS}
    try:
        lc.up(n=n, impl=impl, lock="helper" if real else "file")
        _wait(lambda: _all_ok(lc, n), 120)
        for i in range(runs):
            for name, fn in SCENARIOS.items():
                t = fn(lc, n, real)
                results[name].append(t)
                print(f"  {impl:<5} run {i + 1}/{runs} {name:<12} {t:7.3f} s", flush=True)
    finally:
        lc.down()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.cluster")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--real-runs", type=int, default=3)
    p.add_argument("--no-real", action="store_true")
    p.add_argument("-n", type=int, default=3)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks.cluster needs root (network namespaces)", file=sys.stderr)
        return 2
    print(f"3-node namespace cluster, {args.runs} runs ours" + ("" if args.no_real else f", {args.real_runs} runs real 4.17"))
    ours = run_impl("ours", args.runs, args.n)
    real = None
    if not args.no_real and os.path.exists(REAL_CTDBD):
        real = run_impl("real", args.real_runs, args.n)
    print()
    print(f"{'scenario':<12} {'ours (median)':>14} {'goal':>6} {'real 4.17':>10} {'real/ours':>10}")
    for name in SCENARIOS:
        mo = statistics.median(ours[name])
        line = f"{name:<12} {mo:>12.3f} s {GOALS[name]:>5.1f}s"
        if real:
            mr = statistics.median(real[name])
            line += f" {mr:>8.3f} s {mr / mo:>9.1f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
