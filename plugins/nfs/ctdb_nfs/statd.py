"""``ctdb-statd-callout``: 4.17's ``$CTDB_BASE/statd-callout``, rpc.statd's
high-availability callout (``rpc.statd -H``, nfs.conf ``[statd] ha-callout``).

The NSM state is shared through the cluster as 4.17 shares it: records
``statd-state@SERVER_IP@CLIENT_IP`` in the persistent database ``ctdb.tdb`` (value:
the time the client registered; empty: gone), written through the client library
(``ctdbcore.client``: one persistent transaction, as ``ctdb ptrans``).

* ``add-client CLIENT`` / ``del-client CLIENT`` (from rpc.statd): statd does not say
  which address the client used, so one file per public address this node holds is
  written in the state directory (``statd-state@SIP@CIP`` holding the ptrans line).
  Files, not transactions: a flood of lock reclaims after a failover must not be a
  flood of cluster-wide transactions.
* ``update`` (60.nfs monitor): the lines of those files for addresses this node still
  holds go to ``ctdb.tdb`` in one transaction; then the files are removed.
* ``notify`` (60.nfs ipreallocated after an address moved): clear statd's own
  notification lists, restart the lock manager (``callout stop nlockmgr``, 2 s,
  ``start nlockmgr``) for a cluster-wide grace period, send SM_NOTIFY (``smnotify``,
  shut down then started, from the server address and as ``NFS_HOSTNAME``) to every
  client recorded for the addresses this node holds, delete those records, drop stale
  files of addresses held elsewhere.

``NFS_HOSTNAME`` comes from the environment, ``/etc/default/nfs-common`` or
``/etc/default/nfs-kernel-server``, or ``nfsconf --get statd name``.
"""

from __future__ import annotations

import argparse
import configparser
import glob
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ctdbcore.plugins.service import CommandRunner, SubprocessRunner

from ctdb_nfs.callout import read_shell_config

DB_NAME = "ctdb.tdb"
PREFIX = "statd-state@"
SMNOTIFY = "/usr/libexec/ctdb/smnotify"
STATD_DIR = "/var/lib/nfs/statd"
log = logging.getLogger("ctdb.statd-callout")


class StatdError(Exception):
    pass


def default_state_dir() -> str:
    base = os.environ.get("CTDB_SCRIPT_VARDIR") or os.path.join(os.environ.get("CTDB_VARDIR", "/var/lib/ctdb"), "scripts")
    return os.path.join(base, "nfs", "statd-callout")


def nfs_hostname(runner: CommandRunner) -> str:
    name = os.environ.get("NFS_HOSTNAME", "")
    if not name and not shutil.which("nfsconf"):
        for f in ("/etc/default/nfs-common", "/etc/default/nfs-kernel-server"):
            name = read_shell_config(f).get("NFS_HOSTNAME", "") or name
    if not name and shutil.which("nfsconf"):
        res = runner.run(("nfsconf", "--get", "statd", "name"), timeout=10)
        name = res.stdout.strip() if res.ok else ""
    if not name:
        cp = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            cp.read("/etc/nfs.conf")
            name = cp.get("statd", "name", fallback="").strip()
        except configparser.Error:
            pass
    if not name:
        raise StatdError("NFS_HOSTNAME is not configured. statd-callout failed")
    return name


def ptrans_line(key: str, value: str) -> str:
    return f'"{key}" "{value}"\n'


def parse_ptrans_line(line: str) -> tuple[str, str] | None:
    parts = line.strip().split('"')
    # "key" "value" -> ['', key, ' ', value, '']
    if len(parts) != 5 or parts[0] or parts[2].strip() or parts[4]:
        return None
    return parts[1], parts[3]


class Cluster:
    """What statd-callout asks of ctdbd, through the client library."""

    def __init__(self, socket: str | None = None, timeout: float = 10.0) -> None:
        from ctdbcore.client import Client

        self.c = Client(socket, timeout=timeout)
        self.pnn = self.c.pnn

    def close(self) -> None:
        self.c.close()

    def public_ips(self) -> list[tuple[str, int]]:
        """(address, holder pnn) of every public address this node knows (``ctdb ip all``)."""
        return [(str(ip.addr.ip), ip.pnn) for ip in self.c.get_public_ips().ips]

    def _db(self):
        from ctdbcore.client import db

        return db.attach(self.c, DB_NAME, persistent=True)

    def commit(self, items: Sequence[tuple[str, str]]) -> None:
        """One persistent transaction, as ``ctdb ptrans ctdb.tdb`` (empty value: the
        record is emptied, which deletes it)."""
        d = self._db()
        try:
            with d.transaction() as t:
                for key, value in items:
                    t.store(key.encode(), value.encode())
        finally:
            d.close()

    def records(self) -> list[tuple[str, str]]:
        """(key, value) of every non-empty record of ctdb.tdb (``ctdb catdb``)."""
        d = self._db()
        try:
            return [(r.key.decode(errors="replace"), r.data.decode(errors="replace")) for r in d.traverse()]
        finally:
            d.close()


def held(cluster: Cluster) -> list[str]:
    return [ip for ip, pnn in cluster.public_ips() if pnn == cluster.pnn]


def add_client(cluster: Cluster, state: Path, cip: str, *, remove: bool = False) -> None:
    value = "" if remove else str(int(time.time()))
    for sip in held(cluster):
        key = f"{PREFIX}{sip}@{cip}"
        (state / key).write_text(ptrans_line(key, value))


def update(cluster: Cluster, state: Path) -> int:
    files = sorted(glob.glob(str(state / f"{PREFIX}*")))
    if not files:
        return 0
    mine = {f"{PREFIX}{ip}@" for ip in held(cluster)}
    items = []
    for f in files:
        try:
            text = Path(f).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            parsed = parse_ptrans_line(line)
            if parsed and any(parsed[0].startswith(m) for m in mine):
                items.append(parsed)
    if items:
        cluster.commit(items)
        for f in files:
            Path(f).unlink(missing_ok=True)
    return len(items)


def restart_lock_manager(callout: str | None, backend: str | None, runner: CommandRunner, pause: float) -> None:
    if callout:
        runner.run((callout, "stop", "nlockmgr"), timeout=30)
        time.sleep(pause)
        runner.run((callout, "start", "nlockmgr"), timeout=30)
    elif backend:
        from ctdb_nfs.common import make_backend_standalone

        b = make_backend_standalone(backend, runner)
        b.call("stop", "nlockmgr")
        time.sleep(pause)
        b.call("start", "nlockmgr")


def send_notifies(runner: CommandRunner, smnotify: str, hostname: str, pairs: Sequence[tuple[str, str]],
                  now: float | None = None) -> None:
    state_even = int(now if now is not None else time.time()) // 2 * 2
    prev = None
    stateval = state_even
    for sip, cip in pairs:
        if sip != prev:
            stateval = state_even
            prev = sip
        for val in (stateval, stateval + 1):  # shut down, then started
            for server in (sip, hostname):
                runner.run((smnotify, f"--client={cip}", f"--ip={sip}", f"--server={server}", f"--stateval={val}"),
                           timeout=10)
        stateval += 1


def notify(cluster: Cluster, state: Path, runner: CommandRunner, *, hostname: str, callout: str | None,
           backend: str | None, smnotify: str = SMNOTIFY, statd_dir: str = STATD_DIR, pause: float = 2.0) -> int:
    for sub in ("sm", "sm.bak"):
        for f in glob.glob(os.path.join(statd_dir, sub, "*")):
            try:
                os.unlink(f)
            except OSError:
                pass
    restart_lock_manager(callout, backend, runner, pause)
    ips = cluster.public_ips()
    mine = {ip for ip, pnn in ips if pnn == cluster.pnn}
    pairs = []
    for key, _value in cluster.records():
        if not key.startswith(PREFIX):
            continue
        sip, _, cip = key[len(PREFIX):].partition("@")
        if sip in mine and cip:
            pairs.append((sip, cip))
    pairs.sort()
    if pairs:
        send_notifies(runner, smnotify, hostname, pairs)
        cluster.commit([(f"{PREFIX}{sip}@{cip}", "") for sip, cip in pairs])
    for ip, pnn in ips:
        if pnn != cluster.pnn:
            for f in glob.glob(str(state / f"{PREFIX}{ip}@*")):
                Path(f).unlink(missing_ok=True)
    return len(pairs)


def main(argv: Sequence[str] | None = None, *, runner: CommandRunner | None = None,
         cluster_factory=None) -> int:
    p = argparse.ArgumentParser(prog="ctdb-statd-callout", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", default=default_state_dir())
    p.add_argument("--socket", default=None, help="ctdbd's socket (default $CTDB_SOCKET)")
    p.add_argument("--nfs-backend", choices=("kernel", "ganesha"), default=None,
                   help="restart the lock manager through this built-in backend (else $CTDB_NFS_CALLOUT)")
    p.add_argument("--smnotify", default=os.environ.get("CTDB_SMNOTIFY", SMNOTIFY))
    p.add_argument("--statd-dir", default=STATD_DIR)
    p.add_argument("command", choices=("add-client", "del-client", "update", "notify"))
    p.add_argument("client", nargs="?")
    a = p.parse_args(argv)
    runner = runner or SubprocessRunner()
    try:
        hostname = nfs_hostname(runner)
        state = Path(a.state_dir)
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StatdError(f'Failed to create directory "{state}": {exc.strerror}') from None
        if a.command in ("add-client", "del-client") and not a.client:
            raise StatdError(f"{a.command}: no client given")
        cluster = (cluster_factory or Cluster)(a.socket)
        try:
            if a.command == "add-client":
                add_client(cluster, state, a.client)
            elif a.command == "del-client":
                add_client(cluster, state, a.client, remove=True)
            elif a.command == "update":
                update(cluster, state)
            else:
                notify(cluster, state, runner, hostname=hostname, callout=os.environ.get("CTDB_NFS_CALLOUT") or None,
                       backend=a.nfs_backend, smnotify=a.smnotify, statd_dir=a.statd_dir)
        finally:
            cluster.close()
    except StatdError as exc:
        print(f"statd-callout: {exc}", file=sys.stderr)
        _syslog(str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - a callout reports, it does not trace back
        print(f"statd-callout: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _syslog(msg: str) -> None:
    try:
        subprocess.run(("logger", "-t", "statd-callout", msg), timeout=5, check=False,
                       stdin=subprocess.DEVNULL, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
