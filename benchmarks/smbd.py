"""smbd benchmark: Debian's real Samba smbd (clustering = yes) on our daemons, against
the same smbd on Debian's 4.17 ctdbd in the same topology, in the same run.

    .venv/bin/python -m benchmarks.smbd [--runs 5] [--loops 30] [--clients 2] [--no-real]

Each implementation gets a 3-node loopback cluster (contrib/localcluster) with smbd on
nodes 0 and 1, both exporting one directory (ctdb_localcluster.samba). A run starts
``--clients`` smbclient sessions through each of the two nodes at once; each session
puts and gets the *same* file ``--loops`` times, so the file's share-mode, byte-range
and open records (locking.tdb, brlock.tdb, smbXsrv_open_global.tdb) move between the
nodes all the time. Printed: the median wall time of a run, the ratio ours / 4.17,
and the record migrations per run (REPLY_DMASTERs, from the daemons' `ctdb statistics`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ctdb_localcluster.cluster import LocalCluster
from ctdb_localcluster.samba import SMBD, Samba, smbclient
from ctdbcore.client import Client
from ctdbcore.protocol import types as T
from ctdbcore.protocol.constants import Opcode

REAL_CTDBD = "/usr/sbin/ctdbd"
PORT = 44541
BASES = {"ours": 84, "real": 87}


def _migrations(lc: LocalCluster, n: int) -> int:
    total = 0
    for p in range(n):
        with Client(lc.socket(p)) as c:
            total += T.Statistics.unpack(c._checked(Opcode.STATISTICS).data).node_reply_dmaster
    return total


def run_impl(impl: str, runs: int, loops: int, clients: int) -> tuple[list[float], list[int]]:
    root = Path(tempfile.mkdtemp(prefix=f"ctdb-smbdbench-{impl}-"))
    lc = LocalCluster(str(root / "cluster"), f"smbb{impl}")
    lc.up(3, loopback=True, loopback_base=BASES[impl], impl=impl)
    smb = None
    try:
        lc.wait_ok(timeout=60)
        smb = Samba(lc, root / "samba", (0, 1), port=PORT)
        smb.start()
        smb.add_user(0)
        (smb.work / "x.txt").write_text("x" * 4096)
        smb.client(0, "put x.txt hot.txt")
        commands = "; ".join(["put x.txt hot.txt; get hot.txt y.txt"] * loops)
        times, moves = [], []
        for _ in range(runs):
            before = _migrations(lc, 3)
            t0 = time.perf_counter()
            procs = [subprocess.Popen([sys.executable, "-c", _ONE, str(smb.cconf), lc.address(i % 2), commands,
                                       str(smb.work / f"c{i}"), str(PORT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True) for i in range(2 * clients)]
            outs = [p.communicate(timeout=600)[0] for p in procs]
            times.append(time.perf_counter() - t0)
            failed = [o for p, o in zip(procs, outs) if p.returncode != 0]
            if failed:
                raise RuntimeError(f"smbclient failed ({impl}): {failed[0][-2000:]}")
            moves.append(_migrations(lc, 3) - before)
        smb.check_alive()
        return times, moves
    finally:
        try:
            if smb is not None:
                smb.stop()
        finally:
            lc.down()


# One smbclient session in a process of its own (its own working directory for `get`).
_ONE = """
import os, sys
from pathlib import Path
from ctdb_localcluster.samba import smbclient
conf, address, commands, cwd, port = sys.argv[1:]
os.makedirs(cwd, exist_ok=True)
Path(cwd, "x.txt").write_text("x" * 4096)
smbclient(Path(conf), address, commands, Path(cwd), int(port))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.smbd", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--loops", type=int, default=30)
    ap.add_argument("--clients", type=int, default=2, help="smbclient sessions per node")
    ap.add_argument("--no-real", action="store_true")
    args = ap.parse_args(argv)
    if not os.path.exists(SMBD):
        print("benchmarks.smbd needs Debian's samba package (/usr/sbin/smbd)", file=sys.stderr)
        return 2
    ours, moves = run_impl("ours", args.runs, args.loops, args.clients)
    line = (f"{2 * args.clients} smbclient sessions x {args.loops} put+get of one file through 2 nodes: "
            f"ours {statistics.median(ours):.2f} s (runs {' '.join(f'{t:.2f}' for t in ours)}), "
            f"{statistics.median(moves):.0f} record migrations per run")
    if not args.no_real and os.path.exists(REAL_CTDBD):
        real, real_moves = run_impl("real", args.runs, args.loops, args.clients)
        line += (f"; 4.17 {statistics.median(real):.2f} s (runs {' '.join(f'{t:.2f}' for t in real)}), "
                 f"{statistics.median(real_moves):.0f} record migrations per run; "
                 f"ours/4.17 {statistics.median(ours) / statistics.median(real):.2f}x")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
