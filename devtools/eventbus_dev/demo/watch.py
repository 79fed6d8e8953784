"""Read curated topics the way a consumer on the bus would, and show the events as they arrive.

A plain confluent-kafka consumer with `AvroDeserializer` and `isolation.level=read_committed`: what
it sees is exactly what downstream teams see.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from eventbus.events.avro import curated_deserializer


@dataclass(frozen=True)
class ReceivedEvent:
    topic: str
    partition: int
    offset: int
    key: dict[str, Any]
    value: dict[str, Any]
    headers: dict[str, str]


class CuratedEventReader:
    """Consumes curated topics from the beginning with committed-only isolation."""

    def __init__(
        self,
        bootstrap_servers: str,
        registry_url: str,
        topics: Iterable[str],
        *,
        start_offsets: dict[str, dict[int, int]] | None = None,
    ) -> None:
        """Read `topics` from the beginning, or from `start_offsets` (topic → partition → offset)."""
        self.topics = list(topics)
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"eventbus-watch-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                # Curated topics may not exist yet when watching starts.
                "topic.metadata.refresh.interval.ms": 2000,
                "allow.auto.create.topics": False,
            }
        )
        # The registry client waits forever by default: time out (and retry) instead, so a registry
        # that does not answer cannot freeze the reader (see `curated_deserializer`).
        self._deserializer = curated_deserializer(SchemaRegistryClient({"url": registry_url, "timeout": 10}))
        starts = start_offsets or {}
        # Next offset to read per partition: a later assignment (a topic created meanwhile makes the
        # group rebalance) goes on from there, instead of reading from the start again.
        self._next: dict[tuple[str, int], int] = {}

        def resume(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            for tp in partitions:
                offset = start_offset(tp.topic, tp.partition, starts, self._next)
                if offset is not None:
                    tp.offset = offset
            consumer.assign(partitions)

        self._consumer.subscribe(self.topics, on_assign=resume)

    def _deserialize(self, data: bytes | None, context: SerializationContext) -> dict[str, Any]:
        for attempt in range(3):
            try:
                return self._deserializer(data, context)
            except Exception:
                # A timed-out schema lookup is worth another try; a bad record fails every time.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _decode(self, message: Message) -> ReceivedEvent:
        topic = message.topic() or ""
        key = self._deserialize(message.key(), SerializationContext(topic, MessageField.KEY))
        value = self._deserialize(message.value(), SerializationContext(topic, MessageField.VALUE))
        headers = {name: (raw or b"").decode() for name, raw in (message.headers() or [])}
        return ReceivedEvent(topic, message.partition() or 0, message.offset() or 0, key, value, headers)

    def poll(self, timeout: float = 0.5) -> list[ReceivedEvent]:
        events = []
        for message in self._consumer.consume(num_messages=500, timeout=timeout):
            if message.error():
                continue  # e.g. a topic not created yet; the subscription picks it up later
            event = self._decode(message)
            self._next[(event.topic, event.partition)] = event.offset + 1
            events.append(event)
        return events

    def read(self, *, until: Callable[[list[ReceivedEvent]], bool], timeout: float) -> list[ReceivedEvent]:
        """Collect events until `until(collected)` holds or `timeout` seconds pass."""
        collected: list[ReceivedEvent] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(collected):
            collected.extend(self.poll())
        return collected

    def stream(self) -> Iterator[ReceivedEvent]:
        while True:
            yield from self.poll()

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> CuratedEventReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def start_offset(
    topic: str, partition: int, recorded: dict[str, dict[int, int]], read_up_to: dict[tuple[str, int], int]
) -> int | None:
    """Where an assigned partition is read from: after what was read already, else the recorded
    start, else (None) the consumer's reset policy (the beginning)."""
    next_offset = read_up_to.get((topic, partition))
    start = recorded.get(topic, {}).get(partition)
    if next_offset is None:
        return start
    return next_offset if start is None else max(start, next_offset)


def distinct_counts(events: Iterable[ReceivedEvent]) -> Counter[str]:
    """Events per topic, each event once (by its `ce_id`): what the curated topics hold."""
    seen: set[tuple[str, str]] = set()
    counts: Counter[str] = Counter()
    for event in events:
        identity = (event.topic, event.headers.get("ce_id") or f"{event.partition}/{event.offset}")
        if identity not in seen:
            seen.add(identity)
            counts[event.topic] += 1
    return counts
