"""A lookup whose row comes later in the triggering change's own large source transaction.

Debezium 3.6 writes a heartbeat whenever `heartbeat.interval` has passed, also in the middle of a
transaction: after any data change it dispatches (`EventDispatcher.dispatchDataChangeEvent`) and
whenever the replication stream has no message ready (`PostgresStreamingChangeEventSource`), e.g.
while the walsender decodes rows of tables the connector does not capture. The heartbeat carries
only the worker's clock, no position. Such a heartbeat must not end the wait of a change of that
transaction: the shipment below is inserted first, its order last, with many rows of an uncaptured
table in between, heartbeats every 100 ms and `wait: 0`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from eventbus.sources.naming import heartbeat_topic
from eventbus_dev.demo.watch import CuratedEventReader
from tests.integration.lookups.test_lookups_on_the_stack import (
    Pipeline,
    _by_shipment,
    _dead_letters,
    _start,
    open_pipeline,
)
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack

PADDING_ROWS = 1_000_000  # rows of an uncaptured table: seconds of decoding with nothing to send


@pytest.fixture
def pipe(stack: StackEndpoints, tmp_path: Path) -> Iterator[Pipeline]:
    opened: Pipeline | None = None
    try:
        with open_pipeline(stack, tmp_path, wait="0s", heartbeat="100ms") as opened:
            opened.sql("create table padding (n bigint)")  # not in the publication: never captured
            yield opened
    finally:
        if opened is not None:  # the topics of this source and transformer, all
            suffix = opened.topic.rsplit("_", 1)[1]
            admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
            mine = [topic for topic in admin.list_topics(timeout=10).topics if suffix in topic]
            for future in admin.delete_topics(mine).values() if mine else ():
                future.result(30)


def _timestamps(pipe: Pipeline, topic: str) -> list[tuple[int, dict[str, object]]]:
    """(Kafka timestamp, payload) of every record of `topic` up to its end now, oldest first."""
    consumer = Consumer({"bootstrap.servers": pipe.stack.bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "isolation.level": "read_committed", "enable.auto.commit": False})  # fmt: skip
    found = []
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        # Up to the end as of now: heartbeats keep coming (every 100 ms here).
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in metadata.partitions}  # fmt: skip
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        deadline = time.monotonic() + 30
        while any(ends.values()) and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.3):
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                if offset + 1 >= ends[partition]:
                    ends[partition] = 0  # read up to its end (a transaction marker may be the last)
                if message.value() is not None:
                    document = orjson.loads(message.value())
                    found.append((message.timestamp()[1], document.get("payload", document)))
            for position in consumer.position([TopicPartition(topic, p) for p in ends]):
                if position.offset >= ends.get(position.partition, 0) > 0:
                    ends[position.partition] = 0
    finally:
        consumer.close()
    return sorted(found, key=lambda item: item[0])


def test_a_heartbeat_within_the_transaction_does_not_end_the_wait_for_its_own_row(pipe: Pipeline) -> None:
    process, _port = _start(pipe, "big", f"lk-{pipe.source}-big")
    try:
        started = time.monotonic()
        pipe.sql(
            "insert into shipments values (50, 50)",
            f"insert into padding select g from generate_series(1, {PADDING_ROWS}) g",
            "insert into orders values (50, 'hal', 'gold')",
        )
        committed_s = time.monotonic() - started
        reader = CuratedEventReader(pipe.stack.bootstrap_servers, pipe.stack.registry_url, [pipe.topic])
        with reader:
            events = reader.read(until=lambda got: any(e.value["shipment_id"] == 50 for e in got), timeout=60)
            events += reader.read(until=lambda _got: False, timeout=2)
    finally:
        process.stop(timeout=30)
    # The fact the scenario rests on: heartbeats were written between the shipment and its order.
    shipment_at = next(t for t, p in _timestamps(pipe, pipe.staging[1]) if p["after"]["shipment_id"] == 50)
    order_at = next(t for t, p in _timestamps(pipe, pipe.staging[0]) if p["after"]["order_id"] == 50)
    beats = [t for t, _ in _timestamps(pipe, heartbeat_topic(pipe.source)) if shipment_at < t < order_at]
    print(f"transaction {committed_s:.1f} s; order written {order_at - shipment_at} ms after the shipment, "
          f"{len(beats)} heartbeats between")  # fmt: skip
    assert beats, "no heartbeat within the transaction: the scenario did not happen"
    assert _dead_letters(pipe) == []
    assert _by_shipment(events).get(50) == [("hal", "gold")]
