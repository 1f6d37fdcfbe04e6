"""External `!cmd` cluster mutex helpers: 4.17's one-byte protocol, fake and real helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import anyio
import pytest
from conftest import DEBIAN_HELPER, needs_debian_helper, process_state, reaped, wait_until

from ctdbcore.daemon.mutex import HelperMutex, MutexResult, make_cluster_mutex

pytestmark = pytest.mark.anyio


async def test_contention_byte(fake_helper, log):
    mutex = make_cluster_mutex("!" + fake_helper("printf 1"), logger=log)
    assert await mutex.acquire(5) is MutexResult.CONTENTION
    assert not mutex.held and mutex.helper_pid is None


async def test_error_byte(fake_helper, log):
    mutex = make_cluster_mutex("!" + fake_helper("printf 3"), logger=log)
    assert await mutex.acquire(5) is MutexResult.ERROR


async def test_timeout_byte_from_helper(fake_helper, log):
    mutex = make_cluster_mutex("!" + fake_helper("printf 2"), logger=log)
    assert await mutex.acquire(5) is MutexResult.TIMEOUT


async def test_unknown_byte_is_an_error(fake_helper, log):
    mutex = make_cluster_mutex("!" + fake_helper("printf x; sleep 30"), logger=log)
    assert await mutex.acquire(5) is MutexResult.ERROR


async def test_exit_without_a_byte_is_an_error(fake_helper, log):
    mutex = make_cluster_mutex("!" + fake_helper("exit 0"), logger=log)
    start = time.monotonic()
    assert await mutex.acquire(5) is MutexResult.ERROR
    assert time.monotonic() - start < 2


async def test_missing_command_is_an_error(tmp_path, log):
    mutex = make_cluster_mutex(f"!{tmp_path}/no-such-helper arg", logger=log)
    assert await mutex.acquire(5) is MutexResult.ERROR


async def test_silent_helper_times_out_and_is_killed(fake_helper, tmp_path, log):
    pidfile = tmp_path / "pid"
    mutex = make_cluster_mutex("!" + fake_helper(f"echo $$ > {pidfile}; exec sleep 60"), logger=log)
    start = time.monotonic()
    assert await mutex.acquire(0.5) is MutexResult.TIMEOUT
    assert 0.5 <= time.monotonic() - start < 3
    assert 0.5 <= mutex.last_latency < 3
    assert reaped(int(pidfile.read_text()))


async def test_eof_after_held_means_lost(fake_helper, log):
    mutex = make_cluster_mutex("!" + fake_helper("printf 0; sleep 0.3"), logger=log)
    assert await mutex.acquire(5) is MutexResult.HELD
    pid = mutex.helper_pid
    with anyio.fail_after(3):
        await mutex.lost.wait()
    assert not mutex.held
    await wait_until(lambda: reaped(pid), 2)


async def test_held_then_gone_before_acquire_returns(fake_helper, log):
    # The byte and the EOF arrive together; still HELD first, then lost (4.17 order).
    mutex = make_cluster_mutex("!" + fake_helper("printf 0"), logger=log)
    result = await mutex.acquire(5)
    with anyio.fail_after(2):
        await mutex.lost.wait()
    assert result is MutexResult.HELD and not mutex.held


async def test_release_sends_sigterm(fake_helper, tmp_path, log):
    marker = tmp_path / "terminated"
    script = fake_helper(f"trap 'touch {marker}; exit 0' TERM; printf 0; while :; do sleep 0.05; done")
    mutex = make_cluster_mutex("!" + script, logger=log)
    assert await mutex.acquire(5) is MutexResult.HELD
    pid = mutex.helper_pid
    await mutex.release()
    assert marker.exists()
    assert reaped(pid)
    assert not mutex.lost.is_set()


async def test_helper_ignoring_sigterm_is_killed(fake_helper, log):
    script = fake_helper("trap '' TERM; printf 0; while :; do sleep 0.05; done")
    mutex = HelperMutex([script], log, kill_grace=0.3)
    assert await mutex.acquire(5) is MutexResult.HELD
    pid = mutex.helper_pid
    start = time.monotonic()
    await mutex.release()
    assert 0.3 <= time.monotonic() - start < 2
    assert reaped(pid)


async def test_helper_stderr_goes_to_the_log(fake_helper, log, caplog):
    mutex = make_cluster_mutex("!" + fake_helper("echo 'no quorum here' >&2; printf 3"), logger=log)
    assert await mutex.acquire(5) is MutexResult.ERROR
    assert "no quorum here" in caplog.text


async def test_arguments_are_passed(fake_helper, tmp_path, log):
    out = tmp_path / "args"
    script = fake_helper(f'echo "$@" > {out}; printf 1')
    mutex = make_cluster_mutex(f"!{script}  a\tb  c", logger=log)
    assert await mutex.acquire(5) is MutexResult.CONTENTION
    assert out.read_text() == "a b c\n"


async def test_no_zombies_left(fake_helper, log):
    pids = []
    for body in ("printf 1", "printf 3", "exit 1", "printf 0; exec sleep 30"):
        mutex = make_cluster_mutex("!" + fake_helper(body), logger=log)
        await mutex.acquire(5)
        pids.append(mutex.helper_pid)
        await mutex.release()
    mutex = make_cluster_mutex("!" + fake_helper("printf 0; sleep 0.1"), logger=log)
    assert await mutex.acquire(5) is MutexResult.HELD
    pid = mutex.helper_pid
    await mutex.lost.wait()
    await wait_until(lambda: process_state(pid) is None, 2)


@needs_debian_helper
async def test_debian_helper_contends_with_our_fcntl_mutex(lockfile, log):
    debian = make_cluster_mutex(f"!{DEBIAN_HELPER} {lockfile}", logger=log)
    ours = make_cluster_mutex(lockfile, logger=log)
    try:
        assert await debian.acquire(5) is MutexResult.HELD
        assert await ours.acquire(5) is MutexResult.CONTENTION
        await debian.release()
        assert await ours.acquire(5) is MutexResult.HELD
        assert await debian.acquire(5) is MutexResult.CONTENTION
        await ours.release()
        assert await debian.acquire(5) is MutexResult.HELD
    finally:
        await debian.release()
        await ours.release()


@needs_debian_helper
async def test_debian_helper_reports_removed_lock_file(lockfile, log):
    debian = make_cluster_mutex(f"!{DEBIAN_HELPER} {lockfile} 1", logger=log)
    assert await debian.acquire(5) is MutexResult.HELD
    os.unlink(lockfile)
    with anyio.fail_after(4):
        await debian.lost.wait()
    await debian.release()


# A "node" that runs Debian's helper and then dies without releasing it.
DEAD_NODE = textwrap.dedent(
    """
    import subprocess, sys, time
    helper = subprocess.Popen([sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE)
    print(helper.stdout.read(1).decode(), helper.pid, flush=True)
    time.sleep(60)
    """
)


@needs_debian_helper
async def test_lock_held_by_dead_nodes_helper(lockfile, log):
    node = subprocess.Popen([sys.executable, "-c", DEAD_NODE, DEBIAN_HELPER, lockfile], stdout=subprocess.PIPE, text=True)
    contender = make_cluster_mutex(lockfile, logger=log)
    helper_pid = None
    try:
        byte, pid = (await anyio.to_thread.run_sync(node.stdout.readline)).split()
        helper_pid = int(pid)
        assert byte == "0"
        node.send_signal(signal.SIGKILL)
        node.wait()  # a zombie parent would still look alive to the helper's kill(ppid, 0)
        died_at = time.monotonic()

        # The orphaned helper keeps the lock until its 5 s parent check notices.
        assert await contender.acquire(5) is MutexResult.CONTENTION
        while (result := await contender.acquire(5)) is MutexResult.CONTENTION:
            assert time.monotonic() - died_at < 8, "orphaned helper never let go"
            await anyio.sleep(0.2)
        assert result is MutexResult.HELD
        assert process_state(helper_pid) in (None, "Z")
    finally:
        node.kill()
        node.wait()
        node.stdout.close()
        if helper_pid is not None and process_state(helper_pid) not in (None, "Z"):
            os.kill(helper_pid, signal.SIGKILL)
        await contender.release()
