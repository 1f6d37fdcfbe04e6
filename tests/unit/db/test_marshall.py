"""Raw marshall buffers: the same bytes as the typed RecBuffer, and the header edits
recovery makes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctdbcore.db import marshall
from ctdbcore.protocol.constants import RecordFlags
from ctdbcore.protocol.records import LtdbHeader, RecBuffer, RecData

records = st.lists(st.tuples(st.binary(max_size=40), st.binary(min_size=24, max_size=80)), max_size=20)


@given(records)
def test_pack_is_a_rec_buffer(recs) -> None:
    raw = marshall.pack(0x1234, recs)
    typed = RecBuffer(0x1234, tuple(RecData(reqid=0, key=k, data=v) for k, v in recs)).pack()
    assert raw == typed
    assert marshall.unpack(raw) == (0x1234, recs)


@given(records)
def test_limited_buffers_carry_every_record_once(recs) -> None:
    bufs = list(marshall.pack_limited(7, recs, limit=100))
    assert bufs
    out = [r for b in bufs for r in marshall.unpack(b)[1]]
    assert out == recs


@given(st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=80)), max_size=20),
       st.integers(0, 30), st.sampled_from([1, 100, marshall.LIMIT]))
def test_spans_pack_as_the_records_they_point_at(recs, min_value, limit) -> None:
    """pack_spans over key+value laid out in one buffer (as in a TDB file) gives the
    same buffers as pack_limited over the kept records."""
    blob, spans = b"", []
    for k, v in recs:
        blob += b"-gap-"
        spans.append((len(blob), len(k), len(v)))
        blob += k + v
    kept = [(k, v) for k, v in recs if len(v) >= min_value]
    assert list(marshall.pack_spans(9, blob, spans, min_value, limit)) == list(marshall.pack_limited(9, kept, limit))


@given(records, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.sampled_from([1, 100, marshall.LIMIT]))
def test_claimed_buffers_are_buffers_of_claimed_records(recs, dmaster, flags, limit) -> None:
    claimed = [(k, marshall.with_dmaster(v, dmaster, flags)) for k, v in recs]
    assert (list(marshall.pack_limited(5, recs, limit, claim=(dmaster, flags)))
            == list(marshall.pack_limited(5, claimed, limit)))


def test_truncated_buffers_are_refused() -> None:
    raw = marshall.pack(1, [(b"key", bytes(30))])
    for cut in (4, 12, len(raw) - 1):
        with pytest.raises(ValueError):
            marshall.unpack(raw[:cut])


def test_header_edits() -> None:
    value = LtdbHeader(rsn=9, dmaster=2, flags=RecordFlags.RO_HAVE_READONLY).pack() + b"data"
    moved = marshall.with_dmaster(value, 0, RecordFlags.MIGRATED_WITH_DATA)
    assert LtdbHeader.unpack(moved) == LtdbHeader(
        rsn=9, dmaster=0, flags=RecordFlags.RO_HAVE_READONLY | RecordFlags.MIGRATED_WITH_DATA)
    assert moved[24:] == b"data"
    assert marshall.rsn_dmaster(moved) == (9, 0)
    bumped = marshall.with_flags(value, 0, rsn_delta=1)
    assert LtdbHeader.unpack(bumped) == LtdbHeader(rsn=10, dmaster=2, flags=0)
    assert marshall.flags_of(value) == RecordFlags.RO_HAVE_READONLY


def test_merge_newest_is_unpack_then_the_recovery_rule() -> None:
    import random
    import struct

    from ctdbcore.db import marshall, record

    rnd = random.Random(7)
    leader = 1
    merged_fused: dict[bytes, bytes] = {}
    merged_plain: dict[bytes, bytes] = {}
    for _ in range(5):
        recs = [(b"k%d" % rnd.randrange(300),
                 struct.pack("<QI4xI4x", rnd.randrange(5), rnd.randrange(3), 0) + b"v%d" % rnd.randrange(9))
                for _ in range(400)]
        buf = marshall.pack(9, recs)
        assert marshall.merge_newest(buf, merged_fused, leader) == len(recs)
        for key, value in marshall.unpack(buf)[1]:
            old = merged_plain.get(key)
            if old is None or not record.keeps_existing(marshall.rsn_dmaster(value)[0],
                                                        *marshall.rsn_dmaster(old), leader):
                merged_plain[key] = value
    assert merged_fused == merged_plain
    with pytest.raises(ValueError):
        marshall.merge_newest(buf[:-3], {}, leader)
