"""A bounded run (the dead-letter replay): from start offsets up to end offsets, then the loop stops."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import TopicPartition

from eventbus.service.bounds import UntilEndOffsets
from eventbus.service.partitions import Partitions
from tests.unit.service.fakes import Broker, FakeConsumer, FakeMessage
from tests.unit.service.test_loop_errors import Harness

T = "staging.dlq.g"


def test_records_at_or_after_the_end_are_for_the_next_run() -> None:
    bounds = UntilEndOffsets([TopicPartition(T, 0, 3), TopicPartition(T, 1, 0)], {(T, 0): 5, (T, 1): 0})
    messages = [
        FakeMessage(T, 0, 3, None, b""),
        FakeMessage(T, 0, 5, None, b""),
        FakeMessage(T, 1, 0, None, b""),
    ]
    assert [(m.partition(), m.offset()) for m in bounds.admit(messages)] == [(0, 3)]  # type: ignore[arg-type]


def test_the_end_is_reached_when_committed_or_read_past() -> None:
    broker = Broker(T, {0: [FakeMessage(T, 0, o, None, b"") for o in range(5)], 1: []})
    consumer, partitions = FakeConsumer(broker), Partitions()
    bounds = UntilEndOffsets([TopicPartition(T, 0, 2), TopicPartition(T, 1, 0)], {(T, 0): 5, (T, 1): 0})
    bounds.start(consumer, partitions)  # type: ignore[arg-type]
    assert consumer.positions == {0: 2, 1: 0}
    state = partitions.get(T, 0)
    assert state is not None and state.committed_offset == 2
    assert not bounds.reached(consumer, partitions)  # type: ignore[arg-type]
    consumer.positions[0] = 5  # read past a transaction marker at offset 4, say
    assert bounds.reached(consumer, partitions)  # type: ignore[arg-type]


def test_the_loop_stops_at_the_end_offsets(tmp_path: Path) -> None:
    def bounds(broker: Broker) -> UntilEndOffsets:
        starts = [TopicPartition(broker.topic, p, 0) for p in broker.logs]
        return UntilEndOffsets(starts, {(broker.topic, 0): 20, (broker.topic, 1): 10})

    outcome = Harness(tmp_path).run(bounds=bounds)
    assert outcome.code == 0
    assert {p: offset for p, (offset, _) in outcome.broker.committed.items()} == {0: 20, 1: 10}
