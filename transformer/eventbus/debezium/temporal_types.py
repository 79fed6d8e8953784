"""Converters of Debezium's time, date and duration types to exact Python values.

Instants and wall-clock times arrive as integer counts since the epoch or midnight (micro-, milli-
or nanoseconds, per `time.precision.mode`) or as ISO-8601 text (zoned types, `isostring` mode);
intervals as micros (`interval.handling.mode=numeric`) or ISO-8601 text (`string`, kept exact as a
`PgInterval`). `TEMPORAL_FACTORIES` is merged into `logical_types.LOGICAL_FACTORIES`, the one table
`make_converter` looks in; the time types are a module of their own as the largest family of them.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final

from eventbus.debezium.conversion_errors import CONVERSION_ERRORS, Unfit, conversion_error, guard, named
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.infinite import BY_TEXT, INFINITY, NEG_INFINITY, Infinite

if TYPE_CHECKING:
    from eventbus.debezium.logical_types import ColumnType, Converter, ConverterOptions, Factory

_EPOCH: Final = datetime(1970, 1, 1)
_EPOCH_DATE: Final = date(1970, 1, 1)
_MIDNIGHT: Final = datetime(1970, 1, 1)


def _not_an_integer(column: str, col: ColumnType, value: Any) -> DecodeError:
    return DecodeError(
        f"column {column!r} ({col.describe()}): expected an integer, got type {type(value).__name__}",
        column=column,
        value=value,
    )


def _out_of_range(column: str, col: ColumnType, value: Any) -> DecodeError:
    # Infinities are recognised before this (`_INFINITIES`): what is left is a far-future value.
    return DecodeError(
        f"column {column!r} ({col.describe()}): the value is outside the range of Python's datetime "
        "(years 1-9999) and is not one of Debezium's encodings of PostgreSQL 'infinity'/'-infinity'",
        column=column,
        value=value,
    )


# How Debezium 3.6 (the stack's connect image) encodes PostgreSQL 'infinity' / '-infinity', from its
# PostgreSQL connector (PostgresValueConverter, connection/DateTimeFormat, PostgresConnection at tag
# v3.6.1.Final; its postgresql.adoc "timestamp" notes; the IT PostgresTemporalPrecisionHandlingIT):
# - timestamp: both streaming and snapshot map the text to a LocalDateTime made from pgjdbc's
#   PGStatement.DATE_POSITIVE_INFINITY / DATE_NEGATIVE_INFINITY read as *micros* since the epoch, so
#   MicroTimestamp sends exactly those numbers (9223372036825200000 / -9223372036832400000, as the
#   docs say) and Timestamp (timestamp(0..3), millis) the same instant in millis. NanoTimestamp
#   (nanoseconds mode, not the stack's) sends Long.MAX_VALUE / Long.MIN_VALUE (docs, dbz#1833).
#   Debezium's later fix dbz#2524 (PR #7927) makes MicroTimestamp send Long.MAX_VALUE / MIN_VALUE
#   too: both are taken.
# - date: streaming (pgoutput text) gives the LocalDates -5877611-06-21 / -5877611-06-22 (sic: +inf
#   is the earlier one), epoch days -2147472692 / -2147472691; a snapshot reads the column through
#   pgjdbc as java.sql.Date of those PGStatement millis, whose date in the JVM's zone is, in UTC,
#   +292278994-08-16 / +292269055-12-02 (a day later east of UTC: Debezium's own IT accepts both) and
#   whose epoch day Debezium truncates to an int: -622191234 / -625821272 (or one more).
# - timestamptz: ZonedTimestamp text "infinity" / "-infinity" (recognised by `BY_TEXT`); in isostring
#   mode a timestamp's infinity is the text of the micros instant above.
# Each but the nanos is out of Python's range, so they are looked up only where a conversion already
# failed; any other value out of range stays a DecodeError.
_MICRO_INFINITY, _MICRO_NEG_INFINITY = 9_223_372_036_825_200_000, -9_223_372_036_832_400_000
_LONG_MAX, _LONG_MIN = 2**63 - 1, -(2**63)
_INFINITIES: Final[dict[str, Mapping[Any, Infinite]]] = {
    "micros": {
        _MICRO_INFINITY: INFINITY, _MICRO_NEG_INFINITY: NEG_INFINITY,
        _LONG_MAX: INFINITY, _LONG_MIN: NEG_INFINITY,
    },
    "millis": {_MICRO_INFINITY // 1000: INFINITY, _MICRO_NEG_INFINITY // 1000: NEG_INFINITY},
    "nanos": {_LONG_MAX: INFINITY, _LONG_MIN: NEG_INFINITY},
    "days": {
        -2147472692: INFINITY, -2147472691: NEG_INFINITY,
        -622191233: INFINITY, -622191234: INFINITY, -625821271: NEG_INFINITY, -625821272: NEG_INFINITY,
    },
    "text": BY_TEXT,
    "isostring": {
        **BY_TEXT,
        "+294247-01-10T04:00:25.2Z": INFINITY, "-290308-12-21T19:59:27.6Z": NEG_INFINITY,
    },
}  # fmt: skip


def _epoch_datetime(divisor: int, scale_to_micros: int) -> Factory:
    """Naive datetimes from an integer count since the epoch (millis: scale 1000, nanos: divisor 1000)."""

    def factory(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
        epoch = _EPOCH
        td = timedelta
        infinities = _INFINITIES["nanos" if divisor != 1 else "millis" if scale_to_micros != 1 else "micros"]

        if divisor == 1:

            def convert(v: Any) -> Any:
                if v is None:
                    return None
                if v.__class__ is not int:
                    raise _not_an_integer(column, col, v)
                try:
                    return epoch + td(0, 0, v * scale_to_micros)
                except OverflowError as exc:
                    infinite = infinities.get(v)
                    if infinite is None:
                        raise _out_of_range(column, col, v) from exc
                    return infinite

        else:

            def convert(v: Any) -> Any:
                if v is None:
                    return None
                if v.__class__ is not int:
                    raise _not_an_integer(column, col, v)
                if v in infinities:
                    # Long.MAX/MIN_VALUE nanos are dates in 2262 and 1677: in range, so tested first
                    # (only nanoseconds mode pays it; no PostgreSQL timestamp has those nanoseconds)
                    return infinities[v]
                # Floor division keeps pre-1970 values on the right side of the truncation.
                return epoch + td(0, 0, v // divisor)

        return named(convert, column, col)

    return factory


def _range_guarded(fn: Converter, column: str, col: ColumnType) -> Converter:
    """Like `_guard` for integer-encoded values, with a hint for overflows ('infinity')."""

    def convert(v: Any) -> Any:
        if v.__class__ is not int and v is not None:
            raise _not_an_integer(column, col, v)
        try:
            return fn(v)
        except OverflowError as exc:
            raise _out_of_range(column, col, v) from exc
        except DecodeError:
            raise
        except CONVERSION_ERRORS as exc:
            raise conversion_error(column, col, v, exc) from exc

    return named(convert, column, col)


def _epoch_date(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    epoch = _EPOCH_DATE
    td = timedelta
    infinities = _INFINITIES["days"]

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if v.__class__ is not int:
            raise _not_an_integer(column, col, v)
        try:
            return epoch + td(v)
        except OverflowError as exc:
            infinite = infinities.get(v)
            if infinite is None:
                raise _out_of_range(column, col, v) from exc
            return infinite

    return named(convert, column, col)


def _time_of_day(divisor: int, scale_to_micros: int) -> Factory:
    def factory(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
        midnight = _MIDNIGHT

        def convert(v: Any) -> Any:
            if v is None:
                return None
            micros = v * scale_to_micros if divisor == 1 else v // divisor
            if not 0 <= micros < 86_400_000_000:
                # PostgreSQL accepts '24:00:00'; Python's time cannot hold it.
                raise Unfit("time of day outside 00:00:00-23:59:59.999999 (PostgreSQL '24:00'?)")
            return (midnight + timedelta(0, 0, micros)).time()

        return guard(convert, column, col)

    return factory


def _zoned_timestamp(infinities: Mapping[Any, Infinite]) -> Factory:
    def factory(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
        # Debezium normalises timestamptz to UTC and prints ISO-8601 with a 'Z' and 0-9 fraction digits.
        parse = datetime.fromisoformat

        def convert(v: Any) -> Any:
            if v is None:
                return None
            try:
                return parse(v)
            except CONVERSION_ERRORS as exc:
                if v.__class__ is str:
                    infinite = infinities.get(v)
                    if infinite is not None:
                        return infinite
                    if v[:1] == "+" or v[:5].isdigit():
                        # years past 9999 (Debezium writes '+294276-12-31T...')
                        raise _out_of_range(column, col, v) from exc
                raise conversion_error(column, col, v, exc) from exc

        return named(convert, column, col)

    return factory


def utc_time(moment: time) -> time:
    """A time of day with its offset as the same time in UTC (wrapping past midnight, as Debezium's
    ZonedTime normalises timetz); a naive one is taken as UTC. Its ISO text then always ends in
    '+00:00', whatever offset the time was written with."""
    offset = moment.utcoffset()
    if offset is None or not offset:
        return moment if moment.tzinfo is UTC else moment.replace(tzinfo=UTC)
    return (datetime.combine(_EPOCH_DATE, moment) - offset).time().replace(tzinfo=UTC)


def zoned_time(text: str) -> time:
    """A ZonedTime value ('12:34:56.789012Z') as the decoder gives it: a time in UTC. Inline test
    values of a timetz column are read with this too, so a test predicts the service's event."""
    moment = time.fromisoformat(text)
    return moment if moment.tzinfo is UTC else utc_time(moment)


def _zoned_time(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    def convert(v: Any) -> Any:
        if v is None:
            return None
        return zoned_time(v)

    return guard(convert, column, col)


def _iso_time(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    parse = time.fromisoformat  # time.precision.mode=isostring: with an offset or not, as its type

    def convert(v: Any) -> Any:
        if v is None:
            return None
        return parse(v)

    return guard(convert, column, col)


def _iso_date(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    # time.precision.mode=isostring: dates may carry a zone suffix, which a date cannot hold.
    def convert(v: Any) -> Any:
        if v is None:
            return None
        return date.fromisoformat(v[:10])

    return guard(convert, column, col)


def _micro_duration(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    # interval.handling.mode=numeric: Debezium folds months into micros using 365.25/12 days a month,
    # so the sum is already a duration; timedelta keeps it exactly.
    def convert(v: Any) -> Any:
        if v is None:
            return None
        return timedelta(0, 0, v)

    return _range_guarded(convert, column, col)


@dataclass(frozen=True, slots=True)
class PgInterval:
    """A PostgreSQL interval exactly as stored: months, days and microseconds kept apart.

    `io.debezium.time.Interval` (interval.handling.mode=string) sends ISO-8601 text such as
    `P1Y2M3DT4H5M6.78S`; months and days have no fixed length, so a `timedelta` would be a guess.
    """

    months: int
    days: int
    microseconds: int

    def to_timedelta(self, days_per_month: float = 365.25 / 12) -> timedelta:
        """An approximation using Debezium's own month length (the one behind MicroDuration)."""
        return timedelta(days=self.days + self.months * days_per_month, microseconds=self.microseconds)


_ISO_INTERVAL = re.compile(
    r"P(?:(?P<y>[-+]?\d+)Y)?(?:(?P<mo>[-+]?\d+)M)?(?:(?P<w>[-+]?\d+)W)?(?:(?P<d>[-+]?\d+)D)?"
    r"(?:T(?:(?P<h>[-+]?\d+)H)?(?:(?P<mi>[-+]?\d+)M)?(?:(?P<s>[-+]?\d+(?:\.\d+)?)S)?)?"
)


def parse_iso_interval(text: str) -> PgInterval:
    """Parse Debezium's ISO-8601 interval text (components may be negative) into a `PgInterval`."""
    m = _ISO_INTERVAL.fullmatch(text)
    if m is None or text in ("P", "PT"):
        raise Unfit("not an ISO-8601 duration")
    g = {k: int(v) for k, v in m.groupdict().items() if v is not None and k != "s"}
    seconds = decimal.Decimal(m["s"]) if m["s"] else decimal.Decimal(0)
    micros = int((seconds * 1_000_000).to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
    micros += (g.get("h", 0) * 3600 + g.get("mi", 0) * 60) * 1_000_000
    return PgInterval(
        months=g.get("y", 0) * 12 + g.get("mo", 0),
        days=g.get("w", 0) * 7 + g.get("d", 0),
        microseconds=micros,
    )


def _interval(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    def convert(v: Any) -> Any:
        if v is None:
            return None
        return parse_iso_interval(v)

    return guard(convert, column, col)


TEMPORAL_FACTORIES: Final[dict[str, Factory]] = {
    # instants and wall-clock times
    "io.debezium.time.MicroTimestamp": _epoch_datetime(1, 1),
    "io.debezium.time.NanoTimestamp": _epoch_datetime(1000, 1),
    "io.debezium.time.Timestamp": _epoch_datetime(1, 1000),
    "org.apache.kafka.connect.data.Timestamp": _epoch_datetime(1, 1000),
    "io.debezium.time.ZonedTimestamp": _zoned_timestamp(_INFINITIES["text"]),
    "io.debezium.time.IsoTimestamp": _zoned_timestamp(_INFINITIES["isostring"]),
    "io.debezium.time.Date": _epoch_date,
    "org.apache.kafka.connect.data.Date": _epoch_date,
    "io.debezium.time.IsoDate": _iso_date,
    "io.debezium.time.MicroTime": _time_of_day(1, 1),
    "io.debezium.time.NanoTime": _time_of_day(1000, 1),
    "io.debezium.time.Time": _time_of_day(1, 1000),
    "org.apache.kafka.connect.data.Time": _time_of_day(1, 1000),
    "io.debezium.time.ZonedTime": _zoned_time,
    "io.debezium.time.IsoTime": _iso_time,
    # durations
    "io.debezium.time.MicroDuration": _micro_duration,
    "io.debezium.time.Interval": _interval,
}
