"""41.httpd's events, run as ctdbd runs them, with a recording runner (nothing is
started) and real listening sockets for monitor's port check."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import anyio
import pytest

import ctdb_httpd
from ctdbcore.config.errors import ConfigErrors

START = "apache2 -f /etc/apache2-test.conf -k start"
STOP = "apache2 -f /etc/apache2-test.conf -k stop"
IPCS = """
------ Semaphore Arrays --------
key        semid      owner      perms      nsems
0x00000000 32768      apache     600        1
0x00000000 32769      www-data   600        1
0x00000000 32770      apache     600        1

"""


@pytest.fixture
def port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def listen(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen()
    return s


@pytest.fixture
def h(plugin_harness, port):
    # a service name no process has, so that the semaphore clean-up always runs
    h = plugin_harness(ctdb_httpd, "httpd", settings={"port": str(port), "start command": START,
                                                      "stop command": STOP, "service name": "ctdb-test-httpd"})
    h.runner.respond(("ipcs", "-s"), stdout=IPCS)
    return h


def shells(h) -> list[str]:
    return [c[2] for c in h.runner.calls if c[:2] == ("/bin/sh", "-c")]


def test_defaults_follow_the_init_style(plugin_harness, monkeypatch):
    h = plugin_harness(ctdb_httpd, "httpd")
    assert h.script == "41.httpd"
    assert (h.settings.port, h.settings.semaphore_user) == (80, "apache")
    monkeypatch.setattr(ctdb_httpd, "detect_init_style", lambda: "debian")
    assert ctdb_httpd.service_name(h.plugin_ctx) == "apache2"
    assert ctdb_httpd.program(h.plugin_ctx) == ("/usr/sbin/apache2", "apache2")
    redhat = plugin_harness(ctdb_httpd, "httpd", options={"CTDB_INIT_STYLE": "redhat"})
    assert ctdb_httpd.service_name(redhat.plugin_ctx) == "httpd"
    assert ctdb_httpd.program(redhat.plugin_ctx) == ("/usr/sbin/httpd", "httpd")
    with pytest.raises(ConfigErrors):
        plugin_harness(ctdb_httpd, "httpd", options={"CTDB_INIT_STYLE": "gentoo"})


def test_detect_init_style_on_this_machine():
    expected = ("suse" if os.access("/sbin/startproc", os.X_OK) else
                "debian" if os.access("/sbin/start-stop-daemon", os.X_OK) else "redhat")
    assert ctdb_httpd.detect_init_style() == expected


def test_startup_cleans_apaches_semaphores_then_starts(h):
    counter = ctdb_httpd._counter(h.plugin_ctx)
    counter.incr()
    assert h.output("startup") == (0, "")
    assert h.runner.calls == [("ipcs", "-s"), ("ipcrm", "-s", "32768"), ("ipcrm", "-s", "32770"),
                              ("/bin/sh", "-c", START)]
    assert counter.get() == 0


def test_semaphores_stay_while_the_server_runs(plugin_harness):
    p = subprocess.Popen(["sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while p.pid not in ctdb_httpd.service.pids_of("sleep") and time.monotonic() < deadline:
            time.sleep(0.01)
        h = plugin_harness(ctdb_httpd, "httpd", settings={"service name": "sleep", "start command": START})
        h.runner.respond(("ipcs", "-s"), stdout=IPCS)
        assert ctdb_httpd.cleanup_semaphore_leak(h.plugin_ctx) == []
        assert h.runner.calls == []  # 4.17: killall -q -0 httpd succeeded
    finally:
        p.kill()
        p.wait()


def test_semaphore_user_setting_and_ipcs_failure(h, plugin_harness):
    h2 = plugin_harness(ctdb_httpd, "httpd", settings={"service name": "ctdb-test-httpd", "semaphore user": "www-data"})
    h2.runner.respond(("ipcs", "-s"), stdout=IPCS)
    assert ctdb_httpd.cleanup_semaphore_leak(h2.plugin_ctx) == ["32769"]
    h.runner.respond(("ipcs", "-s"), 127, stderr="ipcs: command not found\n")
    assert h.output("startup") == (0, "")
    assert h.runner.calls == [("ipcs", "-s"), ("/bin/sh", "-c", START)]


def test_startup_succeeds_when_start_fails(h):
    h.runner.respond(("/bin/sh", "-c", START), 1, stderr="AH00015: Unable to open logs\n")
    assert h.output("startup") == (0, "")


def test_startup_through_the_init_system_needs_the_server_installed(plugin_harness, monkeypatch):
    h = plugin_harness(ctdb_httpd, "httpd", settings={"service name": "ctdb-test-nosuchd"})
    assert h.output("startup") == (1, "ERROR: /usr/sbin/ctdb-test-nosuchd is not installed (apt-get install apache2)")
    assert h.runner.calls == []


def test_shutdown_stops_and_kills_leftovers(plugin_harness, tmp_path):
    p = subprocess.Popen(["sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        while p.pid not in ctdb_httpd.service.pids_of("sleep") and time.monotonic() < deadline:
            time.sleep(0.01)
        h = plugin_harness(ctdb_httpd, "httpd", settings={"service name": "sleep", "stop command": STOP})
        assert h.output("shutdown") == (0, "")
        assert shells(h) == [STOP]
        assert p.wait(5) == -signal.SIGKILL  # killall -q -9 sleep
    finally:
        p.kill()
        p.wait()


def test_monitor_restarts_at_the_2nd_failure_and_is_unhealthy_from_the_5th(h, caplog):
    restart = [("/bin/sh", "-c", STOP), ("ipcs", "-s"), ("ipcrm", "-s", "32768"), ("ipcrm", "-s", "32770"),
               ("/bin/sh", "-c", START)]
    seen = []
    for n in range(1, 8):
        h.runner.clear()
        with caplog.at_level("WARNING"):
            caplog.clear()
            seen.append((n, h.output("monitor"), h.runner.calls == restart, ctdb_httpd.RESTART_MESSAGE in caplog.text))
        if n not in (2, 5, 6, 7):
            assert h.runner.calls == []
    msg = "HTTPD is not running. Trying to restart HTTPD."
    assert seen == [(1, (0, ""), False, False), (2, (0, ""), True, True), (3, (0, ""), False, False),
                    (4, (0, ""), False, False), (5, (1, msg), True, True), (6, (1, msg), True, True),
                    (7, (1, msg), True, True)]


def test_monitor_healthy_resets_the_count(h, port):
    assert h.output("monitor") == (0, "")
    s = listen(port)
    try:
        assert h.output("monitor") == (0, "")
        assert ctdb_httpd._counter(h.plugin_ctx).get() == 0
    finally:
        s.close()
    h.runner.clear()
    assert h.output("monitor") == (0, "")  # a 1st failure again: no restart
    assert h.runner.calls == []


def test_watch_reports_a_killed_server_and_the_next_monitor_restarts_it(plugin_harness, tmp_path, port):
    p = subprocess.Popen(["sleep", "60"])
    pidfile = tmp_path / "apache2.pid"
    pidfile.write_text(f"{p.pid}\n")
    h = plugin_harness(ctdb_httpd, "httpd", settings={"pid file": str(pidfile), "port": str(port),
                                                      "service name": "ctdb-test-httpd", "start command": START,
                                                      "stop command": STOP})

    async def main():
        async with anyio.create_task_group() as tg:
            async def watch():
                with anyio.fail_after(20):
                    await ctdb_httpd.ctdb_watch(ctx=h.plugin_ctx)
            tg.start_soon(watch)
            await anyio.sleep(0.3)
            assert h.reports == []
            os.kill(p.pid, signal.SIGKILL)
    try:
        anyio.run(main)
    finally:
        p.kill()
        p.wait()
    assert h.reports == [("httpd", f"ERROR: ctdb-test-httpd (pid {p.pid}) exited")]
    h.runner.clear()
    assert h.output("monitor") == (0, "")  # the 2nd failure: restart, success
    assert ("/bin/sh", "-c", START) in h.runner.calls


def test_watch_ignores_the_monitors_own_restart(plugin_harness, tmp_path, port):
    from ctdbcore.plugins.service import Completed

    pidfile = tmp_path / "apache2.pid"
    procs = [subprocess.Popen(["sleep", "60"])]
    pidfile.write_text(f"{procs[0].pid}\n")
    h = plugin_harness(ctdb_httpd, "httpd", settings={"pid file": str(pidfile), "port": str(port),
                                                      "service name": "ctdb-test-httpd", "start command": START,
                                                      "stop command": STOP})

    def stop(argv):
        procs[-1].kill()
        procs[-1].wait()
        return Completed(argv, 0)

    def start(argv):
        procs.append(subprocess.Popen(["sleep", "60"]))
        pidfile.write_text(f"{procs[-1].pid}\n")
        return Completed(argv, 0)
    h.runner.respond(("/bin/sh", "-c", STOP), answer=stop)
    h.runner.respond(("/bin/sh", "-c", START), answer=start)
    ctdb_httpd._counter(h.plugin_ctx).incr()  # the next failure is the 2nd: a restart

    async def main():
        async with anyio.create_task_group() as tg:
            async def watch():
                with anyio.fail_after(20):
                    await ctdb_httpd.ctdb_watch(ctx=h.plugin_ctx)
            tg.start_soon(watch)
            await anyio.sleep(0.3)
            run = await h.arun("monitor")
            assert run.ok
            await anyio.sleep(1.5)
            assert h.reports == [] and len(procs) == 2
            os.kill(procs[-1].pid, signal.SIGKILL)
    try:
        anyio.run(main)
    finally:
        for q in procs:
            q.kill()
            q.wait()
    assert h.reports == [("httpd", f"ERROR: ctdb-test-httpd (pid {procs[1].pid}) exited")]


def test_monitor_counts_a_dead_main_process_whose_workers_still_listen(plugin_harness, tmp_path, port):
    p = subprocess.Popen(["sleep", "60"])
    pidfile = tmp_path / "apache2.pid"
    pidfile.write_text(f"{p.pid}\n")
    h = plugin_harness(ctdb_httpd, "httpd", settings={"pid file": str(pidfile), "port": str(port),
                                                      "service name": "ctdb-test-httpd", "start command": START,
                                                      "stop command": STOP})
    s = listen(port)  # the "workers"
    try:
        assert h.output("monitor") == (0, "")
        assert ctdb_httpd._counter(h.plugin_ctx).get() == 0
        p.kill()
        p.wait()
        assert ctdb_httpd.stale_pid(h.plugin_ctx) == p.pid
        assert h.output("monitor") == (0, "")
        assert ctdb_httpd._counter(h.plugin_ctx).get() == 1
        assert h.output("monitor") == (0, "")  # the 2nd: restart
        assert ("/bin/sh", "-c", START) in h.runner.calls
        pidfile.unlink()  # no pid file: only the port counts, as 4.17
        assert ctdb_httpd.stale_pid(h.plugin_ctx) is None
        assert h.output("monitor") == (0, "")
        assert ctdb_httpd._counter(h.plugin_ctx).get() == 0
    finally:
        s.close()
        p.kill()
        p.wait()


def test_default_pid_file_is_the_distributions(plugin_harness, monkeypatch):
    monkeypatch.setattr(ctdb_httpd, "detect_init_style", lambda: "debian")
    assert ctdb_httpd.pid_file(plugin_harness(ctdb_httpd, "httpd").plugin_ctx) == "/run/apache2/apache2.pid"
    h = plugin_harness(ctdb_httpd, "httpd", options={"CTDB_INIT_STYLE": "redhat"})
    assert ctdb_httpd.pid_file(h.plugin_ctx) == "/run/httpd/httpd.pid"
    monkeypatch.setenv("CTDB_TEST_BASE", "/srv/node1")
    h = plugin_harness(ctdb_httpd, "httpd", settings={"pid file": "$CTDB_TEST_BASE/apache2.pid"})
    assert ctdb_httpd.pid_file(h.plugin_ctx) == "/srv/node1/apache2.pid"
