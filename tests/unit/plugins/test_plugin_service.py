"""The service helpers of ctdbcore.plugins.service, against 4.17's shell functions."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from ctdbcore.plugins import service
from ctdbcore.testing import RecordingRunner


@pytest.fixture
def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_checks(listener):
    port = free_port()
    assert service.tcp_port_listening(listener) and not service.tcp_port_listening(port)
    assert service.check_tcp_ports("samba", [listener]) is None
    assert service.check_tcp_ports("samba", [listener, port]) == f"samba not listening on TCP port {port}"
    assert "no ports specified" in service.check_tcp_ports("samba", [])


@pytest.mark.skipif(not os.path.exists("/usr/bin/ctdb"), reason="Debian's ctdb tool is not installed")
def test_ctdb_checktcpport_as_debian_tool(listener):
    ours = os.path.join(os.path.dirname(sys.executable), "ctdb")
    for port in (str(listener), str(free_port()), "abc"):
        theirs = subprocess.run(["/usr/bin/ctdb", "checktcpport", port], capture_output=True, text=True)
        mine = subprocess.run([ours, "checktcpport", port], capture_output=True, text=True)
        assert (mine.returncode, mine.stdout, mine.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_check_directories(tmp_path):
    assert service.check_directories("samba", [str(tmp_path), "/srv/%U"]) is None
    assert service.check_directories("samba", [str(tmp_path / "gone")]) == \
        f'ERROR: samba directory "{tmp_path / "gone"}" not available'


def test_failure_counter_is_4_17s_file(tmp_path):
    c = service.FailureCounter(tmp_path)
    assert c.get() == 0 and c.incr() == 1 and c.incr() == 2
    assert (tmp_path / "failcount").read_text() == "\n\n"  # unary, as ctdb_counter_incr
    c.reset()
    assert c.get() == 0


@pytest.mark.parametrize(("count", "restart", "unhealthy"), [(1, False, False), (2, True, False), (4, True, False),
                                                              (5, False, True), (6, True, True)])
def test_judge_failure_like_nfs_checks(count, restart, unhealthy):
    v = service.judge_failure(count, restart_every=2, unhealthy_after=5)
    assert (v.restart, v.unhealthy) == (restart, unhealthy)


def test_service_commands_prefer_settings_then_init_system(tmp_path, monkeypatch):
    runner = RecordingRunner()
    svc = service.Service("vsftpd", runner=runner, start_cmd="ip netns exec n0 vsftpd /x.conf", nice=True)
    svc.start()
    assert runner.calls[0] == ("nice", "/bin/sh", "-c", "ip netns exec n0 vsftpd /x.conf")
    monkeypatch.setattr(service, "init_style", lambda init_dir="/etc/init.d": "systemd")
    svc.stop()
    assert runner.calls[1] == ("systemctl", "stop", "vsftpd")
    (tmp_path / "apache2").write_text("#!/bin/sh\n")
    monkeypatch.setattr(service, "init_style", lambda init_dir="/etc/init.d": "sysv")
    service.Service("apache2", runner=runner, init_dir=str(tmp_path)).restart()
    assert runner.calls[-2:] == [(str(tmp_path / "apache2"), "stop"), (str(tmp_path / "apache2"), "start")]


def test_subprocess_runner_failures_are_statuses():
    r = service.SubprocessRunner()
    assert r.run(["/nonexistent/prog"]).returncode == service.NOT_FOUND
    done = r.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.returncode, done.output) == (3, "out\nerr")
    assert r.run(["sleep", "5"], timeout=0.2).returncode == service.TIMED_OUT


def test_missing_program_names_the_package():
    assert service.missing_program("sh", "dash") is None
    assert service.missing_program("/usr/sbin/nosuchd", "nosuch") == \
        "ERROR: /usr/sbin/nosuchd is not installed (apt-get install nosuch)"


@pytest.fixture
def own_sleep(tmp_path):
    """A copy of sleep under a name no other process has (other tests' daemons and
    scripts run plain sleeps that come and go), started and seen by name."""
    prog = tmp_path / "ctdbtestslp"
    shutil.copy("/bin/sleep", prog)

    def start(*wrap: str) -> subprocess.Popen:
        return subprocess.Popen([*wrap, str(prog), "30"])

    def wait_named(pid: int) -> None:
        deadline = time.monotonic() + 5  # Popen returns before the child's exec names it
        while pid not in service.pids_of(prog.name) and time.monotonic() < deadline:
            time.sleep(0.01)

    return prog.name, start, wait_named


def test_pids_kill_and_stack_traces(own_sleep):
    name, start, wait_named = own_sleep
    p = start()
    try:
        wait_named(p.pid)
        assert p.pid in service.pids_of(name)
        trace = service.stack_traces(name, 5)
        assert f"Stack trace for {name}[{p.pid}]:" in trace or not os.path.exists(f"/proc/{p.pid}/stack")
        assert p.pid in service.kill_all(name, signal.SIGTERM)
        assert p.wait(5) == -signal.SIGTERM
    finally:
        p.kill()


def test_main_pid_and_netns_filter(own_sleep, tmp_path):
    name, start, wait_named = own_sleep
    p = start()
    try:
        wait_named(p.pid)
        assert p.pid in service.pids_of(name, same_netns=True)
        assert service.main_pid(name) == min(service.pids_of(name, same_netns=True))
        # a process in another network namespace is left out
        if os.geteuid() == 0 and shutil.which("unshare"):
            q = start("unshare", "--net")
            try:
                def netns_pid():
                    return [pid for pid in service.pids_of(name) if pid != p.pid]
                deadline = time.monotonic() + 5
                while not netns_pid() and time.monotonic() < deadline:
                    time.sleep(0.05)
                other = netns_pid()
                assert other
                assert os.readlink(f"/proc/{other[0]}/ns/net") != os.readlink("/proc/self/ns/net")
                assert other[0] not in service.pids_of(name, same_netns=True)
                assert other[0] not in service.kill_all(name, signal.SIGCONT, same_netns=True)
            finally:
                q.kill()
                q.wait()
    finally:
        p.kill()
        p.wait()
    # the main process is the one whose parent has another name (a fake /proc)
    for pid, comm, ppid in ((10, "vsftpd", 1), (11, "vsftpd", 10), (5, "bash", 1)):
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "comm").write_text(comm + "\n")
        (d / "stat").write_text(f"{pid} ({comm}) S {ppid} 0 0\n")
    assert service.pids_of("vsftpd", str(tmp_path)) == [10, 11]
    assert service.main_pid("vsftpd", str(tmp_path), same_netns=False) == 10
    assert service.main_pid("nosuch", str(tmp_path), same_netns=False) is None


def test_read_pidfile(tmp_path):
    f = tmp_path / "x.pid"
    assert service.read_pidfile(f) is None
    f.write_text(f"{os.getpid()}\n")
    assert service.read_pidfile(f) == os.getpid()
    f.write_text("garbage")
    assert service.read_pidfile(f) is None


@pytest.mark.anyio
async def test_wait_for_exit_and_unresponsive(listener):
    import anyio

    p = subprocess.Popen(["sleep", "0.3"])
    t0 = time.monotonic()
    with anyio.fail_after(5):
        await service.wait_for_exit(p.pid)
    assert time.monotonic() - t0 < 3
    p.wait()
    with anyio.fail_after(5):
        reason = await service.wait_until_unresponsive("127.0.0.1", free_port(), interval=0.05)
    assert "probes in a row" in reason
    with anyio.move_on_after(0.5) as scope:
        await service.wait_until_unresponsive("127.0.0.1", listener, interval=0.05)
    assert scope.cancelled_caught  # a listening port keeps it waiting


@pytest.mark.anyio
async def test_watch_daemon_ignores_deliberate_stops(tmp_path):
    import anyio

    stops = service.DeliberateStops(tmp_path)
    assert not stops.since(0)
    procs = [subprocess.Popen(["sleep", "30"])]
    current = {"pid": procs[0].pid}

    async def restart_deliberately():
        await anyio.sleep(0.3)
        stops.mark()
        procs[0].kill()
        procs[0].wait()
        current["pid"] = None
        await anyio.sleep(0.5)
        procs.append(subprocess.Popen(["sleep", "30"]))
        current["pid"] = procs[-1].pid
        await anyio.sleep(0.5)
        procs[-1].kill()  # this one dies by itself
        procs[-1].wait()

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(restart_deliberately)
                died = await service.watch_daemon(lambda: current["pid"], stops, interval=0.05)
        assert died == procs[-1].pid and len(procs) == 2
        # nothing runs: None at once; a deliberate stop with no new process: a failure after settle
        assert await service.watch_daemon(lambda: None, stops) is None
        p = subprocess.Popen(["sleep", "30"])
        procs.append(p)

        async def stop_for_good():
            await anyio.sleep(0.2)
            stops.mark()
            p.kill()
            p.wait()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stop_for_good)
                assert await service.watch_daemon(lambda: p.pid if p.poll() is None else None, stops,
                                                  settle=0.5, interval=0.05) == p.pid
    finally:
        for q in procs:
            q.kill()
            q.wait()


@pytest.mark.anyio
async def test_watch_daemon_follows_a_daemon_that_forks_into_the_background():
    """vsftpd's start: the process first found is the parent on its way out; the
    listener it forked runs on and is watched instead of reported."""
    import anyio

    parent = subprocess.Popen(["sleep", "0.2"])
    child = subprocess.Popen(["sleep", "30"])

    def find():
        return parent.pid if parent.poll() is None else (child.pid if child.poll() is None else None)

    async def kill_child_later():
        await anyio.sleep(0.8)
        child.kill()
        child.wait()

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_child_later)
                died = await service.watch_daemon(find)
        assert died == child.pid
    finally:
        for q in (parent, child):
            q.kill()
            q.wait()
