"""The pieces of ctdbd's start as a service that need no daemon: sd_notify's
datagram, the pid file lock, the stale-socket check."""

from __future__ import annotations

import os
import socket

import pytest

from ctdbcore.daemon.daemonize import AlreadyRunning, PidFile, check_socket_free, sd_notify


def test_sd_notify_to_a_path_and_to_an_abstract_socket(tmp_path) -> None:
    path = str(tmp_path / "notify")
    abstract = f"@ctdb-test-{os.getpid()}"
    for addr, bind in ((path, path), (abstract, "\0" + abstract[1:])):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(bind)
        try:
            assert sd_notify("READY=1", {"NOTIFY_SOCKET": addr})
            assert s.recv(100) == b"READY=1"
        finally:
            s.close()
    assert not sd_notify("READY=1", {})  # not started by systemd
    assert not sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody")})


def test_pid_file_lock_refuses_a_second_holder_and_forgets_a_dead_one(tmp_path) -> None:
    path = str(tmp_path / "run" / "ctdbd.pid")
    first = PidFile.acquire(path)
    first.write(4242)
    with pytest.raises(AlreadyRunning, match=f"another ctdbd \\(pid 4242\\) is running: it holds the pid file {path}"):
        PidFile.acquire(path)
    first.remove()
    assert not os.path.exists(path)
    # a file left behind with nobody holding its lock is reused
    with open(path, "w") as f:
        f.write("999999\n")
    second = PidFile.acquire(path)
    second.write(os.getpid())
    assert open(path).read() == f"{os.getpid()}\n"
    second.remove()


def test_pid_file_lock_conflicts_with_a_posix_lock_as_4_17_takes_it(tmp_path) -> None:
    """4.17's pidfile_context_create holds an fcntl (POSIX) write lock; ours is an OFD
    lock, which the kernel checks against it. The POSIX lock is taken in a child
    (a process's own POSIX and OFD locks would conflict too, but say less)."""
    import fcntl

    path = str(tmp_path / "ctdbd.pid")
    locked_r, locked_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT)
            fcntl.lockf(fd, fcntl.LOCK_EX)
            os.write(fd, b"77\n")
            os.write(locked_w, b"x")
            os.read(done_r, 1)  # hold it until the parent is done
        finally:
            os._exit(0)
    try:
        assert os.read(locked_r, 1) == b"x"
        with pytest.raises(AlreadyRunning, match=r"pid 77"):
            PidFile.acquire(path)
    finally:
        os.write(done_w, b"x")
        os.waitpid(pid, 0)
        for fd in (locked_r, locked_w, done_r, done_w):
            os.close(fd)


def test_socket_check_refuses_a_live_socket_and_ignores_a_stale_one(tmp_path) -> None:
    path = str(tmp_path / "ctdbd.socket")
    check_socket_free(path)  # nothing there
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen()
    with pytest.raises(AlreadyRunning, match=f"another ctdbd is listening on {path}"):
        check_socket_free(path)
    s.close()  # the file stays, nobody listens: stale
    assert os.path.exists(path)
    check_socket_free(path)
