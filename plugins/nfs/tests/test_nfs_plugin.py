"""60.nfs and 06.nfs through the plugin harness, every command recorded (nothing runs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctdbcore.plugins.service import Completed
from ctdbcore.testing import RecordingRunner

import ctdb_nfs.plugin as nfs
import ctdb_nfs.pre as nfs_pre
from ctdb_nfs.common import wait_background

TRUE = "/bin/true"


def plain(argv: tuple[str, ...]) -> tuple[str, ...]:
    """argv without an ``env K=V ...`` prefix."""
    if argv and argv[0] == "env":
        i = 1
        while i < len(argv) and "=" in argv[i]:
            i += 1
        return argv[i:]
    return argv


def envs(argv: tuple[str, ...]) -> dict[str, str]:
    out = {}
    if argv and argv[0] == "env":
        for a in argv[1:]:
            if "=" not in a:
                break
            k, _, v = a.partition("=")
            out[k] = v
    return out


def cmds(runner: RecordingRunner, program: str | None = None) -> list[tuple[str, ...]]:
    got = [plain(c) for c in runner.calls]
    return [c for c in got if program is None or c[0] == program or c[0].endswith("/" + program)]


def write_checks(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


@pytest.fixture
def make(plugin_harness, tmp_path):
    """A harness for ``nfs`` with an own checks dir and a statd-callout that is recorded."""

    def build(checks: dict[str, str] | None = None, plugin=nfs, name="nfs", **settings):
        checks_dir = write_checks(tmp_path / "checks", checks if checks is not None else {})
        base = {"checks dir": str(checks_dir), "statd callout": TRUE, "procfs path": str(tmp_path / "proc")}
        base.update({k.replace("_", " "): v for k, v in settings.items()})
        return plugin_harness(plugin, name, settings=base)

    return build


def rpcinfo(prog: str, ver: str | None = None, host: str = "127.0.0.1", family: str = "tcp") -> tuple[str, ...]:
    return ("rpcinfo", "-T", family, host, prog, *((ver,) if ver else ()))


# --------------------------------------------------------------------- registration


def test_names_order_and_script_names(plugin_harness):
    h = plugin_harness(nfs, "nfs")
    assert h.script == "60.nfs"
    p = plugin_harness(nfs_pre, "nfs_pre")
    assert p.script == "06.nfs"


def test_4_17_variables_are_settings(plugin_harness):
    h = plugin_harness(nfs, "nfs", options={
        "CTDB_NFS_CALLOUT": "/x/callout", "CTDB_NFS_CHECKS_DIR": "/x/checks", "CTDB_NFS_SKIP_SHARE_CHECK": "yes",
        "CTDB_RPCINFO_LOCALHOST": "127.0.0.2", "CTDB_RPCINFO_LOCALHOST6": "::2", "CTDB_NFS_STATE_FS_TYPE": "gpfs",
        "CTDB_NFS_STATE_MNT": "/gpfs", "NFS_HOSTNAME": "nfs.example"})
    s = h.settings
    assert (s.nfs_callout, s.checks_dir, s.skip_share_check) == ("/x/callout", "/x/checks", True)
    assert (s.rpcinfo_localhost, s.rpcinfo_localhost6) == ("127.0.0.2", "::2")
    assert (s.state_fs_type, s.state_mnt, s.nfs_hostname) == ("gpfs", "/gpfs", "nfs.example")


def test_bad_backend_is_a_config_error(plugin_harness):
    from ctdbcore.config.errors import ConfigErrors

    with pytest.raises(ConfigErrors, match="unknown NFS backend 'samba'"):
        plugin_harness(nfs, "nfs", settings={"backend": "samba"})


# -------------------------------------------------------------- external callout


@pytest.fixture
def callout(tmp_path):
    return str(tmp_path / "my-callout")


def test_external_callout_is_registered_once_and_called_with_the_event_args(make, callout):
    h = make(nfs_callout=callout, skip_share_check="yes")
    h.runner.respond(lambda a: plain(a) == (callout, "register"), stdout="startup\ntakeip\n")
    assert h.output("startup") == (0, "")
    assert h.output("takeip", iface="eth1", ip="10.0.0.5", maskbits=24) == (0, "")
    assert h.output("releaseip", iface="eth1", ip="10.0.0.5", maskbits=24) == (0, "")  # not registered
    assert h.output("shutdown") == (0, "")
    assert cmds(h.runner, callout) == [(callout, "register"), (callout, "startup"),
                                       (callout, "takeip", "eth1", "10.0.0.5", "24")]
    env = envs(h.runner.calls[1])
    assert env["CTDB_NFS_CALLOUT"] == callout
    assert env["CTDB_NFS_CALLOUT_STATE_DIR"].endswith("scripts/nfs/callout-state")


def test_external_callout_registering_nothing_means_all(make, callout):
    h = make(nfs_callout=callout, skip_share_check="yes")
    for event in ("startup", "shutdown"):
        h.run(event)
    h.run("takeip", iface="eth1", ip="10.0.0.5", maskbits=24)
    assert cmds(h.runner, callout) == [(callout, "register"), (callout, "startup"), (callout, "shutdown"),
                                       (callout, "takeip", "eth1", "10.0.0.5", "24")]


def test_external_callout_reregistered_when_the_setting_changes(make, callout, tmp_path):
    h = make(nfs_callout=callout)
    h.run("startup")
    other = str(tmp_path / "other")
    h2 = make(nfs_callout=other)
    import attrs

    # the same node (var directory), CTDB_NFS_CALLOUT changed
    h2.ctx = attrs.evolve(h2.ctx, script_vardir=h.ctx.script_vardir)
    h2.run("startup")
    assert cmds(h2.runner, other) == [(other, "register"), (other, "startup")]
    assert (h.ctx.script_vardir / "nfs/nfs_callout_cache/CTDB_NFS_CALLOUT").read_text() == other + "\n"


def test_state_fs_variables_are_exported_to_the_callout(make, callout):
    h = make(nfs_callout=callout, state_fs_type="gpfs", state_mnt="/gpfs/state")
    h.run("startup")
    env = envs(h.runner.calls[-1])
    assert (env["CTDB_NFS_STATE_FS_TYPE"], env["CTDB_NFS_STATE_MNT"]) == ("gpfs", "/gpfs/state")


@pytest.mark.parametrize("event", ["startup", "shutdown"])
def test_failing_callout_fails_startup_and_shutdown_with_its_output(make, callout, event):
    h = make(nfs_callout=callout)
    h.runner.respond(lambda a: plain(a) == (callout, event), 3, "could not start nfs\n")
    run = h.run(event)
    assert not run.ok
    assert run.failed_result.output == "could not start nfs"


@pytest.mark.parametrize("event", ["takeip", "releaseip"])
def test_ip_events_flag_reconfigure_and_ipreallocated_runs_notify(make, callout, event):
    h = make(nfs_callout=callout, nfs_hostname="nfs.example")
    flag = h.ctx.script_vardir / "nfs/need_reconfigure"
    h.run("ipreallocated")  # nothing flagged: nothing done
    assert cmds(h.runner, TRUE) == []
    assert h.output(event, iface="eth1", ip="10.0.0.5", maskbits=24) == (0, "")
    assert flag.exists()
    assert h.output("ipreallocated") == (0, "")
    wait_background()
    assert not flag.exists()
    (notify,) = [c for c in h.runner.calls if plain(c)[0] == TRUE]
    assert plain(notify)[-1] == "notify"
    assert envs(notify) == {"CTDB_NFS_CALLOUT": callout, "NFS_HOSTNAME": "nfs.example"}
    assert "--state-dir" in notify and "--nfs-backend" not in notify
    h.runner.clear()
    h.run("ipreallocated")  # flag consumed
    assert cmds(h.runner, TRUE) == []


@pytest.mark.parametrize("event", ["takeip", "releaseip"])
def test_failing_ip_event_does_not_flag(make, callout, event):
    h = make(nfs_callout=callout)
    h.runner.respond(lambda a: plain(a)[:2] == (callout, event), 1, "grace failed\n")
    assert h.output(event, iface="eth1", ip="10.0.0.5", maskbits=24)[1] == "grace failed"
    assert not (h.ctx.script_vardir / "nfs/need_reconfigure").exists()


def test_builtin_backend_notify_names_the_backend(make):
    h = make(backend="ganesha")
    h.run("takeip", iface="eth1", ip="10.0.0.5", maskbits=24)
    h.run("ipreallocated")
    wait_background()
    (notify,) = [c for c in h.runner.calls if plain(c)[0] == TRUE]
    assert notify[notify.index("--nfs-backend") + 1] == "ganesha"
    assert "CTDB_NFS_CALLOUT" not in envs(notify)


def test_ganesha_path_settings_expand_ctdbds_environment(make, monkeypatch, tmp_path):
    """One ctdb.conf line for nodes that each have their own CTDB_BASE (a namespace
    cluster): config file, pid file, D-Bus address and checks dir name $CTDB_BASE."""
    base = tmp_path / "node1"
    (base / "nfs" / "export").mkdir(parents=True)
    (base / "nfs" / "ganesha.conf").write_text(f'EXPORT {{\n    Path = "{base}/nfs/export";\n}}\n')
    (base / "nfs" / "ganesha.pid").write_text("4242\n")
    (tmp_path / "proc" / "4242").mkdir(parents=True)
    (tmp_path / "proc" / "4242" / "cmdline").write_bytes(b"/usr/bin/ganesha.nfsd\0-F\0")
    write_checks(base / "checks", {"20.nfs.check": 'service_check_cmd="$CTDB_NFS_CALLOUT check nfs"\n'})
    monkeypatch.setenv("CTDB_BASE", str(base))
    h = make(backend="ganesha", exports_file="$CTDB_BASE/nfs/ganesha.conf",
             ganesha_pid_file="$CTDB_BASE/nfs/ganesha.pid", ganesha_dbus_address="unix:path=$CTDB_BASE/nfs/dbus.sock",
             ganesha_grace_period="/nonexistent/grace_period", checks_dir="${CTDB_BASE}/checks")
    assert h.output("monitor") == (0, "")  # the share of the expanded config exists, the pid is live
    assert not [c for c in cmds(h.runner) if c[0] == "rpcinfo"]  # the expanded checks dir's file only
    (base / "nfs" / "export").rmdir()
    assert h.output("monitor")[1] == f'ERROR: nfs-ganesha directory "{base}/nfs/export" not available'
    assert h.output("takeip", iface="eth1", ip="10.0.0.5", maskbits=24) == (0, "")
    (grace,) = cmds(h.runner, "dbus-send")
    assert grace[2] == f"--bus=unix:path={base}/nfs/dbus.sock" and grace[-1] == "string:5:10.0.0.5"


def test_ganesha_releaseip_of_a_dead_server_gives_no_grace_and_succeeds(make, tmp_path):
    """A killed ganesha.nfsd is why its addresses move: releaseip must not fail on the
    grace call (D-Bus: org.ganesha.nfsd is not on the bus), or the address stays."""
    pid_file = tmp_path / "ganesha.pid"
    h = make(backend="ganesha", ganesha_pid_file=str(pid_file), ganesha_grace_period="/nonexistent/grace_period")
    h.runner.respond(lambda a: plain(a)[0] == "dbus-send", 1,
                     "Error org.freedesktop.DBus.Error.ServiceUnknown: The name org.ganesha.nfsd was not provided\n")
    assert h.output("releaseip", iface="eth1", ip="10.0.0.5", maskbits=24) == (0, "")
    assert cmds(h.runner, "dbus-send") == []
    assert (h.ctx.script_vardir / "nfs/need_reconfigure").exists()
    # running: the grace call is made and its failure fails the event, as 4.17's callout
    pid_file.write_text("4242\n")
    (tmp_path / "proc" / "4242").mkdir(parents=True)
    (tmp_path / "proc" / "4242" / "cmdline").write_bytes(b"ganesha.nfsd\0")
    status, out = h.output("releaseip", iface="eth1", ip="10.0.0.5", maskbits=24)
    assert status != 0 and "ServiceUnknown" in out
    assert [c[-1] for c in cmds(h.runner, "dbus-send")] == ["string:2:10.0.0.5"]
    # takeip is not excused: a node whose server is down must not take addresses
    (tmp_path / "proc" / "4242" / "cmdline").write_bytes(b"")
    assert h.output("takeip", iface="eth1", ip="10.0.0.5", maskbits=24)[0] != 0


# --------------------------------------------------------------------- 06.nfs


@pytest.mark.parametrize("event", ["takeip", "releaseip"])
def test_nfs_pre_runs_the_pre_events(plugin_harness, callout, event):
    h = plugin_harness(nfs_pre, "nfs_pre", settings={"nfs callout": callout})
    assert h.output(event, iface="eth2", ip="10.0.0.9", maskbits=16) == (0, "")
    assert cmds(h.runner, callout) == [(callout, "register"), (callout, f"{event}-pre", "eth2", "10.0.0.9", "16")]
    h.runner.respond(lambda a: plain(a)[:2] == (callout, f"{event}-pre"), 2, "", "no way\n")
    assert h.output(event, iface="eth2", ip="10.0.0.9", maskbits=16)[1] == "no way"
    # monitor and the rest are 60.nfs's
    h.runner.clear()
    assert h.output("monitor") == (0, "") and h.runner.calls == []


def test_nfs_pre_uses_the_nfs_plugins_settings(plugin_harness, callout):
    import attrs

    from ctdb_nfs.settings import Settings

    h = plugin_harness(nfs_pre, "nfs_pre")
    h.ctx = attrs.evolve(h.ctx, all_settings={"nfs": Settings(nfs_callout=callout), "nfs_pre": Settings()})
    h.run("takeip", iface="eth2", ip="10.0.0.9", maskbits=16)
    assert (callout, "takeip-pre", "eth2", "10.0.0.9", "16") in cmds(h.runner)


def test_nfs_pre_builtin_backends_do_nothing(plugin_harness):
    for backend in ("kernel", "ganesha"):
        h = plugin_harness(nfs_pre, "nfs_pre", settings={"backend": backend})
        assert h.output("takeip", iface="eth2", ip="10.0.0.9", maskbits=16) == (0, "")
        assert h.runner.calls == []


# ---------------------------------------------------------------------- monitor


def test_monitor_order_with_an_external_callout(make, callout, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    h = make({"00.portmapper.check": "unhealthy_after=1\n", "20.nfs.check": 'version="3"\n'},
             nfs_callout=callout, statd_callout=TRUE)
    h.runner.respond(lambda a: plain(a) == (callout, "monitor-list-shares"), stdout=f"{share}\n")
    assert h.output("monitor") == (0, "")
    seq = [c for c in cmds(h.runner) if c[0] in (callout, "rpcinfo", TRUE, "ctdb")]
    assert seq == [(callout, "register"), (callout, "monitor-pre"), (callout, "monitor-list-shares"),
                   ("ctdb", "-X", "ip"), (TRUE, "--state-dir", str(h.ctx.script_vardir / "nfs/statd-callout"), "update"),
                   rpcinfo("portmapper"), rpcinfo("nfs", "3"), (callout, "monitor-post")]


def test_monitor_pre_and_post_failures(make, callout):
    h = make(nfs_callout=callout, skip_share_check="yes")
    h.runner.respond(lambda a: plain(a) == (callout, "monitor-pre"), 1, "pre says no\n")
    assert h.output("monitor")[1] == "pre says no"
    assert (callout, "monitor-post") not in cmds(h.runner)
    h2 = make(nfs_callout=callout, skip_share_check="yes")
    h2.runner.respond(lambda a: plain(a) == (callout, "monitor-post"), 1, "post says no\n")
    assert h2.output("monitor")[1] == "post says no"


def test_missing_share_directory_is_unhealthy_unless_skipped(make, callout, tmp_path):
    h = make(nfs_callout=callout)
    h.runner.respond(lambda a: plain(a) == (callout, "monitor-list-shares"),
                     stdout=f"{tmp_path}\n{tmp_path}/gone\n/srv/%U\n")
    assert h.output("monitor")[1] == f'ERROR: nfs-kernel-server directory "{tmp_path}/gone" not available'
    assert not [c for c in cmds(h.runner) if c[0] == "rpcinfo"]
    h2 = make(nfs_callout=callout, skip_share_check="yes")
    h2.runner.respond(lambda a: plain(a) == (callout, "monitor-list-shares"), stdout=f"{tmp_path}/gone\n")
    assert h2.output("monitor") == (0, "")
    assert (callout, "monitor-list-shares") not in cmds(h2.runner)


def test_share_message_names_the_service_name_setting(make, callout, tmp_path):
    h = make(nfs_callout=callout, service_name="nfs-server")
    h.runner.respond(lambda a: plain(a) == (callout, "monitor-list-shares"), stdout=f"{tmp_path}/gone\n")
    assert h.output("monitor")[1] == f'ERROR: nfs-server directory "{tmp_path}/gone" not available'


# ---------------------------------------------------------------- nfs-checks.d


def failing_rpcinfo(h, prog: str, text: str = "rpcinfo: RPC: Program not registered") -> None:
    h.runner.respond(lambda a: a[:1] == ("rpcinfo",) and a[4] == prog, 1, "", text + "\n")


def test_rpc_probe_forms(make):
    h = make({"10.x.check": 'family="tcp udp6"\nversion="1 3"\n'}, skip_share_check="yes",
             rpcinfo_localhost="127.0.0.9", rpcinfo_localhost6="::9")
    assert h.output("monitor") == (0, "")
    assert cmds(h.runner, "rpcinfo") == [rpcinfo("x", "1", "127.0.0.9"), rpcinfo("x", "3", "127.0.0.9"),
                                          rpcinfo("x", "1", "::9", "udp6"), rpcinfo("x", "3", "::9", "udp6")]


def test_default_check_is_unhealthy_at_the_first_failure(make):
    h = make({"00.portmapper.check": "# portmapper\nunhealthy_after=1\n", "20.nfs.check": 'version="3"\n'},
             skip_share_check="yes")
    failing_rpcinfo(h, "portmapper")
    status, out = h.output("monitor")
    assert status != 0
    assert out == "ERROR: portmapper failed RPC check:\nrpcinfo: RPC: Program not registered"
    assert rpcinfo("nfs", "3") not in cmds(h.runner)  # 4.17 stops at the first unhealthy service


def test_restart_every_and_unhealthy_after(make):
    """20.nfs as shipped: restart every 10... here 2 and 3 to see every rule."""
    h = make({"20.nfs.check": 'version="3"\nrestart_every=2\nunhealthy_after=3\n'
              'service_stop_cmd="$CTDB_NFS_CALLOUT stop nfs"\nservice_start_cmd="$CTDB_NFS_CALLOUT start nfs"\n'
              'service_debug_cmd="echo debug nfs"\n'},
             nfs_callout="/c/callout", skip_share_check="yes")
    failing_rpcinfo(h, "nfs")
    # 1st failure: counted, no message, healthy
    assert h.output("monitor") == (0, "")
    assert ("/c/callout", "stop", "nfs") not in cmds(h.runner)
    # 2nd: restart (not yet unhealthy: WARNING), healthy
    h.runner.clear()
    assert h.output("monitor") == (0, "")
    wait_background()
    seq = [c for c in cmds(h.runner) if c[0] in ("/c/callout", "/bin/sh") and not c[1].startswith("monitor-")]
    assert seq == [("/c/callout", "stop", "nfs"), ("/bin/sh", "-c", "echo debug nfs"), ("/c/callout", "start", "nfs")]
    # 3rd: unhealthy, ERROR, no restart (3 % 2)
    h.runner.clear()
    status, out = h.output("monitor")
    assert status != 0
    assert out == "ERROR: nfs failed RPC check:\nrpcinfo: RPC: Program not registered"
    assert ("/c/callout", "stop", "nfs") not in cmds(h.runner)
    # 4th: unhealthy and restart: ERROR then the restart line, no WARNING
    h.runner.clear()
    status, out = h.output("monitor")
    wait_background()
    assert out.splitlines()[0] == "ERROR: nfs failed RPC check:"
    assert out.splitlines()[-1] == 'Trying to restart service "nfs"...'
    assert "WARNING" not in out
    # success resets the counter (this check counts): the next failure is the 1st again
    h.runner = RecordingRunner()
    h.ctx = __import__("attrs").evolve(h.ctx, runner=h.runner)
    assert h.output("monitor") == (0, "")
    failing_rpcinfo(h, "nfs")
    assert h.output("monitor") == (0, "")
    assert (h.ctx.script_vardir / "nfs/nfs.failcount").read_bytes() == b"\n"


def test_warning_output_is_logged_on_a_healthy_run(make, caplog):
    h = make({"20.nfs.check": 'restart_every=1\nunhealthy_after=0\nservice_stop_cmd="stop it"\nservice_start_cmd="start it"\n'},
             skip_share_check="yes")
    failing_rpcinfo(h, "nfs")
    with caplog.at_level("INFO", logger="ctdb.plugins"):
        assert h.output("monitor") == (0, "")
    wait_background()
    assert "WARNING: nfs failed RPC check:" in caplog.text
    assert 'Trying to restart service "nfs"...' in caplog.text
    assert ("/bin/sh", "-c", "stop it") in cmds(h.runner) and ("/bin/sh", "-c", "start it") in cmds(h.runner)


def test_unhealthy_after_zero_is_never_unhealthy(make):
    h = make({"20.nfs.check": "unhealthy_after=0\n"}, skip_share_check="yes")
    failing_rpcinfo(h, "nfs")
    for _ in range(5):
        assert h.output("monitor") == (0, "")


def test_restart_without_commands_dies_as_4_17(make):
    h = make({"40.mountd.check": "restart_every=1\nunhealthy_after=5\n"}, skip_share_check="yes")
    failing_rpcinfo(h, "mountd")
    status, out = h.output("monitor")
    assert status != 0
    assert out.splitlines() == ["WARNING: mountd failed RPC check:", "rpcinfo: RPC: Program not registered",
                                'ERROR: Can not restart service "mountd" without corresponding '
                                "service_start_cmd/service_stop_cmd settings"]


def test_service_check_cmd_replaces_rpcinfo(make):
    h = make({"20.nfs_ganesha.check": 'service_check_cmd="my-check --nfs"\n'}, skip_share_check="yes")
    h.runner.respond(lambda a: plain(a)[:2] == ("/bin/sh", "-c"), 1, "it is down\n")
    status, out = h.output("monitor")
    assert out == 'it is down\nERROR: monitoring service "nfs_ganesha" failed'
    assert cmds(h.runner, "rpcinfo") == []
    assert ("/bin/sh", "-c", "my-check --nfs") in cmds(h.runner)


def test_program_stack_traces_is_answered_in_process(make, monkeypatch):
    import ctdb_nfs.common as common

    seen = []
    monkeypatch.setattr(common.service, "stack_traces", lambda prog, n: seen.append((prog, n)) or f"Stack trace for {prog}[1]:\nx")
    h = make({"10.status.check": 'restart_every=1\nunhealthy_after=1\nservice_stop_cmd="stop"\nservice_start_cmd="start"\n'
              'service_debug_cmd="program_stack_traces rpc.statd 5"\n'}, skip_share_check="yes")
    failing_rpcinfo(h, "status")
    status, out = h.output("monitor")
    wait_background()
    assert seen == [("rpc.statd", 5)]
    assert "Stack trace for rpc.statd[1]:" in out


def test_missing_rpcinfo_names_the_package(make, monkeypatch):
    import ctdb_nfs.plugin as p

    monkeypatch.setattr(p.service, "missing_program", lambda prog, pkg: f"ERROR: {prog} is not installed (apt-get install {pkg})")
    h = make({"00.portmapper.check": ""}, skip_share_check="yes")
    h.runner.respond(("rpcinfo",), 127, "", "rpcinfo: command not found\n")
    assert h.output("monitor")[1] == ("ERROR: portmapper failed RPC check:\n"
                                     "ERROR: rpcinfo is not installed (apt-get install rpcbind)")


def test_checks_run_in_name_order_and_other_files_are_ignored(make):
    h = make({"50.b.check": "", "00.a.check": "", "README": "x=1\n", "30.c.check~": "", "7.d.check": ""},
             skip_share_check="yes")
    assert h.output("monitor") == (0, "")
    assert [c[4] for c in cmds(h.runner, "rpcinfo")] == ["a", "b"]


@pytest.mark.parametrize("text,message", [
    ("version=3\nbogus=1\n", "ERROR: Unknown variable for nfs: bogus=1 ({path}:2)"),
    ("# c\n\nrestart_every=two\n", "ERROR: restart_every for nfs is not an integer: restart_every=two ({path}:3)"),
    ('service_start_cmd="unterminated\n', "bad quoting: No closing quotation ({path}:1)"),
    ("just words\n", "ERROR: Unknown variable for nfs: just words ({path}:1)"),
])
def test_bad_check_file_is_a_monitor_failure_at_file_and_line(make, text, message):
    h = make({"00.portmapper.check": "", "20.nfs.check": text, "30.nlockmgr.check": ""}, skip_share_check="yes")
    path = Path(h.settings.checks_dir) / "20.nfs.check"
    status, out = h.output("monitor")
    assert status != 0
    assert out == message.format(path=path)
    assert [c[4] for c in cmds(h.runner, "rpcinfo")] == ["portmapper"]  # the checks before it ran


def test_unreadable_checks_dir_means_no_checks(make, tmp_path):
    h = make(skip_share_check="yes", checks_dir=str(tmp_path / "nowhere"))
    assert h.output("monitor") == (0, "")
    assert cmds(h.runner, "rpcinfo") == []


def test_shipped_kernel_checks_are_4_17s(make, plugin_harness):
    h = plugin_harness(nfs, "nfs", settings={"skip share check": "yes", "statd callout": TRUE})
    assert h.output("monitor") == (0, "")
    assert cmds(h.runner, "rpcinfo") == [rpcinfo("portmapper"), rpcinfo("status", "1"), rpcinfo("nfs", "3"),
                                          rpcinfo("nlockmgr", "4"), rpcinfo("mountd", "1"), rpcinfo("rquotad", "1")]
    for name in sorted(os.listdir("/etc/ctdb/nfs-checks.d")) if os.path.isdir("/etc/ctdb/nfs-checks.d") else []:
        if name.endswith(".check"):
            from ctdb_nfs.checks import parse_check, shipped_dir
            assert parse_check(shipped_dir("kernel") / name) == attrs_replace_path(
                parse_check(Path("/etc/ctdb/nfs-checks.d") / name), shipped_dir("kernel") / name)


def attrs_replace_path(check, path):
    import attrs

    return attrs.evolve(check, path=str(path))


def test_kernel_restart_goes_to_the_builtin_backend(plugin_harness, tmp_path):
    """A shipped kernel check's "$CTDB_NFS_CALLOUT stop nfs" is the built-in backend's stop nfs."""
    proc = tmp_path / "proc"
    (proc / "fs/nfsd").mkdir(parents=True)
    (proc / "fs/nfsd/threads").write_text("8\n")
    h = plugin_harness(nfs, "nfs", settings={"skip share check": "yes", "statd callout": TRUE,
                                              "procfs path": str(proc), "start command": "start-nfsd",
                                              "stop command": "stop-nfsd"})
    failing_rpcinfo(h, "nfs")
    for _ in range(9):
        h.run("monitor")
    h.runner.clear()
    status, out = h.output("monitor")  # the 10th: restart
    wait_background()
    assert out.startswith("ERROR: nfs failed RPC check:")
    assert 'Trying to restart service "nfs"...' in out
    assert (proc / "fs/nfsd/threads").read_text() == "0\n"
    seq = [c for c in cmds(h.runner) if c[0] in ("/bin/sh", "pkill", "systemctl", "service") or c[0].startswith("/etc/init.d")]
    assert ("/bin/sh", "-c", "stop-nfsd") in seq and ("pkill", "-9", "nfsd") in seq and ("/bin/sh", "-c", "start-nfsd") in seq
    assert seq.index(("pkill", "-9", "nfsd")) < seq.index(("/bin/sh", "-c", "start-nfsd"))


# ----------------------------------------------------------------- tickles


IP_X = "|Public IP|Node|\n|10.0.0.1|0|\n|10.0.0.2|1|\n|10.0.0.3|0|\n"
SS = ("Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
      "0      0      10.0.0.1:2049   10.0.1.5:801\n"
      "0      0      10.0.0.3:2049   10.0.1.6:802\n")
TICKLES_1 = "|Source IP|Port|Destiation IP|Port|\n|10.0.1.5|801|10.0.0.1|2049|\n|10.0.1.9|900|10.0.0.1|2049|\n"


def test_update_tickles_adds_and_removes(make):
    h = make(skip_share_check="yes")
    h.runner.respond(("ctdb", "-X", "ip"), stdout=IP_X)
    h.runner.respond(("ss",), stdout=SS)
    h.runner.respond(("ctdb", "-X", "gettickles", "10.0.0.1"), stdout=TICKLES_1)
    h.runner.respond(("ctdb", "-X", "gettickles", "10.0.0.3"), stdout="|Source IP|Port|Destiation IP|Port|\n")
    inputs = {}

    class Rec(RecordingRunner):
        def run(self, argv, *, timeout=None, input=None):
            if input is not None:
                inputs[tuple(argv)] = input
            return super().run(argv, timeout=timeout, input=input)

    rec = Rec()
    rec._rules = h.runner._rules
    import attrs
    h.ctx = attrs.evolve(h.ctx, runner=rec)
    assert h.output("monitor") == (0, "")
    seq = [c for c in rec.calls if c[0] in ("ctdb", "ss")]
    assert seq == [("ctdb", "-X", "ip"),
                   ("ss", "-tn", "state", "established", "( src [10.0.0.1] || src [10.0.0.3] )", "( sport == :2049 )"),
                   ("ctdb", "-X", "gettickles", "10.0.0.1", "2049"), ("ctdb", "-X", "gettickles", "10.0.0.3", "2049"),
                   ("ctdb", "addtickle"), ("ctdb", "deltickle")]
    assert inputs[("ctdb", "addtickle")] == "10.0.1.6:802 10.0.0.3:2049\n"
    assert inputs[("ctdb", "deltickle")] == "10.0.1.9:900 10.0.0.1:2049\n"


def test_update_tickles_ipv6_brackets_and_no_addresses(make):
    from ctdb_nfs.tickles import connections, update_tickles

    r = RecordingRunner()
    r.respond(("ss",), stdout="Recv-Q Send-Q Local Address:Port Peer Address:Port\n0 0 [fd00::1]:2049 [fd00::9]:700\n")
    assert connections(r, ["fd00::1"], 2049) == {"fd00::9:700 fd00::1:2049"}
    r2 = RecordingRunner()
    r2.respond(("ctdb", "-X", "ip"), stdout="|Public IP|Node|\n|10.0.0.2|1|\n")
    import logging
    assert update_tickles(r2, 0, 2049, logging.getLogger("t")) == (set(), set())
    assert r2.calls == [("ctdb", "-X", "ip")]


def test_failing_tickle_or_statd_commands_do_not_fail_monitor(make, caplog):
    h = make(skip_share_check="yes")
    h.runner.respond(("ctdb", "-X", "ip"), stdout=IP_X)
    h.runner.respond(("ss",), stdout=SS)
    h.runner.respond(("ctdb", "addtickle"), 1, "", "Failed to add 2 tickles\n")
    h.runner.respond(lambda a: plain(a)[0] == TRUE, 1, "", "statd-callout: NFS_HOSTNAME is not configured\n")
    with caplog.at_level("WARNING", logger="ctdb.plugins"):
        assert h.output("monitor") == (0, "")
    assert "ctdb addtickle failed: Failed to add 2 tickles" in caplog.text
    assert "statd-callout update failed" in caplog.text


def test_ipreallocated_resets_the_scripts_counter(make, callout):
    h = make(nfs_callout=callout)
    counter = h.ctx.script_vardir / "nfs/failcount"
    h.run("takeip", iface="eth1", ip="10.0.0.5", maskbits=24)
    counter.write_text("\n\n")
    h.run("ipreallocated")
    wait_background()
    assert counter.read_bytes() == b""


def test_statd_callout_not_installed_is_skipped(make, callout, tmp_path):
    h = make(nfs_callout=callout, skip_share_check="yes", statd_callout=str(tmp_path / "missing-statd-callout"))
    assert h.output("monitor") == (0, "")
    h.run("takeip", iface="eth1", ip="10.0.0.5", maskbits=24)
    h.run("ipreallocated")
    wait_background()
    assert not [c for c in cmds(h.runner) if c[0].endswith("missing-statd-callout")]
    assert [c[1] for c in cmds(h.runner, callout)] == ["register", "monitor-pre", "monitor-post", "takeip"]


def test_monitor_answers_completed_objects():
    assert Completed(("x",), 0).ok
