"""Read-only delegation and sticky-record rules (4.17 server/ctdb_call.c), as pure
functions: the headers each step stores or sends, and which node may use a record."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ctdbcore.client.records import readable_here as client_readable_here
from ctdbcore.client.records import usable_here
from ctdbcore.db import record
from ctdbcore.db.sticky import StickyRecords
from ctdbcore.protocol.constants import RecordFlags as F
from ctdbcore.protocol.records import LtdbHeader

MWD = F.MIGRATED_WITH_DATA


def test_first_delegation_bumps_rsn_by_three_and_hands_out_rsn_minus_two() -> None:
    h = LtdbHeader(rsn=10, dmaster=0, flags=MWD)
    stored, copy = record.delegation_headers(h)
    assert stored == LtdbHeader(rsn=13, dmaster=0, flags=MWD | F.RO_HAVE_DELEGATIONS)
    assert copy == LtdbHeader(rsn=11, dmaster=0, flags=MWD | F.RO_HAVE_READONLY)


def test_later_delegations_store_nothing_and_hand_out_the_same_copy() -> None:
    h = LtdbHeader(rsn=13, dmaster=0, flags=MWD | F.RO_HAVE_DELEGATIONS)
    stored, copy = record.delegation_headers(h)
    assert stored is None
    assert copy == LtdbHeader(rsn=11, dmaster=0, flags=MWD | F.RO_HAVE_READONLY)


def test_delegated_rsns_keep_the_data_master_newest() -> None:
    h = LtdbHeader(rsn=10, dmaster=0, flags=0)
    stored, copy = record.delegation_headers(h)
    assert stored is not None and copy.rsn < stored.rsn
    # The copy holders are told rsn-1 during the revoke: newer than their copy, older
    # than the data master's, so the update is accepted and recovery still prefers the
    # data master's copy.
    upd = record.revoke_update_header(record.revoking(stored))
    assert copy.rsn < upd.rsn < stored.rsn
    assert upd.flags == MWD and upd.dmaster == 0


def test_the_daemon_store_does_not_bump_rsn_of_records_with_ro_flags() -> None:
    stored, copy = record.delegation_headers(LtdbHeader(rsn=10, dmaster=0, flags=0))
    assert record.volatile_store(stored, b"v", pnn=0, is_lmaster=False).rsn == 13
    # The requester keeps an empty read-only copy too (RO flags keep a record).
    assert record.volatile_store(copy, b"", pnn=1, is_lmaster=False) == copy


def test_a_write_needs_a_revoke_only_when_copies_are_out() -> None:
    plain = LtdbHeader(rsn=5, dmaster=0, flags=MWD)
    deleg = LtdbHeader(rsn=5, dmaster=0, flags=F.RO_HAVE_DELEGATIONS)
    assert not record.needs_revoke(plain, want_readonly=False)
    assert record.needs_revoke(deleg, want_readonly=False)
    assert not record.needs_revoke(deleg, want_readonly=True)


def test_revoke_completes_with_rsn_plus_one_or_drops_revoking_when_a_node_failed() -> None:
    dm = record.revoking(LtdbHeader(rsn=13, dmaster=0, flags=MWD | F.RO_HAVE_DELEGATIONS))
    done = record.revoke_finished(dm, dm.rsn, all_ok=True)
    assert done == LtdbHeader(rsn=14, dmaster=0,
                              flags=MWD | F.RO_HAVE_DELEGATIONS | F.RO_REVOKING_READONLY | F.RO_REVOKE_COMPLETE)
    retry = record.revoke_finished(dm, dm.rsn, all_ok=False)
    assert retry == LtdbHeader(rsn=13, dmaster=0, flags=MWD | F.RO_HAVE_DELEGATIONS)
    # The next call clears every RO flag; the daemon's store then bumps as usual.
    cleared = record.revoke_cleared(done)
    assert cleared.flags == MWD
    assert record.volatile_store(cleared, b"v", pnn=0, is_lmaster=False).rsn == 15


def test_revoke_gives_up_on_a_record_that_changed_meanwhile() -> None:
    dm = record.revoking(LtdbHeader(rsn=13, dmaster=0, flags=F.RO_HAVE_DELEGATIONS))
    assert record.revoke_finished(LtdbHeader(rsn=20, dmaster=0, flags=dm.flags), 13, all_ok=True) is None
    assert record.revoke_finished(LtdbHeader(rsn=13, dmaster=0, flags=MWD), 13, all_ok=True) is None


def test_requester_keeps_only_newer_read_only_copies() -> None:
    copy = LtdbHeader(rsn=11, dmaster=0, flags=F.RO_HAVE_READONLY)
    assert record.ro_copy_newer(copy, None)
    assert record.ro_copy_newer(copy, LtdbHeader(rsn=10, dmaster=0, flags=0))
    assert not record.ro_copy_newer(copy, LtdbHeader(rsn=11, dmaster=0, flags=F.RO_HAVE_READONLY))
    assert not record.ro_copy_newer(LtdbHeader(rsn=99, dmaster=0, flags=0), None)


def test_who_may_read_and_write_locally() -> None:
    ro_copy = LtdbHeader(rsn=11, dmaster=0, flags=F.RO_HAVE_READONLY)
    deleg = LtdbHeader(rsn=13, dmaster=0, flags=F.RO_HAVE_DELEGATIONS)
    plain_elsewhere = LtdbHeader(rsn=11, dmaster=0, flags=MWD)
    mine = LtdbHeader(rsn=3, dmaster=1, flags=0)
    for h, pnn, read, write in ((ro_copy, 1, True, False), (deleg, 0, True, False),
                                (plain_elsewhere, 1, False, False), (mine, 1, True, True)):
        assert record.readable_here(h, pnn) is read
        assert record.writable_here(h, pnn) is write
        # The client library's byte-level versions agree.
        value = h.pack() + b"data"
        assert client_readable_here(value, pnn) is read
        assert usable_here(value, pnn) is write


@given(st.sets(st.integers(min_value=0, max_value=300)))
def test_tracking_bitmap_round_trip(pnns: set[int]) -> None:
    bitmap = b""
    for p in pnns:
        bitmap = record.tracking_add(bitmap, p)
    assert record.tracking_nodes(bitmap) == sorted(pnns)


def test_tracking_bitmap_layout_is_4_17s() -> None:
    # ctdb_trackingdb_add_pnn: byte pnn/8, bit pnn%8.
    assert record.tracking_add(b"", 1) == b"\x02"
    assert record.tracking_add(record.tracking_add(b"", 0), 9) == b"\x01\x02"


def test_sticky_record_is_pinned_once_per_arrival_until_pindown_ends() -> None:
    s = StickyRecords()
    assert s.pin_down(b"k", 0.0, 0.2) is None  # not sticky: never pinned
    assert s.make_sticky(b"k", 0.0, 600.0)
    assert not s.make_sticky(b"k", 1.0, 600.0)  # already sticky: kept as is
    assert s.pin_down(b"k", 10.0, 0.2) == 10.2
    assert s.pin_down(b"k", 10.1, 0.2) is None  # already pinned
    assert s.pinned_until(b"k", 10.1) == 10.2
    assert s.pinned_until(b"k", 10.2) is None
    assert s.pin_down(b"k", 11.0, 0.2) == 11.2


def test_sticky_expires_after_its_duration_and_takes_the_pindown_with_it() -> None:
    s = StickyRecords()
    s.make_sticky(b"k", 0.0, 5.0)
    assert s.pin_down(b"k", 4.9, 1.0) == 5.9
    assert s.pinned_until(b"k", 5.0) is None
    assert not s.is_sticky(b"k", 5.0)
    assert s.pin_down(b"k", 6.0, 1.0) is None
