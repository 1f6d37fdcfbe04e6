"""pytest fixture `local_cluster`: a factory of local clusters, torn down after the test.

    def test_failover(local_cluster):
        lc = local_cluster(n=3)
        lc.wait_ok(timeout=60)
        lc.kill(1)

`make(n=3, loopback=False, **opts)` takes the keyword arguments of `LocalCluster.up`.
Each cluster gets its own root under tmp_path and a unique namespace prefix, so tests, the
demo cluster and parallel pytest workers do not collide.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import pytest

from ctdb_localcluster import netns
from ctdb_localcluster.cluster import LocalCluster


@pytest.fixture
def local_cluster(tmp_path) -> Iterator[Callable[..., LocalCluster]]:
    made: list[LocalCluster] = []

    def make(n: int = 3, loopback: bool = False, **opts) -> LocalCluster:
        if not loopback:
            reason = netns.available()
            if reason is not None:
                pytest.skip(f"local cluster in namespace mode: {reason}")
        name = f"lct{os.getpid() % 100000}x{len(made)}"
        lc = LocalCluster(tmp_path / f"cluster{len(made)}", name, cleanup_at_exit=True)
        made.append(lc)
        lc.up(n=n, loopback=loopback, **opts)
        return lc

    yield make
    for lc in made:
        lc.down()
