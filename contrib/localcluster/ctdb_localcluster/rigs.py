"""Configurations for the vsftpd and httpd plugins in a namespace cluster: Debian's
vsftpd and apache2 run by the plugins' start and stop commands (ctdbd's children, so in
each node's network namespace) with a private configuration under each node's
CTDB_BASE, each node serving a file ``who.txt`` that names it. Used by the plugins'
tests and by ``benchmarks.services``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

VSFTPD = "/usr/sbin/vsftpd"
APACHE2 = "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"
GANESHA = "/usr/bin/ganesha.nfsd"
FSAL_DIR = next((str(p.parent) for p in sorted(Path("/usr/lib").glob("*/ganesha/libfsalvfs.so"))), None)
GANESHA_NEEDS = {GANESHA: "nfs-ganesha", "/sbin/rpcbind": "rpcbind", "/usr/bin/nfs-cat": "libnfs-utils",
                 "/usr/bin/dbus-daemon": "dbus-daemon", "/usr/bin/dbus-send": "dbus-bin"}

# The plugins run these with sh -c in ctdbd's environment: $CTDB_BASE is the node's directory.
VSFTPD_START = 'vsftpd "$CTDB_BASE/vsftpd/vsftpd.conf" >>"$CTDB_BASE/vsftpd/out.log" 2>&1 </dev/null'
# [v]: the pattern must not match the sh -c running pkill
VSFTPD_STOP = 'pkill -f "[v]sftpd $CTDB_BASE/vsftpd/vsftpd.conf" ; sleep 0.3'
HTTPD_CONF = '"$CTDB_BASE/httpd/apache2.conf"'
HTTPD_START = f'{APACHE2} -f {HTTPD_CONF} -k start >>"$CTDB_BASE/httpd/out.log" 2>&1 </dev/null'
HTTPD_STOP = f'{APACHE2} -f {HTTPD_CONF} -k stop >>"$CTDB_BASE/httpd/out.log" 2>&1 </dev/null ; sleep 0.5'


def vsftpd_conf(node_dir: Path, pnn: int) -> None:
    d = node_dir / "vsftpd"
    (d / "ftp").mkdir(parents=True)
    (d / "empty").mkdir()
    (d / "ftp" / "who.txt").write_text(f"node {pnn}\n")
    # vsftpd refuses an anonymous root that ftp may write; the directories are root's 755
    for p in (d, d / "ftp", d / "empty"):
        p.chmod(0o755)
    (d / "vsftpd.conf").write_text(f"""listen=YES
listen_ipv6=NO
listen_port=21
background=YES
anonymous_enable=YES
no_anon_password=YES
anon_root={d}/ftp
local_enable=NO
write_enable=NO
secure_chroot_dir={d}/empty
xferlog_enable=YES
vsftpd_log_file={d}/vsftpd.log
pasv_enable=YES
pasv_min_port=40000
pasv_max_port=40100
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
""")


def vsftpd_options(root: Path, n: int = 3) -> dict:
    """LocalCluster.up() options: the vsftpd plugin enabled, each node's vsftpd.conf
    written under ``<root>/node<pnn>/vsftpd``."""
    for p in range(n):
        vsftpd_conf(Path(root) / f"node{p}", p)
    return dict(enable=("vsftpd",), plugin_conf=(("vsftpd", "start command", VSFTPD_START),
                                                 ("vsftpd", "stop command", VSFTPD_STOP)))


def vsftpd_pid(lc, pnn: int) -> int | None:
    """The node's vsftpd listener (the oldest vsftpd of its configuration)."""
    conf = Path(lc.node(pnn).dir) / "vsftpd" / "vsftpd.conf"
    r = subprocess.run(["pgrep", "-o", "-f", f"^{VSFTPD}|^vsftpd {conf}"], capture_output=True, text=True)
    return int(r.stdout.split()[0]) if r.returncode == 0 else None


def apache_conf(node_dir: Path, docroot: Path, pnn: int) -> None:
    d = node_dir / "httpd"
    (d / "run").mkdir(parents=True)
    (docroot / "who.txt").write_text(f"node {pnn}\n")
    (d / "apache2.conf").write_text(f"""ServerRoot {d}
ServerName node{pnn}.test
Listen 80
PidFile {d}/apache2.pid
DefaultRuntimeDir {d}/run
Mutex file:{d}/run default
ErrorLog {d}/error.log
LogLevel info
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
User www-data
Group www-data
StartServers 1
ServerLimit 2
MinSpareThreads 5
MaxSpareThreads 10
ThreadsPerChild 5
MaxRequestWorkers 10
DocumentRoot {docroot}
<Directory {docroot}>
    Require all granted
</Directory>
""")


def httpd_options(root: Path, docs: Path, n: int = 3) -> dict:
    """LocalCluster.up() options: the httpd plugin enabled, each node's apache2.conf
    under ``<root>/node<pnn>/httpd``, its documents under ``docs/node<pnn>`` (outside any
    0700 directory: the workers run as www-data)."""
    for p in range(n):
        d = Path(docs) / f"node{p}"
        d.mkdir(parents=True, exist_ok=True)
        for x in (Path(docs), d):
            x.chmod(0o755)
        apache_conf(Path(root) / f"node{p}", d, p)
    return dict(enable=("httpd",), plugin_conf=(("httpd", "start command", HTTPD_START),
                                                ("httpd", "stop command", HTTPD_STOP),
                                                ("httpd", "pid file", "$CTDB_BASE/httpd/apache2.pid")))


def httpd_pid(lc, pnn: int) -> int | None:
    try:
        pid = int((Path(lc.node(pnn).dir) / "httpd" / "apache2.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def ganesha_missing() -> str | None:
    for path, pkg in GANESHA_NEEDS.items():
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt-get install {pkg})"
    if FSAL_DIR is None:
        return "FSAL VFS is not installed (apt-get install nfs-ganesha-vfs)"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    from ctdb_localcluster import netns

    return netns.available()


def write_node_rig(d: Path, shared: Path) -> None:
    """One node's Ganesha: config, D-Bus config and start/stop scripts under d
    (``<root>/node<pnn>/nfs``)."""
    for sub in ("recovery", "run"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "run").chmod(0o755)
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
    Path = "{shared}";
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
    # D-Bus set-up and never serves (see test_nfs_ganesha_real.py)
    (d / "dbus.conf").write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default"><allow user="*"/><allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy>
</busconfig>
""")
    # run under `unshare -m`: rpcbind's socket path is fixed (/run/rpcbind.sock), so the
    # node's rpcbind and Ganesha share a private /run, the node's own d/run
    (d / "start.sh").write_text(f"""#!/bin/sh
set -e
mount --bind {d}/run /run
mkdir -p /run/ganesha
# daemons keep no descriptor of the runner's pipes (it waits for them to close)
exec </dev/null >>{d}/start.log 2>&1
/sbin/rpcbind -f -w & echo $! > {d}/rpcbind.pid
i=0; until rpcinfo -T tcp 127.0.0.1 portmapper >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 50 ] || exit 1; sleep 0.1; done
rm -f {bus}
/usr/bin/dbus-daemon --config-file={d}/dbus.conf --fork --print-pid > {d}/dbus.pid
export DBUS_SYSTEM_BUS_ADDRESS=unix:path={bus}
# -F behind &: the shell's child is ganesha.nfsd itself, as in its pid file
{GANESHA} -F -f {d}/ganesha.conf -L {d}/ganesha.log -p {d}/ganesha.pid -N NIV_EVENT &
i=0; until rpcinfo -T tcp 127.0.0.1 nfs 3 >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 150 ] || exit 1; sleep 0.1; done
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


def nfs_cluster_options(root: Path, shared: Path, n: int = 3) -> dict:
    """``LocalCluster.up()`` options: the plugin (and 06.nfs) enabled on every node with
    the ganesha backend, the rig of each node found through ``$CTDB_BASE``."""
    for p in range(n):
        write_node_rig(root / f"node{p}" / "nfs", shared)
    rig = "$CTDB_BASE/nfs"
    conf = {
        "backend": "ganesha",
        "start command": f"unshare -m --propagation private sh {rig}/start.sh",
        "stop command": f"sh {rig}/stop.sh",
        "exports file": f"{rig}/ganesha.conf",
        "ganesha pid file": f"{rig}/ganesha.pid",
        "ganesha dbus address": f"unix:path={rig}/dbus.sock",
        "ganesha grace period": "/nonexistent/grace_period",  # dbus-send, to the node's bus
        "statd callout": "/nonexistent/ctdb-statd-callout",  # Ganesha: no kernel statd
    }
    return dict(enable=("nfs", "nfs_pre"), plugin_conf=tuple(("nfs", k, v) for k, v in conf.items()),
                tunables=(("MonitorInterval", "5"),))


def ganesha_pid(root: Path, pnn: int) -> int | None:
    try:
        pid = int((root / f"node{pnn}" / "nfs" / "ganesha.pid").read_text().split()[0])
        return pid if b"ganesha.nfsd" in Path(f"/proc/{pid}/cmdline").read_bytes() else None
    except (OSError, ValueError, IndexError):
        return None
