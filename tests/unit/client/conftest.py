from __future__ import annotations

import pytest

from fake_ctdbd import FakeCtdbd

BLOCK = """
0       192.168.20.41   0x0     CURRENT RECMASTER
1       192.168.20.42   0x0
2       192.168.20.43   0x0
"""


@pytest.fixture
def fake(tmp_path):
    daemon = FakeCtdbd.from_block(str(tmp_path / "ctdbd.socket"), BLOCK)
    yield daemon
    daemon.close()
