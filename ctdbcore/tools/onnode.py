"""onnode: run commands on CTDB nodes (CTDB 4.17 tools/onnode, doc/onnode.1.xml).

Differences from 4.17's shell script, on purpose:
- the nodes file is read as ctdbd reads it (ctdb-reference §7.3): blank lines take no PNN;
  `#` lines are deleted nodes that keep their PNN. (4.17's onnode turns blank lines into
  dead slots too, which disagrees with ctdbd's numbering.)
- `$CTDB_NODES_FILE` names the nodes file when `-f` is absent.
- `ok`/`healthy`/`con`/`connected` run `ctdb -X status` through the remote shell on the
  first node that answers, so onnode works from a machine without a local ctdbd.
- `-P` (push with rsync) is not supported.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
from typing import Sequence

PROG = "onnode"
DEAD = "#DEAD"
USAGE = """\
Usage: onnode [OPTION] ... <NODES> <COMMAND> ...
  options:
    -c          Run in current working directory on specified nodes.
    -f          Specify nodes file, overriding default.
    -i          Keep standard input open - the default is to close it.
    -n          Allow nodes to be specified by name.
    -p          Run command in parallel on specified nodes.
    -P          Push given files to nodes instead of running commands.
    -q          Do not print node addresses (overrides -v).
    -v          Print node address even for a single node.
  <NODES>       "all", "any", "ok" (or "healthy"), "con" (or "connected") ; or
                a node number (0 base); or
                a hostname (if -n is specified); or
                list (comma separated) of <NODES>; or
                range (hyphen separated) of node numbers.
"""


class OnnodeExit(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def usage() -> OnnodeExit:
    sys.stderr.write(USAGE)
    return OnnodeExit(1)


def invalid_nodespec() -> OnnodeExit:
    sys.stderr.write("Invalid <nodespec>\n\n")
    return usage()


class Options:
    current = False
    nodes_file: str | None = None
    names_ok = False
    parallel = False
    quiet = False
    verbose = False
    push = False
    stdin = False


def parse_options(argv: Sequence[str]) -> tuple[Options, str, list[str]]:
    """getopts "cf:hnpqvPi?" semantics: options stop at the first non-option."""
    opts = Options()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            c = arg[j]
            if c == "f":
                rest = arg[j + 1:]
                if rest:
                    opts.nodes_file = rest
                else:
                    i += 1
                    if i >= len(args):
                        raise usage()
                    opts.nodes_file = args[i]
                break
            flag = {"c": "current", "n": "names_ok", "p": "parallel", "q": "quiet",
                    "v": "verbose", "P": "push", "i": "stdin"}.get(c)
            if flag is None:
                raise usage()
            setattr(opts, flag, True)
            j += 1
        i += 1
    rest = args[i:]
    if len(rest) < 2:
        raise usage()
    return opts, rest[0], rest[1:]


def read_nodes_file(path: str) -> list[str]:
    """Addresses by PNN; deleted (`#`) entries are DEAD."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        raise OnnodeExit(1, f'{PROG}: unable to open nodes file  "{path}"') from None
    nodes = []
    for line in lines:
        entry = line.strip(" \t")
        if not entry:
            continue
        nodes.append(DEAD if entry.startswith("#") else entry)
    return nodes


def nodes_file_path(opts: Options, env: dict[str, str]) -> str:
    base = env.get("CTDB_BASE") or "/etc/ctdb"
    if opts.nodes_file:
        f = opts.nodes_file
        if not os.path.exists(f) and not f.startswith("/"):
            f = os.path.join(base, f)
        return f
    return env.get("CTDB_NODES_FILE") or os.path.join(base, "nodes")


def parse_nodespec(spec: str, names_ok: bool) -> list[str]:
    out: list[str] = []
    for item in spec.split(","):
        if "-" in item:
            lo, _, hi = item.partition("-")
            try:
                out += [str(n) for n in range(int(lo), int(hi) + 1)]
            except ValueError:
                raise invalid_nodespec() from None
        elif item in ("all", "any", "ok", "healthy", "con", "connected"):
            out.append(item)
        elif item.isdigit() or names_ok:
            out.append(item)
        else:
            raise invalid_nodespec()
    return out


def nth(all_nodes: list[str], n: int) -> str:
    if 0 <= n < len(all_nodes) and all_nodes[n] != DEAD:
        return all_nodes[n]
    raise OnnodeExit(1, f'{PROG}: "node {n}" does not exist')


class Runner:
    def __init__(self, opts: Options, env: dict[str, str]) -> None:
        self.opts = opts
        self.env = env
        self.ssh = shlex.split(env.get("ONNODE_SSH") or "ssh")
        self._status: list[list[str]] | None = None

    def argv(self, node: str, command: str, keep_stdin: bool = False) -> list[str]:
        # $ONNODE_SSH must accept -n, like ssh; 4.17 passes it unless -i without -p.
        no_stdin = self.opts.parallel or not (self.opts.stdin or keep_stdin)
        return [*self.ssh, *(["-n"] if no_stdin else []), node, command]

    def capture(self, node: str, command: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.ssh, "-n", node, command], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, env=self.env)

    def status_rows(self, all_nodes: list[str]) -> list[list[str]]:
        if self._status is None:
            last = ""
            for node in all_nodes:
                if node == DEAD:
                    continue
                proc = self.capture(node, "ctdb -X status")
                if proc.returncode == 0:
                    lines = proc.stdout.splitlines()[1:]
                    self._status = [ln.strip("|").split("|") for ln in lines if ln.strip()]
                    break
                last = proc.stdout + proc.stderr
            else:
                raise OnnodeExit(1, f"{PROG}: unable to get status of CTDB nodes\n{last}".rstrip())
        return self._status

    def with_status(self, all_nodes: list[str], healthy: bool) -> list[str]:
        out = []
        for fields in self.status_rows(all_nodes):
            pnn, flags = fields[0], fields[2:]
            if healthy:
                if any(f == "1" for f in flags):
                    continue
            elif not flags or flags[0] != "0":
                continue
            out.append(nth(all_nodes, int(pnn)))
        return out

    def any_node(self, all_nodes: list[str]) -> str:
        for pnn, node in enumerate(all_nodes):
            if node == DEAD:
                continue
            proc = self.capture(node, "ctdb pnn")
            for line in proc.stdout.splitlines():
                if line.strip().isdigit():
                    return nth(all_nodes, int(line.strip()))
        raise OnnodeExit(1)

    def resolve(self, spec: str, all_nodes: list[str]) -> list[str]:
        nodes: list[str] = []
        for n in parse_nodespec(spec, self.opts.names_ok):
            if n == "all":
                nodes += [a for a in all_nodes if a != DEAD]
            elif n == "any":
                nodes.append(self.any_node(all_nodes))
            elif n in ("ok", "healthy"):
                nodes += self.with_status(all_nodes, healthy=True)
            elif n in ("con", "connected"):
                nodes += self.with_status(all_nodes, healthy=False)
            elif n.isdigit() and len(n) <= 3:
                nodes.append(nth(all_nodes, int(n)))
            else:
                if not self.opts.names_ok:
                    raise invalid_nodespec()
                nodes.append(n)
        return nodes


def _prefix_copy(stream, prefix: str, lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        with lock:
            sys.stdout.buffer.write(prefix.encode() + raw)
            sys.stdout.buffer.flush()


def _status(rc: int) -> int:
    return 128 - rc if rc < 0 else rc  # as a shell reports a signal death


def run(argv: Sequence[str], env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    opts, spec, command_words = parse_options(argv)
    if opts.push:
        raise OnnodeExit(1, f"{PROG}: -P (push) is not supported")
    command = " ".join(command_words)
    if opts.current:
        command = f"cd {os.getcwd()} && {command}"
    runner = Runner(opts, env)
    all_nodes = read_nodes_file(nodes_file_path(opts, env))
    nodes = runner.resolve(spec, all_nodes)
    verbose = False if opts.quiet else (opts.verbose or len(nodes) > 1)

    retcode = 0
    sys.stdout.flush()
    if opts.parallel:
        procs = []
        lock = threading.Lock()
        threads = []
        for node in nodes:
            if verbose:
                p = subprocess.Popen(runner.argv(node, command), env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
                t = threading.Thread(target=_prefix_copy, args=(p.stdout, f"[{node}] ", lock))
                t.start()
                threads.append(t)
            else:
                p = subprocess.Popen(runner.argv(node, command), env=env,
                                     stdin=subprocess.DEVNULL)
            procs.append(p)
        for t in threads:
            t.join()
        for p in procs:
            rc = _status(p.wait())
            if rc != 0:
                retcode = rc
    else:
        for node in nodes:
            if verbose:
                sys.stderr.write(f"\n>> NODE: {node} <<\n")
                sys.stderr.flush()
            stdin = None if opts.stdin else subprocess.DEVNULL
            rc = _status(subprocess.run(runner.argv(node, command), env=env,
                                        stdin=stdin).returncode)
            if rc != 0:
                retcode = rc
    return retcode


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except OnnodeExit as exc:
        if exc.message:
            print(exc.message, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
