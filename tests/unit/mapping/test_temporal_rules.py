"""One rule per temporal value, whichever path it comes by.

`date()` of an instant is its UTC date: it gave the local date of a datetime in its own offset but
the UTC date of the same instant written as text. A `timetz` value of an inline test stayed the text
written (`'...Z'`) while the service decodes Debezium's ZonedTime to a UTC time published as
`'...+00:00'`, so `mapping test` did not predict the service's event.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventbus.debezium.logical_types import ColumnType, ConverterOptions, make_converter
from eventbus.debezium.pg_types import PgColumn, table_description
from eventbus.mapping import avro, compile_mapping, load_mapping
from eventbus.mapping.avro import coercer, describe
from eventbus.mapping.expression_runtime import evaluate
from eventbus.mapping.functions import ExpressionRuntimeError
from eventbus.mapping.scaffold import scaffold_mapping
from eventbus.mapping.testing import run_records, test_mapping_file

RECORDED = Path(__file__).resolve().parents[2] / "fixtures" / "debezium" / "everything_insert.jsonl"


def _decoded(logical: str, text: str) -> Any:
    """`text` as the service's decoder gives it for a string column of the `logical` type."""
    return make_converter(ColumnType("string", logical), ConverterOptions(), "x")(text)


# --- date() of an instant -----------------------------------------------------------------------

LATE_EVENING = "2026-01-01T23:30:00-05:00"  # 2026-01-02T04:30:00Z


def test_date_of_an_instant_is_its_utc_date_by_every_path() -> None:
    timestamptz = _decoded("io.debezium.time.ZonedTimestamp", "2026-01-02T04:30:00Z")
    assert evaluate("date(after.x)", after={"x": timestamptz}) == dt.date(2026, 1, 2)
    assert evaluate(f"date('{LATE_EVENING}')") == dt.date(2026, 1, 2)
    assert evaluate(f"date(datetime('{LATE_EVENING}'))") == dt.date(2026, 1, 2)  # was 2026-01-01
    aware = dt.datetime.fromisoformat(LATE_EVENING)
    assert evaluate("date(after.x)", after={"x": aware}) == dt.date(2026, 1, 2)
    assert evaluate("date(after.x)", after={"x": dt.datetime(2026, 1, 1, 23, 30)}) == dt.date(2026, 1, 1)
    assert evaluate("date('2026-01-01T23:30:00')") == dt.date(2026, 1, 1)  # naive: its own date


def test_date_of_a_datetime_whose_utc_date_is_before_year_1_is_a_named_error() -> None:
    with pytest.raises(ExpressionRuntimeError, match=r"date\(\) of a datetime whose UTC date is before"):
        evaluate("date(datetime('0001-01-01T00:00:00+05:00'))")


def test_an_avro_date_field_takes_an_instants_utc_date_as_date_does() -> None:
    _, to_date_field = coercer(describe({"type": "int", "logicalType": "date"}, {}))
    assert to_date_field(dt.datetime.fromisoformat(LATE_EVENING)) == dt.date(2026, 1, 2)
    assert to_date_field(LATE_EVENING) == dt.date(2026, 1, 2)
    assert to_date_field(dt.datetime(2026, 1, 1, 23, 30)) == dt.date(2026, 1, 1)
    assert to_date_field("2026-01-01") == dt.date(2026, 1, 1)
    assert to_date_field("2026-01-01 and more") == dt.date(2026, 1, 1)  # text read as before


def test_a_decoded_timestamp_takes_the_date_fields_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoder's values (a timestamptz in UTC, a naive timestamp) go into a date field per record:
    through date()'s general path they cost three times what they did (~0.5 µs instead of ~0.17)."""
    _, to_date_field = coercer(describe({"type": "int", "logicalType": "date"}, {}))

    def general_path(value: object) -> object:
        raise AssertionError("date()'s general path taken")

    monkeypatch.setattr(avro, "to_date", general_path)
    assert to_date_field(dt.datetime(2026, 1, 2, 4, 30, tzinfo=dt.UTC)) == dt.date(2026, 1, 2)
    assert to_date_field(dt.datetime(2026, 1, 1, 23, 30)) == dt.date(2026, 1, 1)
    with pytest.raises(AssertionError):  # another offset still takes it: its UTC date
        to_date_field(dt.datetime.fromisoformat(LATE_EVENING))


def test_an_avro_date_field_refuses_text_of_an_instant_without_a_utc_date() -> None:
    """Its UTC date is in the year 0: the field took the text's first ten characters (0001-01-01),
    a date other than the instant's, where date() and a datetime value are refused."""
    _, to_date_field = coercer(describe({"type": "int", "logicalType": "date"}, {}))
    with pytest.raises(ExpressionRuntimeError, match=r"its UTC date is before 0001"):
        to_date_field("0001-01-01T00:00:00+05:00")
    with pytest.raises(ExpressionRuntimeError, match=r"its UTC date is before 0001"):
        to_date_field(dt.datetime.fromisoformat("0001-01-01T00:00:00+05:00"))
    assert to_date_field("0001-01-01T00:00:00") == dt.date(1, 1, 1)  # naive: its own date


# --- timetz: the inline test predicts the service's event ---------------------------------------

ID = PgColumn("id", "int4", nullable=False)
COLUMNS = [ID, PgColumn("opens", "timetz"), PgColumn("hours", "_timetz", element=PgColumn("h", "timetz"))]

# (as the test writes it, as Debezium sends the same value: always in UTC with a 'Z')
CASES = {
    "Debezium's text": ("12:34:56.789012Z", "12:34:56.789012Z"),
    "no fraction": ("01:02:03Z", "01:02:03Z"),
    "another offset": ("07:34:56.5-05:00", "12:34:56.5Z"),
    "past midnight in UTC": ("00:30:00+02:00", "22:30:00Z"),
}


def _record(envelope: dict[str, Any], after: dict[str, Any]) -> str:
    """An insert with the envelope's row schema and the `source` block of a recording."""
    recorded = orjson.loads(RECORDED.read_bytes())["value"]
    source_schema = next(f for f in recorded["schema"]["fields"] if f["field"] == "source")
    source = {**recorded["payload"]["source"], "table": "t", "snapshot": "false"}
    schema = {**envelope, "fields": [*envelope["fields"][:2], source_schema, *envelope["fields"][2:]]}
    payload = {"before": None, "after": after, "source": source, "op": "c", "ts_ms": 1}
    id_schema = {"type": "int32", "optional": False, "field": "id"}
    key = {"schema": {"type": "struct", "optional": False, "fields": [id_schema]}, "payload": {"id": 1}}
    return orjson.dumps({"key": key, "value": {"schema": schema, "payload": payload}}).decode()


def _mapping(folder: Path, envelope: dict[str, Any]) -> Path:
    scaffold = scaffold_mapping(
        "t_changed", connector="x", table="public.t", description=envelope, key_columns=("id",)
    )
    assert scaffold.notes == []
    (folder / "tables").mkdir(parents=True)
    (folder / "tables" / "public.t.json").write_bytes(orjson.dumps(envelope))
    for relative, text in scaffold.files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder / "t_changed.yaml"


def test_the_starter_test_of_a_timetz_column_expects_what_the_service_publishes(tmp_path: Path) -> None:
    envelope, _ = table_description("staging.x", "public.t", COLUMNS)
    mapping = _mapping(tmp_path, envelope)
    assert '"opens":"12:34:56.789012+00:00"' in mapping.read_text()
    assert [(r.name, r.passed, r.reason) for r in test_mapping_file(mapping)] == [
        ("an insert of a public.t row is published with every column", True, "")
    ]
    debezium = {"id": 1, "opens": "12:34:56.789012Z", "hours": ["12:34:56.789012Z"] * 2}
    outcome = run_records(compile_mapping(load_mapping(mapping)), [_record(envelope, debezium)])
    assert outcome.events[0]["value"]["opens"] == "12:34:56.789012+00:00"


@pytest.mark.parametrize("case", CASES)
def test_a_timetz_change_gives_the_same_event_offline_and_in_the_service(tmp_path: Path, case: str) -> None:
    written, sent = CASES[case]
    envelope, _ = table_description("staging.x", "public.t", COLUMNS)
    mapping = _mapping(tmp_path, envelope)
    # The service: Debezium's Connect JSON record, through the decoder and the Avro encoding.
    record = _record(envelope, {"id": 1, "opens": sent, "hours": [sent, None]})
    outcome = run_records(compile_mapping(load_mapping(mapping)), [record])
    assert outcome.dead_letters == []
    service = outcome.events[0]["value"]
    assert service["opens"].endswith("+00:00") and service["hours"] == [service["opens"], None]
    # The offline test runner: the same change as a mapping author writes it, expecting that event.
    text = mapping.read_text()
    starter = text[text.index("tests:") :]
    test = (
        "tests:\n  - name: same event\n    change:\n      op: insert\n"
        f"      after: {orjson.dumps({'id': 1, 'opens': written, 'hours': [written, None]}).decode()}\n"
        f'    expect:\n      - key: {{"id": 1}}\n        value: {orjson.dumps(service).decode()}\n'
    )
    mapping.write_text(text.replace(starter, test))
    results = test_mapping_file(mapping)
    assert [(r.passed, r.diff) for r in results] == [(True, [])]


def test_a_timetz_value_is_decoded_in_utc_offline_and_in_the_service() -> None:
    from eventbus.mapping.tables import ColumnInfo
    from eventbus.mapping.test_values import decoded_row

    column = ColumnInfo("t", "time", True, "string", "io.debezium.time.ZonedTime")
    for written, sent in CASES.values():
        service = _decoded("io.debezium.time.ZonedTime", sent)
        offline = decoded_row({"t": column}, {"t": written}, "change.after")
        assert offline == {"t": service} and service.tzinfo is dt.UTC
        assert evaluate("str(after.t)", after=offline) == evaluate("str(after.t)", after={"t": service})
    # Debezium sends UTC; text with another offset would be read as the same instant, as offline
    assert _decoded("io.debezium.time.ZonedTime", "07:34:56.5-05:00") == dt.time(12, 34, 56, 500000, dt.UTC)


def test_a_timetz_test_value_yaml_reads_as_a_number_is_refused_as_for_other_times() -> None:
    """Unquoted 12:34:56 is a base-60 number to YAML 1.1: it was kept, a value the service never has."""
    from eventbus.mapping.tables import ColumnInfo
    from eventbus.mapping.test_values import UnfitTestData, decoded_row

    column = ColumnInfo("t", "time", True, "string", "io.debezium.time.ZonedTime")
    with pytest.raises(UnfitTestData, match="YAML reads it as a number; write it as the column's time"):
        decoded_row({"t": column}, {"t": 45296}, "change.after")
