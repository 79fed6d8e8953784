"""Partition bookkeeping, in one place: where each assigned staging partition stands.

Per partition two positions are kept. The *committed* one is what the last successful commit stored
(offset, and the dedup watermark as the offset's metadata, see `dedup.py`); it is read back from the
group on assignment. The *batch* one moves as the open batch's records are processed: its first
offset, the offset after its last record, and the watermark. A commit makes the batch position the
committed one; an abort drops it and rewinds the consumer to the committed one.

`Partitions` is the registry the loop and the processor share: the loop assigns, forgets, commits
and rolls back; the processor takes its records through `record`, which moves the batch positions
(the only per-record work here).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from confluent_kafka import TopicPartition

from eventbus.service.dead_letter import Headers
from eventbus.service.dedup import RecordPosition, decode_watermark, encode_watermark

Key = tuple[str, int]
"""(topic, partition)"""


class PartitionState:
    """One assigned staging partition: its committed position and the open batch's position."""

    __slots__ = ("committed_offset", "committed_watermark", "first_offset", "next_offset", "watermark")

    def __init__(self, committed_offset: int | None, committed_watermark: RecordPosition | None) -> None:
        self.committed_offset = committed_offset
        self.committed_watermark = committed_watermark
        self.first_offset: int | None = None  # first record of the open batch
        self.next_offset: int | None = None  # offset after the last record processed in this batch
        self.watermark = committed_watermark

    @property
    def dirty(self) -> bool:
        """Records of this partition are in the open batch."""
        return self.next_offset is not None

    def is_duplicate(self, position: RecordPosition | None) -> bool:
        """True for a change at or below the watermark; otherwise the watermark moves up to it."""
        if position is None:
            return False
        watermark = self.watermark
        if watermark is not None and position <= watermark:
            return True
        self.watermark = position
        return False

    def committed(self) -> None:
        """The open batch was committed: its end becomes the committed position."""
        if self.next_offset is not None:
            self.committed_offset = self.next_offset
        self.committed_watermark = self.watermark
        self.next_offset = self.first_offset = None

    def committed_up_to(self, next_offset: int, watermark: RecordPosition | None) -> None:
        """A commit of the batch up to `next_offset` (watermark `watermark`) went through while
        records after it were processed already (`commit_overlap.py`): those stay the open batch."""
        self.committed_offset = next_offset
        self.committed_watermark = watermark
        if self.next_offset == next_offset:
            self.next_offset = self.first_offset = None
        else:
            self.first_offset = next_offset

    def rolled_back(self) -> int | None:
        """The open batch was aborted: forget it; returns where to read again (None: nothing known).

        That is the committed offset; before the group ever committed one for this partition, the
        first record this process saw of it.
        """
        rewind = self.committed_offset if self.committed_offset is not None else self.first_offset
        self.watermark = self.committed_watermark
        self.next_offset = self.first_offset = None
        return rewind

    def metadata(self) -> str:
        return encode_watermark(self.watermark)


class Record(Protocol):
    """A consumed `Message` that is a record, not an error event: librdkafka sets its topic, partition
    and offset, and its headers are a list (the dict form is only for producing). `Message` types
    them optional for the error events; the loop takes those out and names the rest `Record`s."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Headers | None: ...
    def timestamp(self) -> tuple[int, int]: ...


Snapshot = list[tuple[Key, int, RecordPosition | None]]
"""(partition, next offset, watermark) of each partition with records in a batch being committed."""

Processing = tuple[Record, str, int, int, PartitionState]
"""What `Partitions.record` hands out per record: (message, topic, partition, offset, state)."""


class Partitions:
    """Every assigned partition's `PartitionState`, by (topic, partition)."""

    __slots__ = ("_states",)

    def __init__(self) -> None:
        self._states: dict[Key, PartitionState] = {}

    # --- assignment --------------------------------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Start tracking `partitions` at their committed offsets and metadata (watermarks).

        A negative offset (nothing committed, or a logical offset such as OFFSET_BEGINNING) is no
        committed position.
        """
        for tp in partitions:
            offset = tp.offset if tp.offset >= 0 else None
            self._states[(tp.topic, tp.partition)] = PartitionState(offset, decode_watermark(tp.metadata))

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Revoked or lost: no longer ours, nothing of them is committed or rewound any more."""
        for tp in partitions:
            self._states.pop((tp.topic, tp.partition), None)

    # --- the hot path -------------------------------------------------------------------------------

    def record(self, messages: Iterable[Record]) -> Iterator[Processing]:
        """`(message, topic, partition, offset, state)` for each message, in order, moving its
        partition's batch position past the record as it is handed out.

        A generator, not a call per record: the state is looked up once per run of records of one
        partition (consume() returns them so), and a record costs one attribute store.
        """
        states = self._states
        last: Key | None = None
        state = PartitionState(None, None)  # replaced at the first record
        for message in messages:
            topic = message.topic()
            partition = message.partition()
            offset = message.offset()
            if last is None or partition != last[1] or topic != last[0]:
                last = (topic, partition)
                found = states.get(last)
                if found is None:  # records only come from assigned partitions; be safe, never lose one
                    found = states[last] = PartitionState(None, None)
                state = found
                if state.first_offset is None:
                    state.first_offset = offset
            state.next_offset = offset + 1
            yield message, topic, partition, offset, state

    def record_all(self, messages: Iterable[Record]) -> None:
        """`record` every message: a batch that failed half-way is rewound past all it consumed."""
        for _ in self.record(messages):
            pass

    # --- commit and abort --------------------------------------------------------------------------

    def dirty_offsets(self) -> list[TopicPartition]:
        """The batch positions to commit: next offsets with the watermarks as metadata."""
        return [
            TopicPartition(topic, partition, state.next_offset, metadata=state.metadata())
            for (topic, partition), state in self._states.items()
            if state.next_offset is not None
        ]

    def committed(self, snapshot: Snapshot | None = None) -> None:
        """The open batch was committed: batch positions become the committed ones. With a
        `snapshot`: the positions it holds were committed, and what was processed after it stays
        open (a partition revoked meanwhile is skipped)."""
        if snapshot is None:
            for state in self._states.values():
                if state.next_offset is not None:
                    state.committed()
            return
        for key, next_offset, watermark in snapshot:
            found = self._states.get(key)
            if found is not None:
                found.committed_up_to(next_offset, watermark)

    def snapshot(self) -> Snapshot:
        """The batch positions `dirty_offsets` commits, to settle them once the commit is through."""
        return [
            (key, state.next_offset, state.watermark)
            for key, state in self._states.items()
            if state.next_offset is not None
        ]

    def rolled_back(self) -> list[TopicPartition]:
        """The open batch was aborted: every partition back to its committed position.

        Returns the seeks for the consumer: every partition whose position is known, not only the
        batch's, so that records consumed but never processed are read again too.
        """
        seeks = []
        for (topic, partition), state in self._states.items():
            rewind = state.rolled_back()
            if rewind is not None:
                seeks.append(TopicPartition(topic, partition, rewind))
        return seeks

    # --- reading -----------------------------------------------------------------------------------

    def get(self, topic: str, partition: int) -> PartitionState | None:
        return self._states.get((topic, partition))

    def positions(self) -> Iterator[tuple[str, int, int | None]]:
        """(topic, partition, offset of the next record to process or None if not known yet) of
        every assigned partition, for the lag gauge."""
        for (topic, partition), state in list(self._states.items()):
            position = state.next_offset if state.next_offset is not None else state.committed_offset
            yield topic, partition, position

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: object) -> bool:
        return key in self._states
