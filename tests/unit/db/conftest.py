"""Fixtures shared by the lock tests (each test file defines its own ``tdb`` and
``flags``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ctdbcore.db.locking import LockStats
from tests.unit.db.lockprocs import Holder


@pytest.fixture
def holder(tdb, flags) -> Iterator[Holder]:
    h = Holder(tdb.path, flags)
    yield h
    h.close()


@pytest.fixture
def stats() -> LockStats:
    return LockStats()
