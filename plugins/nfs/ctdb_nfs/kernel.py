"""Built-in backend ``kernel``: the Linux NFS server (Debian's nfs-kernel-server), as
4.17's ``nfs-linux-kernel-callout`` drives it with ``CTDB_NFS_DISTRO_STYLE`` =
``systemd-debian`` (Debian's default).

Services (4.17, systemd-debian): NFS ``nfs-kernel-server`` (setting ``service name``;
``start command``/``stop command`` replace the init system), lock manager and status
``rpc-statd``, mountd ``nfs-mountd``, rquotad none (started by hand by the checks'
restart rule, as Debian's quotarpc unit does not start without quota mounts: 4.17
leaves it undefined, so ``start rquotad``/``stop rquotad`` do nothing).

Events:

* ``startup``: stop (errors ignored), then start rpc-statd, the NFS service;
  ``/proc/sys/net/ipv4/tcp_tw_recycle`` = 1 where it exists.
* ``shutdown``: stop the NFS service, then rpc-statd.
* ``stop nfs``: ``0`` to ``/proc/fs/nfsd/threads``, stop as above (errors ignored),
  ``pkill -9 nfsd``; ``stop nlockmgr|status``: rpc-statd; ``stop mountd``: nfs-mountd.
* ``start nfs|nlockmgr|status|mountd``: the same services started.
* ``monitor-list-shares``: the exported directories from ``exportfs -v``, cached in
  ``$CTDB_NFS_CALLOUT_STATE_DIR/list_shares_cache`` until ``/var/lib/nfs/etab``
  changes.
* ``monitor-post``: nfsd's thread count (``/proc/fs/nfsd/threads``) set back to the
  configured one (``RPCNFSDCOUNT`` in ``/etc/default/nfs-kernel-server``, or
  ``nfsconf --get nfsd threads``).
* ``takeip``, ``releaseip``, their ``-pre`` forms, ``monitor-pre``: nothing (4.17:
  "Not required/implemented"; the kernel's NFSv4 grace comes from the lock manager
  restart of statd-callout ``notify`` after a takeover).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ctdbcore.plugins import service
from ctdbcore.plugins.service import Completed, CommandRunner

from ctdb_nfs.callout import CALLOUT_TIMEOUT, Callout, read_shell_config, usage

NAME = "nfs-kernel-server"
LOCK_SERVICE = "rpc-statd"
MOUNTD_SERVICE = "nfs-mountd"
STATUS_SERVICE = "rpc-statd"
RQUOTAD_SERVICE = ""  # 4.17 systemd-debian: undefined
DEFAULT_EXPORTS = "/var/lib/nfs/etab"
DEFAULT_CONFIG = "/etc/default/nfs-kernel-server"
REGISTERED = ("shutdown", "startup", "stop", "start", "monitor-list-shares", "monitor-post")
USAGE = ("{ shutdown | startup }\n"
         "       {stop | start} { nfs | nlockmgr }\n"
         "       { monitor-list-shares | monitor-post }\n"
         "       { register }")
_EXPORT_CLIENT = re.compile(r"\s+[^\s()]+\([^\s()]+\)$")


class KernelBackend(Callout):
    backend = "kernel"

    def __init__(self, runner: CommandRunner, state_dir: Path, *, service_name: str | None = None,
                 start_cmd: str | None = None, stop_cmd: str | None = None,
                 exports_file: str | None = None, procfs: str = "/proc", nfs_config: str | None = None,
                 timeout: float = CALLOUT_TIMEOUT) -> None:
        self.runner = runner
        self.state_dir = Path(state_dir)
        self.callout_state = self.state_dir / "callout-state"
        self.nfs = service.Service(service_name or NAME, runner=runner, start_cmd=start_cmd, stop_cmd=stop_cmd)
        self.exports_file = exports_file or DEFAULT_EXPORTS
        self.procfs = procfs
        if nfs_config is None:
            nfs_config = "" if shutil.which("nfsconf") else DEFAULT_CONFIG
        self.nfs_config = nfs_config
        self.timeout = timeout
        self.out: list[str] = []

    # ------------------------------------------------------------------ plumbing
    def _svc(self, unit: str) -> service.Service:
        if unit == self.nfs.unit:
            return self.nfs
        return service.Service(unit, runner=self.runner)

    def _service(self, unit: str, action: str) -> Completed:
        svc = self._svc(unit)
        res = svc.start(self.timeout) if action == "start" else svc.stop(self.timeout)
        if res.output:
            self.out.append(res.output)
        return res

    def _if_defined(self, unit: str, action: str) -> Completed | None:
        return self._service(unit, action) if unit else None

    def _proc(self, rel: str) -> Path:
        return Path(self.procfs) / rel

    # ------------------------------------------------------------- the services
    def nfs_service_stop(self, strict: bool = True) -> int:
        """rquotad (if defined), the NFS service, the lock manager. ``strict``: stop
        at the first failure, as 4.17's ``set -e`` does where the result counts."""
        rq = self._if_defined(RQUOTAD_SERVICE, "stop")
        if strict and rq is not None and not rq.ok:
            return rq.returncode
        rc = self._service(self.nfs.unit, "stop").returncode
        if strict and rc:
            return rc
        lock = self._if_defined(LOCK_SERVICE, "stop")
        return lock.returncode if lock is not None and strict else 0

    def nfs_service_start(self) -> int:
        lock = self._if_defined(LOCK_SERVICE, "start")
        if lock is not None and not lock.ok:
            return lock.returncode  # 4.17 runs under set -e
        rc = self._service(self.nfs.unit, "start").returncode
        if rc:
            return rc
        rq = self._if_defined(RQUOTAD_SERVICE, "start")
        return rq.returncode if rq else 0

    def service_stop(self, what: str) -> int:
        if what == "nfs":
            try:
                self._proc("fs/nfsd/threads").write_text("0\n")
            except OSError as exc:
                self.out.append(f"{self._proc('fs/nfsd/threads')}: {exc.strerror}")
                return 1  # set -e: the redirection failed
            saved, self.out = self.out, []
            self.nfs_service_stop(strict=False)  # >/dev/null 2>&1 || true
            self.out = saved
            self.runner.run(("pkill", "-9", "nfsd"), timeout=self.timeout)
            return 0
        if what == "nlockmgr":
            unit = LOCK_SERVICE or self.nfs.unit
            saved, self.out = self.out, []
            self._service(unit, "stop")  # >/dev/null 2>&1 || true
            self.out = saved
            return 0
        if what in ("mountd", "rquotad", "status"):
            unit = {"mountd": MOUNTD_SERVICE, "rquotad": RQUOTAD_SERVICE, "status": STATUS_SERVICE}[what]
            res = self._if_defined(unit, "stop")
            return res.returncode if res else 0
        return -1

    def service_start(self, what: str) -> int:
        if what == "nfs":
            return self.nfs_service_start()
        if what == "nlockmgr":
            return self._service(LOCK_SERVICE or self.nfs.unit, "start").returncode
        if what in ("mountd", "rquotad", "status"):
            unit = {"mountd": MOUNTD_SERVICE, "rquotad": RQUOTAD_SERVICE, "status": STATUS_SERVICE}[what]
            res = self._if_defined(unit, "start")
            return res.returncode if res else 0
        return -1

    def startup(self) -> int:
        self.nfs_service_stop(strict=False)  # || true
        rc = self.nfs_service_start()
        if rc:
            return rc
        tw = self._proc("sys/net/ipv4/tcp_tw_recycle")
        if tw.is_file():
            try:
                tw.write_text("1\n")
            except OSError as exc:
                self.out.append(f"{tw}: {exc.strerror}")
                return 1
        return 0

    # ------------------------------------------------------------ monitor-post
    def configured_threads(self) -> str:
        conf = read_shell_config(self.nfs_config) if self.nfs_config else {}
        threads = conf.get("RPCNFSDCOUNT") or conf.get("USE_KERNEL_NFSD_NUMBER") or ""
        if not threads and shutil.which("nfsconf"):
            res = self.runner.run(("nfsconf", "--get", "nfsd", "threads"), timeout=self.timeout)
            if res.ok:
                threads = res.stdout.strip()
        return threads

    def check_thread_count(self) -> int:
        want = self.configured_threads()
        if not want:
            return 0
        path = self._proc("fs/nfsd/threads")
        try:
            running = path.read_text().split("\n")[0].strip()
        except OSError:
            self.out.append(f'WARNING: Reading "{path}" unexpectedly failed')
            return 0
        if running != want:
            self.out.append(f"Attempting to correct number of nfsd threads from {running} to {want}")
            try:
                path.write_text(want + "\n")
            except OSError as exc:
                self.out.append(f"{path}: {exc.strerror}")
                return 1
        return 0

    # ---------------------------------------------------- monitor-list-shares
    def list_shares(self) -> int:
        cache = self.callout_state / "list_shares_cache"
        exports = Path(self.exports_file)
        try:
            stale = not exports.exists() or not cache.exists() or exports.stat().st_mtime > cache.stat().st_mtime
        except OSError:
            stale = True
        if stale:
            self.callout_state.mkdir(parents=True, exist_ok=True)
            res = self.runner.run(("exportfs", "-v"), timeout=self.timeout)
            if not res.ok:
                self.err.append("WARNING: failed to run exportfs to list NFS shares")
                return 0
            dirs = sorted({_EXPORT_CLIENT.sub("", line) for line in res.stdout.splitlines() if line.startswith("/")})
            cache.write_text("".join(d + "\n" for d in dirs))
        try:
            self.out.append(cache.read_text().rstrip("\n"))
        except OSError as exc:
            self.err.append(f"{cache}: {exc.strerror}")
            return 1
        return 0

    # ------------------------------------------------------------------- call
    def call(self, event: str, *args: str) -> Completed:
        self.out, self.err = [], []
        argv = ("kernel", event, *args)
        what = args[0] if args else ""
        if event == "shutdown":
            rc = self.nfs_service_stop()
        elif event == "startup":
            rc = self.startup()
        elif event == "stop":
            rc = self.service_stop(what)
        elif event == "start":
            rc = self.service_start(what)
        elif event == "monitor-list-shares":
            rc = self.list_shares()
        elif event == "monitor-post":
            rc = self.check_thread_count()
        elif event == "register":
            return Completed(argv, 0, "".join(op + "\n" for op in REGISTERED))
        elif event in ("monitor-pre", "releaseip", "takeip", "releaseip-pre", "takeip-pre"):
            rc = 0
        else:
            rc = -1
        if rc == -1:
            return usage("nfs-linux-kernel-callout", USAGE)
        out = "\n".join(o for o in self.out if o)
        err = "\n".join(self.err)
        return Completed(argv, rc, out + "\n" if out else "", err + "\n" if err else "")

