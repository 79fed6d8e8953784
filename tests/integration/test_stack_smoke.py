"""Smoke tests of the real stack: a row change travels PostgreSQL → Debezium → Kafka; the registry
stores Avro schemas; the broker supports transactions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import orjson
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tests.support.stack import StackEndpoints, drop_database

pytestmark = pytest.mark.stack


@pytest.fixture
def smoke_database(stack: StackEndpoints) -> Iterator[str]:
    """A fresh database with one table whose `before` images carry every column."""
    name = f"smoke_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    with psycopg.connect(stack.libpq_dsn(name), autocommit=True) as conn:
        conn.execute(
            "create table public.items (id bigint primary key, status text not null, "
            "amount numeric(12,2), updated_at timestamp)"
        )
        conn.execute("alter table public.items replica identity full")
        conn.execute("create publication eventbus_smoke for table public.items")
    yield name
    drop_database(stack, name)


def _wait_running(client: httpx.Client, connector: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/connectors/{connector}/status")
        if response.status_code == 200:
            status = response.json()
            tasks = status.get("tasks", [])
            if (
                status["connector"]["state"] == "RUNNING"
                and tasks
                and all(t["state"] == "RUNNING" for t in tasks)
            ):
                return status
            failed = [t for t in tasks if t["state"] == "FAILED"]
            if failed:
                pytest.fail(f"connector task failed: {failed[0].get('trace', '')[:2000]}")
        time.sleep(0.5)
    pytest.fail(f"connector {connector} not RUNNING after {timeout}s: {status}")


def _consume(stack: StackEndpoints, topic: str, count: int, timeout: float = 60) -> list[dict]:
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": f"smoke-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            if message.value() is not None:
                records.append(orjson.loads(message.value()))
    finally:
        consumer.close()
    return records


def test_row_change_reaches_staging_topic(stack: StackEndpoints, smoke_database: str) -> None:
    connector = f"smoke-{smoke_database}"
    prefix = f"smoke{smoke_database[-8:]}"
    config = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "database.hostname": stack.postgres_host_for_connect,
        "database.port": str(stack.postgres_port_for_connect),
        "database.user": stack.postgres_user,
        "database.password": stack.postgres_password,
        "database.dbname": smoke_database,
        "topic.prefix": prefix,
        "table.include.list": "public.items",
        "publication.name": "eventbus_smoke",
        "publication.autocreate.mode": "disabled",
        "slot.name": f"slot_{smoke_database}",
        "snapshot.mode": "no_data",
        "exactly.once.support": "required",
        "decimal.handling.mode": "precise",
        "time.precision.mode": "adaptive_time_microseconds",
        # The broker creates no topic by itself (as on the bus): Connect creates the staging topic.
        "topic.creation.default.partitions": "1",
        "topic.creation.default.replication.factor": "-1",
    }
    with httpx.Client(base_url=stack.connect_url, timeout=30) as client:
        response = client.put(f"/connectors/{connector}/config", json=config)
        assert response.status_code in (200, 201), response.text
        try:
            _wait_running(client, connector)
            # Streaming starts once the slot exists; give the task a moment to reach it.
            deadline = time.monotonic() + 30
            with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
                while time.monotonic() < deadline:
                    row = admin.execute(
                        "select active from pg_replication_slots where slot_name = %s",
                        (f"slot_{smoke_database}",),
                    ).fetchone()
                    if row and row[0]:
                        break
                    time.sleep(0.5)
            with psycopg.connect(stack.libpq_dsn(smoke_database), autocommit=True) as conn:
                conn.execute(
                    "insert into public.items values (7, 'RECEIVED', -12.50, '1969-07-20 20:17:40.123456')"
                )
                conn.execute("update public.items set status = 'DECISION_MADE' where id = 7")
            records = _consume(stack, f"{prefix}.public.items", 2)
        finally:
            client.delete(f"/connectors/{connector}")

    assert len(records) == 2, records
    insert, update = (r["payload"] for r in records)
    assert insert["op"] == "c"
    assert insert["before"] is None
    assert insert["after"]["id"] == 7
    assert insert["after"]["status"] == "RECEIVED"
    assert update["op"] == "u"
    assert update["before"]["status"] == "RECEIVED"  # REPLICA IDENTITY FULL: the whole old row
    assert update["after"]["status"] == "DECISION_MADE"
    source = update["source"]
    assert source["connector"] == "postgresql"
    assert source["name"] == prefix
    assert source["db"] == smoke_database
    assert (source["schema"], source["table"]) == ("public", "items")
    assert source["lsn"] > 0 and source["txId"] > 0
    assert update["source"]["lsn"] > insert["source"]["lsn"]
    # The logical types travel with every record (schemas enabled): the decimal's scale and the
    # microsecond timestamp are declared in the schema part.
    fields = {f["field"]: f for f in records[0]["schema"]["fields"]}
    after_fields = {f["field"]: f for f in fields["after"]["fields"]}
    assert after_fields["amount"]["name"] == "org.apache.kafka.connect.data.Decimal"
    assert after_fields["amount"]["parameters"]["scale"] == "2"
    assert after_fields["updated_at"]["name"] == "io.debezium.time.MicroTimestamp"
    assert insert["after"]["updated_at"] < 0  # before 1970: negative epoch micros


def test_registry_stores_and_returns_avro_schema(stack: StackEndpoints) -> None:
    client = SchemaRegistryClient({"url": stack.registry_url})
    subject = f"smoke_{uuid.uuid4().hex[:8]}-value"
    schema_str = orjson.dumps(
        {
            "type": "record",
            "name": "SmokeEvent",
            "namespace": "eventbus.smoke",
            "fields": [{"name": "claim_id", "type": "long"}, {"name": "status", "type": "string"}],
        }
    ).decode()
    schema_id = client.register_schema(subject, Schema(schema_str, "AVRO"))
    fetched = client.get_schema(schema_id)
    assert fetched.schema_type == "AVRO"
    assert orjson.loads(fetched.schema_str)["fields"][1]["name"] == "status"
    latest = client.get_latest_version(subject)
    assert latest.schema_id == schema_id
    assert client.register_schema(subject, Schema(schema_str, "AVRO")) == schema_id  # idempotent


def test_broker_transactions_hide_aborted_records(stack: StackEndpoints) -> None:
    topic = f"smoke-tx-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})  # no auto-creation on the broker
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "transactional.id": topic})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"1", value=b"committed")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"2", value=b"aborted")
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"3", value=b"also committed")
    producer.commit_transaction(30)

    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": f"smoke-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(seen) < 2 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().fatal():
                    raise KafkaException(message.error())
                continue
            seen.append(message.value())
        # Anything aborted would arrive before the last committed record; poll a little longer.
        extra = consumer.poll(1.0)
        if extra is not None and not extra.error():
            seen.append(extra.value())
    finally:
        consumer.close()
    assert seen == [b"committed", b"also committed"]
