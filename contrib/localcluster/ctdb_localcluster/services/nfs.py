"""NFS-Ganesha (FSAL VFS) on a node, exporting the shared directory as /export, and the
rpcbind it registers with.

* NFSv3 needs rpcbind: without one Ganesha (v3 and v4, UDP on) exits at start
  ("Cannot register NFS V3 on UDP"), and clients find the MOUNT service through it.
  NFSv4 alone (``protocols=(4,)``, UDP off) runs without: the failed registration
  ("Cannot register NFS V4 on TCP") is only logged.
* rpcbind always uses /run/rpcbind.sock and /run/rpcbind.lock (one per machine): each
  node's rpcbind runs in a private mount namespace in which the node's own
  ``<workdir>/run`` is bind-mounted on /run, and so does its Ganesha (it registers
  through that socket; its /run/ganesha and libblkid's /run/blkid cache land there
  too). Nothing is written under the host's /run.
* Ganesha's pid file, log and NFSv4 recovery directory are under the working
  directory; grace is off (``Graceless``) so that clients are served at once.
  dbus is not there: Ganesha logs that and goes on (no dbus control).
"""

from __future__ import annotations

import glob
from pathlib import Path

from ctdb_localcluster.services import base

GANESHA = "/usr/bin/ganesha.nfsd"
# Ganesha's FSAL plugins live in the multiarch directory (/usr/lib/x86_64-linux-gnu/ganesha)
FSAL_VFS = next(iter(sorted(glob.glob("/usr/lib/*/ganesha/libfsalvfs.so"))),
                "/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so")
RPCBIND = "/sbin/rpcbind"
RPCINFO = "/usr/sbin/rpcinfo"
NFS_LS = "/usr/bin/nfs-ls"
NFS_CAT = "/usr/bin/nfs-cat"
NFS_CP = "/usr/bin/nfs-cp"
NFS_PORT = 2049
MOUNT_PORT = 20048
EXPORT = "/export"


def rpcbind(lc, pnn: int, workdir: Path) -> base.ServiceSpec:
    """rpcbind on node pnn, its /run being ``<workdir>/run`` (see the module's doc)."""
    base.require_netns(lc)
    d = Path(workdir).absolute()
    run = d / "run"
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o755)
    log, pidfile = d / "rpcbind.log", d / "rpcbind.pid"
    ns = lc.node_ns(pnn)
    # -f: rpcbind writes no pid file, so it stays in the foreground under background()
    start = base.in_ns_with_mounts(ns, [(run, "/run")], "sh", "-c",
                                   base.background([RPCBIND, "-f"], pidfile, log))
    check = base.in_ns(ns, RPCINFO, "-T", "tcp", "127.0.0.1", "100000", "4")
    return base.ServiceSpec(name="rpcbind", pnn=pnn, netns=ns, dir=d, conf=None, log=log,
                            start=tuple(start), stop=tuple(base.kill_by_pidfile(pidfile, "rpcbind")),
                            pidfile=pidfile, process="rpcbind", tcp_ports=(111,), udp_ports=(111,),
                            check=tuple(check))


def ganesha(lc, pnn: int, workdir: Path, shared: Path, protocols: tuple[int, ...] = (3, 4),
            port: int = NFS_PORT) -> base.ServiceSpec:
    """ganesha.nfsd on node pnn exporting shared as /export (read-write, no root
    squash, AUTH_SYS, TCP). With NFSv3 its spec requires an rpcbind spec of the same
    working directory (started first by base.start, stopped after by base.stop)."""
    base.require_netns(lc)
    d = Path(workdir).absolute()
    (d / "recovery").mkdir(parents=True, exist_ok=True)
    conf, log, pidfile = d / "ganesha.conf", d / "ganesha.log", d / "ganesha.pid"
    v3 = 3 in protocols
    plist = ", ".join(str(p) for p in protocols)
    conf.write_text(f"""# ctdb_localcluster.services: node {pnn}
NFS_CORE_PARAM {{
    NFS_Port = {port};
    MNT_Port = {MOUNT_PORT};
    Protocols = {plist};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = {"true" if v3 else "false"};
    Mount_Path_Pseudo = true;
}}
NFSV4 {{
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = {d}/recovery;
}}
NFS_KRB5 {{ Active_krb5 = false; }}
LOG {{ Default_Log_Level = EVENT; }}
EXPORT {{
    Export_Id = 1;
    Path = {shared};
    Pseudo = {EXPORT};
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = {plist};
    Transports = TCP;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
""")
    ns = lc.node_ns(pnn)
    # ganesha.nfsd forks into the background by itself and writes its pid file
    cmd = [GANESHA, "-f", str(conf), "-L", str(log), "-p", str(pidfile), "-N", "NIV_EVENT"]
    # /run is the working directory's (rpcbind's socket; Ganesha's own /run/ganesha and
    # libblkid's /run/blkid cache), with or without rpcbind
    (d / "run").mkdir(exist_ok=True)
    (d / "run").chmod(0o755)
    requires = (rpcbind(lc, pnn, d),) if v3 else ()
    start = base.in_ns_with_mounts(ns, [(d / "run", "/run")], *cmd)
    # Ganesha listens before it (re-)registers with rpcbind: with NFSv3 it is ready once
    # rpcbind gives its NFS and MOUNT ports and both answer a NULL call
    check = None
    if v3:
        check = tuple(base.in_ns(ns, "sh", "-c", f"{RPCINFO} -T tcp 127.0.0.1 nfs 3 && "
                                                 f"{RPCINFO} -T tcp 127.0.0.1 mountd 3"))
    return base.ServiceSpec(name="ganesha", pnn=pnn, netns=ns, dir=d, conf=conf, log=log,
                            start=tuple(start), stop=tuple(base.kill_by_pidfile(pidfile, "ganesha.nfsd")),
                            pidfile=pidfile, process="ganesha.nfsd",
                            tcp_ports=(port, MOUNT_PORT) if v3 else (port,), check=check, requires=requires)


def _url(address: str, path: str, version: int) -> str:
    return f"nfs://{address}{EXPORT}/{path}" + ("?version=4" if version == 4 else "")


def nfs_cat(lc, address: str, path: str, version: int = 3, timeout: float = base.PROBE_TIMEOUT) -> str:
    """From the client namespace (libnfs, userspace): the file at /export/path."""
    url = _url(address, path, version)
    return base.run_probe(f"NFSv{version} read of {url}", base.client_cmd(lc, NFS_CAT, url), timeout)


def nfs_ls(lc, address: str, path: str = "", version: int = 3, timeout: float = base.PROBE_TIMEOUT) -> str:
    """From the client namespace: `nfs-ls` of /export/path."""
    url = _url(address, path, version)
    return base.run_probe(f"NFSv{version} listing of {url}", base.client_cmd(lc, NFS_LS, url), timeout)


def nfs_put(lc, address: str, local: Path, path: str, version: int = 3,
            timeout: float = base.PROBE_TIMEOUT) -> str:
    """From the client namespace: `nfs-cp` of the local file to /export/path."""
    url = _url(address, path, version)
    return base.run_probe(f"NFSv{version} write of {url}", base.client_cmd(lc, NFS_CP, str(local), url), timeout)


def rpcinfo(lc, address: str, program: str = "nfs", version: int = 3, timeout: float = base.PROBE_TIMEOUT) -> str:
    """From the client namespace: `rpcinfo -T tcp address program version` (a NULL call
    to the program, whose port rpcbind gives)."""
    return base.run_probe(f"rpcinfo {program} v{version} at {address}",
                          base.client_cmd(lc, RPCINFO, "-T", "tcp", address, program, str(version)), timeout)
