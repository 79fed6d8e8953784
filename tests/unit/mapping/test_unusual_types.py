"""`mapping new` on the PostgreSQL types a schema nobody here has seen may hold: `"char"`, `name`,
arrays of timestamps, decimals, enums, dates, uuids, times and bytea, `bit(n)` and `bit varying`,
`numeric(p,-s)` (PostgreSQL 15+) and `numeric(p,s>p)`.

The record below is built in code with the shapes Debezium 3.6.1 wrote to a staging topic on the
local stack (PostgreSQL 15, pgoutput, the product's connector settings) for a row inserted while
streaming; the table description made from the column types must be that record's schema, and
the starter mapping must validate, pass its test and map the record to the exact values.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventbus.debezium.pg_types import PgColumn, table_description
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.scaffold import scaffold_mapping
from eventbus.mapping.testing import run_records, test_mapping_file
from eventbus.sources.table_descriptions import drift

RECORDED = Path(__file__).resolve().parents[2] / "fixtures" / "debezium" / "everything_insert.jsonl"
DEC = "org.apache.kafka.connect.data.Decimal"
LABELS = "calm,busy,on fire"
MOOD = PgColumn("m", "tp_mood", labels=("calm", "busy", "on fire"))

COLUMNS = [
    PgColumn("id", "int8", nullable=False),
    PgColumn("c", "char"),
    PgColumn("n", "name"),
    PgColumn("ts_a", "_timestamp", element=PgColumn("ts_a", "timestamp")),
    PgColumn("ts3_a", "_timestamp", element=PgColumn("ts3_a", "timestamp", time_precision=3)),
    PgColumn("tstz_a", "_timestamptz", element=PgColumn("tstz_a", "timestamptz")),
    PgColumn("num_a", "_numeric", element=PgColumn("num_a", "numeric")),
    PgColumn("num82_a", "_numeric", element=PgColumn("num82_a", "numeric", length=8, scale=2)),
    PgColumn("mood_a", "_tp_mood", element=MOOD),
    PgColumn("date_a", "_date", element=PgColumn("date_a", "date")),
    PgColumn("uuid_a", "_uuid", element=PgColumn("uuid_a", "uuid")),
    PgColumn("time_a", "_time", element=PgColumn("time_a", "time")),
    PgColumn("interval_a", "_interval", element=PgColumn("interval_a", "interval")),
    PgColumn("bytea_a", "_bytea", element=PgColumn("bytea_a", "bytea")),
    PgColumn("b1", "bit", length=1),
    PgColumn("b5", "bit", length=5),
    PgColumn("b12", "bit", length=12),
    PgColumn("vb", "varbit"),
    PgColumn("vb10", "varbit", length=10),
    PgColumn("negs", "numeric", length=5, scale=-2),
    PgColumn("bigscale", "numeric", length=3, scale=5),
]


def _item(type_: str, name: str | None = None, **more: Any) -> dict[str, Any]:
    return {"type": type_, "optional": True, **({"name": name, "version": 1} if name else {}), **more}


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items, "optional": True}


def _bits(length: int) -> dict[str, Any]:
    return _item("bytes", "io.debezium.data.Bits", parameters={"length": str(length)})


def _scaled(whole: int, scale: int) -> str:
    raw = whole * 10**scale
    return base64.b64encode(raw.to_bytes((raw.bit_length() + 8) // 8, "big", signed=True)).decode()


# (column, the schema Debezium wrote for it, the value of the streamed insert); interval_a is not
# there: Debezium left it out ("No converter found for column ... of type _interval"). The streamed
# name column is null although the row holds 'some_name' (only snapshot rows carry it).
OBSERVED: list[tuple[str, dict[str, Any], Any]] = [
    ("id", {"type": "int64", "optional": False}, 2),
    ("c", {"type": "string", "optional": True}, "x"),
    ("n", {"type": "string", "optional": True}, None),
    ("ts_a", _array(_item("int64", "io.debezium.time.MicroTimestamp")), [-14182939876544, None]),
    ("ts3_a", _array(_item("int64", "io.debezium.time.Timestamp")), [1709208000500]),
    ("tstz_a", _array(_item("string", "io.debezium.time.ZonedTimestamp")),
     ["2024-02-29T12:00:00.123456Z"]),
    ("num_a", _array({
        "type": "struct", "fields": [{"type": "int32", "optional": False, "field": "scale"},
                                     {"type": "bytes", "optional": False, "field": "value"}],
        "optional": True, "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
        "doc": "Variable scaled decimal",
    }), [{"scale": 1, "value": "Dw=="}, None, {"scale": 0, "value": "/g=="}]),
    ("num82_a", _array(_item("bytes", DEC, parameters={"scale": "2", "connect.decimal.precision": "8"})),
     ["ALxhTg==", None]),
    ("mood_a", _array({**_item("string", "io.debezium.data.Enum", parameters={"allowed": LABELS}),
                       "optional": False}), ["calm", "on fire"]),
    ("date_a", _array(_item("int32", "io.debezium.time.Date")), [19782, None]),
    ("uuid_a", _array(_item("string", "io.debezium.data.Uuid")), ["9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44"]),
    ("time_a", _array(_item("int64", "io.debezium.time.MicroTime")), [45296789000]),
    ("bytea_a", _array(_item("bytes")), ["AQI="]),
    ("b1", {"type": "boolean", "optional": True}, True),
    ("b5", _bits(5), "Fg=="),  # B'10110'
    ("b12", _bits(12), "Awg="),  # B'100000000011'
    ("vb", _bits(2147483647), "Cw=="),  # B'1011'
    ("vb10", _bits(10), "BQ=="),  # B'101'
    ("negs", _item("bytes", DEC, parameters={"scale": "2046", "connect.decimal.precision": "5"}),
     _scaled(1234600, 2046)),
    ("bigscale", _item("bytes", DEC, parameters={"scale": "5", "connect.decimal.precision": "3"}), "DA=="),
]  # fmt: skip


def _record() -> dict[str, Any]:
    # The envelope's `source` block as in the other recording, for this table and a streamed change
    recorded = orjson.loads(RECORDED.read_bytes())["value"]
    source_schema = next(f for f in recorded["schema"]["fields"] if f["field"] == "source")
    source = {**recorded["payload"]["source"], "name": "staging.odd", "db": "odd", "table": "odd",
              "snapshot": "false"}  # fmt: skip
    row = {"type": "struct", "optional": True, "name": "staging.odd.public.odd.Value",
           "fields": [{**schema, "field": name} for name, schema, _ in OBSERVED]}  # fmt: skip
    schema = {
        "type": "struct", "optional": False, "name": "staging.odd.public.odd.Envelope", "version": 2,
        "fields": [{**row, "field": "before"}, {**row, "field": "after"}, source_schema,
                   {"type": "string", "optional": False, "field": "op"},
                   {"type": "int64", "optional": True, "field": "ts_ms"}],
    }  # fmt: skip
    payload = {"before": None, "after": {name: value for name, _, value in OBSERVED}, "source": source,
               "op": "c", "ts_ms": 1765151743704}  # fmt: skip
    key_schema = {"type": "struct", "optional": False, "name": "staging.odd.public.odd.Key",
                  "fields": [{"type": "int64", "optional": False, "field": "id"}]}  # fmt: skip
    return {
        "topic": "staging.odd.public.odd",
        "key": {"schema": key_schema, "payload": {"id": 2}},
        "value": {"schema": schema, "payload": payload},
    }


def _scaffolded(folder: Path) -> tuple[Path, list[str]]:
    envelope, skipped = table_description("staging.odd", "public.odd", COLUMNS)
    scaffold = scaffold_mapping(
        "odd_changed", connector="odd", table="public.odd", description=envelope, key_columns=("id",),
        left_out=[f"column {c.name!r} ({c.describe()}) left out: {why}" for c, why in skipped],
    )  # fmt: skip
    (folder / "tables").mkdir(parents=True)
    (folder / "tables" / "public.odd.json").write_bytes(orjson.dumps(envelope))
    for relative, text in scaffold.files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder / "odd_changed.yaml", scaffold.notes


def test_the_description_from_column_types_is_what_debezium_sends() -> None:
    envelope, skipped = table_description("staging.odd", "public.odd", COLUMNS)
    assert drift(envelope, _record()["value"]["schema"]) == []
    assert [(column.name, why) for column, why in skipped] == [
        ("interval_a", "Debezium sends no arrays of interval (it has no converter for them)")
    ]


def test_the_starter_mapping_validates_passes_its_test_and_maps_the_record_exactly(tmp_path: Path) -> None:
    mapping, _ = _scaffolded(tmp_path)
    compiled = compile_mapping(load_mapping(mapping))
    assert [(r.passed, r.diff) for r in test_mapping_file(mapping)] == [(True, [])]
    outcome = run_records(compiled, [orjson.dumps(_record()).decode()])
    assert outcome.dead_letters == []
    [event] = outcome.events
    assert event["value"] == {
        "id": 2,
        "c": "x",
        "ts_a": [-14182939876544, None],  # 1969-07-20T20:17:40.123456
        "ts3_a": [1709208000500000],  # millis become the field's micros
        "tstz_a": [1709208000123456],
        "num_a": ["1.5", None, "-2"],  # unconstrained: each element's exact text, its own scale
        "num82_a": ["123456.78", None],
        "mood_a": ["calm", "on fire"],
        "date_a": [19782, None],
        "uuid_a": ["9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44"],
        "time_a": [45296789000],
        "bytea_a": ["\x01\x02"],
        "b1": True,
        "b5": 0b10110,
        "b12": 0b100000000011,
        "vb10": 0b101,
        "negs": "1234600",
        "bigscale": "0.00012",
    }


def test_the_avro_forms_of_unusual_types_are_exact(tmp_path: Path) -> None:
    _scaffolded(tmp_path)
    schema = orjson.loads((tmp_path / "schemas" / "odd_changed.avsc").read_bytes())
    types = {field["name"]: field["type"][1] for field in schema["fields"] if field["name"] != "id"}
    docs = {field["name"]: field.get("doc") for field in schema["fields"]}
    decimal = {"type": "bytes", "logicalType": "decimal"}
    # numeric(5,-2): whole numbers of up to 5 + 2 digits; numeric(3,5): below 0.01 with 5 places
    assert types["negs"] == {**decimal, "precision": 7, "scale": 0}
    assert docs["negs"] == "numeric(5,-2): whole numbers rounded to 100"
    assert types["bigscale"] == {**decimal, "precision": 5, "scale": 5}
    assert types["b5"] == types["vb10"] == "long" and types["b1"] == "boolean" and types["c"] == "string"
    assert "leading zeros are not kept" in docs["vb10"] and "leading zeros" not in docs["b5"]
    local_micros = {"type": "long", "logicalType": "local-timestamp-micros"}
    assert types["ts3_a"] == {"type": "array", "items": ["null", local_micros]}
    assert types["num82_a"] == {"type": "array", "items": ["null", {**decimal, "precision": 8, "scale": 2}]}
    assert docs["mood_a"] == "elements: one of: calm, busy, on fire"
    # 12:34:56.789012 came as 45296789000: Debezium keeps milliseconds of a time[] element only
    assert docs["time_a"] == "times to the millisecond (Debezium drops time[] elements' microseconds)"


def test_what_has_no_sensible_form_is_left_out_with_the_reason_in_the_file_and_the_notes(
    tmp_path: Path,
) -> None:
    mapping, notes = _scaffolded(tmp_path)
    text = mapping.read_text()
    reasons = {
        "n": "Debezium 3.6 sends a name column's value only in snapshot rows",
        "vb": "(bit string, up to 2147483647 bits) left out: its value does not fit an Avro long",
        "interval_a": "Debezium sends no arrays of interval",
    }
    comments = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    for column, reason in reasons.items():
        assert f"column '{column}' (" in comments and reason in comments, column
        assert f"    {column}: " not in text
    assert [note for note in notes if "left out" in note] == [
        note for note in notes if any(f"column '{c}'" in note for c in ("n", "vb"))
    ] and len(notes) == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [("1234567", "rounds to multiples of 100"), ("1234500.5", "keeps 0 decimal place")],
)
def test_a_negative_scale_test_value_must_be_one_the_column_can_hold(
    tmp_path: Path, value: str, message: str
) -> None:
    mapping, _ = _scaffolded(tmp_path)
    text = mapping.read_text()
    written = text.replace('"negs":"1234500"', f'"negs":"{value}"', 1)
    assert written != text
    mapping.write_text(written)
    [result] = test_mapping_file(mapping)
    assert not result.passed and message in " ".join([result.headline(), *result.diff])
