"""Built-in backend ``ganesha``: NFS-Ganesha, as 4.17's example
``nfs-ganesha-callout`` drives it (``/usr/share/doc/ctdb/examples/``).

* ``startup``: stop (errors ignored), start the service (``nfs-ganesha``, or the
  ``start command`` setting); ``tcp_tw_recycle`` = 1 where it exists.
* ``shutdown``, ``stop nfs``, ``start nfs``: the service; ``stop|start nlockmgr``: nothing
  (Ganesha has its own lock manager; statd-callout calls them).
* ``check nfs``: ganesha.nfsd runs according to its pid file (the ``ganesha pid file``
  setting), else "ERROR: NFS Ganesha not running according to PID file".
* ``takeip IFACE IP BITS``: grace period for IP with event 5 (an address taken over),
  ``releaseip``: event 2 — ``grace_period N:IP`` where installed (Ganesha's utilities),
  else ``dbus-send ... org.ganesha.nfsd.admin.grace string:N:IP``; the D-Bus address is the
  system bus or the ``ganesha dbus address`` setting. ``releaseip`` when ganesha.nfsd
  does not run (killed: the reason the address moves) gives no grace and succeeds.
* ``monitor-list-shares``: the ``Path`` of each ``EXPORT`` in the config file
  (``/etc/ganesha/ganesha.conf`` or ``CTDB_NFS_EXPORTS_FILE``).
* ``monitor-pre``, ``monitor-post``, ``takeip-pre``, ``releaseip-pre``: nothing.

Not copied: the example's GPFS/GlusterFS recovery-directory links
(``CTDB_NFS_STATE_FS_TYPE``): a cluster that needs them keeps using that callout
through ``CTDB_NFS_CALLOUT``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ctdbcore.plugins import service
from ctdbcore.plugins.service import Completed, CommandRunner

from ctdb_nfs.callout import CALLOUT_TIMEOUT, Callout, usage

NAME = "nfs-ganesha"
DEFAULT_CONFIG = "/etc/ganesha/ganesha.conf"
DEFAULT_PIDFILE = "/var/run/ganesha/ganesha.pid"
GANESHA = "ganesha.nfsd"
GRACE_TAKE, GRACE_RELEASE = 5, 2
REGISTERED = ("shutdown", "startup", "stop", "start", "check", "releaseip", "takeip", "monitor-list-shares")
USAGE = ("{ shutdown | startup }\n"
         "       { stop | start | check } nfs\n"
         "       { releaseip | takeip }\n"
         "       { monitor-list-shares }")
_PATH = re.compile(r"""^\s*Path\s*=\s*(?:"([^"]*)"|([^;\s]+))""", re.I)


def export_paths(text: str) -> list[str]:
    """The ``Path = ...`` values of a Ganesha config (sorted, unique)."""
    found = set()
    for raw in text.splitlines():
        m = _PATH.match(raw)  # anchored: a commented-out "# Path = ..." does not match
        if m:
            found.add(m.group(1) if m.group(1) is not None else m.group(2))
    return sorted(found)


class GaneshaBackend(Callout):
    backend = "ganesha"

    def __init__(self, runner: CommandRunner, state_dir: Path, *, service_name: str | None = None,
                 start_cmd: str | None = None, stop_cmd: str | None = None, config_file: str | None = None,
                 pid_file: str = DEFAULT_PIDFILE, dbus_address: str | None = None,
                 grace_period: str = "/usr/bin/grace_period", procfs: str = "/proc",
                 timeout: float = CALLOUT_TIMEOUT) -> None:
        self.runner = runner
        self.state_dir = Path(state_dir)
        self.nfs = service.Service(service_name or NAME, runner=runner, start_cmd=start_cmd, stop_cmd=stop_cmd)
        self.config_file = config_file or DEFAULT_CONFIG
        self.pid_file = pid_file
        self.dbus_address = dbus_address
        self.grace_period = grace_period
        self.procfs = procfs
        self.timeout = timeout

    def running_pid(self) -> int | None:
        """ganesha.nfsd's pid if its pid file names a live ganesha.nfsd (4.17's check)."""
        try:
            pid = int(Path(self.pid_file).read_text().split()[0])
            cmdline = Path(self.procfs, str(pid), "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        # a zombie has an empty cmdline: not running
        return pid if GANESHA.encode() in cmdline else None

    def grace_argv(self, event: int, ip: str) -> tuple[str, ...]:
        arg = f"{event}:{ip}"
        if os.access(self.grace_period, os.X_OK):
            return (self.grace_period, arg)
        bus = (f"--bus={self.dbus_address}",) if self.dbus_address else ("--system",)
        return ("dbus-send", "--print-reply", *bus, "--dest=org.ganesha.nfsd", "/org/ganesha/nfsd/admin",
                "org.ganesha.nfsd.admin.grace", f"string:{arg}")

    def _grace(self, event: int, args: tuple[str, ...]) -> Completed:
        ip = args[1] if len(args) > 1 else ""
        return self.runner.run(self.grace_argv(event, ip), timeout=self.timeout)

    def call(self, event: str, *args: str) -> Completed:
        argv = ("ganesha", event, *args)
        what = args[0] if args else ""
        if event == "register":
            return Completed(argv, 0, "".join(op + "\n" for op in REGISTERED))
        if event in ("monitor-pre", "monitor-post", "releaseip-pre", "takeip-pre"):
            return Completed(argv, 0)
        if event == "shutdown" or (event == "stop" and what == "nfs"):
            return self.nfs.stop(self.timeout)
        if event == "start" and what == "nfs":
            return self.nfs.start(self.timeout)
        if event in ("stop", "start") and what == "nlockmgr":
            return Completed(argv, 0)  # used by statd-callout: nothing to do
        if event == "startup":
            self.nfs.stop(self.timeout)
            res = self.nfs.start(self.timeout)
            if res.ok:
                tw = Path(self.procfs, "sys/net/ipv4/tcp_tw_recycle")
                if tw.is_file():
                    try:
                        tw.write_text("1\n")
                    except OSError:
                        pass
            return res
        if event == "check" and what == "nfs":
            if self.running_pid() is None:
                return Completed(argv, 1, "ERROR: NFS Ganesha not running according to PID file\n")
            return Completed(argv, 0)
        if event == "takeip":
            return self._grace(GRACE_TAKE, args)
        if event == "releaseip":
            if self.running_pid() is None:
                # Not in 4.17 (whose dbus-send fails, which its ctdbd ignores once the
                # address is gone): no server, no state to hand over; a failed releaseip
                # would keep the address of a dead server from moving.
                ip = args[1] if len(args) > 1 else ""
                return Completed(argv, 0, f"NFS Ganesha not running: no grace period for {ip}\n")
            return self._grace(GRACE_RELEASE, args)
        if event == "monitor-list-shares":
            try:
                text = Path(self.config_file).read_text(errors="replace")
            except OSError as exc:
                return Completed(argv, 1, "", f"{self.config_file}: {exc.strerror}\n")
            paths = export_paths(text)
            return Completed(argv, 0, "".join(p + "\n" for p in paths))
        return usage("nfs-ganesha-callout", USAGE)
