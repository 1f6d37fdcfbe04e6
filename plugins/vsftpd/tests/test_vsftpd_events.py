"""40.vsftpd's events, run as ctdbd runs them, with a recording runner (nothing is
started) and real listening sockets for monitor's port check."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import anyio
import pytest

import ctdb_vsftpd
from ctdbcore.plugins.service import Completed

START = "vsftpd /etc/vsftpd-test.conf"
STOP = "pkill -f vsftpd-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def listener(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen()
    yield s
    s.close()


@pytest.fixture
def h(plugin_harness, port):
    return plugin_harness(ctdb_vsftpd, "vsftpd", settings={"port": str(port), "start command": START,
                                                           "stop command": STOP})


def shells(h) -> list[str]:
    return [c[2] for c in h.runner.calls if c[:2] == ("/bin/sh", "-c")]


def test_settings_defaults_and_script_name(plugin_harness):
    h = plugin_harness(ctdb_vsftpd, "vsftpd")
    assert h.script == "40.vsftpd"
    s = h.settings
    assert (s.service_name, s.port, s.start_command, s.stop_command, s.pid_file) == ("vsftpd", 21, None, None, None)


def test_startup_stops_then_starts_and_resets_the_counter(h):
    counter = ctdb_vsftpd._counter(h.plugin_ctx)
    counter.incr()
    counter.incr()
    assert h.output("startup") == (0, "")
    assert shells(h) == [STOP, START]
    assert counter.get() == 0


def test_startup_succeeds_even_when_start_fails(h):
    # 4.17's script runs "service vsftpd start" and exits 0 whatever it did
    h.runner.respond(("/bin/sh", "-c", START), 1, stderr="500 OOPS: could not bind\n")
    h.runner.respond(("/bin/sh", "-c", STOP), 1)
    assert h.output("startup") == (0, "")


def test_startup_through_the_init_system_needs_vsftpd_installed(plugin_harness, monkeypatch):
    h = plugin_harness(ctdb_vsftpd, "vsftpd")
    monkeypatch.setattr(ctdb_vsftpd, "PROGRAM", "/nonexistent/sbin/vsftpd")
    assert h.output("startup") == (1, "ERROR: /nonexistent/sbin/vsftpd is not installed (apt-get install vsftpd)")
    assert h.runner.calls == []


def test_startup_uses_the_init_system_without_commands(plugin_harness, monkeypatch):
    h = plugin_harness(ctdb_vsftpd, "vsftpd", settings={"service name": "vsftpd-alt"})
    monkeypatch.setattr(ctdb_vsftpd, "PROGRAM", "/bin/sh")  # installed
    monkeypatch.setattr(ctdb_vsftpd.service, "init_style", lambda init_dir="/etc/init.d": "systemd")
    assert h.output("startup") == (0, "")
    assert h.runner.calls == [("systemctl", "stop", "vsftpd-alt"), ("systemctl", "start", "vsftpd-alt")]


def test_shutdown_stops(h):
    h.runner.respond(("/bin/sh", "-c", STOP), 1)
    assert h.output("shutdown") == (0, "")
    assert shells(h) == [STOP]


@pytest.mark.parametrize("event", ["takeip", "releaseip"])
def test_ip_change_flags_a_restart_at_ipreallocated(h, event):
    assert h.output("ipreallocated") == (0, "")
    assert h.runner.calls == []  # nothing flagged: nothing done
    assert h.output(event, iface="eth1", ip="198.51.100.101", maskbits=24) == (0, "")
    assert h.runner.calls == []  # the address change itself only flags
    counter = ctdb_vsftpd._counter(h.plugin_ctx)
    counter.incr()
    assert h.output("ipreallocated") == (0, "")
    assert shells(h) == [STOP, START]
    assert counter.get() == 0
    h.runner.clear()
    assert h.output("ipreallocated") == (0, "")  # the flag was cleared
    assert h.runner.calls == []


def test_failed_restart_keeps_the_counter_and_succeeds(h):
    h.run("takeip", iface="eth1", ip="198.51.100.101", maskbits=24)
    counter = ctdb_vsftpd._counter(h.plugin_ctx)
    counter.incr()
    h.runner.respond(("/bin/sh", "-c", START), 1)
    assert h.output("ipreallocated") == (0, "")
    assert counter.get() == 1
    assert not ctdb_vsftpd._reconfigure_flag(h.plugin_ctx).exists()


def test_monitor_healthy_while_listening(h, listener):
    ctdb_vsftpd._counter(h.plugin_ctx).incr()
    assert h.output("monitor") == (0, "")
    assert ctdb_vsftpd._counter(h.plugin_ctx).get() == 0


def test_monitor_warns_once_then_unhealthy(h, port, caplog):
    with caplog.at_level("WARNING"):
        assert h.output("monitor") == (0, "")
    assert f"vsftpd not listening on TCP port {port}" in caplog.text
    assert "WARNING: vsftpd not listening but less than 2 consecutive failures, not unhealthy yet" in caplog.text
    assert h.output("monitor") == (1, f"vsftpd not listening on TCP port {port}\n"
                                      "ERROR: 2 consecutive failures for vsftpd, marking node unhealthy")
    assert h.output("monitor") == (1, f"vsftpd not listening on TCP port {port}\n"
                                      "ERROR: 3 consecutive failures for vsftpd, marking node unhealthy")
    assert h.runner.calls == []  # 4.17's monitor never restarts vsftpd


def test_a_listener_between_failures_resets_the_count(h, port):
    assert h.output("monitor")[0] == 0
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen()
    try:
        assert h.output("monitor") == (0, "")
    finally:
        s.close()
    assert h.output("monitor") == (0, "")  # a 1st failure again: only a warning


def sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"])


def watch(h):
    async def go():
        with anyio.fail_after(20):
            await ctdb_vsftpd.ctdb_watch(ctx=h.plugin_ctx)
    return go


def test_watch_reports_a_killed_daemon_and_counts_a_failure(plugin_harness, tmp_path, port):
    p = sleeper()
    pidfile = tmp_path / "vsftpd.pid"
    pidfile.write_text(f"{p.pid}\n")
    h = plugin_harness(ctdb_vsftpd, "vsftpd", settings={"pid file": str(pidfile), "port": str(port)})

    async def main():
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch(h))
            await anyio.sleep(0.3)
            assert h.reports == []
            os.kill(p.pid, signal.SIGKILL)
    try:
        anyio.run(main)
    finally:
        p.kill()
        p.wait()
    assert h.reports == [("vsftpd", f"ERROR: vsftpd (pid {p.pid}) exited")]
    # the next failed monitor is the 2nd failure: the node stays unhealthy
    assert h.output("monitor")[0] == 1


def test_watch_returns_when_nothing_runs(plugin_harness, tmp_path):
    h = plugin_harness(ctdb_vsftpd, "vsftpd", settings={"pid file": str(tmp_path / "none.pid")})
    anyio.run(watch(h))
    assert h.reports == []


def test_watch_ignores_the_plugins_own_restart(plugin_harness, tmp_path, port):
    """ipreallocated's restart stops the daemon: not a failure; the new one is watched."""
    pidfile = tmp_path / "vsftpd.pid"
    procs = [sleeper()]
    pidfile.write_text(f"{procs[0].pid}\n")
    h = plugin_harness(ctdb_vsftpd, "vsftpd", settings={"pid file": str(pidfile), "port": str(port),
                                                        "start command": START, "stop command": STOP})

    def stop(argv):
        procs[-1].kill()
        procs[-1].wait()
        return Completed(argv, 0)

    def start(argv):
        procs.append(sleeper())
        pidfile.write_text(f"{procs[-1].pid}\n")
        return Completed(argv, 0)
    h.runner.respond(("/bin/sh", "-c", STOP), answer=stop)
    h.runner.respond(("/bin/sh", "-c", START), answer=start)

    async def main():
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch(h))
            await anyio.sleep(0.3)
            await h.arun("releaseip", iface="eth1", ip="198.51.100.101", maskbits=24)
            await h.arun("ipreallocated")
            await anyio.sleep(1.5)
            assert h.reports == []
            assert len(procs) == 2
            os.kill(procs[-1].pid, signal.SIGKILL)  # the new daemon dies by itself
    try:
        anyio.run(main)
    finally:
        for q in procs:
            q.kill()
            q.wait()
    assert h.reports == [("vsftpd", f"ERROR: vsftpd (pid {procs[1].pid}) exited")]


def test_daemon_pid_by_name_in_own_namespace(plugin_harness):
    p = subprocess.Popen(["sleep", "60"])
    try:
        h = plugin_harness(ctdb_vsftpd, "vsftpd", settings={"process name": "sleep"})
        import time
        deadline = time.monotonic() + 5
        while p.pid not in ctdb_vsftpd.service.pids_of("sleep") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ctdb_vsftpd.daemon_pid(h.plugin_ctx) == ctdb_vsftpd.service.main_pid("sleep")
        assert ctdb_vsftpd.daemon_pid(h.plugin_ctx) is not None
    finally:
        p.kill()
        p.wait()
