"""The PostgreSQL types a schema nobody here has seen may hold, through the real stack: `"char"`,
arrays of timestamp(3)/timestamptz/numeric(p,s)/enum/date/uuid/time/bytea, bit(n), bit varying(n),
numeric(p,-s) (PostgreSQL 15+) and numeric(p,s>p) are published exactly by the mapping `mapping new`
scaffolds; `name`, an unbounded bit varying and interval[] are left out with the reason; a domain
over an enum (which fails Debezium's task) fails `source check` until its fix is applied."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import psycopg
import pytest

from eventbus.sources.table_descriptions import drift
from tests.integration.sources.teardown import remove_source
from tests.integration.sources.test_mapping_new import Source, _read_one
from tests.integration.transformer.support import TransformerProcess, apply_topics
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack

TABLE = """
create type tone as enum ('calm', 'busy', 'on fire');
create table public.odd (
  id bigint primary key,
  c "char",
  n name,
  stamps timestamp(3)[],
  moments timestamptz[],
  amounts numeric(8,2)[],
  tones tone[],
  days date[],
  refs uuid[],
  times time[],
  blobs bytea[],
  spans interval[],
  b5 bit(5),
  vb10 bit varying(10),
  vb bit varying,
  hundreds numeric(5,-2),
  tiny numeric(3,5),
  email text
);
"""

ROW = """
insert into public.odd values (7, 'x', 'some_name', '{"2024-02-29 12:00:00.5",NULL}',
  '{"2024-02-29 12:00:00.123456+00"}', '{123456.78,NULL}', '{calm,"on fire"}', '{2024-02-29,NULL}',
  '{9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44}', '{12:34:56.789012}', '{"\\\\x0102"}', '{"1 day"}',
  B'10110', B'101', B'1011', 1234567, 0.00012, 'a@example.org')
"""


@pytest.fixture
def source(stack: StackEndpoints, tmp_path: Path) -> Iterator[Source]:
    src = Source(stack, tmp_path)
    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        if admin.info.server_version < 150000:
            pytest.skip("numeric(p,-s) needs PostgreSQL 15")
        admin.execute(f'create database "{src.database}"')
    src.sql(TABLE)
    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / f"{src.name}.yaml").write_text(
        f"database: {{host: {stack.postgres_host}, port: {stack.postgres_port}, dbname: {src.database}, "
        f"user: {stack.postgres_user}, password: {{env: IT_NEW_PW}}, "
        f"connect_host: {stack.postgres_host_for_connect}, "
        f"connect_port: {stack.postgres_port_for_connect}}}\n"
        f"tables: [public.odd]\n"
        f"snapshot_mode: no_data\n"
        f"heartbeat: {{interval: 2s}}\n"
        f"staging_topics: {{partitions: 1, retention: 1d}}\n"
    )
    yield src
    remove_source(stack, src.name, src.database)


def test_unusual_types_are_published_exactly_or_left_out_with_the_reason(
    source: Source, tmp_path: Path
) -> None:
    topic = f"{source.name}_odd"
    created = source.cli("mapping", "new", topic, "--source", source.name, "--table", "public.odd")
    assert created.exit_code == 0 and "valid, 1 test(s) pass" in created.output, created.output
    folder = source.mappings / source.name
    text = (folder / f"{topic}.yaml").read_text()
    for left_out in (
        "column 'n' (name) left out",
        "column 'vb' (bit string, up to 2147483647 bits)",
        "column 'spans' (interval[]) left out: Debezium sends no arrays of interval",
    ):
        assert left_out in text.replace("\n#   ", " "), left_out
    assert "column 'n' (name) left out" in created.output and "column 'vb' (bit string" in created.output
    assert "column spans of public.odd (interval[]: Debezium sends no arrays of interval" in created.output
    assert "#   email: pii" in text and "email look personal" in created.output

    # A domain over an enum anywhere in the database would fail the connector's task at start
    source.sql("create domain tone_d as tone; create table public.other (id int primary key, t tone_d)")
    checked = source.cli("source", "check", source.name)
    assert checked.exit_code == 1 and "domain public.tone_d is over enum public.tone" in checked.output
    source.sql("alter table public.other alter column t type public.tone using t::public.tone; "
               "drop domain public.tone_d")  # fmt: skip
    checked = source.cli("source", "check", source.name, "--fix")
    assert checked.exit_code == 0, checked.output
    assert "column n of public.odd is of type name" in checked.output  # a warning
    registered = source.cli("source", "register", source.name)
    assert registered.exit_code == 0, registered.output

    settings = {
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": source.stack.bootstrap_servers,
        "EVENTBUS_REGISTRY__URL": source.stack.registry_url,
        "EVENTBUS_GROUP_ID": f"it-odd-{source.name}",
        "EVENTBUS_INSTANCE_ID": "a",
        "EVENTBUS_HTTP__PORT": "0",
        "EVENTBUS_HTTP__HOST": "127.0.0.1",
    }
    apply_topics(folder, settings)
    transformer = TransformerProcess(folder, tmp_path / "transformer.log", settings).wait_ready(timeout=120)
    try:
        source.sql(ROW)
        key, value = _read_one(source.stack, topic)
    finally:
        transformer.terminate()
    assert key == {"id": 7}
    assert value == {
        "id": 7,
        "c": "x",
        "stamps": [dt.datetime(2024, 2, 29, 12, 0, 0, 500000), None],
        "moments": [dt.datetime(2024, 2, 29, 12, 0, 0, 123456, tzinfo=dt.UTC)],
        "amounts": [Decimal("123456.78"), None],
        "tones": ["calm", "on fire"],
        "days": [dt.date(2024, 2, 29), None],
        "refs": [uuid.UUID("9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44")],
        "times": [dt.time(12, 34, 56, 789000)],  # Debezium drops a time[] element's microseconds
        "blobs": [b"\x01\x02"],
        "b5": 0b10110,
        "vb10": 0b101,
        "hundreds": Decimal(1234600),  # numeric(5,-2) rounds to hundreds
        "tiny": Decimal("0.00012"),
        "email": "a@example.org",
    }
    # The description made from the column types is the one Debezium wrote
    copied = tmp_path / "from_topic"
    from_topic = source.cli("mapping", "tables", "--source", source.name, "--from-topic",
                            f"staging.{source.name}.public.odd", str(copied))  # fmt: skip
    assert from_topic.exit_code == 0, from_topic.output
    generated = orjson.loads((folder / "tables" / "public.odd.json").read_bytes())
    recorded = orjson.loads((copied / "tables" / "public.odd.json").read_bytes())
    assert drift(generated, recorded) == []
