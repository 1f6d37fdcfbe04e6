"""Debian's Samba daemons on a node, ``clustering = yes`` on the node's ctdbd: smbd
(port 445), nmbd (UDP 137/138) and winbindd (standalone server, ``idmap config * :
backend = tdb``; no port).

Each daemon gets a working directory and an smb.conf of its own, written by
:func:`ctdb_localcluster.samba.smb_conf` (every Samba directory under the working
directory, every address of the namespace); Samba daemonizes by itself (``-D``) and
writes its pid file in ``<workdir>/pid``; its log is ``<workdir>/log/log.<daemon>``.

wbinfo (libwbclient 4.17) has no option for winbindd's socket directory, it always
uses /run/samba/winbindd: winbindd's socket directory is ``<workdir>/run/samba/winbindd``
and wbinfo runs in a private mount namespace in which ``<workdir>/run`` is
bind-mounted on /run. winbindd starts samba-dcerpcd on demand (the local SAM),
a daemon of its own that the stop command ends too (it outlives a SIGKILLed winbindd,
and a winbindd started after that uses it). samba-dcerpcd's rpcd_* helpers write to
/var/log/samba before they read the conf, so winbindd runs in a private mount
namespace in which ``<workdir>/log`` is bind-mounted on /var/log/samba."""

from __future__ import annotations

import re
from pathlib import Path

from ctdb_localcluster import samba as lcsamba
from ctdb_localcluster.services import base

SMBD = lcsamba.SMBD
SMBCLIENT = lcsamba.SMBCLIENT
NMBD = "/usr/sbin/nmbd"
WINBINDD = "/usr/sbin/winbindd"
WBINFO = "/usr/bin/wbinfo"
NMBLOOKUP = "/usr/bin/nmblookup"
SMBPASSWD = "/usr/bin/smbpasswd"
SMB_PORT = 445
NETBIOS_NAME = "CTDBPYSMB"  # smb_conf's: one name, one machine SID for the cluster
IDMAP_RANGE = (100000, 199999)


def _logdir(d: Path) -> Path:
    (d / "log").mkdir(parents=True, exist_ok=True)
    return d / "log"


def _globals(d: Path, extra: str = "") -> str:
    """[global] lines every daemon's smb.conf gets: a log file under d for the programs
    started without -l (samba-dcerpcd's rpcd_* helpers), instead of /var/log/samba."""
    return f"\tlog file = {d}/log/log.%m\n{extra}"


def _samba_spec(lc, pnn: int, d: Path, conf: Path, daemon: str, path: str, **kw) -> base.ServiceSpec:
    ns = lc.node_ns(pnn)
    logdir = _logdir(d)
    pidfile = d / "pid" / f"{daemon}.pid"
    stop = kw.pop("stop", None) or base.kill_by_pidfile(pidfile, daemon)
    cmd = [path, "-D", "-s", str(conf), "-l", str(logdir)]
    start = base.in_ns_with_mounts(ns, kw.pop("binds", ()), *cmd)
    return base.ServiceSpec(name=daemon, pnn=pnn, netns=ns, dir=d, conf=conf, log=logdir / f"log.{daemon}",
                            start=tuple(start),
                            stop=tuple(stop), pidfile=pidfile, process=daemon, **kw)


def smbd(lc, pnn: int, workdir: Path, shared: Path, port: int = SMB_PORT, extra: str = "") -> base.ServiceSpec:
    """smbd on node pnn serving [share] = shared on port (every address)."""
    base.require_netns(lc)
    d = Path(workdir).absolute()
    conf = lcsamba.smb_conf(d, lc, pnn, shared, port=port, own_address=False, extra=_globals(d, extra))
    # children: one smbd per client, smbd-notifyd, smbd-cleanupd, ...
    return _samba_spec(lc, pnn, d, conf, "smbd", SMBD, tcp_ports=(port,), helpers=("smbd*", "cleanupd"))


def nmbd(lc, pnn: int, workdir: Path, shared: Path, netbios_name: str | None = None) -> base.ServiceSpec:
    """nmbd on node pnn (every interface, UDP 137 and 138). Its NetBIOS name defaults to
    one per node (CTDBPYNMB<pnn>): nmbds on one broadcast subnet under one name
    defend it against each other."""
    base.require_netns(lc)
    d = Path(workdir).absolute()
    name = netbios_name or f"CTDBPYNMB{pnn}"
    extra = f"""	disable netbios = no
	netbios name = {name}
	local master = no
	preferred master = no
	domain master = no
	dns proxy = no
"""
    conf = lcsamba.smb_conf(d, lc, pnn, shared, port=SMB_PORT, own_address=False, extra=_globals(d, extra))
    return _samba_spec(lc, pnn, d, conf, "nmbd", NMBD, udp_ports=(137, 138))


def _run_dir(d: Path) -> Path:
    return d / "run"


def winbindd(lc, pnn: int, workdir: Path, shared: Path) -> base.ServiceSpec:
    """winbindd on node pnn: standalone server, idmap tdb (a clustered database)."""
    base.require_netns(lc)
    d = Path(workdir).absolute()
    sock = _run_dir(d) / "samba" / "winbindd"
    sock.mkdir(parents=True, exist_ok=True)
    _run_dir(d).chmod(0o755)
    (_run_dir(d) / "samba").chmod(0o755)
    extra = f"""	winbindd socket directory = {sock}
	idmap config * : backend = tdb
	idmap config * : range = {IDMAP_RANGE[0]}-{IDMAP_RANGE[1]}
	winbind enum users = yes
	winbind enum groups = yes
	rpc start on demand helpers = yes
"""
    conf = lcsamba.smb_conf(d, lc, pnn, shared, port=SMB_PORT, own_address=False, extra=_globals(d, extra))
    pid = d / "pid"
    stop = ["sh", "-c", f"{' '.join(base.kill_by_pidfile(pid / 'winbindd.pid', 'winbindd'))}; "
                        f"{' '.join(base.kill_by_pidfile(pid / 'samba-dcerpcd.pid', 'samba-dcerpcd'))}; true"]
    check = _wbinfo_cmd(lc.node_ns(pnn), d, "--ping")
    # samba-dcerpcd's rpcd_* helpers log to /var/log/samba before they read the conf:
    # winbindd (and what it starts) sees <workdir>/log there
    return _samba_spec(lc, pnn, d, conf, "winbindd", WINBINDD, stop=stop, check=tuple(check),
                       binds=[(_logdir(d), "/var/log/samba")],
                       helpers=("winbindd*", "samba-dcerpcd", "rpcd_*"))


def _wbinfo_cmd(ns: str, d: Path, *args: str) -> list[str]:
    return base.in_ns_with_mounts(ns, [(_run_dir(d), "/run")], WBINFO, *args)


def wbinfo(spec: base.ServiceSpec, *args: str, timeout: float = base.PROBE_TIMEOUT) -> str:
    """wbinfo against the node's winbindd (there is no network protocol to probe from
    the client namespace: winbindd serves local clients only)."""
    return base.run_probe(f"wbinfo {' '.join(args)} on node {spec.pnn}",
                          _wbinfo_cmd(spec.netns, spec.dir, *args), timeout)


def add_user(spec: base.ServiceSpec) -> None:
    """Add smbclient's user (ctdb_localcluster.samba.USER) to the clustered passdb
    through the node's smb.conf (once for the cluster)."""
    name, password = lcsamba.USER.split("%")
    base.run_probe("smbpasswd -a", [SMBPASSWD, "-c", str(spec.conf), "-a", "-s", name], 60,
                   input=f"{password}\n" * 2)


class SmbClient:
    """smbclient in the client namespace, with a configuration that reads and writes
    nothing outside ``workdir``."""

    def __init__(self, lc, workdir: Path, port: int = SMB_PORT) -> None:
        self.lc, self.port = lc, port
        self.dir = Path(workdir).absolute()
        self.conf = lcsamba.client_conf(self.dir / "conf")
        self.files = self.dir / "files"
        self.files.mkdir(parents=True, exist_ok=True)

    def run(self, address: str, commands: str, timeout: float = base.PROBE_TIMEOUT) -> str:
        try:
            return lcsamba.smbclient(self.conf, address, commands, self.files, self.port,
                                     netns=self.lc.client_ns, timeout=timeout)
        except lcsamba.SambaError as exc:
            raise base.ProbeError(str(exc)) from None

    def get(self, address: str, name: str, timeout: float = base.PROBE_TIMEOUT) -> str:
        """The content of share/name through address."""
        local = self.files / f"got-{name}"
        local.unlink(missing_ok=True)
        self.run(address, f"get {name} {local.name}", timeout)
        return local.read_text()

    def put_get(self, address: str, name: str, content: str, timeout: float = base.PROBE_TIMEOUT) -> str:
        """Write content to share/name through address, read it back: what was read."""
        (self.files / name).write_text(content)
        self.run(address, f"put {name}", timeout)
        return self.get(address, name, timeout)


def nmb_lookup(lc, address: str, name: str, conf: Path, timeout: float = base.PROBE_TIMEOUT) -> list[str]:
    """From the client namespace: a unicast NetBIOS name query for name<20> to nmbd at
    address (``nmblookup -U``); the addresses of the answer. conf: a client smb.conf
    (SmbClient(...).conf)."""
    out = base.run_probe(f"NetBIOS query for {name} at {address}",
                         base.client_cmd(lc, NMBLOOKUP, "-s", str(conf), "--option=disable netbios=no", "-U", address, f"{name}#20"), timeout)
    found = re.findall(rf"^(\S+) {re.escape(name)}<20>$", out, re.M | re.I)
    if not found:
        raise base.ProbeError(f"NetBIOS query for {name} at {address}: no answer: {out}")
    return found
