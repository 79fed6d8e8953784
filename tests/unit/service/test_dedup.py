"""Source-log watermarks: ordering, metadata round trip, what is a duplicate (batch commit and
rollback are in test_partitions.py)."""

from __future__ import annotations

import pytest

from eventbus.debezium.envelope import SourceInfo
from eventbus.debezium.positions import position_of, record_position
from eventbus.service.dedup import decode_watermark, encode_watermark
from eventbus.service.partitions import PartitionState


def _source(lsn: int | None, sequence: str | None = None, snapshot: str | None = "false") -> SourceInfo:
    return SourceInfo("c", "db", "public", "claims", lsn=lsn, sequence=sequence, snapshot=snapshot)


def test_position_is_last_commit_lsn_then_change_lsn() -> None:
    assert position_of(_source(500, '["400","500"]')) == (400, 500)
    assert position_of(_source(500, '[null,"500"]')) == (0, 500)
    assert position_of(_source(500)) == (500, 500)  # no sequence: the LSN alone


def test_interleaved_transactions_are_ordered_by_commit() -> None:
    # T2 wrote at LSN 150 and committed first; T1 began earlier (LSN 100) and committed later.
    # In the stream T2 comes first; T1's lower change LSN must not look like a re-delivery.
    t2_change = record_position(position_of(_source(150, '["90","150"]')), "u")
    t1_change = record_position(position_of(_source(100, '["160","100"]')), "u")  # last commit seen = T2's
    state = PartitionState(None, None)
    assert not state.is_duplicate(t2_change)
    assert not state.is_duplicate(t1_change)
    assert state.is_duplicate(t2_change) and state.is_duplicate(t1_change)


def test_snapshot_and_unpositioned_changes_are_never_skipped() -> None:
    state = PartitionState(None, (10**9, 10**9, 1))
    for source in (_source(5, snapshot="true"), _source(5, snapshot="last"), _source(None)):
        assert position_of(source) is None
        assert not state.is_duplicate(record_position(position_of(source), "r"))
    assert state.watermark == (10**9, 10**9, 1)


@pytest.mark.parametrize("position", [(0, 1, 1), (123456789012, 123456789999, 0), None])
def test_metadata_round_trip(position: tuple[int, int, int] | None) -> None:
    assert decode_watermark(encode_watermark(position)) == position


def test_a_watermark_from_before_the_step_reads_as_step_1() -> None:
    """`ebw1:` metadata, committed before the step existed: it skips what it skipped then."""
    assert decode_watermark("ebw1:100:200") == (100, 200, 1)
    state = PartitionState(41, decode_watermark("ebw1:100:200"))
    assert state.is_duplicate(record_position((100, 200), "u"))
    assert not state.is_duplicate(record_position((100, 201), "u"))


@pytest.mark.parametrize(
    "metadata", [None, "", "something else", "ebw1:1", "ebw1:a:b", "ebw1:1:2:3", "ebw2:1:2", "ebw2:1:2:x"]
)
def test_foreign_metadata_is_no_watermark(metadata: str | None) -> None:
    assert decode_watermark(metadata) is None


def test_duplicates_at_or_below_the_watermark() -> None:
    state = PartitionState(41, (100, 200, 1))
    assert state.is_duplicate((100, 200, 1))  # equal: the same change again
    assert state.is_duplicate((99, 500, 1))
    assert not state.is_duplicate((100, 201, 1))
    assert state.watermark == (100, 201, 1)


def test_the_two_records_of_a_primary_key_update_are_both_new() -> None:
    """A primary-key update is one log record sent as a delete and a create at one position: the
    create stands after the delete, and both are copies when they come again."""
    position = position_of(_source(500, '["400","500"]'))
    delete, create = record_position(position, "d"), record_position(position, "c")
    assert delete == (400, 500, 0) and create == (400, 500, 1)
    state = PartitionState(None, None)
    assert not state.is_duplicate(delete)
    assert not state.is_duplicate(create)
    assert state.is_duplicate(delete) and state.is_duplicate(create)
