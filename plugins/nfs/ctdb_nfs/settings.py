"""The settings of 60.nfs and 06.nfs (one class: 4.17's 06.nfs reads 60.nfs's options)."""

from __future__ import annotations

import attrs

from ctdbcore.plugins import setting

BACKENDS = ("kernel", "ganesha")


def parse_backend(value: str) -> str:
    v = value.strip().lower()
    if v not in BACKENDS:
        raise ValueError(f"unknown NFS backend {value!r} (one of: {', '.join(BACKENDS)})")
    return v


@attrs.frozen
class Settings:
    """``[nfs]`` in ctdb.conf, or 4.17's variables in script.options / ``60.nfs.options``."""

    nfs_callout: str | None = setting(
        None, var="CTDB_NFS_CALLOUT",
        help="external NFS callout program, run as 4.17 runs it (`callout EVENT ARGS`); "
             "unset: the built-in backend")
    backend: str = setting(
        "kernel", parse=parse_backend,
        help="built-in backend when no callout is set: kernel (nfs-kernel-server) or ganesha (NFS-Ganesha)")
    checks_dir: str | None = setting(
        None, var="CTDB_NFS_CHECKS_DIR",
        help="directory of NN.<rpcprog>.check files (default: the shipped set of the backend); "
             "$VARIABLES of ctdbd's environment are expanded ($CTDB_BASE/nfs-checks.d)")
    skip_share_check: bool = setting(
        False, var="CTDB_NFS_SKIP_SHARE_CHECK", help="do not check that exported directories exist")
    rpcinfo_localhost: str = setting(
        "127.0.0.1", var="CTDB_RPCINFO_LOCALHOST", help="address rpcinfo probes for tcp/udp checks")
    rpcinfo_localhost6: str = setting(
        "::1", var="CTDB_RPCINFO_LOCALHOST6", help="address rpcinfo probes for tcp6/udp6 checks")
    state_fs_type: str | None = setting(
        None, var="CTDB_NFS_STATE_FS_TYPE", help="file system type of the clustered NFS state (exported to the callout)")
    state_mnt: str | None = setting(
        None, var="CTDB_NFS_STATE_MNT", help="mount point of the clustered NFS state (exported to the callout)")
    service_name: str | None = setting(
        None, help="init system name of the NFS service (default: nfs-kernel-server, or nfs-ganesha)")
    start_command: str | None = setting(
        None, help="shell command that starts the NFS server, instead of the init system")
    stop_command: str | None = setting(
        None, help="shell command that stops the NFS server, instead of the init system")
    exports_file: str | None = setting(
        None, var="CTDB_NFS_EXPORTS_FILE",
        help="kernel: the exports state file whose change refreshes the share cache (/var/lib/nfs/etab); "
             "ganesha: the config file whose EXPORT Path lines are the shares (/etc/ganesha/ganesha.conf); "
             "$VARIABLES of ctdbd's environment are expanded ($CTDB_BASE/nfs/ganesha.conf)")
    procfs_path: str = setting("/proc", var="PROCFS_PATH", help="where /proc is (tests)")
    nfs_hostname: str | None = setting(
        None, var="NFS_HOSTNAME", help="the cluster's NFS name for statd-callout (else nfs.conf [statd] name)")
    statd_callout: str = setting(
        "ctdb-statd-callout", help="the statd-callout program run for `update` (monitor) and `notify` (ipreallocated)")
    ganesha_pid_file: str = setting(
        "/var/run/ganesha/ganesha.pid",
        help="ganesha: its pid file (checked by `check nfs`, watched for exit); $VARIABLES expanded")
    ganesha_dbus_address: str | None = setting(
        None, help="ganesha: D-Bus address of the bus ganesha.nfsd is on (default: the system bus); "
             "$VARIABLES expanded (unix:path=$CTDB_BASE/nfs/dbus.sock)")
    ganesha_grace_period: str = setting(
        "/usr/bin/grace_period", help="ganesha: grace_period program used when installed (else dbus-send)")
