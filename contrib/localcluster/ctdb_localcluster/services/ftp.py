"""Debian's vsftpd on a node: anonymous, read-only FTP of the shared directory on port 21.

vsftpd writes no pid file: it runs in the foreground (``background=NO``) under
:func:`base.background`, which detaches it and records its pid. Its secure chroot
directory (default /var/run/vsftpd/empty) is one of the working directory's, so no
mount namespace is needed."""

from __future__ import annotations

from pathlib import Path

from ctdb_localcluster.services import base

VSFTPD = "/usr/sbin/vsftpd"
CURL = "/usr/bin/curl"
PORT = 21


def vsftpd(lc, pnn: int, workdir: Path, shared: Path, port: int = PORT) -> base.ServiceSpec:
    base.require_netns(lc)
    d = Path(workdir).absolute()
    empty = d / "empty"  # root-owned, not writable by the unprivileged session processes
    empty.mkdir(parents=True, exist_ok=True)
    empty.chmod(0o755)
    conf, log, pidfile = d / "vsftpd.conf", d / "vsftpd.log", d / "vsftpd.pid"
    conf.write_text(f"""# ctdb_localcluster.services: node {pnn}
listen=YES
listen_ipv6=NO
listen_port={port}
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=NO
anon_root={shared}
no_anon_password=YES
hide_ids=YES
secure_chroot_dir={empty}
pasv_enable=YES
pasv_min_port=30000
pasv_max_port=30100
xferlog_enable=YES
vsftpd_log_file={d}/vsftpd.xfer.log
dual_log_enable=YES
xferlog_file={d}/xferlog
syslog_enable=NO
use_localtime=NO
seccomp_sandbox=NO
""")
    ns = lc.node_ns(pnn)
    start = base.in_ns(ns, "sh", "-c", base.background([VSFTPD, str(conf)], pidfile, log))
    return base.ServiceSpec(name="vsftpd", pnn=pnn, netns=ns, dir=d, conf=conf, log=log,
                            start=tuple(start), stop=tuple(base.kill_by_pidfile(pidfile, "vsftpd")),
                            pidfile=pidfile, process="vsftpd", tcp_ports=(port,))


def ftp_get(lc, address: str, path: str = "", port: int = PORT, timeout: float = base.PROBE_TIMEOUT) -> str:
    """From the client namespace: the file at path (a listing when path is "" or ends
    with "/") through ftp://address/, anonymous."""
    url = f"ftp://{address}:{port}/{path}"
    return base.run_probe(f"FTP {url}", base.client_cmd(lc, CURL, "-sS", "--max-time", f"{timeout:g}",
                                                         "--connect-timeout", f"{timeout:g}", url),
                          timeout + 5)
