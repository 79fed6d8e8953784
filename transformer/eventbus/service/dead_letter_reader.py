"""Reading the dead-letter topic for people: what `eventbus dlq list` and `dlq show` print.

Read-only: a consumer without a group position of its own (nothing is committed), from each
partition's first record up to its end when the command starts, `read_committed` as the service
writes the topic in transactions. The reasons name fields, columns and rules, never values
(`dead_letter.py`); `show` prints the record's value only when asked (`--value`), since the staging
record may hold personal data.
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from eventbus.errors import ConfigError
from eventbus.service.dead_letter import DeadLetterInfo, NotADeadLetterError, parse_dead_letter
from eventbus.service.settings import TransformerSettings

_READ_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic: where it is, what its headers say (None when it is not
    one of ours), and the sizes of its key and value."""

    partition: int
    offset: int
    timestamp_ms: int | None
    info: DeadLetterInfo | None
    key: bytes | None
    value: bytes | None

    @property
    def place(self) -> str:
        return f"{self.partition}@{self.offset}"


def read_dead_letters(
    settings: TransformerSettings, *, partition: int | None = None, offset: int | None = None
) -> Iterator[DeadLetter]:
    """The dead-letter topic's records, partition by partition in offset order, up to each
    partition's end when reading starts; only `partition`'s from `offset` when given."""
    topic = settings.dlq_topic
    consumer = Consumer(
        settings.consumer_config(reveal=True)
        | {"group.id": f"{settings.group_id}.dlq-reader.{uuid.uuid4().hex[:8]}", "enable.partition.eof": True}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=_READ_TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise ConfigError(
                f"dead-letter topic {topic} does not exist (dead_letter_topic, or group_id "
                f"{settings.group_id}: is it this deployment's?)"
            )
        chosen = sorted(metadata.partitions) if partition is None else [partition]
        if partition is not None and partition not in metadata.partitions:
            raise ConfigError(f"dead-letter topic {topic} has no partition {partition}")
        for number in chosen:
            yield from _read_partition(consumer, topic, number, offset)
    finally:
        consumer.close()


def newest(letters: Iterable[DeadLetter], limit: int) -> list[DeadLetter]:
    """The `limit` newest of `letters` across all partitions, oldest first (`dlq list -n`). Reads
    every letter (a caller may count them as they pass) and keeps only `limit` of them.

    By timestamp: the partitions are read one after another, so the last ones read are the last
    partition's, not the newest. Within a partition offsets order equal timestamps; a letter without
    a timestamp counts as the oldest."""
    if limit <= 0:
        deque(letters, maxlen=0)
        return []
    return sorted(heapq.nlargest(limit, letters, key=_age), key=_age)


def _age(letter: DeadLetter) -> tuple[int, int, int]:
    stamp = letter.timestamp_ms
    return (-1 if stamp is None else stamp, letter.partition, letter.offset)


def _read_partition(
    consumer: Consumer, topic: str, partition: int, start: int | None
) -> Iterator[DeadLetter]:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=_READ_TIMEOUT_S)
    first = low if start is None else max(low, start)
    if first >= high:
        return
    consumer.assign([TopicPartition(topic, partition, first)])
    deadline = time.monotonic() + _READ_TIMEOUT_S
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return  # read_committed: transaction markers take offsets, the end is reached anyway
            raise ConfigError(f"reading {topic}[{partition}]: {error.str()}")
        deadline = time.monotonic() + _READ_TIMEOUT_S
        letter = _dead_letter(partition, message)
        yield letter
        if letter.offset + 1 >= high:
            return
    raise ConfigError(f"reading {topic}[{partition}]: no record for {_READ_TIMEOUT_S:.0f} s before its end")


def _dead_letter(partition: int, message: Any) -> DeadLetter:
    try:
        info: DeadLetterInfo | None = parse_dead_letter(message.headers())
    except NotADeadLetterError:
        info = None  # written by something else: listed, without a reason
    kind, stamp = message.timestamp()
    offset: int = message.offset()
    return DeadLetter(partition, offset, stamp if kind else None, info, message.key(), message.value())
