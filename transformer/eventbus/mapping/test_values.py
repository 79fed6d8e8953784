"""Test data as the service would see it: the rows of an inline test (`before`, `after`, `given:`)
are written as YAML gives them (numbers, text, ISO-8601), and with the table's description beside
the mapping they become the values the service's decoder gives for those columns, so conditions and
arithmetic behave offline as in production.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from eventbus.debezium.infinite import BY_TEXT
from eventbus.debezium.logical_types import PLACEHOLDER
from eventbus.debezium.temporal_types import parse_iso_interval, zoned_time
from eventbus.mapping.compiler import CompiledMapping
from eventbus.mapping.functions import EXACT
from eventbus.mapping.tables import ColumnInfo
from eventbus.mapping.yaml_loader import KeyPath, describe_value

# Debezium's timestamp types without a zone: the service reads them as naive (wall-clock) datetimes.
_NAIVE_TIMESTAMPS: Final = frozenset(
    {
        "org.apache.kafka.connect.data.Timestamp",
        "io.debezium.time.Timestamp",
        "io.debezium.time.MicroTimestamp",
        "io.debezium.time.NanoTimestamp",
    }
)


def _test_value(column: ColumnInfo, value: Any) -> Any:
    """A column's value as written in a test (YAML: numbers, text, ISO-8601) → the Python value the
    service's decoder gives for that column, so that conditions and arithmetic see what they see in
    production (`after.total > 100` on a numeric column compares decimals, not text). Raises
    ValueError saying what the text should look like."""
    kind = column.kind
    if value is None or (value.__class__ is str and value == PLACEHOLDER):
        return value
    if value.__class__ is bool and kind not in _DECODED_TYPES:
        return value
    if column.element is not None and isinstance(value, list):  # an array: each element as its type
        return [_test_value(column.element, item) for item in value]
    if kind == "decimal" and isinstance(value, str | int | float):
        try:
            result = Decimal(str(value).strip())
        except ArithmeticError:
            raise ValueError("a decimal is written as text, e.g. \"1234.50\"") from None
        if not result.is_finite():
            raise ValueError("a decimal column holds finite numbers")
        if column.scale is not None:
            # Debezium sends a numeric(p, s) value with exactly s places: 0.1 of a numeric(12, 10)
            # column is 0.1000000000, and its text (str(), concat(), hash()) is that, as in the service.
            # A numeric(p,-s) value is a whole number (the decoder gives it without places).
            places = max(column.scale, 0)
            exponent = result.as_tuple().exponent
            if isinstance(exponent, int) and -exponent > places:
                raise ValueError(f"the column keeps {places} decimal place(s)")
            # EXACT: the default context's 28 digits refuse a numeric(38, 10) value
            result = result.quantize(Decimal(1).scaleb(-places), context=EXACT)
            if column.scale < 0 and EXACT.remainder(result, EXACT.scaleb(1, -column.scale)):
                raise ValueError(f"the column rounds to multiples of {10 ** -column.scale}")
        return result
    if kind == "bytes" and isinstance(value, str):
        return value.encode("utf-8")  # the service decodes bytea to bytes (as a bytes field takes text)
    if kind in ("date", "datetime") and isinstance(value, str) and value.strip() in BY_TEXT:
        return BY_TEXT[value.strip()]  # PostgreSQL 'infinity' / '-infinity', as the decoder gives it
    if kind == "date" and isinstance(value, str):
        return dt.date.fromisoformat(value.strip())
    if kind == "datetime" and isinstance(value, str | dt.datetime):
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value.strip())
        if column.logical in _NAIVE_TIMESTAMPS:  # a wall-clock reading: no zone, as in the service
            return moment if moment.tzinfo is None else moment.astimezone(dt.UTC).replace(tzinfo=None)
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    if kind == "time" and isinstance(value, str):
        if column.logical == "io.debezium.time.ZonedTime":  # timetz: in UTC, as the decoder gives it
            return zoned_time(value.strip())
        return dt.time.fromisoformat(value.strip())
    if kind == "uuid" and isinstance(value, str):
        return UUID(value.strip())
    if kind == "duration" and isinstance(value, str):
        interval = parse_iso_interval(value.strip())  # ISO-8601, e.g. P1Y2M3DT4H5M6.5S
        if column.logical == "io.debezium.time.Interval":
            return interval  # interval.handling.mode=string: months, days and time kept apart
        return interval.to_timedelta()  # MicroDuration: Debezium's months of 365.25/12 days
    _check_kind(column, value)
    return value


# What the service's decoder gives for a column of each kind. A test value of another type is
# YAML's reading of what was written (unquoted 010 is the number 10, 2024-01-15 a date, true a
# boolean): kept, it would make conditions and comparisons behave otherwise than in production.
_DECODED_TYPES: Final[dict[str, type | tuple[type, ...]]] = {
    "string": str,
    "int": int,
    "float": (int, float),
    "bool": bool,
    "date": dt.date,
    "datetime": dt.datetime,
    "time": dt.time,
    "uuid": UUID,
}


def _check_kind(column: ColumnInfo, value: Any) -> None:
    kind = column.kind
    wanted = _DECODED_TYPES.get(kind)
    if wanted is None:
        return
    wrong_bool = value.__class__ is bool and kind != "bool"
    timestamp_as_date = kind == "date" and isinstance(value, dt.datetime)
    if isinstance(value, wanted) and not wrong_bool and not timestamp_as_date:
        return
    read_as = f"YAML reads it as {describe_value(value)}"
    if kind == "string":
        raise ValueError(f'{read_as}: quote it to keep the text as written, e.g. "010"')
    if kind in ("int", "float") and isinstance(value, str):
        raise ValueError("write the number unquoted")
    if kind == "int" and isinstance(value, float):
        raise ValueError("the column holds whole numbers")
    if kind == "bool":
        raise ValueError("write true or false, unquoted")
    if kind == "datetime" and isinstance(value, dt.date):
        raise ValueError("a timestamp column needs the time too, e.g. 2024-01-15T10:00:00Z")
    raise ValueError(f"{read_as}; write it as the column's {kind} (ISO-8601 for times and dates)")


def decoded_row(
    columns: Mapping[str, ColumnInfo] | None,
    row: dict[str, Any] | None,
    where: str,
    path: KeyPath = (),
) -> dict[str, Any] | None:
    """`row` as the service would decode it; `where` names it in messages, `path` is its key path in
    the test (so that an unfit value's error is placed at its line)."""
    if row is None or not columns:
        return row
    out = {}
    for name, value in row.items():
        column = columns.get(name)
        try:
            out[name] = value if column is None else _test_value(column, value)
        except ValueError as error:
            raise UnfitTestData(
                f"{where}.{name}: {value!r} does not fit the {column.kind} column {name} ({error})",  # type: ignore[union-attr]
                (*path, name),
            ) from None
    return out


class UnfitTestData(Exception):
    """A test's row value that cannot be the column's value; the test fails with this message.
    `path` is the value's key path within the test (empty when unknown)."""

    def __init__(self, message: str, path: KeyPath = ()) -> None:
        super().__init__(message)
        self.path = path


class GivenRowsTable:
    """The table version of an inline test's `given:` rows of a looked-up table: its converters turn
    the values as written in the test into the values the service decodes (`_test_value`)."""

    def __init__(self, name: str, columns: Mapping[str, ColumnInfo]) -> None:
        self.name = name
        self.fingerprint = f"given:{name}"
        self.columns = columns

    def converter(self, column: str) -> Callable[[Any], Any]:
        info = self.columns[column]
        return lambda value: _test_value(info, value)


def given_tables(
    compiled: CompiledMapping, given: dict[str, list[dict[str, Any]]]
) -> dict[str, GivenRowsTable]:
    """The looked-up tables' versions for `given:` rows; raises `UnfitTestData` for a value that
    cannot be its column's (checked now, so the test names it instead of failing as it is read)."""
    if not given:
        return {}
    from eventbus.mapping.lookups import lookup_tables

    described = [table for table in lookup_tables(compiled.spec, []).values() if table is not None]
    tables = {table.name: GivenRowsTable(table.name, table.columns) for table in described}
    for name, rows in given.items():
        version = tables.get(name)
        for index, row in enumerate(rows):
            columns = version.columns if version else None
            decoded_row(columns, row, f"given.{name}[{index}]", ("given", name, index))
    return tables

