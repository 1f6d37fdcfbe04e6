"""The daemon's side of the vacuum child's repack lines: logged as 4.17 logs them,
counted, and kept apart from the child's error text, however the pipe splits them."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import anyio

from ctdbcore.daemon.vacuum import Vacuumer


class _Chunks:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __aiter__(self):
        return self._gen()

    async def _gen(self):
        for c in self.chunks:
            yield c


def test_repack_lines_are_logged_counted_and_kept_out_of_the_error_text(caplog) -> None:
    v = Vacuumer(SimpleNamespace())
    db = SimpleNamespace(name="locking.tdb")
    stream = _Chunks([b"repack 12", b"345\nrepacked 12345\nlibtdb: some", b" complaint\nrepack failed 7: no space\ntail"])
    rest: list[bytes] = []
    with caplog.at_level(logging.DEBUG, logger="ctdb"):
        anyio.run(v._repack_reports, db, stream, rest)
    assert v.repacks == 1
    msgs = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert msgs == [(25, "Repacking locking.tdb with 12345 freelist entries"),
                    (logging.ERROR, "Failed to repack 'locking.tdb': no space")]
    assert b"".join(rest) == b"libtdb: some complaint\ntail"
