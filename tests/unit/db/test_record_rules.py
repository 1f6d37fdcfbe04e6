"""The per-record rules every node applies: lmaster, initial header, store, merge."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ctdbcore.db.record import (
    initial_header,
    join_value,
    lmaster,
    newer_for_recovery,
    split_value,
    volatile_store,
)
from ctdbcore.protocol.constants import RecordFlags
from ctdbcore.protocol.records import LtdbHeader


def test_lmaster_matches_4_17_for_k1_on_two_nodes() -> None:
    # Seen live on 4.17.12: with two nodes, key "k1" has lmaster 1.
    assert lmaster(b"k1", [0, 1]) == 1


def test_lmaster_is_taken_from_the_map_not_the_pnn() -> None:
    assert lmaster(b"k1", [5, 7]) == 7
    assert lmaster(b"anything", [3]) == 3


def test_initial_header_names_the_lmaster_and_is_automatic() -> None:
    h = initial_header(b"k1", [0, 1])
    assert (h.rsn, h.dmaster, h.flags) == (0, 1, RecordFlags.AUTOMATIC)


def test_split_join_round_trip_and_short_values() -> None:
    h = LtdbHeader(rsn=7, dmaster=2, flags=RecordFlags.MIGRATED_WITH_DATA)
    assert split_value(join_value(h, b"v")) == (h, b"v")
    assert split_value(None) is None
    assert split_value(b"short") is None


def test_dmaster_store_bumps_rsn_and_drops_transient_flags() -> None:
    h = LtdbHeader(rsn=4, dmaster=1, flags=RecordFlags.VACUUM_MIGRATED | RecordFlags.MIGRATED_WITH_DATA)
    out = volatile_store(h, b"data", pnn=1, is_lmaster=False)
    assert out == LtdbHeader(rsn=5, dmaster=1, flags=RecordFlags.MIGRATED_WITH_DATA)


def test_handing_away_keeps_rsn() -> None:
    # The old dmaster stores the record with the new dmaster's pnn: no bump.
    out = volatile_store(LtdbHeader(rsn=4, dmaster=2), b"data", pnn=1, is_lmaster=False)
    assert out == LtdbHeader(rsn=4, dmaster=2)


def test_empty_record_of_another_node_is_deleted_unless_lmaster() -> None:
    empty = LtdbHeader(rsn=3, dmaster=2)
    assert volatile_store(empty, b"", pnn=1, is_lmaster=False) is None
    assert volatile_store(empty, b"", pnn=1, is_lmaster=True) == empty


def test_lmaster_drops_an_empty_record_a_vacuum_run_brought_home() -> None:
    # 4.17 ctdb_ltdb_store_server: deleted when this lmaster is now its dmaster ...
    home = LtdbHeader(rsn=3, dmaster=1, flags=RecordFlags.VACUUM_MIGRATED)
    assert volatile_store(home, b"", pnn=1, is_lmaster=True) is None
    # ... kept (as the lmaster keeps any empty record) when another node holds it,
    away = LtdbHeader(rsn=3, dmaster=2, flags=RecordFlags.VACUUM_MIGRATED)
    assert volatile_store(away, b"", pnn=1, is_lmaster=True) == LtdbHeader(rsn=3, dmaster=2)
    # ... and kept when it once carried data, so that its emptiness wins in a recovery.
    was_data = LtdbHeader(rsn=3, dmaster=1, flags=RecordFlags.VACUUM_MIGRATED | RecordFlags.MIGRATED_WITH_DATA)
    assert volatile_store(was_data, b"", pnn=1, is_lmaster=True) == LtdbHeader(
        rsn=4, dmaster=1, flags=RecordFlags.MIGRATED_WITH_DATA)


def test_migrated_with_data_survives_when_empty() -> None:
    h = LtdbHeader(rsn=3, dmaster=2, flags=RecordFlags.MIGRATED_WITH_DATA)
    assert volatile_store(h, b"", pnn=1, is_lmaster=False) == h


def test_read_only_copies_keep_their_rsn() -> None:
    h = LtdbHeader(rsn=9, dmaster=1, flags=RecordFlags.RO_HAVE_DELEGATIONS)
    assert volatile_store(h, b"x", pnn=1, is_lmaster=False).rsn == 9


def test_recovery_merge_highest_rsn_wins() -> None:
    old = LtdbHeader(rsn=3, dmaster=1)
    new = LtdbHeader(rsn=4, dmaster=2)
    assert newer_for_recovery(new, old, leader=0)
    assert not newer_for_recovery(old, new, leader=0)
    assert newer_for_recovery(old, None, leader=0)


def test_recovery_merge_tie_keeps_first_unless_it_names_the_leader() -> None:
    a = LtdbHeader(rsn=5, dmaster=1)
    b = LtdbHeader(rsn=5, dmaster=2)
    assert not newer_for_recovery(b, a, leader=0)
    assert newer_for_recovery(b, LtdbHeader(rsn=5, dmaster=0), leader=0)


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 3)), min_size=1, max_size=20))
def test_recovery_merge_result_has_the_maximum_rsn(copies) -> None:
    kept: LtdbHeader | None = None
    for rsn, dm in copies:
        h = LtdbHeader(rsn=rsn, dmaster=dm)
        if newer_for_recovery(h, kept, leader=0):
            kept = h
    assert kept is not None and kept.rsn == max(r for r, _ in copies)
