"""Managed services: from the SIGKILL of a service's main process to the node UNHEALTHY,
its public address up on a healthy node, and a client served again, ours vs Debian's
4.17 ctdbd with its own shipped event script, in the same topology, same run.

    .venv/bin/python -m benchmarks.services [--runs 5] [--real-runs 3] [--no-real]

Each implementation gets a 3-node namespace cluster (contrib/localcluster; public
addresses 198.51.100.101.. on each node's eth1, a client namespace) whose nodes manage
Debian's smbd, all exporting one directory:

* ours: the samba plugin (plugins/samba) enabled on every node, smbd started from its
  start command with the node's smb.conf, default settings otherwise;
* 4.17: Debian's ctdbd with Debian's own ``50.samba`` script linked into
  ``events/legacy``. That script starts smbd with ``service $CTDB_SERVICE_SMB start``,
  which clears the environment, so each node's smbd is started by a small init script
  (``/etc/init.d/ctdbbench-smbd-<pid>``, removed afterwards) that finds its node's
  smb.conf by the network namespace it runs in; ``CTDB_SAMBA_CHECK_PORTS=445`` and
  ``CTDB_SAMBA_SKIP_SHARE_CHECK=yes`` in script.options, because its ``testparm -v -s``
  reads the machine's /etc/samba/smb.conf (it has no way to name another). Its
  MonitorInterval is its default, 15 s; ours is ours, 5 s, and the plugin's watcher
  reports at once. Its startup runs ``killall -9 smbd``, which on one machine would kill
  the other nodes' smbds too; a ``killall`` first in its PATH signals only the processes
  in the caller's network namespace (what killall does on a real node).

Per run: smbclient in the client namespace puts a file through an address, the
benchmark SIGKILLs the main smbd of the address's holder and measures (CLOCK_MONOTONIC,
seconds after the kill):

  unhealthy  the node's UNHEALTHY flag in another node's nodemap (polled every 20 ms)
  address    the address appears on another node's eth1 (``ip -o monitor address``)
  served     the same ``smbclient get`` through the same address succeeds again

then the service is started again on that node (smbd: by the benchmark, as 4.17's
50.samba leaves that to the administrator; the others by the plugins' own rules) and
the cluster healed. The same for NFS-Ganesha (the nfs plugin, nfs-cat over NFSv3),
vsftpd (curl ftp://) and apache2 (curl http://), ours only: why 4.17 is not measured
for those is printed. Printed: one row per service, its name, then our three medians,
then 4.17's.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from benchmarks.failover import AddressMonitor, _wait, kernel_holders
from ctdb_localcluster import rigs, samba
from ctdb_localcluster.cluster import LocalCluster
from ctdbcore.client import Client
from ctdbcore.protocol.constants import NodeFlags

N = 3
METRICS = ("unhealthy", "address", "served")
GOAL_ADDRESS = 2.0  # seconds from the kill to the address on a healthy node (ours)

KILLALL_SHIM = """#!/bin/sh
# ctdb-py benchmark: killall limited to the caller's network namespace.
sig=TERM
for a; do case "$a" in -q) ;; -[0-9]*) sig="${a#-}" ;; -*) ;; *) prog="$a" ;; esac; done
me=$(readlink /proc/self/ns/net); rc=1
for p in $(pidof "$prog"); do
  [ "$(readlink /proc/$p/ns/net)" = "$me" ] && kill -s "$sig" "$p" 2>/dev/null && rc=0
done
exit $rc
"""


def _flags(lc: LocalCluster, via: int) -> dict[int, int]:
    with Client(lc.socket(via), timeout=3) as c:
        return {n.pnn: n.flags for n in c.get_nodemap().nodes}


def _healthy(lc: LocalCluster) -> bool:
    return all(f == 0 for f in _flags(lc, 0).values())


def _placed(lc: LocalCluster) -> bool:
    k = kernel_holders(lc)
    return all(len(v) == 1 for v in k.values()) and sorted(v[0] for v in k.values()) == list(range(N))


class Smb:
    """smbclient in the client namespace against the share."""

    def __init__(self, lc: LocalCluster, tmp: Path) -> None:
        self.lc = lc
        self.conf = samba.client_conf(tmp / "client")
        self.work = tmp / "work"
        self.work.mkdir(exist_ok=True)

    def run(self, ip: str, commands: str) -> bool:
        r = self.lc.client("smbclient", f"//{ip}/share", "-p", "445", "-U", samba.USER, "-s", str(self.conf),
                           "-c", f"lcd {self.work}; {commands}", check=False, timeout=30)
        return r.returncode == 0


def _client_ok(lc: LocalCluster, *argv: str) -> bool:
    return lc.client(*argv, check=False, timeout=30).returncode == 0


@attrs.define
class Service:
    """One managed service in the benchmark: how its cluster is built, whose pid is
    killed, what the client does, how the node is healed.

    :ivar name: the row's name.
    :ivar build: (impl, tmp, root) -> LocalCluster.up() options.
    :ivar prepare: after the cluster is up (a user, a file): (lc, tmp) -> the client
        check, ip -> served.
    :ivar pid: (lc, pnn) -> the main process to kill.
    :ivar heal: (lc, pnn) -> start the service again; None: the plugin does (4.17's rules).
    :ivar real: 4.17 can run it here (its script needs no change of the machine's
        packaged init scripts).
    """

    name: str
    build: Callable[[str, Path, Path], dict]
    prepare: Callable[[LocalCluster, Path], Callable[[str], bool]]
    pid: Callable[[LocalCluster, int], int | None]
    heal: Callable[[LocalCluster, int], None] | None
    real: bool = False


def _smbd_build(impl: str, tmp: Path, root: Path) -> dict:
    share = tmp / "share"
    share.mkdir()
    if impl == "ours":
        return samba.plugin_options(root, share, N)
    init_name = f"ctdbbench-smbd-{os.getpid()}"
    shims = tmp / "shims"
    shims.mkdir()
    (shims / "killall").write_text(KILLALL_SHIM)
    (shims / "killall").chmod(0o755)
    path = f"{shims}:{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    for p in range(N):
        samba.smb_conf(root / f"node{p}" / "samba", samba.NodeSockets(root), p, share, port=445, own_address=False)
    return dict(impl="real", real_scripts=("50.samba",), env=(("PATH", path),),
                script_options=(f"CTDB_SERVICE_SMB={init_name}", "CTDB_SAMBA_CHECK_PORTS=445",
                                "CTDB_SAMBA_SKIP_SHARE_CHECK=yes"),
                _init=(init_name, tmp / "init-map"))


def _smbd_prepare(lc: LocalCluster, tmp: Path) -> Callable[[str], bool]:
    name, password = samba.USER.split("%")
    lc.run(0, "smbpasswd", "-c", str(samba.node_smb_conf(lc.root, 0)), "-a", "-s", name,
           input=f"{password}\n" * 2, check=True)
    smb = Smb(lc, tmp)
    (smb.work / "f.txt").write_text("benchmark\n")
    for ip in kernel_holders(lc):
        assert smb.run(ip, "put f.txt"), f"smbclient put through {ip} failed"
    return lambda ip: smb.run(ip, "get f.txt")


def _smbd_heal(lc: LocalCluster, pnn: int) -> None:
    lc.run(pnn, "sh", "-c", f"/usr/sbin/smbd -D -s {samba.node_smb_conf(lc.root, pnn)}", check=True)


def _ganesha_build(impl: str, tmp: Path, root: Path) -> dict:
    shared = tmp / "shared"
    shared.mkdir()
    (shared / "file").write_text("benchmark\n")
    return rigs.nfs_cluster_options(root, shared, N)


SERVICES = (
    Service("smbd", _smbd_build, _smbd_prepare, lambda lc, p: samba.smbd_pid(lc.root, p), _smbd_heal, real=True),
    Service("nfs-ganesha", _ganesha_build,
            lambda lc, tmp: lambda ip: _client_ok(lc, "nfs-cat", f"nfs://{ip}/export/file?version=3"),
            lambda lc, p: rigs.ganesha_pid(lc.root, p), None),
    Service("vsftpd", lambda impl, tmp, root: rigs.vsftpd_options(root, N),
            lambda lc, tmp: lambda ip: _client_ok(lc, "curl", "-sS", "--max-time", "5", f"ftp://{ip}/who.txt"),
            rigs.vsftpd_pid, None),
    Service("apache2", lambda impl, tmp, root: rigs.httpd_options(root, tmp / "docs", N),
            lambda lc, tmp: lambda ip: _client_ok(lc, "curl", "-sS", "--max-time", "5", f"http://{ip}/who.txt"),
            rigs.httpd_pid, None),
)


def _cluster(svc: Service, impl: str, tmp: Path) -> LocalCluster:
    root = tmp / "cluster"
    lc = LocalCluster(root, f"svb{os.getpid() % 10000}{impl[0]}", cleanup_at_exit=True)
    opts = svc.build(impl, tmp, root)
    init = opts.pop("_init", None)
    if init is not None:
        samba.install_init_script(init[0], lc, root, init[1], N)
    lc.up(n=N, **opts)
    try:
        _wait(lambda: _healthy(lc) and _placed(lc), 180, f"{svc.name} {impl}: every node healthy, one address each",
              0.2)
    except TimeoutError:
        tool = "/usr/bin/ctdb" if impl == "real" else "ctdb"
        for p in range(N):
            print(lc.run(p, tool, "status", check=False).stdout, lc.run(p, tool, "scriptstatus", check=False).stdout,
                  kernel_holders(lc), file=sys.stderr)
        lc.down()
        raise
    return lc


def one_run(svc: Service, lc: LocalCluster, served: Callable[[str], bool], mon: AddressMonitor, ip: str,
            impl: str) -> dict[str, float | None]:
    holder = next(v[0] for a, v in kernel_holders(lc).items() if a == ip)
    other = (holder + 1) % N
    # vsftpd is restarted after address changes (4.17's rule): wait until it serves
    _wait(lambda: served(ip), 30, f"{svc.name}: the client served through {ip} before the kill", 0.2)
    pid = svc.pid(lc, holder)
    assert pid is not None, f"{svc.name}: no main process on node {holder}"
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    out: dict[str, float | None] = dict.fromkeys(METRICS)
    deadline = t0 + 60
    try:
        out["unhealthy"] = _wait(lambda: _flags(lc, other).get(holder, 0) & NodeFlags.UNHEALTHY, 60,
                                 "UNHEALTHY") - t0
        _wait(lambda: mon.first_add(ip, t0, holder) is not None, max(1.0, deadline - time.monotonic()), "address")
        out["address"] = mon.first_add(ip, t0, holder) - t0
        out["served"] = _wait(lambda: served(ip), max(1.0, deadline - time.monotonic()), "served", 0.05) - t0
    except TimeoutError as exc:
        print(f"  {svc.name} {impl}: {exc}", file=sys.stderr)
    # heal: the service back on the node (by the plugin's own rules where 4.17 has
    # them), the node healthy, the addresses placed again
    if svc.heal is not None:
        svc.heal(lc, holder)
    _wait(lambda: _healthy(lc) and _placed(lc) and svc.pid(lc, holder) is not None, 120, f"{svc.name} {impl}: healed",
          0.2)
    return out


def run_impl(svc: Service, impl: str, runs: int) -> list[dict[str, float | None]]:
    results = []
    with tempfile.TemporaryDirectory(prefix=f"svcbench-{svc.name}-{impl}-") as d:
        tmp = Path(d)
        tmp.chmod(0o755)  # apache2's workers (www-data) read the documents below it
        lc = None
        try:
            lc = _cluster(svc, impl, tmp)
            served = svc.prepare(lc, tmp)
            # the first takeover run's ipreallocated restarts vsftpd everywhere (4.17's
            # rule): measure a settled cluster, not a kill in the middle of that restart
            _wait(lambda: all(svc.pid(lc, p) is not None for p in range(N)), 30, f"{svc.name} on every node", 0.2)
            time.sleep(2)
            mon = AddressMonitor(lc)
            try:
                ips = sorted(kernel_holders(lc))
                for i in range(runs):
                    r = one_run(svc, lc, served, mon, ips[i % len(ips)], impl)
                    print(f"  {svc.name} {impl} run {i + 1}: " + "  ".join(
                        f"{m} {r[m]:.3f}" if r[m] is not None else f"{m} fail" for m in METRICS), flush=True)
                    results.append(r)
            finally:
                mon.close()
        finally:
            if lc is not None:
                lc.down()
            Path("/etc/init.d", f"ctdbbench-smbd-{os.getpid()}").unlink(missing_ok=True)
    return results


def _median(rs: list[dict[str, float | None]], m: str) -> str:
    xs = [r[m] for r in rs if r[m] is not None]
    if not xs:
        return "fail"
    failed = len(xs) < len(rs)
    return f"{statistics.median(xs):.3f}" + ("*" if failed else "")


NOT_REAL = {
    "nfs-ganesha": "4.17's 60.nfs runs Ganesha through a callout script of the administrator's, which "
                   "this benchmark does not write",
    "vsftpd": "4.17's 40.vsftpd starts the fixed init script vsftpd, one per machine: the three nodes "
              "here would share it and its pid file (running it means replacing the packaged "
              "/etc/init.d/vsftpd, which the benchmark does not do)",
    "apache2": "4.17's 41.httpd starts the fixed init script apache2, one per machine (same reason)",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.services")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--real-runs", type=int, default=3)
    p.add_argument("--no-real", action="store_true")
    p.add_argument("--only", default=",".join(s.name for s in SERVICES),
                   help="comma-separated services (default: all)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks.services needs root (network namespaces)", file=sys.stderr)
        return 1
    wanted = [s for s in SERVICES if s.name in args.only.split(",")]
    rows = []
    for svc in wanted:
        print(f"{svc.name}: {args.runs} runs ours" + (f", {args.real_runs} runs 4.17" if svc.real and not args.no_real
                                                       else ""), flush=True)
        ours = run_impl(svc, "ours", args.runs)
        real = run_impl(svc, "real", args.real_runs) if svc.real and not args.no_real else []
        rows.append((svc, ours, real))
    print("\nseconds from SIGKILL of the service's main process (medians; * = some runs failed):")
    print(f"{'service':<12} {'ours: unhealthy':>16} {'address':>8} {'served':>8}   "
          f"{'4.17: unhealthy':>16} {'address':>8} {'served':>8}")
    for svc, ours, real in rows:
        theirs = [_median(real, m) if real else "-" for m in METRICS]
        print(f"{svc.name:<12} {_median(ours, 'unhealthy'):>16} {_median(ours, 'address'):>8} "
              f"{_median(ours, 'served'):>8}   {theirs[0]:>16} {theirs[1]:>8} {theirs[2]:>8}")
    for svc, ours, real in rows:
        addr = [r["address"] for r in ours if r["address"] is not None]
        if addr:
            verdict = "met" if statistics.median(addr) <= GOAL_ADDRESS else "NOT met"
            print(f"goal for {svc.name}: address on a healthy node within {GOAL_ADDRESS:g} s of the kill: {verdict}")
        if not svc.real:
            print(f"4.17 not measured for {svc.name}: {NOT_REAL[svc.name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
