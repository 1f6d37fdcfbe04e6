"""`localcluster`: command line front end of :class:`LocalCluster`."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys

from ctdb_localcluster.cluster import DEFAULT_NAME, DEFAULT_ROOT, ClusterError, LocalCluster


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=value, got {text!r}")
    return key, value


def _pools(text: str) -> tuple[tuple[int, ...], ...]:
    """"0,1,2;0,1;" -> ((0, 1, 2), (0, 1), ()): one pool per node, separated by ';'."""
    try:
        return tuple(tuple(int(i) for i in pool.split(",") if i.strip()) for pool in text.split(";"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected address indexes per node, e.g. '0,1,2;0,1;' for 3 nodes, got {text!r}") from None


def _group(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of pnns, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="localcluster", description=__doc__)
    p.add_argument("--root", default=os.environ.get("LOCALCLUSTER_ROOT", DEFAULT_ROOT),
                   help="state directory (default %(default)s)")
    p.add_argument("--name", default=os.environ.get("LOCALCLUSTER_NAME", DEFAULT_NAME),
                   help="prefix of namespace names (default %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="build and start the cluster (idempotent)")
    up.add_argument("-n", "--nodes", type=int, default=3, dest="n")
    up.add_argument("--loopback", action="store_true", help="127.0.0.x nodes, no root needed")
    up.add_argument("--loopback-base", type=int, default=11)
    up.add_argument("--public-ips", type=int, default=None, metavar="K")
    up.add_argument("--ipv6-public", type=int, default=0, metavar="K",
                    help="also K IPv6 public addresses (2001:db8:100::101...)")
    up.add_argument("--public-pools", type=_pools, default=None, metavar="I,J;K;...",
                    help="per node, the indexes of the public addresses its public_addresses lists "
                         "(an empty entry: an empty file); in loopback mode: on lo, CTDB_TEST_MODE")
    up.add_argument("--log-level", default="NOTICE")
    up.add_argument("--lock", choices=("none", "file", "helper"), default="file")
    up.add_argument("--tunable", type=_key_value, action="append", default=[],
                    metavar="NAME=VALUE")
    up.add_argument("--env", type=_key_value, action="append", default=[], metavar="K=V")
    up.add_argument("--plugins", default=None, metavar="LIST")
    up.add_argument("--impl", choices=("ours", "real"), default="ours")
    up.add_argument("--ctdbd", default=None, help="daemon executable (default per --impl)")
    up.add_argument("--ctdb", default=None, help="ctdb tool used by status and wait-ok")

    down = sub.add_parser("down", help="stop everything and remove the namespaces")
    down.add_argument("--purge", action="store_true", help="also remove the root directory")

    sub.add_parser("status", help="`ctdb status` on the first running node")

    for name, text in (("kill", "SIGKILL"), ("stop", "SIGSTOP"), ("cont", "SIGCONT"),
                       ("start", "start again")):
        sp = sub.add_parser(name, help=f"{text} node PNN")
        sp.add_argument("pnn", type=int)

    run = sub.add_parser("run", help="CMD inside node PNN's namespace")
    run.add_argument("pnn", type=int)
    run.add_argument("cmd", nargs=argparse.REMAINDER)

    client = sub.add_parser("client", help="CMD inside the client namespace")
    client.add_argument("cmd", nargs=argparse.REMAINDER)

    wait = sub.add_parser("wait-ok", help="wait until all nodes are OK")
    wait.add_argument("--timeout", type=float, default=60)

    part = sub.add_parser("partition", help="cut the internal network between groups")
    part.add_argument("groups", nargs="+", type=_group, metavar="A,B")
    sub.add_parser("heal", help="undo partition")

    ssh = sub.add_parser("onnode-ssh", help="remote shell for onnode (ONNODE_SSH)")
    ssh.add_argument("-n", action="store_true", dest="no_stdin")
    ssh.add_argument("address")
    ssh.add_argument("cmd", nargs=argparse.REMAINDER)

    onnode = sub.add_parser("onnode", help="onnode against this cluster")
    onnode.add_argument("args", nargs=argparse.REMAINDER)
    return p


def _need_cmd(cmd: list[str]) -> list[str]:
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise ClusterError("a command is required")
    return cmd


def _self_command(lc: LocalCluster) -> str:
    return " ".join(shlex.quote(a) for a in (sys.executable, "-m", "ctdb_localcluster",
                                             "--root", str(lc.root), "--name", lc.name))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = None
    i = 0
    while i < len(argv):  # `onnode` takes its own options: hand them over untouched
        if argv[i] in ("--root", "--name"):
            i += 2
        elif argv[i] == "onnode":
            passthrough, argv = argv[i + 1:], argv[:i + 1]
            break
        elif argv[i].startswith("-"):
            i += 1
        else:
            break
    args = build_parser().parse_args(argv)
    if passthrough is not None:
        args.args = passthrough
    lc = LocalCluster(args.root, args.name)
    try:
        return _dispatch(lc, args)
    except ClusterError as exc:
        print(f"localcluster: {exc}", file=sys.stderr)
        return 1
    except TimeoutError as exc:
        print(f"localcluster: {exc}", file=sys.stderr)
        return 1


def _dispatch(lc: LocalCluster, args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "up":
        built = lc.up(n=args.n, loopback=args.loopback, loopback_base=args.loopback_base,
                      public_ips=args.public_ips, ipv6_public=args.ipv6_public,
                      public_pools=args.public_pools, log_level=args.log_level, lock=args.lock,
                      tunables=tuple(args.tunable), env=tuple(args.env), plugins=args.plugins,
                      impl=args.impl, ctdbd=args.ctdbd, ctdb=args.ctdb)
        state = "started" if built else "already running"
        print(f"{lc.state['mode']} cluster {lc.name!r} with {lc.state['n']} nodes {state} "
              f"(root {lc.root})")
        return 0
    if cmd == "down":
        lc.down(purge=args.purge)
        return 0
    if cmd == "status":
        return _status(lc)
    if cmd in ("kill", "stop", "cont", "start"):
        getattr(lc, cmd)(args.pnn)
        return 0
    if cmd == "run":
        return lc.run(args.pnn, *_need_cmd(args.cmd), check=False, timeout=None,
                      capture=False).returncode
    if cmd == "client":
        return lc.client(*_need_cmd(args.cmd), check=False, timeout=None,
                         capture=False).returncode
    if cmd == "wait-ok":
        took = lc.wait_ok(timeout=args.timeout)
        print(f"all nodes OK after {took:.1f}s")
        return 0
    if cmd == "partition":
        lc.partition(args.groups)
        return 0
    if cmd == "heal":
        lc.heal()
        return 0
    if cmd == "onnode-ssh":
        return _onnode_ssh(lc, args)
    if cmd == "onnode":
        return _onnode(lc, args.args)
    raise AssertionError(cmd)


def _status(lc: LocalCluster) -> int:
    for node in lc.nodes():
        if lc.running(node.pnn):
            return lc.run(node.pnn, lc.state["ctdb"], "status", check=False, capture=False,
                          timeout=None).returncode
    print(f"{'PNN':>3} {'ADDRESS':<15} {'NETNS':<12} {'PID':>8} STATE")
    for node in lc.nodes():
        pid = lc.pid(node.pnn)
        print(f"{node.pnn:>3} {node.address:<15} {node.netns or '-':<12} "
              f"{pid or '-':>8} {'running' if pid else 'down'}")
    return 1


def _onnode_ssh(lc: LocalCluster, args: argparse.Namespace) -> int:
    cmd = _need_cmd(args.cmd)
    pnn = lc.pnn_of(args.address)
    # ssh joins its arguments with spaces and hands them to the remote shell: so do we.
    node = lc.node(pnn)
    argv = ["sh", "-c", " ".join(cmd)]
    if node.netns:
        argv = ["ip", "netns", "exec", node.netns, *argv]
    stdin = subprocess.DEVNULL if args.no_stdin else None
    return subprocess.run(argv, env=lc.env(pnn), stdin=stdin).returncode


def _onnode(lc: LocalCluster, argv: list[str]) -> int:
    lc.state  # noqa: B018 - raises ClusterError when there is no cluster
    if argv and argv[0] == "--":
        argv = argv[1:]
    env = dict(os.environ)
    env["ONNODE_SSH"] = f"{_self_command(lc)} onnode-ssh"
    env["CTDB_NODES_FILE"] = lc.nodes_file()
    onnode = os.path.join(os.path.dirname(sys.executable), "onnode")
    if not os.path.exists(onnode):
        onnode = shutil.which("onnode") or "onnode"
    os.execvpe(onnode, [onnode, *argv], env)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
