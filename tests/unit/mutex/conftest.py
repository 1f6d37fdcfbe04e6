"""Fixtures for the cluster mutex tests: real helper processes, lock files in tmp_path."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import anyio
import pytest

DEBIAN_HELPER = "/usr/libexec/ctdb/ctdb_mutex_fcntl_helper"

needs_debian_helper = pytest.mark.skipif(
    not os.access(DEBIAN_HELPER, os.X_OK),
    reason=f"{DEBIAN_HELPER} not installed (Debian package 'ctdb')",
)


@pytest.fixture
def anyio_backend():
    # The helper watcher talks to the loop through anyio tokens, so trio would work
    # too, but it is not installed here.
    return "asyncio"


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("test.mutex")


@pytest.fixture
def lockfile(tmp_path: Path) -> str:
    return str(tmp_path / "cluster.lock")


@pytest.fixture
def fake_helper(tmp_path: Path):
    """Write a /bin/sh helper script and return its path."""
    counter = iter(range(1000))

    def make(body: str) -> str:
        path = tmp_path / f"helper{next(counter)}.sh"
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    return make


def process_state(pid: int) -> str | None:
    """'Z' for a zombie, another letter while running, None once reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def reaped(pid: int) -> bool:
    return process_state(pid) is None


async def wait_until(predicate, timeout: float, interval: float = 0.02) -> float:
    """Poll `predicate` until true; return the time it took.  Fails the test on timeout."""
    start = time.monotonic()
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(interval)
    return time.monotonic() - start
