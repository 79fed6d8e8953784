"""The last change a source wrote to its staging topics: the newest record's time and operation.

Read from Kafka rather than from Connect's offsets, because it is what consumers can see. The
records are written in Connect transactions, so the newest offsets may be transaction markers: we
read a short tail of each partition (read_committed) instead of exactly the last offset.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

TAIL = 5  # records per partition: enough to get past the commit markers of the last transactions


def last_change(bootstrap_servers: str, topics: list[str], timeout_s: float = 5.0) -> dict[str, Any] | None:
    """`{"topic", "partition", "offset", "timestamp", "op"}` of the newest record, None if none."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"eventbus-status-{uuid.uuid4().hex}",  # never committed: assign(), no subscribe
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "socket.timeout.ms": int(timeout_s * 1000),
        }
    )
    newest: dict[str, Any] | None = None
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        assignments = []
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            if topic not in metadata.topics:
                continue
            for partition in metadata.topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout_s
                )
                if high > low:
                    assignments.append(TopicPartition(topic, partition, max(low, high - TAIL)))
                    ends[(topic, partition)] = high
        if not assignments:
            return None
        consumer.assign(assignments)
        remaining = set(ends)
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout_s)
        while remaining and dt.datetime.now() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            at_topic, at_partition, offset = message.topic(), message.partition(), message.offset()
            # Unset only on error events (see `eventbus.service.partitions.Record`)
            assert at_topic is not None and at_partition is not None and offset is not None
            key = (at_topic, at_partition)
            if offset + 1 >= ends.get(key, 0) - 1:  # reached the tail (a marker may follow)
                remaining.discard(key)
            _, timestamp_ms = message.timestamp()
            if newest is None or timestamp_ms > newest["timestamp_ms"]:
                newest = {
                    "topic": message.topic(),
                    "partition": message.partition(),
                    "offset": message.offset(),
                    "timestamp_ms": timestamp_ms,
                    "timestamp": dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC).isoformat(),
                    "op": _op(message.value()),
                }
    except KafkaException:
        return None  # status still shows Connect and the slot; Kafka being slow is not fatal here
    finally:
        consumer.close()
    return newest


def _op(value: bytes | None) -> str | None:
    if value is None:
        return "tombstone"
    try:
        payload = orjson.loads(value).get("payload") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return payload.get("op") if isinstance(payload, dict) else None
