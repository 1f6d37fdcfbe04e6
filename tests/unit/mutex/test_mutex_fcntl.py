"""The built-in fcntl cluster mutex (a lock file held by ctdbcore.daemon.mutex_helper)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import anyio
import pytest
from conftest import reaped, wait_until

from ctdbcore.daemon.mutex import HelperMutex, MutexResult, fcntl_plugin, make_cluster_mutex

pytestmark = pytest.mark.anyio


async def test_second_contends_until_first_releases(lockfile, log):
    first = make_cluster_mutex(lockfile, logger=log)
    second = make_cluster_mutex(lockfile, logger=log)
    try:
        assert await first.acquire(5) is MutexResult.HELD
        assert first.held
        assert await second.acquire(5) is MutexResult.CONTENTION
        assert not second.held
        await first.release()
        assert not first.held
        assert await second.acquire(5) is MutexResult.HELD
        assert await first.acquire(5) is MutexResult.CONTENTION
    finally:
        await first.release()
        await second.release()
    assert oct(os.stat(lockfile).st_mode & 0o777) == oct(0o600)


async def test_latency_recorded_and_helper_reaped(lockfile, log):
    mutex = make_cluster_mutex(lockfile, logger=log)
    other = make_cluster_mutex(lockfile, logger=log)
    assert mutex.last_latency is None
    assert await mutex.acquire(5) is MutexResult.HELD
    assert 0 < mutex.last_latency < 5
    pid = mutex.helper_pid
    assert await other.acquire(5) is MutexResult.CONTENTION
    assert other.last_latency is not None
    await mutex.release()
    await mutex.release()  # idempotent
    assert reaped(pid)
    assert not mutex.lost.is_set()  # a voluntary release is not a loss


async def test_acquire_while_held_keeps_the_same_holder(lockfile, log):
    mutex = make_cluster_mutex(lockfile, logger=log)
    try:
        assert await mutex.acquire(5) is MutexResult.HELD
        pid = mutex.helper_pid
        assert await mutex.acquire(5) is MutexResult.HELD
        assert mutex.helper_pid == pid
    finally:
        await mutex.release()


async def test_unopenable_lock_file_is_an_error(tmp_path, log):
    mutex = make_cluster_mutex(str(tmp_path / "missing-dir" / "lock"), logger=log)
    assert await mutex.acquire(5) is MutexResult.ERROR
    assert not mutex.held


OWNER = textwrap.dedent(
    """
    import logging, sys, anyio
    from ctdbcore.daemon.mutex import make_cluster_mutex

    async def main():
        mutex = make_cluster_mutex(sys.argv[1], logger=logging.getLogger())
        result = await mutex.acquire(5)
        print(result.name, mutex.helper_pid, flush=True)
        await anyio.sleep(60)

    anyio.run(main)
    """
)


async def test_lock_freed_at_once_when_owner_is_sigkilled(lockfile, log):
    owner = subprocess.Popen([sys.executable, "-c", OWNER, lockfile], stdout=subprocess.PIPE, text=True)
    contender = make_cluster_mutex(lockfile, logger=log)
    try:
        line = await anyio.to_thread.run_sync(owner.stdout.readline)
        result, helper_pid = line.split()
        assert result == "HELD"
        assert await contender.acquire(5) is MutexResult.CONTENTION

        owner.send_signal(signal.SIGKILL)
        owner.wait()
        killed_at = time.monotonic()
        # Time when the lock was first seen free, not counting the helper start-up of the
        # attempt that saw it (4.17's helper would take up to 5 s here).
        while True:
            attempt_at = time.monotonic()
            result = await contender.acquire(5)
            if result is MutexResult.HELD:
                break
            assert result is MutexResult.CONTENTION
            assert attempt_at - killed_at < 2, "holder survived its owner"
            await anyio.sleep(0.02)
        assert attempt_at - killed_at < 0.5, f"lock freed only after {attempt_at - killed_at:.2f}s"
        await wait_until(lambda: reaped(int(helper_pid)), 2)
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
        await contender.release()


async def test_removing_lock_file_loses_the_lock(lockfile, log):
    mutex = fcntl_plugin.create(lockfile, log, recheck=0.1)
    assert await mutex.acquire(5) is MutexResult.HELD
    pid = mutex.helper_pid
    lost = mutex.lost
    os.unlink(lockfile)
    with anyio.fail_after(3):
        await lost.wait()
    assert not mutex.held
    await wait_until(lambda: reaped(pid), 3)
    # The next attempt starts with a fresh event and may take the (new) file.
    assert await mutex.acquire(5) is MutexResult.HELD
    assert not mutex.lost.is_set()
    await mutex.release()


async def test_replacing_lock_file_loses_the_lock(lockfile, log, tmp_path):
    mutex = fcntl_plugin.create(lockfile, log)  # default 1 s recheck
    assert await mutex.acquire(5) is MutexResult.HELD
    replacement = tmp_path / "new.lock"
    replacement.write_text("")
    os.rename(replacement, lockfile)
    with anyio.fail_after(4):
        await mutex.lost.wait()
    assert not mutex.held
    await mutex.release()


async def test_helper_logs_why_the_lock_was_lost(lockfile, log, caplog):
    mutex = fcntl_plugin.create(lockfile, log, recheck=0.1)
    assert await mutex.acquire(5) is MutexResult.HELD
    os.unlink(lockfile)
    with anyio.fail_after(3):
        await mutex.lost.wait()
    await wait_until(lambda: "inode changed" in caplog.text or "stat failed" in caplog.text, 2)
    assert "lock lost" in caplog.text


def test_helper_command_line_speaks_the_protocol(lockfile):
    cmd = [sys.executable, "-m", "ctdbcore.daemon.mutex_helper"]
    usage = subprocess.run(cmd, capture_output=True, timeout=10)
    assert usage.stdout == b"3"
    holder = subprocess.Popen([*cmd, lockfile], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.read(1) == b"0"
        contender = subprocess.run([*cmd, lockfile], capture_output=True, timeout=10)
        assert contender.stdout == b"1"
    finally:
        holder.terminate()
        holder.wait()
        holder.stdout.close()


def test_plugins_and_spec_selection(lockfile, log):
    from importlib.metadata import entry_points

    loaded = {ep.name: ep.load() for ep in entry_points(group="ctdb.cluster_mutex")}
    assert loaded["fcntl"] is fcntl_plugin and fcntl_plugin.NAME == "fcntl"
    assert loaded["helper"].NAME == "helper"
    mutex = make_cluster_mutex(lockfile, logger=log)
    assert isinstance(mutex, HelperMutex)
    assert mutex.argv[-3:] == ["ctdbcore.daemon.mutex_helper", lockfile, "1"]
    helper = make_cluster_mutex("!/usr/bin/helper  -x\tfile ", logger=log)
    assert helper.argv == ["/usr/bin/helper", "-x", "file"]
    for bad in ("", "   ", "!", "! \t"):
        with pytest.raises(ValueError):
            make_cluster_mutex(bad, logger=log)


def test_cluster_mutex_helper_env_overrides_file_helper(lockfile, log, monkeypatch):
    monkeypatch.setenv("CTDB_CLUSTER_MUTEX_HELPER", "/opt/my_helper")
    assert make_cluster_mutex(lockfile, logger=log).argv == ["/opt/my_helper", lockfile]
