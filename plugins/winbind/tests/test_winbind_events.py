"""49.winbind's events, run as ctdbd runs them, with a recording runner."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import anyio
import pytest

import ctdb_winbind
from ctdbcore.plugins.service import Completed

START = "winbindd -s /etc/samba/test.conf"
STOP = "kill $(cat /run/test/winbindd.pid)"
WBINFO = "wbinfo-in-ns -p"


@pytest.fixture
def h(plugin_harness, tmp_path):
    return plugin_harness(ctdb_winbind, "winbind", settings={"start command": START, "stop command": STOP,
                                                             "wbinfo command": WBINFO,
                                                             "pid file": str(tmp_path / "none.pid")})


def sh(cmd: str) -> tuple[str, ...]:
    return ("/bin/sh", "-c", cmd)


def wait_named(pid: int, name: str) -> None:
    deadline = time.monotonic() + 5
    while pid not in ctdb_winbind.service.pids_of(name) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_defaults_and_the_4_17_variable(plugin_harness):
    h = plugin_harness(ctdb_winbind, "winbind")
    assert h.script == "49.winbind"
    assert (h.settings.service_name, h.settings.wbinfo_command) == ("winbind", "wbinfo -p")
    h2 = plugin_harness(ctdb_winbind, "winbind", options={"CTDB_SERVICE_WINBIND": "winbind-alt"})
    assert h2.settings.service_name == "winbind-alt"


def test_startup_stops_and_starts(h):
    assert h.output("startup") == (0, "")
    assert h.runner.calls == [sh(STOP), sh(START)]


def test_startup_kills_a_winbindd_that_survived_the_stop(h, monkeypatch):
    # a process named like winbindd: a copy of sleep
    p = subprocess.Popen(["sleep", "60"])
    try:
        wait_named(p.pid, "sleep")
        monkeypatch.setattr(ctdb_winbind, "PROCESS", "sleep")
        t0 = time.monotonic()
        assert h.output("startup") == (0, "")
        assert time.monotonic() - t0 >= 1  # 4.17 sleeps 1 s before the kill -9
        assert p.wait(5) == -signal.SIGKILL
        assert h.runner.calls == [sh(STOP), sh(START)]
    finally:
        p.kill()
        p.wait()


def test_startup_fails_when_the_start_does(h):
    h.runner.respond(sh(START), 1, stderr="winbindd: cannot open smb.conf\n")
    assert h.output("startup") == (1, "winbindd: cannot open smb.conf\nFailed to start winbind")
    h.runner.respond(sh(START), 1)
    assert h.output("startup") == (1, "Failed to start winbind")


def test_startup_failed_stop_is_ignored(h):
    h.runner.respond(sh(STOP), 1, stderr="no such process\n")
    assert h.output("startup") == (0, "")


def test_startup_through_the_init_system_needs_winbindd_installed(plugin_harness, monkeypatch):
    h = plugin_harness(ctdb_winbind, "winbind")
    monkeypatch.setattr(ctdb_winbind, "PROGRAM", "/nonexistent/sbin/winbindd")
    assert h.output("startup") == (1, "ERROR: /nonexistent/sbin/winbindd is not installed (apt-get install winbind)")
    monkeypatch.setattr(ctdb_winbind, "PROGRAM", "/bin/sh")
    monkeypatch.setattr(ctdb_winbind.service, "init_style", lambda init_dir="/etc/init.d": "systemd")
    assert h.output("startup") == (0, "")
    assert h.runner.calls == [("systemctl", "stop", "winbind"), ("systemctl", "start", "winbind")]


def test_shutdown_stops_and_succeeds_anyway(h):
    assert h.output("shutdown") == (0, "")
    h.runner.respond(sh(STOP), 1)
    assert h.output("shutdown") == (0, "")
    assert h.runner.calls == [sh(STOP), sh(STOP)]


def test_monitor_runs_wbinfo(h):
    assert h.output("monitor") == (0, "")
    assert h.runner.calls == [sh(WBINFO)]
    h.runner.respond(sh(WBINFO), 1, stdout="could not ping winbindd!\n",
                     stderr="failed to call wbcPingDc: WBC_ERR_WINBIND_NOT_AVAILABLE\n")
    assert h.output("monitor") == (1, "ERROR: wbinfo -p returned error\ncould not ping winbindd!\n"
                                      "failed to call wbcPingDc: WBC_ERR_WINBIND_NOT_AVAILABLE")
    h.runner.respond(sh(WBINFO), 124, stderr="/bin/sh: timed out after 10 s\n")
    assert h.output("monitor") == (1, "ERROR: wbinfo -p returned error\n/bin/sh: timed out after 10 s")


def test_monitor_default_command(plugin_harness, monkeypatch):
    h = plugin_harness(ctdb_winbind, "winbind")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert h.output("monitor") == (1, "ERROR: wbinfo is not installed (apt-get install winbind)")
    monkeypatch.undo()
    if ctdb_winbind.service.missing_program("wbinfo", "winbind") is None:
        assert h.output("monitor") == (0, "")
        assert h.runner.calls == [sh("wbinfo -p")]


def test_watch_reports_a_killed_winbindd_but_not_the_plugins_stop(plugin_harness, tmp_path):
    pidfile = tmp_path / "winbindd.pid"
    procs = [subprocess.Popen(["sleep", "60"])]
    pidfile.write_text(f"{procs[0].pid}\n")
    h = plugin_harness(ctdb_winbind, "winbind", settings={"pid file": str(pidfile), "start command": START,
                                                          "stop command": STOP})

    def stop(argv):
        procs[-1].kill()
        procs[-1].wait()
        return Completed(argv, 0)

    def start(argv):
        procs.append(subprocess.Popen(["sleep", "60"]))
        pidfile.write_text(f"{procs[-1].pid}\n")
        return Completed(argv, 0)
    h.runner.respond(sh(STOP), answer=stop)
    h.runner.respond(sh(START), answer=start)

    async def main():
        async with anyio.create_task_group() as tg:
            async def watch():
                with anyio.fail_after(20):
                    await ctdb_winbind.ctdb_watch(ctx=h.plugin_ctx)
            tg.start_soon(watch)
            await anyio.sleep(0.3)
            assert (await h.arun("startup")).ok  # stop + start: not a failure
            await anyio.sleep(1.5)
            assert h.reports == [] and len(procs) == 2
            os.kill(procs[-1].pid, signal.SIGKILL)
    try:
        anyio.run(main)
    finally:
        for q in procs:
            q.kill()
            q.wait()
    assert h.reports == [("winbind", f"ERROR: winbindd (pid {procs[1].pid}) exited")]


def test_daemon_pid_falls_back_to_the_process_name(plugin_harness, tmp_path, monkeypatch):
    h = plugin_harness(ctdb_winbind, "winbind", settings={"pid file": str(tmp_path / "absent.pid")})
    p = subprocess.Popen(["sleep", "60"])
    try:
        wait_named(p.pid, "sleep")
        monkeypatch.setattr(ctdb_winbind, "PROCESS", "sleep")
        assert ctdb_winbind.daemon_pid(h.plugin_ctx) == ctdb_winbind.service.main_pid("sleep")
        monkeypatch.setenv("CTDB_TEST_PIDDIR", str(tmp_path))
        (tmp_path / "w.pid").write_text(f"{p.pid}\n")
        h2 = plugin_harness(ctdb_winbind, "winbind", settings={"pid file": "$CTDB_TEST_PIDDIR/w.pid"})
        assert ctdb_winbind.daemon_pid(h2.plugin_ctx) == p.pid
    finally:
        p.kill()
        p.wait()
