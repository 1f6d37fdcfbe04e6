"""ctdbd started the way init scripts and CTDB's own test harness start it: no `-i`,
so it checks its configuration, forks into the background and the command returns;
the pid file, refusing a second daemon, and `ctdb shutdown` followed by an
immediate restart (4.17's local_daemons.sh and INTEGRATION tests do exactly that)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ctdbcore
from tests.cluster.helpers import ctdb, status_rows, wait_for

# The code under test, whatever the venv's console script would import.
SRC = str(Path(ctdbcore.__file__).resolve().parent.parent)
CTDBD = [sys.executable, "-m", "ctdbcore.daemon.main"]
CTDB = [sys.executable, "-m", "ctdbcore.tools.ctdb"]
ADDR = "127.0.0.128"


def _env(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTDB_")}
    env.update(CTDB_BASE=str(base), CTDB_TEST_MODE="yes",
               PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
    env.update(extra)
    return env


@pytest.fixture
def node(tmp_path):
    """A one-node cluster's files, as local_daemons.sh lays them out (test mode)."""
    (tmp_path / "nodes").write_text(f"{ADDR}\n")
    (tmp_path / "ctdb.conf").write_text(
        "[logging]\n"
        f"\tlocation = file:{tmp_path}/log.ctdb\n"
        "\tlog level = INFO\n"
        "[database]\n"
        f"\tvolatile database directory = {tmp_path}/db/volatile\n"
        f"\tpersistent database directory = {tmp_path}/db/persistent\n"
        f"\tstate database directory = {tmp_path}/db/state\n")
    yield tmp_path
    pidfile = tmp_path / "run" / "ctdbd.pid"
    if pidfile.exists():  # a failed test must not leave a daemon behind
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except (ValueError, OSError):
            pass


def start(base: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    # stdout is a pipe, as in `run_tests.sh | cat`: communicate() only returns when
    # every holder of its write end is gone, so a daemon that kept it would time out.
    return subprocess.run([*CTDBD, *args], env=_env(base, **env), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)


def tool(base: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([*CTDB, *args], env=_env(base), capture_output=True, text=True, timeout=30, check=check)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_free(addr: str, port: int = 4379) -> bool:
    s = socket.socket()
    try:
        s.bind((addr, port))  # no SO_REUSEADDR: a listener (even one in TIME_WAIT's way) fails this
        return True
    except OSError:
        return False
    finally:
        s.close()


def running_pid(base: Path) -> int:
    r = start(base)
    assert r.returncode == 0, r.stderr
    pid = int((base / "run" / "ctdbd.pid").read_text())
    wait_for(lambda: tool(base, "pnn", check=False).returncode == 0, timeout=20, what="the daemon to answer")
    return pid


def test_forks_into_the_background_writes_the_pid_file_and_lets_go_of_stdout(node) -> None:
    t0 = time.monotonic()
    r = start(node)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert took < 15, f"the command took {took:.1f} s to return"
    pid = int((node / "run" / "ctdbd.pid").read_text())
    assert alive(pid)
    wait_for(lambda: tool(node, "pnn", check=False).returncode == 0, timeout=20, what="the daemon to answer")
    assert tool(node, "getpid").stdout.strip() == str(pid)
    # test mode: forked once, no new session (4.17); stdio let go of
    assert os.getsid(pid) == os.getsid(0)
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{pid}/fd/1") == str(node / "log.ctdb")
    assert "CTDB_TEST_MODE enabled" in (node / "log.ctdb").read_text()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), timeout=20, what="exit on SIGTERM")
    assert not (node / "run" / "ctdbd.pid").exists()
    assert not (node / "run" / "ctdbd.socket").exists()


def test_outside_test_mode_it_gets_a_session_of_its_own_and_leaves_the_directory(node) -> None:
    sock, pidfile = node / "run" / "ctdbd.socket", node / "run" / "ctdbd.pid"
    env = {k: v for k, v in _env(node).items() if k != "CTDB_TEST_MODE"}
    env["CTDB_SOCKET"] = str(sock)  # not /run/ctdb: that is the machine's
    r = subprocess.run([*CTDBD, "--pidfile", str(pidfile)], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30, cwd=node)
    assert r.returncode == 0, r.stderr
    pid = int(pidfile.read_text())
    try:
        assert os.getsid(pid) == pid  # setsid
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        wait_for(lambda: sock.exists(), timeout=20, what="the socket")
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), timeout=20, what="exit on SIGTERM")
    assert not pidfile.exists()


@pytest.mark.parametrize("location", ["stderr", "syslog"])
def test_logging_to_stderr_or_syslog_in_the_background_breaks_nothing(node, location) -> None:
    conf = (node / "ctdb.conf").read_text().replace(f"file:{node}/log.ctdb", location)
    (node / "ctdb.conf").write_text(conf)
    r = start(node)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # nothing of the daemon's log came through the pipe
    pid = int((node / "run" / "ctdbd.pid").read_text())
    assert os.readlink(f"/proc/{pid}/fd/2") == "/dev/null"
    # it keeps logging (to nowhere, or syslog) and serving
    tool(node, "setdebug", "DEBUG")
    for _ in range(3):
        assert tool(node, "status").returncode == 0
    assert alive(pid)
    tool(node, "shutdown")
    assert not (node / "run" / "ctdbd.pid").exists()


def test_configuration_errors_are_reported_before_forking(node) -> None:
    (node / "ctdb.conf").write_text("[cluster]\n\tleader timeout = soon\n")
    r = start(node)
    assert r.returncode == 1
    assert f"{node}/ctdb.conf:2:" in r.stderr
    assert not (node / "run" / "ctdbd.pid").exists()
    (node / "ctdb.conf").write_text("")
    (node / "nodes").write_text("192.0.2.250\n")  # not an address of this host
    r = start(node)
    assert r.returncode == 1 and "no nodes-file address is local" in r.stderr
    assert not (node / "run" / "ctdbd.pid").exists()


def test_a_start_that_fails_after_the_fork_is_a_failure_with_the_reason(node) -> None:
    # the node port is taken by someone else: only the daemon itself can find out
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ADDR, 4379))
    s.listen()
    try:
        r = start(node)
    finally:
        s.close()
    assert r.returncode == 1
    assert "the daemon failed to start" in r.stderr and "Address already in use" in r.stderr, r.stderr
    assert not (node / "run" / "ctdbd.pid").exists()


def test_a_second_daemon_refuses_to_start(node) -> None:
    pid = running_pid(node)
    r = start(node)
    assert r.returncode == 1
    assert f"another ctdbd (pid {pid}) is running: it holds the pid file {node}/run/ctdbd.pid" in r.stderr
    # another pid file, same socket: still refused, and the first one's socket is kept
    r = start(node, "--pidfile", str(node / "other.pid"))
    assert r.returncode == 1 and f"another ctdbd is listening on {node}/run/ctdbd.socket" in r.stderr
    assert not (node / "other.pid").exists()
    assert alive(pid) and tool(node, "getpid").stdout.strip() == str(pid)
    assert (node / "run" / "ctdbd.pid").read_text().strip() == str(pid)
    tool(node, "shutdown")


def test_a_killed_daemons_pid_file_does_not_stop_the_next(node) -> None:
    pid = running_pid(node)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), timeout=10, what="the kill")
    assert (node / "run" / "ctdbd.pid").exists()  # left behind, but not locked any more
    pid2 = running_pid(node)
    assert pid2 != pid
    tool(node, "shutdown")


def test_shutdown_frees_everything_so_an_immediate_restart_works(node) -> None:
    pid = running_pid(node)
    for _ in range(3):
        t0 = time.monotonic()
        r = tool(node, "shutdown")
        assert r.returncode == 0, r.stderr
        took = time.monotonic() - t0
        # `ctdb shutdown` returned: the daemon closed its connection, so by now
        assert not (node / "run" / "ctdbd.pid").exists()
        assert not (node / "run" / "ctdbd.socket").exists()
        assert port_free(ADDR)
        assert took < 10, f"shutdown took {took:.1f} s"
        old, pid = pid, running_pid(node)  # at once, as 4.17's tests restart a node
        assert pid != old
        wait_for(lambda: not alive(old), timeout=5, what="the old process to exit")
    tool(node, "shutdown")


def test_tells_systemd_when_it_is_ready_and_when_it_stops(node, tmp_path) -> None:
    """Type=notify (contrib/systemd/ctdb.service): READY=1 with our pid once the socket
    answers, STOPPING=1 at shutdown; event scripts do not inherit NOTIFY_SOCKET."""
    addr = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(addr)
    listener.settimeout(30)
    proc = subprocess.Popen([*CTDBD, "-i"], env=_env(node, NOTIFY_SOCKET=addr),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        msg = listener.recv(4096).decode()
        assert msg.splitlines() == ["READY=1", f"MAINPID={proc.pid}"]
        assert tool(node, "pnn").stdout.strip() == "0"  # ready means clients can connect
        tool(node, "shutdown")
        assert listener.recv(4096).decode() == "STOPPING=1"
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()


@pytest.mark.slow
def test_cluster_node_shut_down_and_restarted_at_once_rejoins(local_cluster) -> None:
    lc = local_cluster(n=3, loopback=True, loopback_base=125)
    lc.wait_ok(timeout=30)
    for _ in range(2):
        old = lc.pid(1)
        ctdb(lc, 1, "shutdown")
        assert not (Path(lc.node(1).dir) / "run" / "ctdbd.pid").exists()
        assert not os.path.exists(lc.socket(1))
        # (LocalCluster starts nothing while the old process still runs: wait for
        # its exit, which follows the connection's close)
        wait_for(lambda: not lc.running(1), timeout=5, what="node 1's process to exit")
        lc.start(1)  # at once
        assert lc.pid(1) != old
        wait_for(lambda: all(r["Disconnected"] == "0" for r in status_rows(lc, 0).values())
                 and all(r["Unhealthy"] == "0" for r in status_rows(lc, 1).values()),
                 timeout=30, what="node 1 back in the cluster")
    assert {ctdb(lc, p, "pnn").strip() for p in range(3)} == {"0", "1", "2"}
