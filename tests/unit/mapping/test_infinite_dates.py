"""PostgreSQL 'infinity' / '-infinity' in date, timestamp and timestamptz columns (`valid_to =
'infinity'` for an open-ended row).

The decoder refused them (a DecodeError: every change of such a row a dead letter, whatever the
mapping did with the column). They decode to `INFINITY` / `NEG_INFINITY` now: ordered against dates
and datetimes, tested with `is_infinite()`, published as text in a string field and refused, with
a reason saying what to write, by a date or timestamp field. An inline test writes them as
'infinity' and predicts the service's event.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventbus.debezium.infinite import INFINITY, NEG_INFINITY
from eventbus.debezium.logical_types import ColumnType, ConverterOptions, make_converter
from eventbus.debezium.pg_types import PgColumn, table_description
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.avro import AvroValueError, coercer, describe
from eventbus.mapping.expression_runtime import evaluate
from eventbus.mapping.functions import ExpressionRuntimeError
from eventbus.mapping.tables import ColumnInfo
from eventbus.mapping.test_values import decoded_row
from eventbus.mapping.testing import run_records, test_mapping_file
from tests.unit.mapping.test_temporal_rules import _mapping, _record

DAY = dt.date(2024, 2, 29)
NAIVE = dt.datetime(2024, 2, 29, 12, 30)
AWARE = dt.datetime(2024, 2, 29, 12, 30, tzinfo=dt.UTC)


# --- in expressions ----------------------------------------------------------------------------


@pytest.mark.parametrize("other", [DAY, NAIVE, AWARE, dt.date.max, dt.datetime.min])
def test_the_infinities_order_around_every_date_and_datetime(other: Any) -> None:
    row = {"inf": INFINITY, "neg": NEG_INFINITY, "x": other}
    assert evaluate("after.inf > after.x and after.x < after.inf and after.inf >= after.x", after=row)
    assert evaluate("after.neg < after.x and after.x > after.neg and after.neg <= after.x", after=row)
    assert not evaluate("after.inf == after.x or after.neg == after.x", after=row)
    assert evaluate("after.inf != after.x", after=row)


def test_an_infinity_equals_itself_only() -> None:
    row = {"a": INFINITY, "b": INFINITY, "n": NEG_INFINITY}
    assert evaluate("after.a == after.b and after.n < after.a and after.a != after.n", after=row)
    assert evaluate("became(after.a, after.b)", before={"a": NEG_INFINITY}, after=row)
    assert evaluate("changed(after.a)", before={"a": DAY}, after=row)


def test_an_infinity_is_no_number_or_text_to_compare_with() -> None:
    with pytest.raises(ExpressionRuntimeError, match="cannot compare Infinite > int"):
        evaluate("after.a > after.b", after={"a": INFINITY, "b": 1})


def test_is_infinite() -> None:
    assert evaluate("is_infinite(after.a)", after={"a": INFINITY}) is True
    assert evaluate("is_infinite(after.a)", after={"a": NEG_INFINITY}) is True
    for value in (DAY, AWARE, None, "infinity", float("inf")):
        assert evaluate("is_infinite(after.a)", after={"a": value}) is False


def test_functions_of_an_infinity() -> None:
    row = {"a": INFINITY, "n": NEG_INFINITY, "d": DAY}
    assert evaluate("str(after.a)", after=row) == "infinity"
    assert evaluate("concat('until ', after.n)", after=row) == "until -infinity"
    assert evaluate("hash(after.a)", after=row) == evaluate("hash('infinity')")
    assert evaluate("date(after.a)", after=row) is INFINITY  # as PostgreSQL: date('infinity'::timestamp)
    assert evaluate("datetime(after.n)", after=row) is NEG_INFINITY
    assert evaluate("date(after.a) > date('2024-01-01')", after=row) is True
    assert evaluate("max(after.a, after.d)", after=row) is INFINITY
    assert evaluate("min(after.a, after.d)", after=row) == DAY
    assert evaluate("coalesce(after.a, after.d)", after=row) is INFINITY
    assert evaluate("null if is_infinite(after.a) else after.a", after=row) is None
    refused = r"timestamp_ms\(\) of PostgreSQL 'infinity'.*is_infinite"
    with pytest.raises(ExpressionRuntimeError, match=refused):
        evaluate("timestamp_ms(after.a)", after=row)


# --- into Avro fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "long", "logicalType": "timestamp-micros"},
        {"type": "long", "logicalType": "local-timestamp-millis"},
        ["null", {"type": "int", "logicalType": "date"}],
    ],
)
def test_a_date_or_timestamp_field_refuses_an_infinity_saying_what_to_write(schema: Any) -> None:
    _, coerce = coercer(describe(schema, {}))
    for value in (INFINITY, NEG_INFINITY):
        with pytest.raises(AvroValueError, match=r"'infinity'.*`null if is_infinite\(after.col\) else"):
            coerce(value)


def test_a_string_field_takes_the_text_of_an_infinity() -> None:
    _, coerce = coercer(describe(["null", "string"], {}))
    assert (coerce(INFINITY), coerce(NEG_INFINITY)) == ("infinity", "-infinity")


# --- offline tests predict the service's event ----------------------------------------------------

COLUMNS = [
    PgColumn("id", "int4", nullable=False),
    PgColumn("valid_from", "date"),
    PgColumn("valid_to", "timestamp"),
    PgColumn("closes", "timestamptz"),
    PgColumn("checked", "timestamp", time_precision=3),
]
# (as an inline test writes the row, as Debezium 3.6 sends it: see temporal_types._INFINITIES)
CASES = {
    "streamed": (
        {"valid_from": "-infinity", "valid_to": "infinity", "closes": "-infinity", "checked": "infinity"},
        {"valid_from": -2147472691, "valid_to": 9223372036825200000, "closes": "-infinity",
         "checked": 9223372036825200},
    ),
    "snapshot": (
        {"valid_from": "infinity", "valid_to": "-infinity", "closes": "infinity", "checked": "-infinity"},
        {"valid_from": -622191234, "valid_to": -9223372036832400000, "closes": "infinity",
         "checked": -9223372036832400},
    ),
    "finite": (
        {"valid_from": "2024-02-29", "valid_to": "2024-03-01T00:00:00", "closes": "2024-03-01T10:00:00Z",
         "checked": "2024-03-01T00:00:00.123"},
        {"valid_from": 19782, "valid_to": 1709251200000000, "closes": "2024-03-01T10:00:00Z",
         "checked": 1709251200123},
    ),
}  # fmt: skip
FIELDS = {
    "valid_from": "null if is_infinite(after.valid_from) else after.valid_from",
    "valid_to": "null if is_infinite(after.valid_to) else after.valid_to",
    "closes": "null if is_infinite(after.closes) else after.closes",
    "checked": "null if is_infinite(after.checked) else after.checked",
    "valid_to_text": "str(after.valid_to)",
    "open_ended": "date(after.valid_to) > after.valid_from",
}


def _handling_mapping(folder: Path) -> Path:
    """The starter mapping of the table, its fields saying what to publish for an infinity."""
    envelope, _ = table_description("staging.x", "public.t", COLUMNS)
    mapping = _mapping(folder, envelope)
    schema_file = folder / "schemas" / "t_changed.avsc"
    schema = json.loads(schema_file.read_text())
    schema["fields"] += [
        {"name": "valid_to_text", "type": ["null", "string"], "default": None},
        {"name": "open_ended", "type": ["null", "boolean"], "default": None},
    ]
    schema_file.write_text(json.dumps(schema))
    text = mapping.read_text()
    fields = "".join(f'    {name}: "{expression}"\n' for name, expression in FIELDS.items())
    text = text[: text.index("  fields:\n")] + "  fields:\n    id: after.id\n" + fields + "tests: []\n"
    mapping.write_text(text)
    return mapping


@pytest.mark.parametrize("case", CASES)
def test_an_infinite_change_gives_the_same_event_offline_and_in_the_service(
    tmp_path: Path, case: str
) -> None:
    written, sent = CASES[case]
    mapping = _handling_mapping(tmp_path)
    envelope = orjson.loads((tmp_path / "tables" / "public.t.json").read_bytes())
    # The service: Debezium's Connect JSON record, through the decoder and the Avro encoding.
    outcome = run_records(compile_mapping(load_mapping(mapping)), [_record(envelope, {"id": 1, **sent})])
    assert outcome.dead_letters == []
    service = outcome.events[0]["value"]
    if case != "finite":
        assert service["valid_to_text"] == written["valid_to"]
        assert service["open_ended"] is (written["valid_to"] == "infinity")
        assert [service[name] for name in ("valid_from", "valid_to", "closes", "checked")] == [None] * 4
    # The offline test runner: the same change as a mapping author writes it, expecting that event.
    text = mapping.read_text()
    test = (
        "tests:\n  - name: same event\n    change:\n      op: insert\n"
        f"      after: {orjson.dumps({'id': 1, **written}).decode()}\n"
        f'    expect:\n      - key: {{"id": 1}}\n        value: {orjson.dumps(service).decode()}\n'
    )
    mapping.write_text(text.replace("tests: []\n", test))
    assert [(r.passed, r.diff) for r in test_mapping_file(mapping)] == [(True, [])]


def test_an_infinite_test_value_is_what_the_decoder_gives() -> None:
    for logical, kind, sent in [
        ("io.debezium.time.Date", "date", -2147472692),
        ("io.debezium.time.MicroTimestamp", "datetime", 9223372036825200000),
        ("io.debezium.time.ZonedTimestamp", "datetime", "infinity"),
    ]:
        column = ColumnInfo("t", kind, True, "int64", logical)
        service = make_converter(ColumnType("int64", logical), ConverterOptions(), "t")(sent)
        assert decoded_row({"t": column}, {"t": " infinity "}, "change.after") == {"t": service}
        assert service is INFINITY


def test_the_starter_mapping_dead_letters_an_infinity_with_the_way_out(tmp_path: Path) -> None:
    """Publishing the column as it is into its timestamp field: the reason names the field and says
    what to write instead (before, the decoder's error named neither)."""
    envelope, _ = table_description("staging.x", "public.t", COLUMNS)
    mapping = _mapping(tmp_path, envelope)
    record = _record(envelope, {"id": 1, **CASES["streamed"][1]})
    outcome = run_records(compile_mapping(load_mapping(mapping)), [record])
    assert outcome.events == [] and len(outcome.dead_letters) == 1
    reason = outcome.dead_letters[0]["reason"]
    assert "valid_from" in reason and "is_infinite(after.col)" in reason
