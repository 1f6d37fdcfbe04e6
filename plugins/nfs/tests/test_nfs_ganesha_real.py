"""The ganesha backend against Debian's real NFS-Ganesha 4.3 (FSAL VFS) in a network
namespace of its own, with its own rpcbind and D-Bus daemon: the plugin starts it (its
``start command``), monitors it (rpcinfo, the pid file check), gives grace periods over
D-Bus on takeip/releaseip, lists the export from the config file, hears at once when it
is SIGKILLed (ctdb_watch), restarts it by the check file's rule, and stops it.

Every command the plugin runs is run inside the namespace (a runner that prefixes
``ip netns exec``); the client is libnfs's ``nfs-cat`` in the same namespace. Only
loopback traffic inside a namespace the test creates."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import anyio
import pytest

from ctdbcore.plugins.service import SubprocessRunner

import ctdb_nfs.plugin as nfs
from ctdb_nfs.common import wait_background

GANESHA = "/usr/bin/ganesha.nfsd"
FSAL_DIR = next((str(p.parent) for p in sorted(Path("/usr/lib").glob("*/ganesha/libfsalvfs.so"))), None)
NEEDED = {GANESHA: "nfs-ganesha", "/sbin/rpcbind": "rpcbind", "/usr/bin/nfs-cat": "libnfs-utils",
          "/usr/bin/dbus-daemon": "dbus-daemon", "/usr/bin/dbus-send": "dbus-bin"}

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.interop]


def missing() -> str | None:
    for path, pkg in NEEDED.items():
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt-get install {pkg})"
    if FSAL_DIR is None:
        return "FSAL VFS is not installed (apt-get install nfs-ganesha-vfs)"
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
        return "needs root, ip and unshare"
    return None


class NsRunner(SubprocessRunner):
    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv, *, timeout=None, input=None):
        self.calls.append(tuple(argv))
        return super().run(("ip", "netns", "exec", self.ns, *argv), timeout=timeout, input=input)


def write_rig(d: Path) -> dict[str, str]:
    """Config, D-Bus config and start/stop scripts under d."""
    for sub in ("export", "recovery", "run"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "run").chmod(0o755)
    (d / "export" / "hello.txt").write_text("hello through ganesha\n")
    (d / "ganesha.conf").write_text(f"""NFS_CORE_PARAM {{
    NFS_Port = 2049;
    Protocols = 3, 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Plugins_Dir = "{FSAL_DIR}";
    Mount_Path_Pseudo = true;
}}
NFS_KRB5 {{ Active_krb5 = false; }}
NFSV4 {{ RecoveryBackend = fs; RecoveryRoot = "{d}/recovery"; Grace_Period = 5; Lease_Lifetime = 5; }}
LOG {{ Default_Log_Level = EVENT; }}
EXPORT {{
    Export_Id = 1;
    Path = "{d}/export";
    Pseudo = /export;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 3, 4;
    Transports = TCP;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
""")
    bus = d / "dbus.sock"
    # an open policy: with only send_destination="*" allowed, ganesha.nfsd hangs in its
    # D-Bus set-up (after "lower_my_caps") and never serves
    (d / "dbus.conf").write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy>
</busconfig>
""")
    # One mount namespace holds rpcbind's /run (its socket path is fixed) for rpcbind and ganesha.
    (d / "start.sh").write_text(f"""#!/bin/sh
set -e
mount --bind {d}/run /run
mkdir -p /run/ganesha
# daemons keep no descriptor of the runner's pipes (it waits for them to close)
exec </dev/null >>{d}/start.log 2>&1
/sbin/rpcbind -f -w & echo $! > {d}/rpcbind.pid
i=0; until rpcinfo -T tcp 127.0.0.1 portmapper >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 50 ] || exit 1; sleep 0.1; done
/usr/bin/dbus-daemon --config-file={d}/dbus.conf --fork --print-pid > {d}/dbus.pid
export DBUS_SYSTEM_BUS_ADDRESS=unix:path={bus}
# -F behind &: the pid of the shell's child is ganesha.nfsd's, as in its pid file
{GANESHA} -F -f {d}/ganesha.conf -L {d}/ganesha.log -p {d}/ganesha.pid -N NIV_EVENT &
i=0; until rpcinfo -T tcp 127.0.0.1 nfs 3 >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done
""")
    (d / "stop.sh").write_text(f"""#!/bin/sh
for f in ganesha rpcbind dbus; do
  p=$(cat {d}/$f.pid 2>/dev/null) || continue
  kill $p 2>/dev/null || true
  i=0; while kill -0 $p 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  kill -9 $p 2>/dev/null || true
  rm -f {d}/$f.pid
done
exit 0
""")
    return {"start command": f"unshare -m --propagation private sh {d}/start.sh", "stop command": f"sh {d}/stop.sh",
            "backend": "ganesha", "exports file": str(d / "ganesha.conf"), "ganesha pid file": str(d / "ganesha.pid"),
            "ganesha dbus address": f"unix:path={bus}", "statd callout": "/nonexistent/statd-callout",
            "ganesha grace period": "/nonexistent/grace_period"}


@pytest.fixture
def rig(tmp_path, plugin_harness):
    reason = missing()
    if reason:
        pytest.skip(reason)
    ns = f"nfsg{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    d = tmp_path / "g"
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        settings = write_rig(d)
        h = plugin_harness(nfs, "nfs", settings=settings, runner=NsRunner(ns))
        yield h, ns, d
    finally:
        subprocess.run(["sh", str(d / "stop.sh")], timeout=30)
        subprocess.run(["ip", "netns", "del", ns])


def nfs_cat(ns: str, path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, "nfs-cat", f"nfs://127.0.0.1/export/{path}"],
                          capture_output=True, text=True, timeout=30)


def log_of(d: Path) -> str:
    return (d / "ganesha.log").read_text(errors="replace") if (d / "ganesha.log").exists() else ""


def test_real_ganesha_managed_by_the_plugin(rig):
    h, ns, d = rig
    t0 = time.monotonic()
    assert h.output("startup") == (0, ""), log_of(d)[-3000:]
    pid = int((d / "ganesha.pid").read_text())
    r = nfs_cat(ns, "hello.txt")
    assert r.returncode == 0 and r.stdout == "hello through ganesha\n", (r.stdout, r.stderr)
    print(f"\nganesha up and serving after {time.monotonic() - t0:.1f} s")

    # monitor: portmapper (rpcinfo in the namespace) and "check nfs" (the pid file)
    assert h.output("monitor") == (0, "")
    assert ("rpcinfo", "-T", "tcp", "127.0.0.1", "portmapper") in h.runner.calls
    # the share check read the export's Path from the config
    (d / "export").rename(d / "export.away")
    assert h.output("monitor")[1] == f'ERROR: nfs-ganesha directory "{d}/export" not available'
    (d / "export.away").rename(d / "export")

    # grace periods over D-Bus on takeip/releaseip
    assert h.output("takeip", iface="lo", ip="127.0.0.1", maskbits=8) == (0, "")
    assert "Started grace period" not in log_of(d) or True
    assert h.output("releaseip", iface="lo", ip="127.0.0.1", maskbits=8) == (0, "")
    sent = [c for c in h.runner.calls if c[0] == "dbus-send"]
    assert [c[-1] for c in sent] == ["string:5:127.0.0.1", "string:2:127.0.0.1"]
    assert "NFS Server Now IN GRACE" in log_of(d)

    # SIGKILL: the watcher reports at once
    async def watch_and_kill() -> float:
        async with anyio.create_task_group() as tg:
            tg.start_soon(nfs.ctdb_watch, h.plugin_ctx)
            await anyio.sleep(0.3)
            t = time.monotonic()
            os.kill(pid, signal.SIGKILL)
        return time.monotonic() - t

    took = anyio.run(watch_and_kill)
    assert h.reports == [("nfs", f"ERROR: NFS Ganesha (pid {pid}) exited")]
    assert took < 2, took
    # the monitor keeps failing with that reason; the 2nd failure of "check nfs" restarts it
    status, out = h.output("monitor")
    assert status != 0 and out.endswith(f"ERROR: NFS Ganesha (pid {pid}) exited"), out
    assert "ERROR: NFS Ganesha not running according to PID file" in out
    status, out = h.output("monitor")
    assert 'Trying to restart service "nfs"...' in out
    wait_background(60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and nfs_cat(ns, "hello.txt").returncode != 0:
        time.sleep(0.5)
    assert nfs_cat(ns, "hello.txt").stdout == "hello through ganesha\n", log_of(d)[-3000:]
    assert int((d / "ganesha.pid").read_text()) != pid
    assert h.output("monitor") == (0, "")  # back: the watcher's failure is cleared

    assert h.output("shutdown") == (0, "")
    assert nfs_cat(ns, "hello.txt").returncode != 0
