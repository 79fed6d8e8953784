"""Partition bookkeeping: assignment from committed offsets, batch positions, commit and rewind."""

from __future__ import annotations

from confluent_kafka import OFFSET_INVALID, TopicPartition

from eventbus.service.partitions import Partitions, PartitionState

T = "staging.s.public.claims"


class Message:
    """What `Partitions.record` reads of a consumed record."""

    def __init__(self, partition: int, offset: int, topic: str = T) -> None:
        self.t, self.p, self.o = topic, partition, offset

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


def _record(partitions: Partitions, *records: tuple[int, int]) -> PartitionState:
    """Record (partition, offset) pairs; returns the state handed out with the last one."""
    handed = list(partitions.record([Message(p, o) for p, o in records]))  # type: ignore[misc]
    return handed[-1][4]


def _assigned(*committed: TopicPartition) -> Partitions:
    partitions = Partitions()
    partitions.assign(committed)
    return partitions


def _offsets(tps: list[TopicPartition]) -> dict[tuple[str, int], tuple[int, str | None]]:
    return {(tp.topic, tp.partition): (tp.offset, tp.metadata) for tp in tps}


def test_commit_and_rollback_of_one_partition() -> None:
    state = PartitionState(41, (100, 200, 1))
    state.first_offset, state.next_offset = 41, 45
    assert not state.is_duplicate((300, 300, 1))
    assert state.metadata() == "ebw2:300:300:1"
    assert state.rolled_back() == 41  # rewind to the committed offset
    assert state.watermark == (100, 200, 1) and not state.dirty
    state.first_offset, state.next_offset = 41, 45
    state.is_duplicate((300, 300, 1))
    state.committed()
    assert (state.committed_offset, state.committed_watermark) == (45, (300, 300, 1))
    assert state.rolled_back() == 45  # nothing open: back to where it is
    assert state.watermark == (300, 300, 1)


def test_assignment_reads_offsets_and_watermarks() -> None:
    partitions = _assigned(
        TopicPartition(T, 0, 10, metadata="ebw2:5:6:1"),
        TopicPartition(T, 1, OFFSET_INVALID),  # the group never committed this one
        TopicPartition(T, 2, 7, metadata="written by another tool"),
    )
    zero, one, two = (partitions.get(T, p) for p in range(3))
    assert zero is not None and (zero.committed_offset, zero.watermark) == (10, (5, 6, 1))
    assert one is not None and (one.committed_offset, one.watermark) == (None, None)
    assert two is not None and (two.committed_offset, two.watermark) == (7, None)
    assert len(partitions) == 3 and (T, 1) in partitions


def test_records_move_the_batch_and_commit_makes_it_committed() -> None:
    partitions = _assigned(TopicPartition(T, 0, 10, metadata="ebw2:5:6:1"), TopicPartition(T, 1, 3))
    state = _record(partitions, (0, 10), (0, 11), (0, 12))
    assert not state.is_duplicate((7, 7, 1))
    assert partitions.dirty_offsets() == [TopicPartition(T, 0, 13)]
    assert _offsets(partitions.dirty_offsets()) == {(T, 0): (13, "ebw2:7:7:1")}  # partition 1: clean
    partitions.committed()
    assert partitions.dirty_offsets() == []
    zero = partitions.get(T, 0)
    assert zero is not None and (zero.committed_offset, zero.committed_watermark) == (13, (7, 7, 1))
    assert sorted((p, o) for _, p, o in partitions.positions()) == [(0, 13), (1, 3)]


def test_rollback_rewinds_every_partition_to_its_committed_offset() -> None:
    partitions = _assigned(
        TopicPartition(T, 0, 10, metadata="ebw2:5:6:1"),
        TopicPartition(T, 1, 3),
        TopicPartition(T, 2, OFFSET_INVALID),
        TopicPartition(T, 3, OFFSET_INVALID),
    )
    _record(partitions, (0, 10)).is_duplicate((9, 9, 1))
    _record(partitions, (0, 11), (2, 0))  # partition 2 never committed: back to the first record seen
    seeks = partitions.rolled_back()
    # Partition 1 had nothing in the batch and is rewound all the same; 3 has no known position.
    assert _offsets(seeks) == {(T, 0): (10, None), (T, 1): (3, None), (T, 2): (0, None)}
    zero = partitions.get(T, 0)
    assert zero is not None and zero.watermark == (5, 6, 1) and not zero.dirty
    assert partitions.dirty_offsets() == []


def test_records_are_handed_out_in_order_with_their_state() -> None:
    partitions = _assigned(TopicPartition(T, 0, 0), TopicPartition(T, 1, 0))
    messages = [Message(0, 0), Message(0, 1), Message(1, 0), Message(0, 2)]
    handed = list(partitions.record(messages))  # type: ignore[arg-type]
    assert [(m, t, p, o) for m, t, p, o, _ in handed] == [(m, T, m.p, m.o) for m in messages]
    assert [s for *_, s in handed] == [partitions.get(T, p) for p in (0, 0, 1, 0)]
    assert _offsets(partitions.dirty_offsets()) == {(T, 0): (3, ""), (T, 1): (1, "")}


def test_record_all_covers_what_was_consumed_but_not_processed() -> None:
    partitions = _assigned(TopicPartition(T, 0, OFFSET_INVALID), TopicPartition(T, 1, OFFSET_INVALID))
    _record(partitions, (0, 0))
    partitions.record_all([Message(0, 0), Message(1, 4), Message(0, 1), Message(1, 5)])  # type: ignore[list-item]
    assert _offsets(partitions.rolled_back()) == {(T, 0): (0, None), (T, 1): (4, None)}


def test_forgotten_partitions_are_neither_committed_nor_rewound() -> None:
    partitions = _assigned(TopicPartition(T, 0, 1), TopicPartition(T, 1, 1))
    _record(partitions, (0, 1), (1, 1))
    partitions.forget([TopicPartition(T, 1)])
    assert [tp.partition for tp in partitions.dirty_offsets()] == [0]
    assert [tp.partition for tp in partitions.rolled_back()] == [0]


def test_a_record_of_an_unknown_partition_is_still_tracked() -> None:
    partitions = Partitions()
    _record(partitions, (5, 100))
    assert _offsets(partitions.dirty_offsets()) == {(T, 5): (101, "")}
