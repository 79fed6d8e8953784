"""The per-record work: decode → mappings → dedup → Avro → produce (curated or dead-letter).

A consumed batch goes through in two passes: every record's mappings first, then the events of
the records that have any, encoded and produced in record order (`Processor.process`).

This is the hot path, so it does nothing per record beyond that chain: counting is integer
increments on a `Tally`, headers come pre-built from the serializer, mapping functions are bound
once per table version (cached on the compiled mapping), and the producer's `produce` is called
directly. Partition positions are `partitions.py`'s (`Partitions.record` hands the records out);
transactions and commits are the loop's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.positions import record_position
from eventbus.debezium.record import RecordUnreadable, StagingRecord
from eventbus.errors import EventBusError
from eventbus.events.avro import AvroEventSerializer
from eventbus.events.errors import SchemaRegistryError, SerializationFailed
from eventbus.events.model import CuratedEvent
from eventbus.mapping.compiler import CompiledMapping
from eventbus.mapping.errors import LookupPending, MappingEvaluationError
from eventbus.service.dead_letter import Headers, Origin, dead_letter_headers, unexpected_reason
from eventbus.service.loading import MappingSet
from eventbus.service.metrics import MappingTally, Tally
from eventbus.service.partitions import Partitions, PartitionState, Record

Produce = Callable[..., None]
# (mapping, its counts, the `_lk` functions answering its lookups: None for a mapping without any)
Route = tuple[CompiledMapping, MappingTally, Any]
# An evaluated record `_settle` finishes: (its view, each mapping's events or error, waits for a
# lookup, value, key, headers, topic, partition, offset, attempt); no view and one error for a
# record that cannot be decoded.
_Outcome = tuple[
    StagingRecord | None,
    list[tuple[Route, Any]] | Exception,
    bool, bytes, bytes | None, Headers | None, str, int, int, int,
]  # fmt: skip


class LookupHooks(Protocol):
    """What the processor needs of the lookup stage (`service/lookup_stage.py`)."""

    topics: frozenset[str]  # staging topics whose mappings look rows up

    def at(self, position: tuple[int, int] | None, ts_ms: int | None, lag_ms: int = 0) -> None:
        """The triggering change's position (None: a snapshot read), source time and streaming lag,
        before its mappings run."""

    def park(self, record: ParkedRecord) -> None:
        """A mapping's lookup must wait: keep the record (durably) and run it again later."""

    def function(self, mapping: CompiledMapping) -> Any:
        """The `_lk` functions of a mapping with lookups (`LookupResolver.for_mapping`)."""


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    """A staging record waiting for a related row, with the mappings still to run on it."""

    value: bytes
    key: bytes | None
    headers: Headers | None
    origin: Origin
    mappings: tuple[str, ...]
    attempt: int = 1


def staging_decoder(by_topic: Mapping[str, Iterable[CompiledMapping]]) -> ConnectJsonDecoder:
    """The decoder of a loop's staging records: each topic's payloads parsed to the columns of each
    row its mappings read (the rest of a wide row is skipped, not built)."""
    # Staging is Connect JSON with schemas (docs/architecture.md): a record without its schema
    # would map raw decimals and epoch micros as if they were values, so it is a dead letter.
    decoder = ConnectJsonDecoder(schemas_enabled=True)
    for topic, mappings in by_topic.items():
        mappings = tuple(mappings)
        before = {column for mapping in mappings for column in mapping.row_columns("before")}
        after = {column for mapping in mappings for column in mapping.row_columns("after")}
        decoder.read_only(topic, after, before=before)
    return decoder


# librdkafka's default `message.max.bytes`; the service passes the producer's own setting.
DEFAULT_MAX_RECORD_BYTES: Final = 1_000_000
# What the record format adds to each header and to the record (lengths, attributes): a generous bound.
_HEADER_OVERHEAD: Final = 16
_RECORD_OVERHEAD: Final = 128
_HEADROOM: Final = 16_384  # more than the headers and framing of any event


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
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        self.mappings = mappings
        self.tally = tally
        self.dedup = dedup
        # The producer refuses a record larger than its `message.max.bytes` (value, key and headers):
        # such an event is its mapping's dead letter, and such a dead letter goes without its value.
        self.max_record_bytes = max_record_bytes
        self.dead_letter_topic = dead_letter_topic
        self.group = group
        self._serialize = serializer.serialize
        self._produce = produce
        self._decoder = staging_decoder(mappings.by_topic)
        self.lookups: LookupHooks | None = None
        self.routes: dict[str, tuple[Route, ...]] = {
            topic: tuple((m, tally.mappings[m.spec.name], None) for m in ms)
            for topic, ms in mappings.by_topic.items()
        }

    @property
    def max_record_bytes(self) -> int:
        return self._max_record_bytes

    @max_record_bytes.setter
    def max_record_bytes(self, limit: int) -> None:
        self._max_record_bytes = limit
        # Headers and the record's framing are a few hundred bytes: only a key and value this close
        # to the limit need their size added up
        self._size_alarm = limit - _HEADROOM

    @property
    def produce(self) -> Produce:
        """Where the processor's curated events and dead letters go (the producer's `produce`)."""
        return self._produce

    def produce_into(self, produce: Produce) -> Produce:
        """Send this processor's produce calls to `produce` from now on; returns the one used until
        now (the loop keeps a batch's calls while the previous transaction commits)."""
        previous, self._produce = self._produce, produce
        return previous

    def use_lookups(self, lookups: LookupHooks) -> None:
        """Run mappings with lookups through `lookups` (the service has one stage per loop)."""
        self.lookups = lookups
        self.routes = {
            topic: tuple((m, counts, lookups.function(m) if m.lookups else None) for m, counts, _ in routes)
            for topic, routes in self.routes.items()
        }

    def process(self, messages: Sequence[Record], partitions: Partitions) -> None:
        """Process consumed records (errors already removed) in order; `partitions` records each.

        In two passes over the batch: first every record's mappings run (`_evaluate`), then the
        events of those that have any are encoded and produced, in record order (`_settle`). The
        output is the same as record by record; the split only keeps each pass's code and data hot
        in the CPU's caches (a change with events costs about a fifth less, `bench/README.md`).

        A `KafkaException` from the producer propagates (the loop sorts it: retry, abort, stop).
        """
        routes_of = self.routes.get
        evaluate = self._evaluate
        self.tally.consumed += len(messages)  # an aborted batch's counts are dropped whole (`Tally.reset`)
        outcomes: list[_Outcome] = []
        keep = outcomes.append
        for message, topic, partition, offset, state in partitions.record(messages):
            outcome = evaluate(message.value(), message.key(), message.headers(), topic, partition, offset,
                               routes_of(topic, ()), state, 1, False)  # fmt: skip
            if outcome is not None:
                keep(outcome)
        settle = self._settle
        for outcome in outcomes:
            settle(outcome)

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
        resumed: bool = False,
    ) -> bool:
        """One record: its outcome is counted exactly once (emitted-from, filtered, dead-lettered, or
        parked while a lookup waits). Returns True when it is (still) waiting for a lookup.

        `topic`/`partition`/`offset` are where the staging record was first read (for a replayed
        dead letter, where it was originally, not its place in the DLQ). `resumed`: a parked record
        run again (already parked: waiting once more is not counted again).
        """
        outcome = self._evaluate(
            value, key, headers, topic, partition, offset, routes, state, attempt, resumed
        )
        return outcome is not None and self._settle(outcome)

    def _evaluate(
        self, value: bytes | None, key: bytes | None, headers: Headers | None, topic: str, partition: int,
        offset: int, routes: tuple[Route, ...], state: PartitionState | None, attempt: int, resumed: bool,
    ) -> _Outcome | None:  # fmt: skip
        """A record's mappings, the dedup watermark and a lookup wait (parked now, as of this change);
        None when that settles it (filtered out, a duplicate), else what `_settle` produces and counts:
        the events to encode, the dead letters (a record that cannot be decoded included).

        The mappings run first and the dedup watermark is asked only for a change that has an
        outcome besides "filtered" (events, a dead letter, a wait): most changes are filtered out
        by every mapping, and for them a re-delivery makes no difference, so their position (a
        second decode of the source block) is never read. The watermark so moves with the changes
        that have an outcome, in partition order, which is all the dedup needs (`dedup.py`).
        """
        tally = self.tally
        if value is None:
            tally.tombstones += 1  # Debezium's delete tombstone: log compaction's business, not an event
            return None
        deduplicating = state is not None and self.dedup
        lookups = self.lookups
        try:
            record = StagingRecord(self._decoder, value, key, topic)
            if lookups is not None and topic in lookups.topics:
                # The change's place in the commit order: what its lookups are answered as of.
                position = record.position
                lookups.at(position, record.ts_ms, record.lag_ms)
                if deduplicating:
                    deduplicating = False
                    if state.is_duplicate(record_position(position, record.op)):  # type: ignore[union-attr]
                        tally.duplicates += 1
                        return None
        except Exception as error:  # a decoder bug on a hostile record must not stop the partition
            return (None, error, False, value, key, headers, topic, partition, offset, attempt)
        # 1. Every mapping, until one must wait for a lookup; nothing is counted or produced yet.
        results: list[tuple[Route, Sequence[CuratedEvent] | Exception]] = []
        waiting_from: int | None = None
        output = False
        for number, route in enumerate(routes):
            try:
                events = route[0].events_of(record, route[2])
            except LookupPending:
                # This mapping and the ones after it run again when the related row is there (or
                # the wait is over); those before it produce their events now.
                waiting_from = number
                output = True
                break
            except Exception as error:
                # Expected: DecodeError (a key no event can be identified by), MappingEvaluationError,
                # SchemaRegistryError. Anything else is a bug met on one record; it is that record's
                # dead letter, not a crash loop that would stop every partition behind a poison record.
                results.append((route, error))
                output = True
                if isinstance(error, RecordUnreadable):  # the record: every other mapping would fail too
                    break
                continue
            results.append((route, events))
            if events:
                output = True
        if not output:  # filtered out by every mapping: nothing to produce, whether a copy or not
            for _, counts, _ in routes:
                counts.changes_in += 1
                counts.filtered += 1
            tally.no_match += 1
            return None
        # 2. The dedup watermark, for a change with an outcome.
        if deduplicating:
            try:
                place = record.record_position
            except Exception as error:  # the ordering fields of its source block are unusable
                return (None, error, False, value, key, headers, topic, partition, offset, attempt)
            if state.is_duplicate(place):  # type: ignore[union-attr]
                tally.duplicates += 1
                return None
        # 3. A wait is kept now, as of this change's position (the lookups' `commit` moves on).
        if waiting_from is not None and not resumed:
            remaining = tuple(m.spec.name for m, _, _ in routes[waiting_from:])
            assert lookups is not None  # only a mapping with lookups waits for one
            origin = Origin(topic, partition, offset)
            lookups.park(ParkedRecord(value, key, headers, origin, remaining, attempt))
            tally.parked += 1
        waiting = waiting_from is not None
        return (record, results, waiting, value, key, headers, topic, partition, offset, attempt)

    def _settle(self, outcome: _Outcome) -> bool:
        """Encode and produce an evaluated record's events and dead letters, and count its outcome.
        Returns True when it waits for a lookup."""
        record, results, waiting, value, key, headers, topic, partition, offset, attempt = outcome
        tally = self.tally
        if isinstance(results, Exception):  # the record cannot be decoded: one dead letter, kind decode
            self._dead_letter(value, key, headers, Origin(topic, partition, offset), "decode",
                              _reason(results), None, attempt)  # fmt: skip
            tally.dead_lettered += 1
            tally.unreadable += 1
            return False
        assert record is not None  # results come with the view they were evaluated on
        serialize = self._serialize
        produce = self._produce
        emitted = failed = False
        ts_ms: int | None = None  # the change's source time, read once a mapping emits
        for (mapping, counts, _), made in results:
            counts.changes_in += 1
            if isinstance(made, Exception):
                failure: Exception = made
                kind = "decode" if isinstance(failure, RecordUnreadable) else "mapping"
            elif not made:
                counts.filtered += 1
                continue
            else:
                # Every event of this mapping is encoded before any is produced: a failure in the
                # second must not leave the first published and the record dead-lettered as well.
                try:
                    encoded = [serialize(event) for event in made]
                    for event, (event_key, event_value, event_headers) in zip(made, encoded, strict=True):
                        if len(event_value) + len(event_key) > self._size_alarm:  # else far below the limit
                            size = _record_size(event_value, event_key, event_headers)
                            if size > self.max_record_bytes:
                                raise EventTooLarge(event.topic, size, self.max_record_bytes)
                except Exception as error:  # SerializationFailed, SchemaRegistryError, or a bug
                    failure, kind = error, "serialization"
                else:
                    for event, (event_key, event_value, event_headers) in zip(made, encoded, strict=True):
                        produce(event.topic, event_value, event_key, headers=event_headers)
                    counts.events_out += len(made)
                    counts.emitted_from += 1
                    if not emitted:
                        emitted, ts_ms = True, record.ts_ms
                    if ts_ms is not None:
                        counts.source_ts_ms.append(ts_ms)
                    continue
            counts.dead_lettered += 1
            failed = True
            spec = None if kind == "decode" else mapping.spec
            self._dead_letter(value, key, headers, Origin(topic, partition, offset), kind, _reason(failure),
                              spec, attempt)  # fmt: skip
            if kind == "decode":
                break
        if waiting:
            return True
        if failed:
            tally.dead_lettered += 1
        elif emitted:
            tally.emitted_from += 1
            if ts_ms is not None:
                tally.source_ts_ms.append(ts_ms)
        else:
            tally.no_match += 1
        return False

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
        def headers_saying(why: str) -> Headers:
            return dead_letter_headers(
                headers,
                kind=kind,
                reason=why,
                origin=origin,
                group=self.group,
                mapping=None if spec is None else spec.name,
                mapping_version=None if spec is None else spec.version,
                attempt=attempt,
            )

        dlq_headers = headers_saying(reason)
        size = _record_size(value, key, dlq_headers)
        if size > self.max_record_bytes:
            # Refused by the producer with the record's value: the dead letter goes without it, and
            # says where the record is (its origin headers), so it is not lost with the partition moving on.
            dlq_headers = headers_saying(
                f"{reason}; the record's value ({len(value)} bytes) is left out of this dead letter, "
                f"which may not exceed the producer's message.max.bytes ({self.max_record_bytes}): read it "
                f"at its origin, {origin.topic}[{origin.partition}]@{origin.offset}"
            )
            value = b""
            if _record_size(value, key, dlq_headers) > self.max_record_bytes:
                key = None
        self._produce(self.dead_letter_topic, value, key, headers=dlq_headers)


def _record_size(
    value: bytes | None, key: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None
) -> int:
    """About the size the producer checks against `message.max.bytes` (never less)."""
    size = _RECORD_OVERHEAD + (len(value) if value else 0) + (len(key) if key else 0)
    for name, data in headers or ():
        size += _HEADER_OVERHEAD + len(name) + (len(data) if data else 0)
    return size


class EventTooLarge(EventBusError):
    """A curated event larger than the producer may send: its mapping's dead letter (kind
    serialization), instead of a produce error that would stop the service on every restart."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(
            f"{topic}: the event is {size} bytes, more than the producer's message.max.bytes ({limit}); "
            "publish less of the row (a large column), or raise kafka.producer message.max.bytes and "
            "the topic's max.message.bytes together"
        )


_EXPECTED_ERRORS = (
    DecodeError, MappingEvaluationError, SerializationFailed, SchemaRegistryError, EventTooLarge
)  # fmt: skip


def _reason(error: Exception) -> str:
    """The dead letter's reason: our errors say what is wrong; anything else only its type and place."""
    if isinstance(error, RecordUnreadable) and isinstance(error.__cause__, Exception):
        error = error.__cause__  # the decoder's own words
    if isinstance(error, _EXPECTED_ERRORS):
        return str(error)
    return unexpected_reason(error)
