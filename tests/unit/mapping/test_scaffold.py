"""`eventbus mapping new` without a database: the table description built from column types is the one
Debezium writes (compared with a record Debezium 3.6.1 wrote for the same table on the local stack),
and the starter mapping scaffolded from it validates, passes its test and maps that record exactly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import postgresql as pg

from eventbus.debezium.pg_types import PgColumn, key_description, table_description
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.scaffold import ScaffoldError, scaffold_mapping
from eventbus.mapping.testing import run_records, test_mapping_file
from eventbus.sources.reflection import pg_column
from eventbus.sources.table_descriptions import drift

RECORD = Path(__file__).resolve().parents[2] / "fixtures" / "debezium" / "everything_insert.jsonl"

# public.everything as created for the recording (tests/integration/sources/test_mapping_new.py
# creates the same table); one row inserted, the record captured from its staging topic.
COLUMNS = [
    PgColumn("id", "int8", nullable=False),
    PgColumn("ref", "uuid", nullable=False),
    PgColumn("mood", "mood", nullable=False, labels=("calm", "busy", "on fire")),
    PgColumn("happened_at", "timestamptz", nullable=False),
    PgColumn("local_at", "timestamp", nullable=False),
    PgColumn("local_ms", "timestamp", time_precision=3),
    PgColumn("born", "date"),
    PgColumn("opens", "time", nullable=False),
    PgColumn("took", "interval", nullable=False),
    PgColumn("amount", "numeric", nullable=False, length=8, scale=2, comment="an amount in dollars"),
    PgColumn("ratio", "numeric"),
    PgColumn("payload", "json"),
    PgColumn("doc", "jsonb"),
    PgColumn("tags", "_text", nullable=False, element=PgColumn("tags", "text")),
    PgColumn("counts", "_int4", element=PgColumn("counts", "int4")),
    PgColumn("small", "int2"),
    PgColumn("flag", "bool", nullable=False),
    PgColumn("score", "float8"),
    PgColumn("code", "varchar", length=5),
    PgColumn("note", "text"),
    PgColumn("blob", "bytea"),
]


def _recorded() -> dict:
    return orjson.loads(RECORD.read_bytes())


def test_the_description_from_column_types_is_what_debezium_writes() -> None:
    recorded = _recorded()
    envelope, skipped = table_description("staging.typed", "public.everything", COLUMNS)
    assert skipped == []
    assert drift(envelope, recorded["value"]["schema"]) == []
    key = key_description("staging.typed", "public.everything", COLUMNS[:1])
    assert drift(key, recorded["key"]["schema"]) == []
    # drift does see a change, column by column
    changed = [*COLUMNS[:-1], PgColumn("blob", "text")]
    assert drift(table_description("staging.typed", "public.everything", changed)[0], envelope) == [
        "column blob: text (string) -> bytea (bytes)"
    ]


def test_drift_says_what_changed_when_the_types_read_the_same() -> None:
    """A label added to an enum (or a numeric's scale changed) was reported as
    `column mood: mood (string io.debezium.data.Enum) not null -> mood (string io.debezium.data.Enum)
    not null`: the same text on both sides, so the author could not tell what changed."""
    envelope, _ = table_description("staging.typed", "public.everything", COLUMNS)
    more = [
        PgColumn("mood", "mood", nullable=False, labels=("calm", "busy", "on fire", "asleep"))
        if column.name == "mood"
        else PgColumn("amount", "numeric", nullable=False, length=8, scale=3)
        if column.name == "amount"
        else column
        for column in COLUMNS
    ]
    lines = drift(envelope, table_description("staging.typed", "public.everything", more)[0])
    assert "column mood: mood (string io.debezium.data.Enum) not null: enum labels added: asleep" in lines
    assert (
        "column amount: numeric(8,2) (bytes org.apache.kafka.connect.data.Decimal) not null -> numeric(8,3)"
        in (next(line for line in lines if line.startswith("column amount:")))
    )
    # descriptions taken from staging records carry no PostgreSQL types: the parameter says it
    untyped = orjson.loads(orjson.dumps(envelope).replace(b'"__debezium.source.column.type"', b'"x"'))
    untyped_more = orjson.loads(
        orjson.dumps(table_description("staging.typed", "public.everything", more)[0]).replace(
            b'"__debezium.source.column.type"', b'"x"'
        )
    )
    for side in (untyped, untyped_more):
        for row in side["fields"][:2]:
            for column in row["fields"]:
                column.get("parameters", {}).pop("x", None)
    amount = next(line for line in drift(untyped, untyped_more) if line.startswith("column amount:"))
    assert amount == "column amount: bytes org.apache.kafka.connect.data.Decimal not null: scale 2 -> 3"


def _scaffold(folder: Path, **options: object) -> Path:
    envelope, _ = table_description("staging.typed", "public.everything", COLUMNS)
    scaffold = scaffold_mapping(
        "everything_changed",
        connector="typed",
        table="public.everything",
        description=envelope,
        key_columns=("id",),
        **options,  # type: ignore[arg-type]
    )
    _write(folder, "public.everything", envelope, scaffold.files)
    return folder / "everything_changed.yaml"


def _write(folder: Path, table: str, envelope: object, files: dict[str, str]) -> None:
    """A scaffold's files and its table's description, as `mapping new` writes them."""
    (folder / "tables").mkdir(parents=True)
    (folder / "tables" / f"{table}.json").write_bytes(orjson.dumps(envelope))
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)


def test_the_starter_mapping_validates_passes_its_test_and_maps_a_real_record(tmp_path: Path) -> None:
    mapping = _scaffold(tmp_path)
    compiled = compile_mapping(load_mapping(mapping))
    results = test_mapping_file(mapping)
    assert [(r.name, r.passed, r.diff) for r in results] == [
        ("an insert of a public.everything row is published with every column", True, [])
    ]
    outcome = run_records(compiled, RECORD.read_text().splitlines())
    assert outcome.dead_letters == []
    [event] = outcome.events
    assert event["key"] == {"id": 1}
    value = event["value"]
    assert value["mood"] == "on fire" and value["flag"] is True and value["score"] == 2.5
    assert value["local_at"] == -14182939876544  # 1969-07-20T20:17:40.123456, before the epoch
    assert value["local_ms"] == -14182939500000
    assert value["born"] == 19782 and value["opens"] == 45296789012  # 2024-02-29, 12:34:56.789012
    assert value["took"] == 31741445500000  # '1 year 2 days 03:04:05.5': 365.25 + 2 days + 11045.5 s
    assert value["amount"] == "123456.78" and value["ratio"] == "123456789.0123456789"
    assert value["tags"] == ["x", "y"] and value["counts"] == [1, None, 3]
    assert value["payload"] == '{"a":1}' and value["blob"] == "\x01\x02"


def test_the_avro_types_are_the_exact_logical_types(tmp_path: Path) -> None:
    _scaffold(tmp_path)
    schema = orjson.loads((tmp_path / "schemas" / "everything_changed.avsc").read_bytes())
    types = {field["name"]: field["type"] for field in schema["fields"]}
    assert types["amount"] == {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2}
    assert types["happened_at"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert types["local_at"] == {"type": "long", "logicalType": "local-timestamp-micros"}
    assert types["opens"] == {"type": "long", "logicalType": "time-micros"}
    assert types["born"] == ["null", {"type": "int", "logicalType": "date"}]
    assert types["ref"] == {"type": "string", "logicalType": "uuid"}
    assert types["ratio"] == ["null", "string"] and types["took"] == "long" and types["mood"] == "string"
    assert types["tags"] == {"type": "array", "items": ["null", "string"]}
    docs = {field["name"]: field.get("doc") for field in schema["fields"]}
    assert docs["amount"] == "an amount in dollars" and docs["mood"] == "one of: calm, busy, on fire"
    key = orjson.loads((tmp_path / "schemas" / "everything_changed_key.avsc").read_bytes())
    assert key["fields"] == [{"name": "id", "type": "long"}]


def test_an_update_mapping_tests_an_update(tmp_path: Path) -> None:
    mapping = _scaffold(tmp_path, operations=("update",))
    assert "on: update\n" in mapping.read_text() and "      op: update\n" in mapping.read_text()
    assert all(result.passed for result in test_mapping_file(mapping))


def test_a_delete_mapping_reads_the_before_image(tmp_path: Path) -> None:
    mapping = _scaffold(tmp_path, operations=("delete",))
    assert "    id: before.id\n" in mapping.read_text()
    assert all(result.passed for result in test_mapping_file(mapping))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"key_columns": ()},
            "public.everything has no primary key: name the key columns with --key COL[,COL]",
        ),
        ({"key_columns": ("nope",)}, "key column(s) nope not in public.everything"),
        ({"operations": ("insert", "delete")}, "a delete has no `after` row"),
        ({"key_columns": ("id", "born")}, "key column(s) born of public.everything may be null"),
        ({"operations": ("upsert",)}, "--on upsert: operations are insert, update, delete, snapshot"),
        ({"name": "Everything-Changed"}, "mapping name 'Everything-Changed': use snake_case"),
    ],
)
def test_what_cannot_be_scaffolded_is_said(options: dict, message: str) -> None:
    envelope, _ = table_description("staging.typed", "public.everything", COLUMNS)
    arguments: dict = {
        "name": "everything_changed",
        "connector": "typed",
        "table": "public.everything",
        "description": envelope,
        "key_columns": ("id",),
    }
    arguments.update(options)
    name = arguments.pop("name")
    with pytest.raises(
        ScaffoldError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        scaffold_mapping(name, **arguments)


@pytest.mark.parametrize(
    ("sql_type", "described"),
    [
        (pg.NUMERIC(8, 2), "numeric(8,2)"),
        (pg.NUMERIC(), "numeric"),
        (pg.TIMESTAMP(timezone=True), "timestamptz"),
        (pg.TIMESTAMP(precision=3), "timestamp(3)"),
        (pg.TIME(), "time"),
        (pg.INTERVAL(), "interval"),
        (pg.ARRAY(sqltypes.TEXT()), "text[]"),
        (pg.ENUM("a", "b", name="mood"), "mood"),
        (pg.DOUBLE_PRECISION(), "float8"),
        (pg.REAL(), "float4"),
        (sqltypes.BIGINT(), "int8"),
        (sqltypes.SMALLINT(), "int2"),
        (pg.VARCHAR(5), "varchar(5)"),
        (pg.UUID(), "uuid"),
        (pg.JSONB(), "jsonb"),
        (pg.BYTEA(), "bytea"),
    ],
)
def test_sqlalchemy_types_become_postgresql_types(sql_type: object, described: str) -> None:
    assert pg_column("c", sql_type).describe() == described


def test_columns_whose_names_are_not_identifiers(tmp_path: Path) -> None:
    """A keyword or a name with a space is read as after['...'], published under an Avro name."""
    columns = [
        PgColumn("id", "int4", nullable=False),
        PgColumn("class", "text", nullable=False),
        PgColumn("Odd Name", "int8"),
    ]
    envelope, _ = table_description("staging.shop", "public.odd", columns)
    scaffold = scaffold_mapping(
        "odd_changed", connector="shop", table="public.odd", description=envelope, key_columns=("id",)
    )
    _write(tmp_path, "public.odd", envelope, scaffold.files)
    text = (tmp_path / "odd_changed.yaml").read_text()
    assert '    class: "after[\\"class\\"]"\n' in text and '    Odd_Name: "after[\\"Odd Name\\"]"\n' in text
    assert all(result.passed for result in test_mapping_file(tmp_path / "odd_changed.yaml"))


def test_columns_named_like_yaml_booleans_and_nulls_are_quoted_keys(tmp_path: Path) -> None:
    """A column named `true` (or `null`, `FALSE`) was written as the plain key `true:`, which YAML
    reads as a boolean: the starter mapping failed its own validation."""
    columns = [
        PgColumn("id", "int4", nullable=False),
        PgColumn("true", "bool"),
        PgColumn("null", "text"),
        PgColumn("FALSE", "int4"),
    ]
    envelope, _ = table_description("staging.shop", "public.flags", columns)
    scaffold = scaffold_mapping(
        "flags_changed", connector="shop", table="public.flags", description=envelope, key_columns=("id",)
    )
    _write(tmp_path, "public.flags", envelope, scaffold.files)
    text = (tmp_path / "flags_changed.yaml").read_text()
    assert '    "true": after.true\n' in text and '    "FALSE": after.FALSE\n' in text
    assert all(result.passed for result in test_mapping_file(tmp_path / "flags_changed.yaml"))


def test_columns_whose_avro_names_collide_get_distinct_fields_and_the_key_keeps_its_order(
    tmp_path: Path,
) -> None:
    """ "a-b" and a_b both became the Avro field a_b: the scaffold failed its own validation. And
    --key at,code wrote the key in the table's column order."""
    columns = [
        PgColumn("code", "text", nullable=False),
        PgColumn("at", "timestamptz", nullable=False),
        PgColumn("a-b", "int4"),
        PgColumn("a_b", "int4"),
    ]
    envelope, _ = table_description("staging.shop", "public.pairs", columns)
    scaffold = scaffold_mapping(
        "pairs_changed", connector="shop", table="public.pairs", description=envelope,
        key_columns=("at", "code"),
    )  # fmt: skip
    assert "column 'a_b' is field a_b_2: a_b is another column's" in scaffold.notes
    _write(tmp_path, "public.pairs", envelope, scaffold.files)
    key = orjson.loads((tmp_path / "schemas" / "pairs_changed_key.avsc").read_text())
    assert [f["name"] for f in key["fields"]] == ["at", "code"]
    value = orjson.loads((tmp_path / "schemas" / "pairs_changed.avsc").read_text())
    assert [f["name"] for f in value["fields"]] == ["code", "at", "a_b", "a_b_2"]
    assert all(result.passed for result in test_mapping_file(tmp_path / "pairs_changed.yaml"))


def test_array_columns_of_times_and_dates_pass_their_scaffolded_test(tmp_path: Path) -> None:
    """The elements of an array column in an inline test stayed text (`expected ... got list`), and
    the Avro JSON form printed them as ISO text, not as the numbers Avro holds."""
    from eventbus.mapping.avro import describe, json_value

    columns = [
        PgColumn("id", "int4", nullable=False),
        PgColumn("stamps", "_timestamptz", element=PgColumn("stamps", "timestamptz")),
        PgColumn("days", "_date", element=PgColumn("days", "date")),
    ]
    envelope, _ = table_description("staging.shop", "public.arrays", columns)
    scaffold = scaffold_mapping(
        "arrays_changed", connector="shop", table="public.arrays", description=envelope, key_columns=("id",)
    )
    _write(tmp_path, "public.arrays", envelope, scaffold.files)
    results = test_mapping_file(tmp_path / "arrays_changed.yaml")
    assert results and all(result.passed for result in results), results
    stamps = describe({"type": "array", "items": {"type": "long", "logicalType": "timestamp-micros"}}, {})
    moment = dt.datetime(2024, 2, 29, 12, tzinfo=dt.UTC)
    assert json_value([moment, None], stamps) == [1_709_208_000_000_000, None]


def test_names_yaml_would_read_as_something_else_are_quoted(tmp_path: Path) -> None:
    """Columns named null, true or False became the keys `null:`, `true:`, `False:`, which YAML reads
    as null and booleans (the scaffold failed to load); a table name with `,` or `#` broke the flow
    mapping of `source:`."""
    columns = [
        PgColumn("id", "int4", nullable=False),
        PgColumn("null", "text"),
        PgColumn("true", "bool"),
        PgColumn("False", "int8"),
    ]
    table = "public.Odd,Table#1"
    envelope, _ = table_description("staging.shop", table, columns)
    scaffold = scaffold_mapping(
        "odd_changed", connector="shop", table=table, description=envelope, key_columns=("id",)
    )
    _write(tmp_path, table, envelope, scaffold.files)
    spec = load_mapping(tmp_path / "odd_changed.yaml")
    assert spec.source.table == table and set(spec.emit[0].fields) == {"id", "null", "true", "False"}
    assert all(result.passed for result in test_mapping_file(tmp_path / "odd_changed.yaml"))
