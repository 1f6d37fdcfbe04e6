"""StreamDecoder: framing rules of §1.2 for node (strict) and client (lenient) streams."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import packets

from ctdbcore import protocol as p
from ctdbcore.protocol.decoder import Dropped, StreamDecoder

GOOD = p.ReqControl(opcode=p.Opcode.GET_PNN, reqid=9)


def raw_packet(length, op=7, magic=p.CTDB_MAGIC, version=1, body=b"") -> bytes:
    head = struct.pack("<8I", length, magic, version, 0, op, 0, 0, 1)
    data = head + body
    return data + bytes(max(0, length - len(data))) if length >= 32 else data[:length]


def unpadded_control(data: bytes) -> bytes:
    body = struct.pack("<I4xQ3I", p.Opcode.DB_ATTACH, 0, 0, 0, len(data)) + data
    return raw_packet(60 + len(data), body=body)


def run(dec: StreamDecoder, *chunks: bytes) -> list:
    out = []
    for chunk in chunks:
        dec.feed(chunk)
        out += list(dec.events())
    return out


@settings(max_examples=200)
@given(
    pkts=st.lists(packets, max_size=6),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
    strict=st.booleans(),
)
def test_arbitrary_chunking(pkts, cuts, strict):
    stream = b"".join(p.pack(x) for x in pkts)
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    dec = StreamDecoder(strict=strict)
    assert run(dec, *chunks) == pkts
    assert dec.buffered == 0


def test_byte_at_a_time_lenient_unpadded():
    stream = unpadded_control(b"a.tdb\0") + unpadded_control(b"bb.tdb\0")
    dec = StreamDecoder(strict=False)
    events = run(dec, *(stream[i : i + 1] for i in range(len(stream))))
    assert [e.data for e in events] == [b"a.tdb\0", b"bb.tdb\0"]


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        (raw_packet(24), p.BadLength, "bad length 24"),
        (raw_packet(68), p.BadLength, "bad length 68, not a multiple of 8"),
        (raw_packet(64, magic=0x12345678), p.BadMagic, "bad magic 0x12345678"),
        (raw_packet(64, version=2), p.BadVersion, "bad protocol version 2"),
        (struct.pack("<I", 0) + bytes(60), p.BadLength, "bad length 0"),
    ],
)
def test_strict_errors_raise(raw, error, match):
    dec = StreamDecoder(strict=True)
    with pytest.raises(error, match=match):
        run(dec, raw + p.pack(GOOD))
    # The stream is unusable from now on.
    with pytest.raises(error):
        run(dec, p.pack(GOOD))


def test_strict_bad_magic_detected_before_whole_body():
    dec = StreamDecoder(strict=True)
    with pytest.raises(p.BadMagic):
        run(dec, raw_packet(1 << 20, magic=0xDEADBEEF)[:16])


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        (raw_packet(24), p.BadLength, "bad length 24"),
        (raw_packet(4), p.BadLength, "bad length 4"),
        (raw_packet(64, magic=0x12345678), p.BadMagic, "bad magic 0x12345678"),
        (raw_packet(64, version=2), p.BadVersion, "bad protocol version 2"),
        (raw_packet(64, op=6), p.UnknownOperation, "unknown operation 6"),
        (raw_packet(40, op=7), p.Truncated, "REQ_CONTROL"),
        (
            raw_packet(64, op=7, body=struct.pack("<I4xQ3I", 0, 0, 0, 0, 1000)),
            p.Truncated,
            "datalen 1000",
        ),
    ],
)
def test_lenient_drops_then_continues(raw, error, match):
    dec = StreamDecoder(strict=False)
    events = run(dec, raw + unpadded_control(b"x\0"))
    assert len(events) == 2
    dropped, good = events
    assert isinstance(dropped, Dropped)
    assert isinstance(dropped.error, error)
    assert match in str(dropped.error)
    assert dropped.raw == raw
    assert good == p.ReqControl(opcode=p.Opcode.DB_ATTACH, reqid=1, data=b"x\0")


@pytest.mark.parametrize("strict", [True, False])
def test_unknown_operation_and_bad_body_are_dropped_in_both_modes(strict):
    dec = StreamDecoder(strict=strict)
    bad_op = raw_packet(64, op=99)
    old_keepalive = raw_packet(32, op=9)  # pre-4.x keepalive without a body
    events = run(dec, bad_op + old_keepalive + p.pack(GOOD))
    assert [type(e) for e in events] == [Dropped, Dropped, p.ReqControl]
    assert isinstance(events[0].error, p.UnknownOperation)
    assert isinstance(events[1].error, p.Truncated)
    assert p.unpack_header(events[1].raw).operation == p.Operation.REQ_KEEPALIVE
    assert events[2] == GOOD


def test_lenient_zero_length_is_fatal():
    dec = StreamDecoder(strict=False)
    with pytest.raises(p.BadLength, match="bad length 0"):
        run(dec, p.pack(GOOD) + bytes(8))


@pytest.mark.parametrize("strict", [True, False])
def test_max_length(strict):
    dec = StreamDecoder(strict=strict, max_length=1024)
    with pytest.raises(p.BadLength, match="bad length 2048, above the limit of 1024"):
        run(dec, raw_packet(2048)[:8])


def test_events_can_be_consumed_partially():
    dec = StreamDecoder(strict=True)
    dec.feed(p.pack(GOOD) * 3)
    it = dec.events()
    assert next(it) == GOOD
    del it
    assert list(dec.events()) == [GOOD, GOOD]


def test_memoryview_feed():
    dec = StreamDecoder(strict=True)
    dec.feed(memoryview(p.pack(GOOD)))
    assert list(dec.events()) == [GOOD]


@settings(max_examples=500)
@given(data=st.binary(max_size=300), strict=st.booleans())
def test_fuzz_only_protocol_errors(data, strict):
    dec = StreamDecoder(strict=strict, max_length=4096)
    try:
        for i in range(0, len(data), 7):
            dec.feed(data[i : i + 7])
            for event in dec.events():
                assert isinstance(event, p.Packet | Dropped)
    except p.ProtocolError:
        pass


@settings(max_examples=300)
@given(
    pkt=packets, flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4)
)
def test_fuzz_mutated_packets(pkt, flips):
    raw = bytearray(p.pack(pkt))
    for pos, value in flips:
        raw[pos % len(raw)] = value
    dec = StreamDecoder(strict=False, max_length=4096)
    try:
        dec.feed(bytes(raw))
        list(dec.events())
    except p.ProtocolError:
        pass
    try:
        p.unpack(bytes(raw))
    except p.ProtocolError:
        pass
