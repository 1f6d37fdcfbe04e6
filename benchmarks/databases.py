"""Database benchmarks: local access, migration, persistent transactions, recovery,
and network messages per node-local operation.

    .venv/bin/python -m benchmarks.databases [--runs 5] [--no-real] [--records 100000]
                                             [--only local,ring,ptrans,recovery,recovery-dbs,
                                                    contention,messages,lockhelper]

All clusters are loopback clusters (contrib/localcluster) of real ctdbd processes.
Figures are medians over ``--runs``; every ratio is against a baseline measured in the
same run:

  local        fetch_lock + store loop on records this node is data master of,
               vs the same loop on a plain tdb file with no daemon (goal >= 0.9x),
               through Tdb's methods and through the client's direct libtdb calls
  ring         one record passed round 2 and 3 nodes (4.17's fetch_ring):
               migrations/s and node packets per migration
  ptrans       one 1000-record transaction (`ctdb ptrans`, Debian's 4.17 tool driving
               both daemons), 1000 single-record transactions (our client library,
               against both daemons); vs Debian's 4.17 ctdbd in the same topology
  recovery     `ctdb recover` with --records volatile records (~120 bytes each)
               spread over the nodes, timed by node 0 (START_RECOVERY to END_RECOVERY,
               as `ctdb uptime` reports it) and end to end; against 4.17 when installed,
               and against our daemons with the Python versions of recovery's
               per-record loops (CTDB_PURE_PYTHON=1, see ctdbcore/db/bulk.py)
  recovery-dbs the same with 15 small databases (what smbd attaches): per-database costs
               such as the freeze's lock helper add up there
  contention   four clients on each of two nodes updating one record (fetch_lock +
               store) for --seconds: updates/s and node packets per update, with
               FetchCollapse 1 (4.17's default) vs 0 on the same cluster, and 4.17
               (FetchCollapse 1) when installed
  messages     record-traffic packets (calls, dmaster moves) per operation for a node-local workload after warm-up,
               N = 1..8 nodes (counted from `ctdb statistics` counters; goal 0)
  lockhelper   no cluster: a freeze lock (always held by a helper process) taken and released
               through the lock server's forked helper vs a directly spawned one, runs
               interleaved; one database, and 15 at once (a recovery with smbd's databases)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from unittest import mock

from ctdb_localcluster.cluster import LocalCluster
from ctdbcore.client.db import attach
from ctdbcore.client.sync import Client
from ctdbcore.db import bulk
from ctdbcore.db.tdb import Tdb, TdbFlags
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import Opcode

REAL_CTDBD = "/usr/sbin/ctdbd"
REAL_CTDB = "/usr/bin/ctdb"
LOCAL_OPS = 20000
SCENARIOS = ("local", "ring", "ptrans", "recovery", "recovery-dbs", "contention", "messages", "lockhelper")


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def cluster(n: int, base: int, impl: str = "ours") -> LocalCluster:
    root = tempfile.mkdtemp(prefix=f"ctdb-dbbench-{impl}-")
    lc = LocalCluster(root, f"dbb{base}")
    lc.up(n, loopback=True, loopback_base=base, impl=impl)
    lc.wait_ok(timeout=60)
    return lc


def node_packets(lc: LocalCluster, n: int) -> int:
    """Record-traffic packets received by all nodes (calls and data master moves);
    the leader's periodic polling is not per operation and is left out."""
    total = 0
    for p in range(n):
        with Client(lc.socket(p)) as c:
            st = T.Statistics.unpack(c._checked(Opcode.STATISTICS).data)
            total += (st.node_req_call + st.node_reply_call + st.node_req_dmaster + st.node_reply_dmaster
                      + st.node_reply_error)
    return total


# -- local access ---------------------------------------------------------------------


def bench_local(runs: int) -> dict[str, float]:
    """Ours against two baselines: the same loop through :class:`Tdb`'s methods (the
    goal's "plain tdb"), and through the direct libtdb prototypes our fast path uses
    (:mod:`ctdbcore.db.tdbfast`), which shows what the client itself adds."""
    from ctdbcore.db import tdbfast as F

    plain, direct, ours = [], [], []
    lc = cluster(1, 171)
    try:
        with Client(lc.socket(0)) as c:
            db = attach(c, "bench_local.tdb")
            keys = [f"k{i % 100}".encode() for i in range(LOCAL_OPS)]
            for k in set(keys):
                db.store(k, b"warm")  # this node becomes dmaster of each
            d = tempfile.mkdtemp()
            flags = TdbFlags.NOSYNC | TdbFlags.INCOMPATIBLE_HASH | TdbFlags.MUTEX_LOCKING
            t = Tdb.open(os.path.join(d, "plain.tdb"), hash_size=10007, tdb_flags=int(flags))
            hdr = bytes(24)
            for _ in range(runs):
                t0 = time.perf_counter()
                for k in keys:
                    t.chainlock(k)
                    v = t.fetch(k)
                    t.store(k, hdr + (v or hdr)[24:32] + b"x")
                    t.chainunlock(k)
                plain.append(LOCAL_OPS / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                h = t.handle
                for k in keys:
                    kd = F.Datum(k, len(k))
                    F.chainlock_nonblock(h, kd)
                    v = F.fetch(h, kd)
                    F.store(h, kd, hdr + (v or hdr)[24:32] + b"x")
                    F.chainunlock(h, kd)
                direct.append(LOCAL_OPS / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                for k in keys:
                    with db.fetch_lock(k) as rec:
                        rec.store(rec.data[:8] + b"x")
                ours.append(LOCAL_OPS / (time.perf_counter() - t0))
            t.close()
    finally:
        lc.down()
    return {"plain ops/s": median(plain), "direct ops/s": median(direct), "ours ops/s": median(ours),
            "ratio": median(ours) / median(plain), "ratio direct": median(ours) / median(direct)}


# -- migration ring -------------------------------------------------------------------


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (their children not included)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def bench_ring(n: int, runs: int, laps: int = 200) -> dict[str, float]:
    lc = cluster(n, 175 + n)
    try:
        clients = [Client(lc.socket(p), timeout=20) for p in range(n)]
        dbs = [attach(c, "ring.tdb") for c in clients]
        pids = [lc.pid(p) for p in range(n)]
        rates, per, daemon_ms, client_ms = [], [], [], []
        for _ in range(runs):
            before = node_packets(lc, n)
            cpu0, own0 = _cpu_seconds(pids), time.process_time()
            t0 = time.perf_counter()
            for i in range(laps * n):
                with dbs[i % n].fetch_lock(b"ring") as rec:
                    rec.store(str(i).encode())
            dt = time.perf_counter() - t0
            moves = laps * n
            # CPU per migration moves far less than wall time on a shared machine.
            daemon_ms.append(1000 * (_cpu_seconds(pids) - cpu0) / moves)
            client_ms.append(1000 * (time.process_time() - own0) / moves)
            rates.append(moves / dt)
            per.append((node_packets(lc, n) - before) / moves)
        for db in dbs:
            db.close()
        for c in clients:
            c.close()
    finally:
        lc.down()
    return {"migrations/s": median(rates), "packets/migration": median(per),
            "daemon CPU ms/migration": median(daemon_ms), "client CPU ms/migration": median(client_ms)}


# -- persistent transactions ----------------------------------------------------------


def _ctdb(lc: LocalCluster, tool: str, *args: str, stdin: str | None = None) -> None:
    env = dict(os.environ, CTDB_SOCKET=lc.socket(0))
    subprocess.run([tool, *args], env=env, input=stdin, text=True, check=True, capture_output=True, timeout=600)


def _tool() -> str:
    # The same client drives both daemons: Debian's 4.17 tool where installed.
    return REAL_CTDB if os.path.exists(REAL_CTDB) else os.path.join(os.path.dirname(sys.executable), "ctdb")


def bench_ptrans(runs: int, impl: str) -> dict[str, float]:
    lc = cluster(3, 185 if impl == "ours" else 195, impl)
    tool = _tool()
    single, batch = [], []
    try:
        _ctdb(lc, tool, "attach", "bench_p.tdb", "persistent")
        for r in range(runs):
            # new values each run: a transaction that changes nothing commits nothing
            lines = "".join(f'"key{i}" "value{i}-{r}"\n' for i in range(1000))
            t0 = time.perf_counter()
            _ctdb(lc, tool, "ptrans", "bench_p.tdb", stdin=lines)
            batch.append(time.perf_counter() - t0)
        with Client(lc.socket(0), timeout=60) as c:
            db = attach(c, "bench_p.tdb", persistent=True)
            for r in range(runs):
                t0 = time.perf_counter()
                for i in range(1000):
                    with db.transaction() as t:
                        t.store(f"single{i}".encode(), f"{r}".encode())
                single.append(time.perf_counter() - t0)
            db.close()
    finally:
        lc.down()
    out = {"1000-record ptrans s": median(batch)}
    if single:
        out["1000 single-record transactions s"] = median(single)
    return out


# -- recovery -------------------------------------------------------------------------


def bench_recovery(runs: int, records: int, impl: str) -> dict[str, float]:
    """Two clocks: end to end (from the client's SET_RECMODE until the node is NORMAL
    in a new generation; 4.17's leader notices the request only at its next
    RecoverInterval tick, up to 1 s later), and the recovery itself as node 0 timed it
    (START_RECOVERY to END_RECOVERY, from GET_UPTIME, as `ctdb uptime` shows it)."""
    lc = cluster(3, 201 if impl == "ours" else 211, impl)
    try:
        _ctdb(lc, _tool(), "attach", "bench_rec.tdb")
        per_node = records // 3
        for p in range(3):
            with Client(lc.socket(p), timeout=60) as c:
                db = attach(c, "bench_rec.tdb")
                for i in range(per_node):
                    # keys whose lmaster is this node are local at once: no migration
                    with db.fetch_lock(f"n{p}-{i}".encode()) as rec:
                        rec.store(b"v" * 100)
        return _recoveries(lc, runs)
    finally:
        lc.down()


def bench_recovery_dbs(runs: int, impl: str, dbs: int = 15, records: int = 50) -> dict[str, float]:
    """Recovery with as many small volatile databases as smbd attaches: each is frozen,
    pulled, pushed and thawed on its own, so per-database costs (a freeze's lock helper)
    add up here."""
    lc = cluster(3, 201 if impl == "ours" else 211, impl)
    try:
        with Client(lc.socket(0), timeout=60) as c:
            for i in range(dbs):
                db = attach(c, f"bench_dbs{i}.tdb")
                for j in range(records):
                    db.store(f"k{j}".encode(), b"v" * 50)
        return _recoveries(lc, runs)
    finally:
        lc.down()


def _pure_python():
    """Daemons started meanwhile use ctdbcore.db.bulk's Python loops (they inherit the
    environment)."""
    return mock.patch.dict(os.environ, {"CTDB_PURE_PYTHON": "1"})


def _recoveries(lc: LocalCluster, runs: int) -> dict[str, float]:
    times, own = [], []
    for _ in range(runs):
        with Client(lc.socket(0), timeout=120) as c:
            gen = c.get_vnnmap().generation
            t0 = time.perf_counter()
            # What `ctdb recover` sends; then poll instead of the tool's 1 s sleeps.
            c._checked(Opcode.SET_RECMODE, T.pack_u32(1))
            while True:
                vm = c.get_vnnmap()
                if vm.generation != gen and c.get_recmode() == 0:
                    break
                time.sleep(0.005)
            times.append(time.perf_counter() - t0)
            # END_RECOVERY follows SET_RECMODE NORMAL: wait until it has landed.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                up = c.uptime()
                started, finished = (_seconds(up.last_recovery_started), _seconds(up.last_recovery_finished))
                if finished >= started > time.time() - times[-1] - 1:
                    own.append(finished - started)
                    break
                time.sleep(0.005)
    return {"end to end s": median(times), "recovery s": median(own) if own else float("nan")}


def _seconds(tv) -> float:
    return tv.sec + tv.usec / 1e6


# -- contention on one record -----------------------------------------------------------


def _hammer(socket_path: str, seconds: float, out) -> None:
    done = 0
    with Client(socket_path, timeout=60) as c:
        db = attach(c, "bench_hot.tdb")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with db.fetch_lock(b"hot") as rec:
                rec.store(b"%d" % (int(rec.data or b"0") + 1))
            done += 1
    out.put(done)


def bench_contention(runs: int, seconds: float, impl: str, collapse_values=(1, 0),
                     per_node: int = 4) -> dict[int, dict[str, float]]:
    import multiprocessing

    lc = cluster(2, 185 if impl == "ours" else 195, impl)
    results: dict[int, dict[str, float]] = {}
    try:
        with Client(lc.socket(0), timeout=20) as c:
            attach(c, "bench_hot.tdb")
        for collapse in collapse_values:
            for p in range(2):
                with Client(lc.socket(p), timeout=20) as c:
                    c.set_tunable("FetchCollapse", collapse)
            rates, per = [], []
            for _ in range(runs):
                q: multiprocessing.Queue = multiprocessing.Queue()
                before = node_packets(lc, 2)
                procs = [multiprocessing.Process(target=_hammer, args=(lc.socket(i % 2), seconds, q))
                         for i in range(2 * per_node)]
                t0 = time.perf_counter()
                for pr in procs:
                    pr.start()
                done = sum(q.get(timeout=seconds + 120) for _ in procs)
                for pr in procs:
                    pr.join()
                dt = time.perf_counter() - t0
                rates.append(done / dt)
                per.append((node_packets(lc, 2) - before) / done)
            results[collapse] = {"updates/s": median(rates), "packets/update": median(per)}
    finally:
        lc.down()
    return results


# -- messages per local operation -----------------------------------------------------


def bench_messages(max_n: int) -> dict[int, float]:
    out = {}
    for n in range(1, max_n + 1):
        lc = cluster(n, 221 + n * 2)
        try:
            with Client(lc.socket(0), timeout=20) as c:
                db = attach(c, "bench_msg.tdb")
                keys = [f"m{i}".encode() for i in range(50)]
                for k in keys:
                    db.store(k, b"warm")
                time.sleep(0.2)
                before = node_packets(lc, n)
                ops = 0
                for _ in range(20):
                    for k in keys:
                        with db.fetch_lock(k) as rec:
                            rec.store(b"hot")
                        ops += 1
                # keepalives are counted separately; anything else is per-op traffic
                out[n] = (node_packets(lc, n) - before) / ops
        finally:
            lc.down()
    return out


# -- lock helpers -----------------------------------------------------------------------


def bench_lock_helper(runs: int, databases: int) -> dict[str, float]:
    """Seconds to hold a freeze lock on each of ``databases`` tdbs at once, and to have
    them all released: medians through the lock server and through spawned helpers."""
    import anyio

    from ctdbcore.db import lock_link
    from ctdbcore.db.locking import freeze_lock
    from ctdbcore.db.tdb import runtime_check_for_robust_mutexes

    flags = 0x1C41 if runtime_check_for_robust_mutexes() else 0x0C41  # 4.17's volatile databases
    d = tempfile.mkdtemp(prefix="ctdb-lockbench-")
    tdbs = [Tdb.open(os.path.join(d, f"db{i}.tdb.0"), tdb_flags=flags) for i in range(databases)]
    got: dict[bool, list[float]] = {True: [], False: []}
    done: dict[bool, list[float]] = {True: [], False: []}

    async def freeze_all() -> tuple[float, float]:
        t0 = time.perf_counter()
        held = anyio.Event()
        count = 0
        release = anyio.Event()

        async def one(t: Tdb) -> None:
            nonlocal count
            async with freeze_lock(t):
                count += 1
                if count == databases:
                    held.set()
                await release.wait()

        async with anyio.create_task_group() as tg:
            for t in tdbs:
                tg.start_soon(one, t)
            await held.wait()
            t1 = time.perf_counter()
            release.set()
        return t1 - t0, time.perf_counter() - t1

    async def run() -> None:
        await freeze_all()  # the server's start-up is not what is measured
        for _ in range(runs):
            for server in (True, False):  # interleaved: a shared machine's load hits both
                lock_link.ENABLED = server
                acquire, rel = await freeze_all()
                got[server].append(acquire)
                done[server].append(rel)
        lock_link.ENABLED = True

    try:
        anyio.run(run)
    finally:
        for t in tdbs:
            t.close()
    return {"server": median(got[True]), "spawn": median(got[False]),
            "server release": median(done[True]), "spawn release": median(done[False])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--max-nodes", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each contention run")
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help=f"comma-separated scenarios to run (default all: {','.join(SCENARIOS)})")
    args = ap.parse_args(argv)
    real = not args.no_real and os.path.exists(REAL_CTDBD)
    only = set(args.only.split(","))
    if only - set(SCENARIOS):
        ap.error(f"unknown scenario(s): {','.join(sorted(only - set(SCENARIOS)))}")

    if "local" in only:
        r = bench_local(args.runs)
        print(f"local fetch_lock+store: ours {r['ours ops/s']:.0f} ops/s, plain tdb {r['plain ops/s']:.0f} ops/s, "
              f"ratio {r['ratio']:.2f}x (goal >= 0.9x); plain tdb through the fast path's direct libtdb calls "
              f"{r['direct ops/s']:.0f} ops/s, ratio {r['ratio direct']:.2f}x")
    if "ring" in only:
        for n in (2, 3):
            r = bench_ring(n, args.runs)
            print(f"migration ring, {n} nodes: {r['migrations/s']:.0f} migrations/s, "
                  f"{r['packets/migration']:.2f} node packets per migration, CPU per migration: "
                  f"daemons {r['daemon CPU ms/migration']:.3f} ms, client {r['client CPU ms/migration']:.3f} ms")
    if "ptrans" in only:
        ours = bench_ptrans(args.runs, "ours")
        line = f"ptrans 1000 records: ours {ours['1000-record ptrans s']:.3f} s"
        if real:
            theirs = bench_ptrans(args.runs, "real")
            line += f", 4.17 {theirs['1000-record ptrans s']:.3f} s, ours/4.17 " \
                    f"{ours['1000-record ptrans s'] / theirs['1000-record ptrans s']:.2f}x (goal <= 1.5x)"
        print(line)
        line = f"1000 single-record transactions: ours {ours['1000 single-record transactions s']:.3f} s"
        if real:
            line += f", 4.17 {theirs['1000 single-record transactions s']:.3f} s, ours/4.17 " \
                    f"{ours['1000 single-record transactions s'] / theirs['1000 single-record transactions s']:.2f}x"
        print(line)
    for scenario, label in (("recovery", f"{args.records} records"), ("recovery-dbs", "15 small databases")):
        if scenario not in only:
            continue
        bench = ((lambda impl: bench_recovery(max(1, args.runs // 2), args.records, impl)) if scenario == "recovery"
                 else (lambda impl: bench_recovery_dbs(args.runs, impl)))
        rec_ours = bench("ours")
        rec_real = bench("real") if real else None
        # The baseline for the compiled loops (ctdbcore.db.bulk): the same daemons with
        # the Python ones.
        rec_py = None
        if scenario == "recovery" and bulk.COMPILED:
            with _pure_python():
                rec_py = bench("ours")
        for what, clock in (("recovery s", "as node 0 timed it (START_RECOVERY to END_RECOVERY)"),
                            ("end to end s", "end to end (SET_RECMODE to NORMAL in a new generation)")):
            line = f"recovery with {label}, {clock}: ours {rec_ours[what]:.3f} s"
            if rec_real:
                line += f", 4.17 {rec_real[what]:.3f} s, ours/4.17 {rec_ours[what] / rec_real[what]:.2f}x"
                line += " (goal <= 1.0x)" if what == "recovery s" and scenario == "recovery" else ""
            if rec_py:
                line += (f"; with Python loops instead of C {rec_py[what]:.3f} s, "
                         f"C / Python {rec_ours[what] / rec_py[what]:.2f}x")
            print(line)
    if "contention" in only:
        ours = bench_contention(args.runs, args.seconds, "ours")
        theirs = bench_contention(args.runs, args.seconds, "real", (1,)) if real else None
        for collapse, r in ours.items():
            line = (f"one record, 4 clients on each of 2 nodes, FetchCollapse {collapse}: ours "
                    f"{r['updates/s']:.0f} updates/s, {r['packets/update']:.3f} node packets per update")
            if collapse == 0:
                line += f"; collapse 1 / collapse 0: {ours[1]['updates/s'] / r['updates/s']:.2f}x updates/s"
            if theirs and collapse == 1:
                t = theirs[1]
                line += (f"; 4.17 {t['updates/s']:.0f} updates/s, {t['packets/update']:.3f} packets per update, "
                         f"ours/4.17 {r['updates/s'] / t['updates/s']:.2f}x updates/s")
            print(line)
    if "messages" in only:
        for n, per in bench_messages(args.max_nodes).items():
            print(f"node packets per local operation, {n} nodes: {per:.3f} (goal 0)")
    if "lockhelper" in only:
        for n in (1, 15):
            r = bench_lock_helper(args.runs, n)
            print(f"freeze lock, {n} database{'s at once' if n > 1 else ''} (median of {args.runs}): "
                  f"lock server {1000 * r['server']:.1f} ms, spawned helper {1000 * r['spawn']:.1f} ms, "
                  f"spawned/server {r['spawn'] / r['server']:.1f}x; release {1000 * r['server release']:.1f} ms "
                  f"vs {1000 * r['spawn release']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
