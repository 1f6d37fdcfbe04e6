"""`make demo`: a 3-node cluster in network namespaces that a newcomer can watch.

It brings the cluster up, shows `ctdb status`, kills the leader and shows a new
one taking over, restarts the dead node and shows it rejoining, then leaves the
cluster running and says how to poke at it and how to tear it down.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from ctdb_localcluster.cluster import DEFAULT_NAME, DEFAULT_ROOT, LocalCluster


def _say(msg: str) -> None:
    print(f"\n=== {msg}", flush=True)


def _ctdb(lc: LocalCluster, pnn: int, *args: str) -> str:
    return lc.run(pnn, "ctdb", *args, check=False, timeout=30).stdout


def _leader(lc: LocalCluster, pnn: int) -> str:
    return _ctdb(lc, pnn, "leader").strip()


def _wait(pred, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if pred():
                return time.monotonic() - t0
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"demo: gave up after {timeout} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ctdb-demo")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--name", default=DEFAULT_NAME)
    p.add_argument("-n", type=int, default=3)
    args = p.parse_args(argv)
    lc = LocalCluster(args.root, args.name)
    nodes = list(range(args.n))

    _say(f"Bringing up {args.n} ctdbd nodes in network namespaces ({args.name}-n0..n{args.n - 1})")
    lc.down()
    t0 = time.monotonic()
    lc.up(n=args.n)
    took = lc.wait_ok(timeout=60)
    print(f"all nodes OK {time.monotonic() - t0:.2f} s after start (wait {took:.2f} s)")
    _wait(lambda: _leader(lc, 0) not in ("", "UNKNOWN"), 30)
    print(_ctdb(lc, 0, "status"), end="")

    leader = int(_leader(lc, 0))
    survivors = [p for p in nodes if p != leader]
    _say(f"Killing the leader, node {leader}, with SIGKILL")
    t_kill = time.monotonic()
    lc.kill(leader)
    took = _wait(lambda: _leader(lc, survivors[0]) not in ("UNKNOWN", str(leader), ""), 30)
    print(f"node {_leader(lc, survivors[0])} is the new leader {took:.2f} s after the kill")
    took = _wait(lambda: re.search(r"^Size:%d$" % len(survivors), _ctdb(lc, survivors[0], "status"), re.M), 30)
    print(f"recovery without node {leader} done {time.monotonic() - t_kill:.2f} s after the kill")
    print(_ctdb(lc, survivors[0], "status"), end="")

    _say(f"Restarting node {leader}")
    t_start = time.monotonic()
    lc.start(leader)
    lc.wait_ok(timeout=60)
    print(f"node {leader} rejoined, all OK {time.monotonic() - t_start:.2f} s after restart")
    print(_ctdb(lc, leader, "status"), end="")

    _say("The cluster is still running. Try:")
    print(f"  .venv/bin/localcluster --root {args.root} --name {args.name} status")
    print(f"  .venv/bin/localcluster --root {args.root} --name {args.name} run 1 ctdb status")
    print(f"  .venv/bin/localcluster --root {args.root} --name {args.name} kill 2     (then: start 2)")
    print(f"  .venv/bin/localcluster --root {args.root} --name {args.name} onnode all ctdb pnn")
    print(f"  logs: {args.root}/node*/log.ctdb")
    print("Tear it down with:  make demo-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
