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

import pytest

from eventbus.debezium.logical_types import ColumnType, ConverterOptions, make_converter
from eventbus.mapping.avro import coercer, describe
from eventbus.mapping.expression_runtime import evaluate
from eventbus.mapping.functions import ExpressionRuntimeError

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
