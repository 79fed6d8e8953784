"""The per-record work: decode → dedup → mappings → Avro → produce (curated or dead-letter).

This is the hot path, so it does nothing per record beyond that chain: counting is integer
increments on a `Tally`, headers come pre-built from the serializer, mapping functions are bound
once per table version (cached on the compiled mapping), and the producer's `produce` is called
directly. Transactions, offsets and commits are the loop's business, not this module's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Message

from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.errors import DecodeError
from eventbus.events.avro import AvroEventSerializer, SerializedEvent
from eventbus.events.errors import SchemaRegistryError, SerializationFailed
from eventbus.mapping.compiler import CompiledMapping
from eventbus.mapping.errors import MappingEvaluationError
from eventbus.service.dead_letter import Headers, Origin, dead_letter_headers
from eventbus.service.dedup import PartitionState, position_of
from eventbus.service.loading import MappingSet
from eventbus.service.metrics import MappingTally, Tally

Produce = Callable[..., None]
Route = tuple[CompiledMapping, MappingTally]


class Processor:
    """Turns staging records into produce calls; one per loop (not thread-safe, like the decoder)."""

    def __init__(
        self,
        mappings: MappingSet,
        serializer: AvroEventSerializer,
        produce: Produce,
        *,
        dead_letter_topic: str,
        group: str,
        tally: Tally,
        dedup: bool = True,
    ) -> None:
        self.mappings = mappings
        self.tally = tally
        self.dedup = dedup
        self.dead_letter_topic = dead_letter_topic
        self.group = group
        self._serialize = serializer.serialize
        self._produce = produce
        # Staging is Connect JSON with schemas (docs/architecture.md): a record without its schema
        # would map raw decimals and epoch micros as if they were values, so it is a dead letter.
        self._decode = ConnectJsonDecoder(schemas_enabled=True).decode
        self.routes: dict[str, tuple[Route, ...]] = {
            topic: tuple((m, tally.mappings[m.spec.name]) for m in ms)
            for topic, ms in mappings.by_topic.items()
        }

    def process(self, messages: Iterable[Message], states: dict[tuple[str, int], PartitionState]) -> None:
        """Process consumed records (errors already removed) in order, advancing partition states."""
        routes_of = self.routes.get
        handle = self.handle
        tally = self.tally
        for message in messages:
            topic = message.topic()
            partition = message.partition()
            offset = message.offset()
            state = states.get((topic, partition))
            if state is None:  # records only come from assigned partitions; be safe, never lose one
                state = states[(topic, partition)] = PartitionState(None, None)
            if state.first_offset is None:
                state.first_offset = offset
            state.next_offset = offset + 1
            tally.consumed += 1
            handle(message.value(), message.key(), message.headers(), topic, partition, offset,
                   routes_of(topic, ()), state)  # fmt: skip

    def handle(
        self,
        value: bytes | None,
        key: bytes | None,
        headers: Headers | None,
        topic: str,
        partition: int,
        offset: int,
        routes: tuple[Route, ...],
        state: PartitionState | None,
        *,
        attempt: int = 1,
    ) -> None:
        """One record: its outcome is counted exactly once (emitted-from, filtered or dead-lettered).

        `topic`/`partition`/`offset` are where the staging record was first read (for a replayed
        dead letter, where it was originally, not its place in the DLQ).
        """
        tally = self.tally
        if value is None:
            tally.tombstones += 1  # Debezium's delete tombstone: log compaction's business, not an event
            return
        try:
            change = self._decode(value, key, topic)
        except Exception as error:  # a decoder bug on a hostile record must not stop the partition
            origin = Origin(topic, partition, offset)
            self._dead_letter(value, key, headers, origin, "decode", _reason(error), None, attempt)
            tally.dead_lettered += 1
            return
        if change is None:  # pragma: no cover - the decoder returns None only for a None value
            tally.tombstones += 1
            return
        if state is not None and self.dedup and state.is_duplicate(position_of(change.source)):
            tally.duplicates += 1
            return
        emitted = failed = False
        serialize, produce = self._serialize, self._produce
        for mapping, counts in routes:
            counts.changes_in += 1
            kind = "mapping"
            try:
                events = mapping.bind(change.table)(change)
                if not events:
                    counts.filtered += 1
                    continue
                kind = "serialization"
                # Every event of this mapping is encoded before any is produced: a failure in the
                # second must not leave the first published and the record dead-lettered as well.
                encoded: list[SerializedEvent] = [serialize(event) for event in events]
            except Exception as error:
                # Expected: MappingEvaluationError, SerializationFailed, SchemaRegistryError. Anything
                # else is a bug met on one record; it is that record's dead letter, not a crash loop
                # that would stop every partition behind a poison record.
                counts.dead_lettered += 1
                failed = True
                origin = Origin(topic, partition, offset)
                self._dead_letter(value, key, headers, origin, kind, _reason(error), mapping.spec, attempt)
                continue
            for event, (event_key, event_value, event_headers) in zip(events, encoded, strict=True):
                produce(event.topic, event_value, event_key, headers=event_headers)
            counts.events_out += len(events)
            counts.emitted_from += 1
            emitted = True
        if failed:
            tally.dead_lettered += 1
        elif emitted:
            tally.emitted_from += 1
            ts_ms = change.source.ts_ms
            if ts_ms is not None:
                tally.source_ts_ms.append(ts_ms)
        else:
            tally.no_match += 1

    def _dead_letter(
        self,
        value: bytes,
        key: bytes | None,
        headers: Headers | None,
        origin: Origin,
        kind: str,
        reason: str,
        spec: Any,
        attempt: int,
    ) -> None:
        dlq_headers = dead_letter_headers(
            headers,
            kind=kind,
            reason=reason,
            origin=origin,
            group=self.group,
            mapping=None if spec is None else spec.name,
            mapping_version=None if spec is None else spec.version,
            attempt=attempt,
        )
        self._produce(self.dead_letter_topic, value, key, headers=dlq_headers)


_EXPECTED_ERRORS = (DecodeError, MappingEvaluationError, SerializationFailed, SchemaRegistryError)


def _reason(error: Exception) -> str:
    """The dead letter's reason: our errors say what is wrong; anything else also names its type."""
    if isinstance(error, _EXPECTED_ERRORS):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"
