"""Real service daemons (Debian's) in the nodes' network namespaces of a local cluster.

For each daemon a function ``f(lc, pnn, workdir, shared, ...)`` writes a self-contained
configuration under ``workdir`` and returns a :class:`ServiceSpec`: start and stop
commands (argvs that enter the node's namespace themselves; ``start_command`` /
``stop_command`` as shell strings), the main process's pid file and name, its ports.
:func:`start`, :func:`stop`, :func:`kill` (SIGKILL), :func:`hang` (SIGSTOP) and
:func:`resume` act on a spec; the probes run in the client namespace::

    from ctdb_localcluster import services as svc

    spec = svc.vsftpd(lc, 0, tmp / "n0" / "vsftpd", shared)
    svc.start(spec)
    svc.ftp_get(lc, svc.address_of(lc, 0), "hello.txt")
    svc.kill(spec)
    svc.stop(spec)

Namespace mode only (every node has its own network stack, hence standard ports).
"""

from ctdb_localcluster.services.httpd import apache2, http_get
from ctdb_localcluster.services.base import (
    ProbeError,
    ServiceError,
    ServiceSpec,
    address_of,
    alive,
    hang,
    kill,
    listening_ports,
    pid,
    processes,
    public_holders,
    ready,
    resume,
    start,
    stop,
    wait_public_spread,
)
from ctdb_localcluster.services.nfs import ganesha, nfs_cat, nfs_ls, nfs_put, rpcbind, rpcinfo
from ctdb_localcluster.services.samba import SmbClient, add_user, nmb_lookup, nmbd, smbd, wbinfo, winbindd
from ctdb_localcluster.services.ftp import ftp_get, vsftpd

__all__ = [
    "ProbeError", "ServiceError", "ServiceSpec", "SmbClient", "add_user", "address_of", "alive", "apache2",
    "ftp_get", "ganesha", "hang", "http_get", "kill", "listening_ports", "nfs_cat", "nfs_ls", "nfs_put",
    "nmb_lookup", "nmbd", "pid", "processes", "public_holders", "ready", "resume", "rpcbind", "rpcinfo",
    "smbd", "start", "stop", "vsftpd", "wait_public_spread", "wbinfo", "winbindd",
]
