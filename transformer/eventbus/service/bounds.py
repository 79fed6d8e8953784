"""How far a loop runs: the service runs until stopped; a bounded run (the dead-letter replay) reads
each partition from a start offset up to an end offset and then stops.

The loop knows nothing of either: it asks its `RunBounds` which records to process (`admit`) and,
between batches, whether it is done (`reached`). Without one it consumes what its subscription gives
until it is stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from confluent_kafka import Consumer, TopicPartition

from eventbus.service.partitions import Partitions, Record


class RunBounds(Protocol):
    def start(self, consumer: Consumer, partitions: Partitions) -> None:
        """Assign the partitions to read (instead of subscribing) and tell `partitions` where from."""

    def admit(self, messages: list[Record]) -> list[Record]:
        """The consumed records that belong to this run (per batch, not per record)."""

    def reached(self, consumer: Consumer, partitions: Partitions) -> bool:
        """Everything admitted was processed and committed: the run is over."""


class UntilEndOffsets:
    """Read each partition from its start offset up to (excluding) its end offset, then stop."""

    def __init__(self, starts: Iterable[TopicPartition], ends: dict[tuple[str, int], int]) -> None:
        self.starts = list(starts)
        self.ends = dict(ends)

    def start(self, consumer: Consumer, partitions: Partitions) -> None:
        # The start offsets are where reading begins: the run's committed position until it commits.
        partitions.assign(self.starts)
        consumer.assign(self.starts)

    def admit(self, messages: list[Record]) -> list[Record]:
        # Records at or after the end were written after the run began (possibly by the run itself,
        # re-dead-lettering a record): they are for the next run.
        ends = self.ends
        return [m for m in messages if m.offset() < ends.get((m.topic(), m.partition()), 0)]

    def reached(self, consumer: Consumer, partitions: Partitions) -> bool:
        pending = []
        for (topic, partition), end in self.ends.items():
            state = partitions.get(topic, partition)
            if state is None or state.committed_offset is None or state.committed_offset < end:
                pending.append(TopicPartition(topic, partition))
        if not pending:
            return True
        # The last offsets below the end may be transaction markers, which are never delivered:
        # the consumer's position moves past them, so it tells when everything was read.
        positions = consumer.position(pending)
        return all(tp.offset >= self.ends[(tp.topic, tp.partition)] for tp in positions)
