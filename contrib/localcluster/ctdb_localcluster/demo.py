"""`make demo`: a 3-node clustered NAS in network namespaces that a newcomer can watch.

It brings the cluster up with Samba managed by ctdbd on every node (the samba plugin
starts Debian's smbd in each node's namespace, all exporting one shared directory),
puts and reads a file with smbclient through a public address, kills smbd on that
address's holder and shows the node going UNHEALTHY, the address moving and the same
client command served again through the same address; then kills a node's ctdbd and
shows a client's TCP connection reset and reconnected, restarts the node and shows it
rejoining, and leaves the cluster running, saying how to poke at it and tear it down.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from pathlib import Path

from ctdb_localcluster import samba
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


def _ip_holder(lc: LocalCluster, pnn: int, ip: str) -> int:
    for line in _ctdb(lc, pnn, "-X", "ip").splitlines()[1:]:
        f = line.strip("|").split("|")
        if f[0] == ip:
            return int(f[1])
    return -1


def _smbclient(lc: LocalCluster, cconf: Path, work: Path, ip: str, commands: str) -> tuple[int, str]:
    r = lc.client("smbclient", f"//{ip}/share", "-p", "445", "-U", samba.USER, "-s", str(cconf),
                  "-c", f"lcd {work}; {commands}", check=False, timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


def _unhealthy(lc: LocalCluster, pnn: int, via: int) -> bool:
    return any(r["Unhealthy"] == "1" for r in lc.status_table(via) if int(r["Node"]) == pnn)


def _smb_failover(lc: LocalCluster, root: Path, nodes: list[int]) -> None:
    name, password = samba.USER.split("%")
    lc.run(0, "smbpasswd", "-c", str(samba.node_smb_conf(root, 0)), "-a", "-s", name,
           input=f"{password}\n" * 2, check=True)
    ip = sorted(_ips(lc))[0]
    holder = _ip_holder(lc, 0, ip)
    work = root / "client-work"
    work.mkdir(exist_ok=True)
    cconf = samba.client_conf(root / "client-conf")
    (work / "hello.txt").write_text("hello from the clustered NAS\n")
    _say(f"smbclient in {lc.client_ns}: put and get a file through {ip} (node {holder}'s smbd)")
    code, out = _smbclient(lc, cconf, work, ip, "put hello.txt; get hello.txt hello-back.txt")
    print(out)
    if code != 0:
        raise SystemExit("demo: smbclient failed")
    print(f"read back: {(work / 'hello-back.txt').read_text().strip()!r}")

    pid = samba.smbd_pid(root, holder)
    other = next(p for p in nodes if p != holder)
    _say(f"Killing smbd (pid {pid}) on node {holder} with SIGKILL")
    t_kill = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: _unhealthy(lc, holder, other), 30)
    print(f"node {holder} is UNHEALTHY {time.monotonic() - t_kill:.2f} s after the kill")
    print(_ctdb(lc, holder, "scriptstatus"), end="")
    _wait(lambda: _ip_holder(lc, other, ip) not in (-1, holder), 30)
    print(f"{ip} is held by node {_ip_holder(lc, other, ip)} {time.monotonic() - t_kill:.2f} s after the kill")
    (work / "hello-back.txt").unlink()
    _wait(lambda: _smbclient(lc, cconf, work, ip, "get hello.txt hello-back.txt")[0] == 0, 60)
    print(f"the same smbclient command through {ip} was served again {time.monotonic() - t_kill:.2f} s "
          f"after the kill: {(work / 'hello-back.txt').read_text().strip()!r}")
    print(_ctdb(lc, other, "status"), end="")

    _say(f"Starting smbd on node {holder} again (4.17 leaves that to the administrator, and so do we)")
    t_start = time.monotonic()
    lc.run(holder, "sh", "-c", f"smbd -D -s {samba.node_smb_conf(root, holder)}", check=True)
    _wait(lambda: not _unhealthy(lc, holder, other), 60)
    print(f"node {holder} is healthy again {time.monotonic() - t_start:.2f} s later (its next monitor event)")
    _wait(lambda: _ip_holder(lc, other, ip) == holder or len({_ip_holder(lc, other, i) for i in _ips(lc)}) == len(nodes), 60)
    print(_ctdb(lc, other, "ip"), end="")


def _ips(lc: LocalCluster) -> list[str]:
    return [line.strip("|").split("|")[0] for line in _ctdb(lc, 0, "-X", "ip").splitlines()[1:] if line]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ctdb-demo")
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--name", default=DEFAULT_NAME)
    p.add_argument("-n", type=int, default=3)
    args = p.parse_args(argv)
    lc = LocalCluster(args.root, args.name)
    nodes = list(range(args.n))

    _say(f"Bringing up {args.n} ctdbd nodes in network namespaces ({args.name}-n0..n{args.n - 1}), "
         "each managing an smbd (the samba plugin)")
    lc.down()
    root = Path(args.root)
    share = root / "shared" / "share"
    share.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    lc.up(n=args.n, **samba.plugin_options(root, share, args.n))
    took = lc.wait_ok(timeout=120)
    print(f"all nodes OK {time.monotonic() - t0:.2f} s after start (wait {took:.2f} s)")
    _wait(lambda: _leader(lc, 0) not in ("", "UNKNOWN"), 30)
    print(_ctdb(lc, 0, "status"), end="")

    _wait(lambda: "-1" not in _ctdb(lc, 0, "-X", "ip") and _ctdb(lc, 0, "-X", "ip").count("\n") > args.n, 60)
    print(_ctdb(lc, 0, "ip"), end="")

    _smb_failover(lc, root, nodes)

    leader = int(_leader(lc, 0))
    ips = {}
    for line in _ctdb(lc, 0, "-X", "ip").splitlines()[1:]:
        f = line.strip("|").split("|")
        ips[f[0]] = int(f[1])
    # Connect a client to an address held by a node that is not the leader, so that
    # killing its holder also shows a plain member failing.
    target = next((ip for ip, p in sorted(ips.items()) if p != leader), sorted(ips)[0])
    holder = ips[target]
    _say(f"Starting an echo server on every node and a client in {lc.client_ns} connected to {target} (node {holder})")
    servers = []
    for p in nodes:
        env = lc.env(p)
        servers.append(subprocess.Popen(["ip", "netns", "exec", lc.node_ns(p), sys.executable, "-m",
                                         "ctdb_localcluster.echo_server", "7000"],
                                        env=env, stdout=subprocess.PIPE, text=True, start_new_session=True))
    for srv in servers:
        srv.stdout.readline()
    client = subprocess.Popen(["ip", "netns", "exec", lc.client_ns, sys.executable, "-m",
                               "ctdb_localcluster.echo_client", target, "7000"], stdout=subprocess.PIPE, text=True)
    print(client.stdout.readline().split()[0])
    time.sleep(0.5)  # let the holder tell the others about the connection

    survivors = [p for p in nodes if p != holder]
    _say(f"Killing node {holder}'s ctdbd (holder of {target}) with SIGKILL")
    t_kill = time.monotonic()
    lc.kill(holder)
    took = _wait(lambda: _ip_holder(lc, survivors[0], target) in survivors, 30)
    print(f"{target} is held by node {_ip_holder(lc, survivors[0], target)} {took:.2f} s after the kill")
    reset = client.stdout.readline().split()
    if reset and reset[0] == "reset":
        print(f"the client's connection was reset {float(reset[1]) - t_kill:.2f} s after the kill (tickle ACK)")
    again = client.stdout.readline().split()
    if again and again[0] == "reconnected":
        print(f"the client reconnected to {target} {float(again[1]) - t_kill:.2f} s after the kill")
    print(_ctdb(lc, survivors[0], "status"), end="")
    print(_ctdb(lc, survivors[0], "ip"), end="")
    for srv in servers:
        srv.kill()

    _say(f"Restarting node {holder}")
    t_start = time.monotonic()
    lc.start(holder)
    lc.wait_ok(timeout=60)
    print(f"node {holder} rejoined, all OK {time.monotonic() - t_start:.2f} s after restart")
    _wait(lambda: str(holder) in [l.strip("|").split("|")[1] for l in _ctdb(lc, holder, "-X", "ip").splitlines()[1:]], 30)
    print(_ctdb(lc, holder, "ip"), end="")

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
