"""PostgreSQL's 'infinity' and '-infinity' in date, timestamp, timestamp(3) and timestamptz columns,
through the real Debezium: read in the snapshot and streamed, every encoding Debezium gives them
decodes to the `INFINITY` / `NEG_INFINITY` sentinels (`debezium/infinite.py`), and a finite row of
the same table decodes to its values as before."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.infinite import INFINITY, NEG_INFINITY
from tests.integration.sources.teardown import remove_source
from tests.integration.sources.test_mapping_new import Source
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack

TABLE = """
create table public.spans (id bigint primary key, d date, ts timestamp, ts3 timestamp(3), tz timestamptz);
insert into public.spans values (1, 'infinity', 'infinity', 'infinity', 'infinity');
insert into public.spans values (2, '-infinity', '-infinity', '-infinity', '-infinity');
"""
STREAMED = """
insert into public.spans values (3, 'infinity', 'infinity', 'infinity', 'infinity');
insert into public.spans values (4, '-infinity', '-infinity', '-infinity', '-infinity');
insert into public.spans values (5, '2024-02-29', '2024-02-29 12:00:00.5', '2024-02-29 12:00:00.5',
  '2024-02-29 12:00:00.123456+00');
"""
COLUMNS = ("d", "ts", "ts3", "tz")


@pytest.fixture
def source(stack: StackEndpoints, tmp_path: Path) -> Iterator[Source]:
    src = Source(stack, tmp_path)
    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        admin.execute(f'create database "{src.database}"')
    src.sql(TABLE)
    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / f"{src.name}.yaml").write_text(
        f"database: {{host: {stack.postgres_host}, port: {stack.postgres_port}, dbname: {src.database}, "
        f"user: {stack.postgres_user}, password: {{env: IT_NEW_PW}}, "
        f"connect_host: {stack.postgres_host_for_connect}, "
        f"connect_port: {stack.postgres_port_for_connect}}}\n"
        f"tables: [public.spans]\n"
        f"snapshot_mode: initial\n"  # rows 1 and 2 are read by the snapshot, 3-5 streamed
        f"heartbeat: {{interval: 2s}}\n"
        f"staging_topics: {{partitions: 1, retention: 1d}}\n"
    )
    yield src
    remove_source(stack, src.name, src.database)


def _records(
    stack: StackEndpoints, topic: str, count: int, timeout: float = 120
) -> list[tuple[bytes, bytes]]:
    consumer = Consumer({
        "bootstrap.servers": stack.bootstrap_servers, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
        "enable.auto.commit": False, "isolation.level": "read_committed",
    })  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None or message.value() is None:
                continue
            found.append((message.value(), message.key()))
    finally:
        consumer.close()
    assert len(found) == count, f"{len(found)} of {count} records on {topic} within {timeout} s"
    return found


def test_infinite_dates_and_timestamps_decode_to_the_sentinels(source: Source) -> None:
    registered = source.cli("source", "register", source.name)
    assert registered.exit_code == 0, registered.output
    source.sql(STREAMED)
    topic = f"staging.{source.name}.public.spans"
    decoder = ConnectJsonDecoder(schemas_enabled=True)
    rows: dict[int, Any] = {}
    ops: dict[int, str] = {}
    for value, key in _records(source.stack, topic, 5):
        change = decoder.decode(value, key, topic)
        # The rows are raw; a mapping reads a column through its table version's converter.
        row = {column: change.table.converter(column)(raw) for column, raw in change.after.items()}
        rows[row["id"]] = row
        ops[row["id"]] = change.op
    assert ops == {1: "r", 2: "r", 3: "c", 4: "c", 5: "c"}
    for row_id in (1, 3):
        assert [rows[row_id][c] for c in COLUMNS] == [INFINITY] * 4, (row_id, rows[row_id])
    for row_id in (2, 4):
        assert [rows[row_id][c] for c in COLUMNS] == [NEG_INFINITY] * 4, (row_id, rows[row_id])
    assert [rows[5][c] for c in COLUMNS] == [
        dt.date(2024, 2, 29),
        dt.datetime(2024, 2, 29, 12, 0, 0, 500000),
        dt.datetime(2024, 2, 29, 12, 0, 0, 500000),
        dt.datetime(2024, 2, 29, 12, 0, 0, 123456, tzinfo=dt.UTC),
    ]
