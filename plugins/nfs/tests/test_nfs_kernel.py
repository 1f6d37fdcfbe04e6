"""The kernel backend's exact commands (4.17's nfs-linux-kernel-callout, systemd-debian).

This machine's kernel has no nfsd and no NFS client: the kernel backend is tested with a
recording runner only; /proc is a directory of the test's."""

from __future__ import annotations

import os

import pytest

from ctdbcore.testing import RecordingRunner

from ctdb_nfs.kernel import KernelBackend


@pytest.fixture
def kb(tmp_path, monkeypatch):
    import ctdbcore.plugins.service as service

    monkeypatch.setattr(service, "init_style", lambda init_dir="/etc/init.d": "systemd")
    proc = tmp_path / "proc"
    (proc / "fs/nfsd").mkdir(parents=True)
    (proc / "fs/nfsd/threads").write_text("8\n")
    (proc / "sys/net/ipv4").mkdir(parents=True)
    (proc / "sys/net/ipv4/tcp_tw_recycle").write_text("0\n")
    conf = tmp_path / "nfs-kernel-server"
    conf.write_text('RPCNFSDCOUNT="16"\n')
    r = RecordingRunner()
    return KernelBackend(r, tmp_path / "state", procfs=str(proc), exports_file=str(tmp_path / "etab"),
                         nfs_config=str(conf)), r, proc


def test_register(kb):
    b, r, _ = kb
    assert b.call("register").stdout.split() == ["shutdown", "startup", "stop", "start", "monitor-list-shares", "monitor-post"]
    assert r.calls == []


def test_startup_stops_then_starts_and_sets_tw_recycle(kb):
    b, r, proc = kb
    assert b.call("startup").ok
    assert r.calls == [("systemctl", "stop", "nfs-kernel-server"), ("systemctl", "stop", "rpc-statd"),
                       ("systemctl", "start", "rpc-statd"), ("systemctl", "start", "nfs-kernel-server")]
    assert (proc / "sys/net/ipv4/tcp_tw_recycle").read_text() == "1\n"


def test_startup_fails_when_the_lock_manager_does_not_start(kb):
    b, r, _ = kb
    r.respond(("systemctl", "start", "rpc-statd"), 1, "Job failed\n")
    res = b.call("startup")
    assert res.returncode == 1 and "Job failed" in res.output
    assert ("systemctl", "start", "nfs-kernel-server") not in r.calls


def test_shutdown(kb):
    b, r, _ = kb
    assert b.call("shutdown").ok
    assert r.calls == [("systemctl", "stop", "nfs-kernel-server"), ("systemctl", "stop", "rpc-statd")]
    r.clear()
    r.respond(("systemctl", "stop", "nfs-kernel-server"), 5)
    assert b.call("shutdown").returncode == 5  # set -e: the lock manager is left alone
    assert r.calls == [("systemctl", "stop", "nfs-kernel-server")]


def test_stop_nfs_zeroes_threads_and_kills_nfsd(kb):
    b, r, proc = kb
    r.respond(("systemctl", "stop"), 1, "ignored\n")
    res = b.call("stop", "nfs")
    assert res.ok and res.output == ""
    assert (proc / "fs/nfsd/threads").read_text() == "0\n"
    assert r.calls == [("systemctl", "stop", "nfs-kernel-server"), ("systemctl", "stop", "rpc-statd"),
                       ("pkill", "-9", "nfsd")]


def test_stop_nfs_without_nfsd_fails(kb):
    b, r, proc = kb
    (proc / "fs/nfsd/threads").unlink()
    (proc / "fs/nfsd").rmdir()
    assert b.call("stop", "nfs").returncode == 1
    assert r.calls == []


@pytest.mark.parametrize("what,unit", [("nlockmgr", "rpc-statd"), ("status", "rpc-statd"), ("mountd", "nfs-mountd")])
def test_stop_and_start_rpc_services(kb, what, unit):
    b, r, _ = kb
    assert b.call("stop", what).ok and b.call("start", what).ok
    assert r.calls == [("systemctl", "stop", unit), ("systemctl", "start", unit)]


def test_rquotad_is_undefined_on_debian(kb):
    b, r, _ = kb
    assert b.call("stop", "rquotad").ok and b.call("start", "rquotad").ok
    assert r.calls == []


def test_start_nfs(kb):
    b, r, _ = kb
    assert b.call("start", "nfs").ok
    assert r.calls == [("systemctl", "start", "rpc-statd"), ("systemctl", "start", "nfs-kernel-server")]


def test_start_and_stop_commands_replace_the_init_system(tmp_path):
    r = RecordingRunner()
    proc = tmp_path / "proc"
    (proc / "fs/nfsd").mkdir(parents=True)
    b = KernelBackend(r, tmp_path / "s", procfs=str(proc), start_cmd="my-start", stop_cmd="my-stop", nfs_config="")
    b.call("stop", "nfs")
    b.call("start", "nfs")
    assert ("/bin/sh", "-c", "my-stop") in r.calls and ("/bin/sh", "-c", "my-start") in r.calls


@pytest.mark.parametrize("event", ["monitor-pre", "takeip", "releaseip", "takeip-pre", "releaseip-pre"])
def test_not_implemented_events_do_nothing(kb, event):
    b, r, _ = kb
    assert b.call(event, "eth1", "10.0.0.1", "24").ok
    assert r.calls == []


def test_unknown_event_is_usage(kb):
    b, _, _ = kb
    res = b.call("frobnicate")
    assert res.returncode == 1 and res.output.startswith("usage: nfs-linux-kernel-callout")
    assert b.call("stop", "bogus").returncode == 1


EXPORTFS = """/srv/a         10.0.0.0/24(sync,wdelay,hide,no_subtree_check,sec=sys,rw,secure,root_squash,no_all_squash)
/srv/a         *(ro)
/srv/a/very/long/path/name
\t\t<world>(sync,wdelay,hide,no_subtree_check,sec=sys,rw)
/srv/b <world>(rw)
"""


def test_list_shares_from_exportfs_cached_until_etab_changes(kb, tmp_path):
    b, r, _ = kb
    etab = tmp_path / "etab"
    etab.write_text("x\n")
    os.utime(etab, (1, 1))
    r.respond(("exportfs", "-v"), stdout=EXPORTFS)
    res = b.call("monitor-list-shares")
    assert res.stdout == "/srv/a\n/srv/a/very/long/path/name\n/srv/b\n"
    assert r.calls == [("exportfs", "-v")]
    r.clear()
    assert b.call("monitor-list-shares").stdout == res.stdout
    assert r.calls == []  # cached
    etab.write_text("y\n")
    os.utime(etab, None)
    b.call("monitor-list-shares")
    assert r.calls == [("exportfs", "-v")]


def test_list_shares_exportfs_failure_is_a_warning(kb):
    b, r, _ = kb
    r.respond(("exportfs", "-v"), 1, "", "exportfs: oops\n")
    res = b.call("monitor-list-shares")
    assert res.ok and res.stdout == ""
    assert res.stderr == "WARNING: failed to run exportfs to list NFS shares\n"


def test_monitor_post_corrects_the_thread_count(kb):
    b, r, proc = kb
    res = b.call("monitor-post")
    assert res.ok and res.stdout == "Attempting to correct number of nfsd threads from 8 to 16\n"
    assert (proc / "fs/nfsd/threads").read_text() == "16\n"
    assert b.call("monitor-post").stdout == ""
    (proc / "fs/nfsd/threads").unlink()
    assert b.call("monitor-post").stdout == f'WARNING: Reading "{proc}/fs/nfsd/threads" unexpectedly failed\n'
    assert r.calls == []


def test_monitor_post_asks_nfsconf_when_the_config_says_nothing(tmp_path, monkeypatch):
    import ctdb_nfs.kernel as kernel

    monkeypatch.setattr(kernel.shutil, "which", lambda p: "/usr/sbin/nfsconf" if p == "nfsconf" else None)
    proc = tmp_path / "proc"
    (proc / "fs/nfsd").mkdir(parents=True)
    (proc / "fs/nfsd/threads").write_text("8\n")
    r = RecordingRunner()
    r.respond(("nfsconf", "--get", "nfsd", "threads"), stdout="8\n")
    b = KernelBackend(r, tmp_path / "s", procfs=str(proc), nfs_config="")
    assert b.call("monitor-post").stdout == ""
    assert r.calls == [("nfsconf", "--get", "nfsd", "threads")]
