"""`mapping new` on an array column of every element type Debezium's PostgreSQL connector describes:
the starter schemas parse (fastavro), `eventbus mapping validate` and `eventbus mapping test` accept
the starter mapping, and a record with the element encodings Debezium writes maps to the exact values.

numeric[] (no scale: variable-scale elements) and timetz[] were left out; their elements now
become strings, as the scalar columns do (an unconstrained numeric has no scale a decimal could
state, Avro's times hold no zone), each element made Avro-ready as a column's value is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
from typer.testing import CliRunner

from eventbus.cli.main import app
from eventbus.debezium.pg_types import PgColumn, table_description
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.scaffold import scaffold_mapping
from eventbus.mapping.testing import run_records, test_mapping_file

RECORDED = Path(__file__).resolve().parents[2] / "fixtures" / "debezium" / "everything_insert.jsonl"
ID = PgColumn("id", "int4", nullable=False)
DEC = "org.apache.kafka.connect.data.Decimal"
VARIABLE = {
    "type": "struct", "name": "io.debezium.data.VariableScaleDecimal", "version": 1, "optional": True,
    "doc": "Variable scaled decimal", "fields": [{"type": "int32", "optional": False, "field": "scale"},
                                                 {"type": "bytes", "optional": False, "field": "value"}],
}  # fmt: skip


def _named(connect_type: str, name: str, **more: Any) -> dict[str, Any]:
    return {"type": connect_type, "optional": True, "name": name, "version": 1, **more}


# (element: a PostgreSQL type, or the items' Connect schema as a staging record states it under other
# connector settings; values as Debezium writes them; the event's values in Avro's JSON form; the
# Avro items type)
CASES: dict[str, tuple[PgColumn | dict[str, Any], list[Any], list[Any], Any]] = {
    "date": (PgColumn("a", "date"), [19782, None], [19782, None], {"type": "int", "logicalType": "date"}),
    "timestamp": (PgColumn("a", "timestamp"), [-14182939876544, None], [-14182939876544, None],
                  {"type": "long", "logicalType": "local-timestamp-micros"}),
    "timestamp(3)": (PgColumn("a", "timestamp", time_precision=3), [1709208000500], [1709208000500000],
                     {"type": "long", "logicalType": "local-timestamp-micros"}),
    "timestamptz": (PgColumn("a", "timestamptz"), ["2024-02-29T12:00:00.123456Z", None],
                    [1709208000123456, None], {"type": "long", "logicalType": "timestamp-micros"}),
    "time": (PgColumn("a", "time"), [45296789000, None], [45296789000, None],
             {"type": "long", "logicalType": "time-micros"}),
    # the decoder reads the time and its offset; published as ISO text, which writes UTC as +00:00
    "timetz": (PgColumn("a", "timetz"), ["12:34:56.789012Z", None, "01:02:03Z"],
               ["12:34:56.789012+00:00", None, "01:02:03+00:00"], "string"),
    "uuid": (PgColumn("a", "uuid"), ["9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44", None],
             ["9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44", None], {"type": "string", "logicalType": "uuid"}),
    "json": (PgColumn("a", "json"), ['{"a": 1}', None], ['{"a": 1}', None], "string"),
    "jsonb": (PgColumn("a", "jsonb"), ['{"a": 1}'], ['{"a": 1}'], "string"),
    "bytea": (PgColumn("a", "bytea"), ["AQI=", None], ["\x01\x02", None], "bytes"),
    "enum": (PgColumn("a", "mood", labels=("calm", "on fire")), ["calm", "on fire"], ["calm", "on fire"],
             "string"),
    "numeric": (PgColumn("a", "numeric"),  # 1.5, null, -2: each element with its own scale
                [{"scale": 1, "value": "Dw=="}, None, {"scale": 0, "value": "/g=="}],
                ["1.5", None, "-2"], "string"),
    "numeric(8,2)": (PgColumn("a", "numeric", length=8, scale=2), ["ALxhTg==", None], ["123456.78", None],
                     {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2}),
    # decimal.handling.mode=string / double: Debezium states plain items
    "numeric, decimal mode string": ({"type": "string", "optional": True}, ["1.50", None], ["1.50", None],
                                     "string"),
    "numeric, decimal mode double": ({"type": "double", "optional": True}, [1.5, None], [1.5, None],
                                     "double"),
    "bit(1)": ({"type": "boolean", "optional": True}, [True, None], [True, None], "boolean"),
    "bit(5)": (_named("bytes", "io.debezium.data.Bits", parameters={"length": "5"}), ["Fg==", None],
               [0b10110, None], "long"),
}  # fmt: skip


def _envelope(element: PgColumn | dict[str, Any]) -> dict[str, Any]:
    if isinstance(element, PgColumn):
        envelope, skipped = table_description(
            "staging.x", "public.t", [ID, PgColumn("a", "_x", element=element)]
        )
        assert skipped == []
        return envelope
    envelope, _ = table_description(
        "staging.x", "public.t", [ID, PgColumn("a", "_text", element=PgColumn("a", "text"))]
    )
    for row in envelope["fields"][:2]:
        row["fields"][1] = {"type": "array", "items": element, "optional": True, "field": "a"}
    return envelope


def _record(envelope: dict[str, Any], values: list[Any]) -> str:
    """An insert of (1, values) with the envelope's row schema and the `source` block of a recording."""
    recorded = orjson.loads(RECORDED.read_bytes())["value"]
    source_schema = next(f for f in recorded["schema"]["fields"] if f["field"] == "source")
    source = {**recorded["payload"]["source"], "table": "t", "snapshot": "false"}
    schema = {**envelope, "fields": [*envelope["fields"][:2], source_schema, *envelope["fields"][2:]]}
    payload = {"before": None, "after": {"id": 1, "a": values}, "source": source, "op": "c", "ts_ms": 1}
    id_schema = {"type": "int32", "optional": False, "field": "id"}
    key = {"schema": {"type": "struct", "optional": False, "fields": [id_schema]}, "payload": {"id": 1}}
    return orjson.dumps({"key": key, "value": {"schema": schema, "payload": payload}}).decode()


def _scaffold(folder: Path, envelope: dict[str, Any]) -> tuple[Path, list[str]]:
    scaffold = scaffold_mapping(
        "t_changed", connector="x", table="public.t", description=envelope, key_columns=("id",)
    )
    (folder / "tables").mkdir(parents=True)
    (folder / "tables" / "public.t.json").write_bytes(orjson.dumps(envelope))
    for relative, text in scaffold.files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder / "t_changed.yaml", scaffold.notes


@pytest.mark.parametrize("case", CASES)
def test_an_array_column_is_published_with_its_elements_exact(tmp_path: Path, case: str) -> None:
    element, values, published, items = CASES[case]
    envelope = _envelope(element)
    mapping, notes = _scaffold(tmp_path, envelope)
    assert notes == []
    schema = orjson.loads((tmp_path / "schemas" / "t_changed.avsc").read_bytes())
    fastavro.parse_schema(schema)
    fastavro.parse_schema(orjson.loads((tmp_path / "schemas" / "t_changed_key.avsc").read_bytes()))
    assert schema["fields"][1]["type"] == ["null", {"type": "array", "items": ["null", items]}]
    runner = CliRunner()
    validated = runner.invoke(app, ["mapping", "validate", str(mapping)])
    assert validated.exit_code == 0 and "columns not checked" not in validated.output, validated.output
    tested = runner.invoke(app, ["mapping", "test", str(mapping)])
    assert tested.exit_code == 0 and "1 passed, 0 failed" in tested.output, tested.output
    outcome = run_records(compile_mapping(load_mapping(mapping)), [_record(envelope, values)])
    assert outcome.dead_letters == []
    assert [event["value"] for event in outcome.events] == [{"id": 1, "a": published}]


def test_unconstrained_numeric_and_zoned_time_elements_say_why_they_are_text(tmp_path: Path) -> None:
    columns = [
        ID,
        PgColumn("n", "_numeric", element=PgColumn("n", "numeric")),
        PgColumn("z", "_timetz", element=PgColumn("z", "timetz")),
        PgColumn("scalar", "numeric"),
    ]
    envelope, _ = table_description("staging.x", "public.t", columns)
    _scaffold(tmp_path, envelope)
    fields = {
        f["name"]: f for f in orjson.loads((tmp_path / "schemas" / "t_changed.avsc").read_bytes())["fields"]
    }
    assert fields["n"]["doc"] == f"elements: {fields['scalar']['doc']}"
    assert "no fixed scale" in fields["n"]["doc"] and fields["scalar"]["type"] == ["null", "string"]
    assert "Avro's time types hold no zone" in fields["z"]["doc"]


@pytest.mark.parametrize("element", ["interval", "money"])
def test_arrays_debezium_does_not_send_are_left_out_with_the_reason(element: str) -> None:
    columns = [ID, PgColumn("a", f"_{element}", element=PgColumn("a", element))]
    _, skipped = table_description("staging.x", "public.t", columns)
    assert [(column.name, why) for column, why in skipped] == [
        ("a", f"Debezium sends no arrays of {element} (it has no converter for them)")
    ]


def test_elements_that_need_a_conversion_call_are_left_out_not_published_wrong(tmp_path: Path) -> None:
    """An interval's value needs duration_micros(); the elements of an array get no call, so a
    description stating MicroDuration items (Debezium sends none) leaves the column out."""
    envelope = _envelope(_named("int64", "io.debezium.time.MicroDuration"))
    mapping, notes = _scaffold(tmp_path, envelope)
    assert notes == ["column 'a' (an array of io.debezium.time.MicroDuration) left out"]
    assert "    a: " not in mapping.read_text()
    assert all(result.passed for result in test_mapping_file(mapping))


def test_array_elements_of_the_wrong_type_are_refused_by_element() -> None:
    """Elements are coerced as a field of the items' type: a Decimal into a string item is its text,
    a Decimal with more places than a decimal item's scale is refused (not rounded by the encoder)."""
    from decimal import Decimal

    from eventbus.mapping.avro import AvroValueError, coercer, describe

    _, to_texts = coercer(describe({"type": "array", "items": ["null", "string"]}, {}))
    assert to_texts([Decimal("1.50"), None, Decimal("-2")]) == ["1.50", None, "-2"]
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2}
    _, to_decimals = coercer(describe({"type": "array", "items": decimal}, {}))
    assert to_decimals([Decimal("1.25")]) == [Decimal("1.25")]
    with pytest.raises(AvroValueError, match="more than 2 decimal places"):
        to_decimals([Decimal("1.255")])
    with pytest.raises(AvroValueError, match="null does not fit"):
        to_decimals([None])
    with pytest.raises(AvroValueError, match="a str value does not fit Avro array"):
        to_decimals("1.25")
