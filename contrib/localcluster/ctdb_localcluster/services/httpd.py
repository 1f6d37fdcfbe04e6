"""Debian's apache2 on a node: the shared directory as the document root on port 80.

The configuration is a minimal one of our own (no /etc/apache2, no envvars): mpm
prefork, everything under the working directory. apache's children run as www-data,
which cannot traverse a test's 0700 temporary directory, so the daemon runs in a
private mount namespace in which the shared directory is bind-mounted on /mnt
(nothing is mounted on the host); the document root is /mnt."""

from __future__ import annotations

from pathlib import Path

from ctdb_localcluster.services import base

APACHE2 = "/usr/sbin/apache2"
MODULES = "/usr/lib/apache2/modules"
CURL = "/usr/bin/curl"
PORT = 80
DOCROOT = "/mnt"  # the mount point of the shared directory, inside the mount namespace


def apache2(lc, pnn: int, workdir: Path, shared: Path, port: int = PORT) -> base.ServiceSpec:
    base.require_netns(lc)
    d = Path(workdir).absolute()
    (d / "run").mkdir(parents=True, exist_ok=True)
    conf, log, pidfile = d / "apache2.conf", d / "error.log", d / "apache2.pid"
    conf.write_text(f"""# ctdb_localcluster.services: node {pnn}
ServerRoot {d}
ServerName node{pnn}.localcluster
DefaultRuntimeDir {d}/run
PidFile {pidfile}
Mutex file:{d}/run default
LoadModule mpm_prefork_module {MODULES}/mod_mpm_prefork.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule dir_module {MODULES}/mod_dir.so
LoadModule mime_module {MODULES}/mod_mime.so
LoadModule autoindex_module {MODULES}/mod_autoindex.so
StartServers 1
MinSpareServers 1
MaxSpareServers 2
User www-data
Group www-data
Listen {port}
ErrorLog {log}
LogLevel info
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog {d}/access.log common
TypesConfig /etc/mime.types
DocumentRoot {DOCROOT}
<Directory />
    Options None
    AllowOverride None
    Require all denied
</Directory>
<Directory {DOCROOT}>
    Options Indexes
    Require all granted
</Directory>
""")
    ns = lc.node_ns(pnn)
    # `-k start` forks the daemon and returns
    start = base.in_ns_with_mounts(ns, [(shared, DOCROOT)], APACHE2, "-f", str(conf), "-k", "start")
    return base.ServiceSpec(name="apache2", pnn=pnn, netns=ns, dir=d, conf=conf, log=log,
                            start=tuple(start), stop=tuple(base.kill_by_pidfile(pidfile, "apache2")),
                            pidfile=pidfile, process="apache2", tcp_ports=(port,))


def http_get(lc, address: str, path: str = "", port: int = PORT, timeout: float = base.PROBE_TIMEOUT) -> str:
    """From the client namespace: the body of http://address/path (an HTTP error fails)."""
    url = f"http://{address}:{port}/{path}"
    return base.run_probe(f"HTTP {url}", base.client_cmd(lc, CURL, "-sS", "--fail", "--max-time", f"{timeout:g}",
                                                         "--connect-timeout", f"{timeout:g}", url),
                          timeout + 5)
