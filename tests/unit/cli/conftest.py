from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "client"))

from fake_ctdbd import FakeCtdbd  # noqa: E402


@pytest.fixture
def run_ctdb(tmp_path, monkeypatch, capsys):
    """Start a fake daemon from a NODEMAP block and run our main() against it."""
    state: dict = {}
    monkeypatch.setenv("CTDB_SOCKET", str(tmp_path / "ctdbd.socket"))
    monkeypatch.delenv("CTDB_TIMEOUT", raising=False)

    def start(block: str, **kw) -> FakeCtdbd:
        state["d"] = FakeCtdbd.from_block(str(tmp_path / "ctdbd.socket"), block, **kw)
        return state["d"]

    def run(*argv: str) -> tuple[int, str, str]:
        from ctdbcore.tools.ctdb import main

        rc = main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    run.start = start  # type: ignore[attr-defined]
    yield run
    if "d" in state:
        state["d"].close()
