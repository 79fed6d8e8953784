"""From a live table to a curated event, on the real stack (#15 acceptance): `eventbus mapping new`
on a table with every PostgreSQL type the decoder supports, the generated mapping validates and its
test passes, and after `source register` a row change goes through Debezium and the transformer and
is read back, Avro-decoded by confluent-kafka's own deserializer, with exact values."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from typer.testing import CliRunner

from eventbus.cli.main import app
from eventbus.sources.table_descriptions import drift
from tests.integration.sources.teardown import remove_source
from tests.integration.transformer.support import TransformerProcess, apply_topics
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack

TABLE = """
create type mood as enum ('calm', 'busy', 'on fire');
create table public.everything (
  id bigint primary key,
  ref uuid not null,
  mood mood not null,
  happened_at timestamptz not null,
  local_at timestamp not null,
  local_ms timestamp(3),
  born date,
  opens time not null,
  took interval not null,
  amount numeric(8,2) not null,
  ratio numeric,
  payload json,
  doc jsonb,
  tags text[] not null,
  counts int[],
  small smallint,
  flag boolean not null,
  score double precision,
  code varchar(5),
  note text,
  blob bytea
);
comment on column public.everything.amount is 'an amount in dollars';
"""

ROW = """
insert into public.everything values (
  7, '9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44', 'on fire', '2024-02-29 12:34:56.789012+00',
  '1969-07-20 20:17:40.123456', '1969-07-20 20:17:40.5', '2024-02-29', '12:34:56.789012',
  '1 year 2 days 03:04:05.5', 123456.78, 123456789.0123456789, '{"a":1}', '{"b": 2}', '{x,y}',
  '{1,NULL,3}', 7, true, 2.5, 'abc', null, '\\x0102')
"""


class Source:
    def __init__(self, stack: StackEndpoints, root: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.stack = stack
        self.name = f"it_new_{suffix}"
        self.database = f"it_new_{suffix}"
        self.root = root
        self.mappings = root / "mappings"
        self.env = {
            "IT_NEW_PW": stack.postgres_password,
            "EVENTBUS_CONNECT_URL": stack.connect_url,
            "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap_servers,
            "EVENTBUS_CONNECTORS_DIR": str(root / "connectors"),
            "EVENTBUS_MAPPINGS_DIR": str(self.mappings),
        }

    def cli(self, *args: str) -> Any:
        result = CliRunner().invoke(app, list(args), env=self.env)
        assert "Traceback" not in result.output, result.output
        return result

    def sql(self, statement: str) -> None:
        with psycopg.connect(self.stack.libpq_dsn(self.database), autocommit=True) as connection:
            connection.execute(statement)


@pytest.fixture
def source(stack: StackEndpoints, tmp_path: Path) -> Iterator[Source]:
    src = Source(stack, tmp_path)
    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        admin.execute(f'create database "{src.database}"')
    src.sql(TABLE)
    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / f"{src.name}.yaml").write_text(
        f"database:\n"
        f"  host: {stack.postgres_host}\n"
        f"  port: {stack.postgres_port}\n"
        f"  dbname: {src.database}\n"
        f"  user: {stack.postgres_user}\n"
        f"  password: {{env: IT_NEW_PW}}\n"
        f"  connect_host: {stack.postgres_host_for_connect}\n"
        f"  connect_port: {stack.postgres_port_for_connect}\n"
        f"tables: [public.everything]\n"
        f"snapshot_mode: no_data\n"
        f"heartbeat: {{interval: 2s}}\n"
        f"staging_topics: {{partitions: 1, retention: 1d}}\n"
    )
    yield src
    remove_source(stack, src.name, src.database)


def _read_one(stack: StackEndpoints, topic: str, timeout: float = 120) -> tuple[dict, dict]:
    """The first committed record of `topic`, key and value decoded by confluent-kafka's deserializer."""
    registry = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    conf = {"subject.name.strategy": topic_subject_name_strategy}
    key_decoder, value_decoder = AvroDeserializer(registry, conf=conf), AvroDeserializer(registry, conf=conf)
    consumer = Consumer({
        "bootstrap.servers": stack.bootstrap_servers, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
        "enable.auto.commit": False, "isolation.level": "read_committed",
    })  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            key = key_decoder(message.key(), SerializationContext(topic, MessageField.KEY))
            value = value_decoder(message.value(), SerializationContext(topic, MessageField.VALUE))
            return key, value
    finally:
        consumer.close()
    raise AssertionError(f"no event on {topic} within {timeout} s")


def _latest_change(stack: StackEndpoints, topic: str) -> Any:
    """The last record of the one-partition `topic`, decoded by the service's decoder."""
    from eventbus.debezium.connect_json import ConnectJsonDecoder

    consumer = Consumer({
        "bootstrap.servers": stack.bootstrap_servers, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
        "enable.auto.commit": False, "isolation.level": "read_committed", "enable.partition.eof": True,
    })  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, 0)])
    last = None
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if last is not None:
                    break  # the end of the partition, after its records
                continue
            if message.value() is not None:
                last = message
    finally:
        consumer.close()
    if last is None:
        return None
    return ConnectJsonDecoder().decode(last.value(), last.key(), topic)


def test_mapping_new_on_a_live_table_publishes_the_exact_event(source: Source, tmp_path: Path) -> None:
    topic = f"{source.name}_changed"  # the mapping's name and its topic, new for every run
    created = source.cli("mapping", "new", topic, "--source", source.name, "--table", "public.everything")
    assert created.exit_code == 0, created.output
    folder = source.mappings / source.name
    assert "valid, 1 test(s) pass" in created.output
    assert source.cli("mapping", "validate", str(folder)).exit_code == 0
    tested = source.cli("mapping", "test", str(folder))
    assert tested.exit_code == 0 and "1 passed, 0 failed" in tested.output, tested.output

    checked = source.cli("source", "check", source.name, "--fix")
    assert checked.exit_code == 0, checked.output
    assert "description of public.everything is current" in checked.output
    registered = source.cli("source", "register", source.name)
    assert registered.exit_code == 0, registered.output

    settings = {
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": source.stack.bootstrap_servers,
        "EVENTBUS_REGISTRY__URL": source.stack.registry_url,
        "EVENTBUS_GROUP_ID": f"it-new-{source.name}",
        "EVENTBUS_INSTANCE_ID": "a",
        "EVENTBUS_HTTP__PORT": "0",
        "EVENTBUS_HTTP__HOST": "127.0.0.1",
    }
    apply_topics(folder, settings)  # the curated and dead-letter topics, as a team provisions them
    transformer = TransformerProcess(folder, tmp_path / "transformer.log", settings).wait_ready(timeout=120)
    try:
        source.sql(ROW)
        key, value = _read_one(source.stack, topic)
    finally:
        transformer.terminate()

    assert key == {"id": 7}
    assert value == {
        "id": 7,
        "ref": uuid.UUID("9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44"),
        "mood": "on fire",
        "happened_at": dt.datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=dt.UTC),
        "local_at": dt.datetime(1969, 7, 20, 20, 17, 40, 123456),
        "local_ms": dt.datetime(1969, 7, 20, 20, 17, 40, 500000),
        "born": dt.date(2024, 2, 29),
        "opens": dt.time(12, 34, 56, 789012),
        "took": ((365 + 2) * 86_400 + 6 * 3600 + 11_045) * 1_000_000 + 500_000,  # a year: 365.25 days
        "amount": Decimal("123456.78"),
        "ratio": "123456789.0123456789",
        "payload": '{"a":1}',
        "doc": '{"b": 2}',
        "tags": ["x", "y"],
        "counts": [1, None, 3],
        "small": 7,
        "flag": True,
        "score": 2.5,
        "code": "abc",
        "note": None,
        "blob": b"\x01\x02",
    }

    # Without database access, the staging record gives the same description (no drift)...
    copied = tmp_path / "from_topic"
    from_topic = source.cli(
        "mapping", "tables", "--source", source.name, "--from-topic",
        f"staging.{source.name}.public.everything", str(copied),
    )  # fmt: skip
    assert from_topic.exit_code == 0, from_topic.output
    generated = orjson.loads((folder / "tables" / "public.everything.json").read_bytes())
    recorded = orjson.loads((copied / "tables" / "public.everything.json").read_bytes())
    assert drift(generated, recorded) == []
    # ...and a column added later is drift that source check warns about, until refreshed.
    source.sql("alter table public.everything add column extra integer")
    drifted = source.cli("source", "check", source.name)
    assert drifted.exit_code == 0 and "column extra added: int4 (int32)" in drifted.output, drifted.output
    refreshed = source.cli("mapping", "tables", "--source", source.name)
    assert "column extra added: int4 (int32)" in refreshed.output, refreshed.output
    assert "description of public.everything is current" in source.cli("source", "check", source.name).output
    # Types SQLAlchemy does not know (xml, point) and arrays of less common elements are described as
    # Debezium writes them: after a row with them, the staging record's description is the same.
    # Domains are described as their base type with its modifier (SQLAlchemy drops it: numeric(8,3)
    # was a numeric of any scale, timestamptz(3) a timestamp); a generated column is left out, with
    # a note (logical decoding does not send it).
    source.sql("create domain amt as numeric(8,3); create domain at_ms as timestamptz(3); "
               "create domain code5 as varchar(5)")  # fmt: skip
    source.sql("alter table public.everything add column doc_xml xml, add column spot point, "
               "add column stamps timestamptz[], add column ratios numeric[], add column refs uuid[], "
               "add column days date[], add column shape polygon, add column dom_amount amt, "
               "add column dom_at at_ms, add column dom_code code5, "
               "add column twice bigint generated always as (id * 2) stored")  # fmt: skip
    refreshed = source.cli("mapping", "tables", "--source", source.name)
    assert refreshed.exit_code == 0, refreshed.output
    not_described = "column shape of public.everything (polygon: polygon) is not in the description"
    assert not_described in refreshed.output, refreshed.output
    assert f"--from-topic staging.{source.name}.public.everything" in refreshed.output
    generated_note = "column twice of public.everything (int8: a generated column, whose values logical"
    assert generated_note in refreshed.output, refreshed.output
    source.sql(ROW.replace("7, ", "8, ", 1).rstrip().rstrip(")") + ", null, '<a>b</a>', '(1.5,-2)', "
               "'{2024-02-29 12:00:00+00,NULL}', '{1.5,NULL,-2}', '{9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44}', "
               "'{2024-02-29}', null, 1.5, '2024-02-29 12:00:00.123+00', 'ab', default)")  # fmt: skip
    again = tmp_path / "from_topic_again"
    deadline = time.monotonic() + 60
    while True:  # until the row with the new columns is the topic's latest record
        taken = source.cli("mapping", "tables", "--source", source.name, "--from-topic",
                           f"staging.{source.name}.public.everything", str(again))  # fmt: skip
        recorded = orjson.loads((again / "tables" / "public.everything.json").read_bytes())
        if "spot" in str(recorded) or time.monotonic() > deadline:
            break
        time.sleep(1)
    generated = orjson.loads((folder / "tables" / "public.everything.json").read_bytes())
    assert taken.exit_code == 0 and "spot" in str(recorded), taken.output
    # Only the polygon may differ: the database alone cannot say how Debezium writes it (if at all)
    differences = drift(generated, recorded)
    assert [line for line in differences if not line.startswith("column shape ")] == [], differences
    # ...and the service's decoder reads their values
    staged = _latest_change(source.stack, f"staging.{source.name}.public.everything")
    assert staged is not None and staged.after is not None

    def read(name: str) -> Any:  # as a mapping reads the column: its raw value through its converter
        return staged.table.converter(name)(staged.after[name])

    assert read("dom_amount") == Decimal("1.500") and read("dom_code") == "ab"
    assert read("dom_at") == dt.datetime(2024, 2, 29, 12, 0, 0, 123000, tzinfo=dt.UTC)
    assert "twice" not in staged.after
    assert {name: read(name) for name in ("doc_xml", "stamps", "ratios", "refs", "days")} == {
        "doc_xml": "<a>b</a>",
        "stamps": [dt.datetime(2024, 2, 29, 12, tzinfo=dt.UTC), None],
        "ratios": [Decimal("1.5"), None, Decimal("-2")],
        "refs": [uuid.UUID("9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44")],
        "days": [dt.date(2024, 2, 29)],
    }
    assert (read("spot")["x"], read("spot")["y"]) == (1.5, -2.0)
    # A table that is not there is one message and exit code 2, no files written
    missing = source.cli("mapping", "new", "nothing", "--source", source.name, "--table", "public.nothing")
    assert missing.exit_code == 2 and "table public.nothing not found" in missing.output, missing.output
    assert not (folder / "nothing.yaml").exists()


def test_a_name_in_another_case_and_a_partition_of_a_captured_table_are_named(
    source: Source, tmp_path: Path
) -> None:
    """`ops.readings` for "Ops"."Readings" was only "not found", with a psql hint that lists nothing
    (psql folds the pattern to lower case); a partition captured beside its partitioned table
    passed the check, and `mapping new` of it advised adding it to the tables, while its changes only
    ever reach the partitioned table's staging topic (publish_via_partition_root)."""
    source.sql(
        'create schema "Ops"; '
        'create table "Ops"."Readings" (id int, at date, primary key (id, at)) partition by range (at); '
        'create table "Ops".readings_2024 partition of "Ops"."Readings" '
        "for values from ('2024-01-01') to ('2025-01-01')"
    )
    definition = tmp_path / "connectors" / f"{source.name}.yaml"
    definition.write_text(
        definition.read_text().replace(
            "tables: [public.everything]", "tables: [Ops.Readings, Ops.readings_2024, ops.readings]"
        )
    )
    checked = source.cli("source", "check", source.name)
    assert checked.exit_code == 1, checked.output
    assert "table ops.readings does not exist" in checked.output
    assert "did you mean Ops.Readings? Names are case-sensitive" in checked.output
    assert "Ops.readings_2024 is a partition of Ops.Readings, which is captured too" in checked.output
    new = ("mapping", "new", "readings", "--source", source.name, "--table")
    wrong_case = source.cli(*new, "ops.readings", "--dir", str(tmp_path / "a"))
    assert wrong_case.exit_code == 2 and "did you mean Ops.Readings?" in wrong_case.output
    partition = source.cli(*new, "Ops.readings_2024", "--dir", str(tmp_path / "b"))
    assert f"is a partition of Ops.Readings, which source {source.name} captures" in partition.output
