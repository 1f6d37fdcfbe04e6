"""Every packet and payload type survives pack -> unpack unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import PACKETS, PAYLOADS, rec_data_header, tup, u32

from ctdbcore.protocol import HEADER_SIZE, Operation, pack, unpack, unpack_header, with_header
from ctdbcore.protocol import packets as P
from ctdbcore.protocol import types as T

# sizeof(struct ctdb_*_old) rounded up to 8: the smallest packet ctdbd ever emits (§1.2).
MIN_EMITTED = {
    "ReqCall": 64,
    "ReplyCall": 48,
    "ReqDmaster": 64,
    "ReplyDmaster": 64,
    "ReplyError": 48,
    "ReqMessage": 48,
    "ReqControl": 64,
    "ReplyControl": 48,
    "ReqKeepalive": 40,
    "ReqTunnel": 56,
}


@pytest.mark.parametrize("name", sorted(PACKETS))
@given(data=st.data())
def test_packet_roundtrip(name, data):
    pkt = data.draw(PACKETS[name])
    raw = pack(pkt)
    assert len(raw) % 8 == 0
    assert len(raw) >= MIN_EMITTED[name]
    hdr = unpack_header(raw)
    assert hdr.length == len(raw)
    assert hdr.operation == pkt.OPERATION
    assert unpack(raw) == pkt
    # A memoryview and trailing garbage after `length` are both fine.
    assert unpack(memoryview(raw + b"\xff" * 5)) == pkt


@pytest.mark.parametrize("name", sorted(PACKETS))
def test_empty_packet_is_exactly_min_size(name):
    cls = getattr(P, name)
    pkt = cls(opcode=0) if cls is P.ReqControl else cls(srvid=0) if cls is P.ReqMessage else cls()
    raw = pack(pkt)
    assert len(raw) == MIN_EMITTED[name]
    assert raw[len(raw) - 1] == 0 or cls is P.ReqKeepalive


def test_packet_class_table_covers_every_operation():
    assert set(P.PACKET_CLASSES) == set(Operation)
    for op, cls in P.PACKET_CLASSES.items():
        assert cls.OPERATION is op


@pytest.mark.parametrize("name", sorted(PAYLOADS))
@given(data=st.data())
def test_payload_roundtrip(name, data):
    obj = data.draw(PAYLOADS[name])
    raw = obj.pack()
    cls = type(obj)
    assert cls.unpack(raw) == obj
    assert cls.unpack(memoryview(raw + b"\0\0\0")) == obj  # trailing bytes are ignored
    size = getattr(cls, "SIZE", None)
    if size is not None:
        assert len(raw) == size


@pytest.mark.parametrize("name", sorted(PAYLOADS))
@given(data=st.data())
def test_payload_truncation_raises_truncated(name, data):
    obj = data.draw(PAYLOADS[name])
    raw = obj.pack()
    cls = type(obj)
    if cls in (T.CString,):
        return  # a C string filling the payload has no length to violate
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(T.Truncated):
        cls.unpack(raw[:cut])


@given(rec=rec_data_header)
def test_rec_data_with_header(rec):
    raw = rec.pack()
    assert T.RecData.unpack(raw, with_header=True) == rec
    plain = T.RecData.unpack(raw)
    assert plain.header is None
    assert plain.data == rec.header.pack() + rec.data


@given(db=u32, recs=tup(rec_data_header))
def test_rec_buffer_with_header(db, recs):
    buf = T.RecBuffer(db, recs)
    assert T.RecBuffer.unpack(buf.pack(), with_header=True) == buf


@given(pkt=st.one_of(*PACKETS.values()), gen=u32, src=u32, dst=u32, reqid=u32)
def test_with_header_rewrites_only_header(pkt, gen, src, dst, reqid):
    new = with_header(pkt, generation=gen, srcnode=src, destnode=dst, reqid=reqid)
    assert type(new) is type(pkt)
    assert (new.generation, new.srcnode, new.destnode, new.reqid) == (gen, src, dst, reqid)
    assert pack(new)[HEADER_SIZE:] == pack(pkt)[HEADER_SIZE:]


@settings(max_examples=50)
@given(data=st.data())
def test_all_payloads_drawable(data):
    # Guards the strategy table itself: each entry must build the type it is named after.
    for name, strategy in PAYLOADS.items():
        assert type(data.draw(strategy)).__name__ == name
