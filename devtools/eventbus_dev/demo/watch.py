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

        def start_at_recorded_offsets(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            for tp in partitions:
                recorded = starts.get(tp.topic, {}).get(tp.partition)
                if recorded is not None:
                    tp.offset = recorded
            consumer.assign(partitions)

        self._consumer.subscribe(self.topics, on_assign=start_at_recorded_offsets)

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
            events.append(self._decode(message))
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


def summarise(events: Iterable[ReceivedEvent]) -> Counter[str]:
    return Counter(event.topic for event in events)
