"""The functions a mapping expression may call, and the runtime helpers generated code uses.

What each function is called and takes, as the compiler checks it: `function_catalog.FUNCTIONS`.

Every function is null-safe: a null argument gives null (`coalesce` and `is_null` excepted, they
exist to handle nulls). The TOAST placeholder `UNAVAILABLE` propagates like null but stays distinct,
so that emitting it is caught (it must never reach an event) while conditions treat it as unknown.
Nothing here reads the clock, randomness or the environment: a replay must give the same events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any, Final
from uuid import UUID

from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.debezium.temporal_types import PgInterval, parse_iso_interval
from eventbus.errors import NO_VALUE, ValueApart

_U: Final = UNAVAILABLE
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Decimal arithmetic of mappings is exact: Python's default context keeps 28 significant digits, which
# would round a numeric(38, 10) sum or product silently. A quotient that does not end (1 / 3) cannot
# be exact: it gets 100 significant digits, and a decimal field's scale check then asks for round().
EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
QUOTIENT: Final = Context(prec=100, Emax=MAX_EMAX, Emin=MIN_EMIN)


class ExpressionRuntimeError(ValueApart, ValueError):
    """A value an expression cannot work with (wrong type, bad number); becomes a dead-letter reason.

    The message names the function or operator, the type and the rule, never the value: that is kept
    in `value` (see `ValueApart`), because dead-letter reasons must not carry personal data.
    """

    def __init__(self, message: str, value: Any = NO_VALUE) -> None:
        super().__init__(message)
        self.value = value


class LookupMissingError(ExpressionRuntimeError):
    """A lookup found no related row (after its wait) and its `on_missing` is `dead_letter`."""


def _absent(*values: Any) -> Any:
    """The value to return when an argument is null or unavailable, else the sentinel `False`."""
    for value in values:
        if value is None:
            return None
    for value in values:
        if value is _U:
            return _U
    return False


def _type_name(value: Any) -> str:
    return type(value).__name__


def _need_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ExpressionRuntimeError(f"{name}() expects text, got {_type_name(value)}", value)
    return value


_INTEGER_TEXT: Final = re.compile(r"[+-]?[0-9]+\Z")
_SPECIAL_FLOAT_TEXT: Final = re.compile(r"[+-]?(?:nan|inf|infinity)\Z", re.IGNORECASE)
_NUMBER_TEXT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


def text_of(value: Any) -> str:
    """The canonical text of a value: exact decimals, ISO dates and times, lowercase booleans."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        # as Avro's JSON form and `mapping run` write them, not Python's nan/inf
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dt.timedelta):
        return str(duration_iso(value))  # ISO-8601 (PT25H1S), not Python's "1 day, 1:00:01"
    if isinstance(value, int | float | UUID):
        return str(value)
    raise ExpressionRuntimeError(f"cannot turn {_type_name(value)} into text", value)


# --- text -------------------------------------------------------------------------------------
# Each text function first tests for the common case (plain `str` arguments) with class identity
# checks, which cost less than the null/unavailable/type checks of the general path they skip.


def lower(x: Any) -> Any:
    if x.__class__ is str:
        return x.lower()
    missing = _absent(x)
    return _need_text("lower", x).lower() if missing is False else missing


def upper(x: Any) -> Any:
    if x.__class__ is str:
        return x.upper()
    missing = _absent(x)
    return _need_text("upper", x).upper() if missing is False else missing


def trim(x: Any) -> Any:
    if x.__class__ is str:
        return x.strip()
    missing = _absent(x)
    return _need_text("trim", x).strip() if missing is False else missing


def length(x: Any) -> Any:
    missing = _absent(x)
    if missing is not False:
        return missing
    if not isinstance(x, str | bytes | list | tuple):
        raise ExpressionRuntimeError(f"length() expects text or a list, got {_type_name(x)}", x)
    return len(x)


def substr(x: Any, start: Any, count: Any = None) -> Any:
    """1-based start as in SQL; a count of None means "to the end"."""
    if x.__class__ is str and start.__class__ is int and start >= 1:
        if count is None:
            return x[start - 1 :]
        if count.__class__ is int and count >= 0:
            return x[start - 1 : start - 1 + count]
    missing = _absent(x, start)
    if missing is not False:
        return missing
    text = _need_text("substr", x)
    if not isinstance(start, int) or start < 1:
        raise ExpressionRuntimeError("substr() start must be an integer >= 1")
    if count is None:
        return text[start - 1 :]
    if not isinstance(count, int) or count < 0:
        raise ExpressionRuntimeError("substr() count must be an integer >= 0")
    return text[start - 1 : start - 1 + count]


def concat(*parts: Any) -> Any:
    missing = _absent(*parts)
    return "".join(text_of(part) for part in parts) if missing is False else missing


def startswith(x: Any, prefix: Any) -> Any:
    missing = _absent(x, prefix)
    if missing is not False:
        return missing
    return _need_text("startswith", x).startswith(_need_text("startswith", prefix))


def endswith(x: Any, suffix: Any) -> Any:
    missing = _absent(x, suffix)
    if missing is not False:
        return missing
    return _need_text("endswith", x).endswith(_need_text("endswith", suffix))


def replace(x: Any, old: Any, new: Any) -> Any:
    missing = _absent(x, old, new)
    if missing is not False:
        return missing
    return _need_text("replace", x).replace(_need_text("replace", old), _need_text("replace", new))


def matches(x: Any, pattern: re.Pattern[str]) -> Any:
    """`pattern` is compiled once at load time; the compiler passes the compiled object."""
    missing = _absent(x)
    return pattern.search(_need_text("matches", x)) is not None if missing is False else missing


# --- nulls ------------------------------------------------------------------------------------


def coalesce(*values: Any) -> Any:
    """The first argument that is neither null nor unavailable (TOAST), else null."""
    for value in values:
        if value is not None and value is not _U:
            return value
    return None


def is_null(x: Any) -> bool:
    return x is None


def is_unavailable(x: Any) -> bool:
    return x is _U


# --- conversions ------------------------------------------------------------------------------


def to_int(x: Any) -> Any:
    missing = _absent(x)
    if missing is not False:
        return missing
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x
    if isinstance(x, float | Decimal):
        finite = x.is_finite() if isinstance(x, Decimal) else math.isfinite(x)
        if not finite:
            raise ExpressionRuntimeError(
                f"int() of a {_type_name(x)} that is NaN or infinite: no integer is; test for it first "
                "(e.g. after.x < 1e300 and after.x > -1e300) or publish the float",
                x,
            )
        if x != x.__floor__():
            raise ExpressionRuntimeError(
                f"int() of a {_type_name(x)} would lose its fraction; use round()", x
            )
        return int(x)
    if isinstance(x, str):
        text = x.strip()
        # ASCII digits only: Python's int() also takes '1_000' and other scripts' digits
        if not _INTEGER_TEXT.match(text) or len(text) > 4000:
            raise ExpressionRuntimeError("int() cannot convert text that is not an integer", x)
        return int(text)
    raise ExpressionRuntimeError(f"int() cannot convert {_type_name(x)}", x)


def to_float(x: Any) -> Any:
    missing = _absent(x)
    if missing is not False:
        return missing
    if isinstance(x, bool) or not isinstance(x, int | float | Decimal | str):
        raise ExpressionRuntimeError(f"float() cannot convert {_type_name(x)}", x)
    special = isinstance(x, str) and _SPECIAL_FLOAT_TEXT.match(x.strip()) is not None  # NaN, Infinity
    if isinstance(x, str) and not special and not _NUMBER_TEXT.match(x.strip()):
        raise ExpressionRuntimeError("float() cannot convert text that is not a number", x)
    try:
        result = float(x)
    except (ValueError, OverflowError):
        raise ExpressionRuntimeError("float() cannot convert text that is not a number", x) from None
    if math.isinf(result) and not special and isinstance(x, str | Decimal | int):
        raise ExpressionRuntimeError("float() of a number too large for a double", x)
    return result


def to_decimal(x: Any) -> Any:
    missing = _absent(x)
    if missing is not False:
        return missing
    if isinstance(x, Decimal):
        return x
    if isinstance(x, bool) or not isinstance(x, int | float | str):
        raise ExpressionRuntimeError(f"decimal() cannot convert {_type_name(x)}", x)
    if isinstance(x, str) and not _NUMBER_TEXT.match(x.strip()):
        raise ExpressionRuntimeError("decimal() cannot convert text that is not a number", x)
    try:
        # str() of a float is its shortest round-trip form: decimal(0.1) is 0.1, not 0.1000000000000000055
        result = Decimal(str(x).strip())
    except InvalidOperation:
        raise ExpressionRuntimeError("decimal() cannot convert text that is not a number", x) from None
    if not result.is_finite():
        raise ExpressionRuntimeError(f"decimal() of a {_type_name(x)} that is not a finite number", x)
    return result


def to_str(x: Any) -> Any:
    missing = _absent(x)
    return text_of(x) if missing is False else missing


_TRUE: Final = frozenset({"true", "t", "yes", "y", "1"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0"})


def to_bool(x: Any) -> Any:
    missing = _absent(x)
    if missing is not False:
        return missing
    if isinstance(x, bool):
        return x
    if isinstance(x, int) and x in (0, 1):
        return bool(x)
    if isinstance(x, str):
        folded = x.strip().lower()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    raise ExpressionRuntimeError(
        f"bool() cannot convert this {_type_name(x)} (accepted: booleans, 0/1, true/false/yes/no text)", x
    )


def to_date(x: Any) -> Any:
    missing = _absent(x)
    if missing is not False:
        return missing
    if isinstance(x, dt.datetime):
        return x.date()
    if isinstance(x, dt.date):
        return x
    if isinstance(x, str):
        text = x.strip()
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text)
            # a datetime's date; one with an offset, in UTC, as date() of a timestamptz column
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ExpressionRuntimeError("date() cannot parse text that is not an ISO-8601 date", x) from None
        return (moment.astimezone(dt.UTC) if moment.tzinfo is not None else moment).date()
    raise ExpressionRuntimeError(f"date() cannot convert {_type_name(x)}", x)


def to_datetime(x: Any) -> Any:
    """Datetimes pass, dates become midnight UTC, ISO text is parsed; naive values are taken as UTC."""
    missing = _absent(x)
    if missing is not False:
        return missing
    if isinstance(x, dt.datetime):
        result = x
    elif isinstance(x, dt.date):
        result = dt.datetime(x.year, x.month, x.day)
    elif isinstance(x, str):
        try:
            result = dt.datetime.fromisoformat(x.strip())
        except ValueError:
            raise ExpressionRuntimeError(
                "datetime() cannot parse text that is not an ISO-8601 datetime", x
            ) from None
    else:
        raise ExpressionRuntimeError(f"datetime() cannot convert {_type_name(x)}", x)
    return result if result.tzinfo is not None else result.replace(tzinfo=dt.UTC)


def timestamp_ms(x: Any) -> Any:
    """Milliseconds since the epoch of a datetime (naive = UTC) or a date (midnight UTC)."""
    missing = _absent(x)
    if missing is not False:
        return missing
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    moment = to_datetime(x)
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# --- durations (PostgreSQL interval) ----------------------------------------------------------------
# Debezium sends an interval as micros (`interval.handling.mode=numeric`: a `timedelta` here) or as
# ISO-8601 text (`string`: a `PgInterval`, months and days kept apart). A month has no fixed length:
# where one must be counted in time, Debezium's own 365.25 / 12 days is used, as its numeric mode does.

_MICROS_PER_DAY: Final = 86_400_000_000
_DAYS_PER_MONTH: Final = Decimal("365.25") / 12


def _duration_parts(name: str, x: Any) -> tuple[int, int, int]:
    """(months, days, microseconds) of a duration."""
    if isinstance(x, dt.timedelta):  # Debezium's numeric mode: days and months already in the micros
        return 0, 0, (x.days * 86_400 + x.seconds) * 1_000_000 + x.microseconds
    if isinstance(x, PgInterval):
        return x.months, x.days, x.microseconds
    if isinstance(x, str):  # ISO-8601 text, as a test row writes an interval
        try:
            x = parse_iso_interval(x)
        except ValueError:
            raise ExpressionRuntimeError(f"{name}() expects a duration; the text is no ISO-8601", x) from None
        return x.months, x.days, x.microseconds
    raise ExpressionRuntimeError(f"{name}() expects a duration (an interval column), got {_type_name(x)}", x)


def duration_micros(x: Any) -> Any:
    missing = _absent(x)
    if missing is not False:
        return missing
    months, days, micros = _duration_parts("duration_micros", x)
    month_micros = (months * _DAYS_PER_MONTH * _MICROS_PER_DAY).to_integral_value(rounding=ROUND_HALF_EVEN)
    return int(month_micros) + days * _MICROS_PER_DAY + micros


def duration_seconds(x: Any) -> Any:
    missing = _absent(x)
    if missing is not False:
        return missing
    return Decimal(duration_micros(x)).scaleb(-6)


def duration_iso(x: Any) -> Any:
    """ISO-8601 text keeping months and days apart (`P1Y2M3DT4H5M6.5S`, `PT0S` for zero)."""
    missing = _absent(x)
    if missing is not False:
        return missing
    months, days, micros = _duration_parts("duration_iso", x)
    sign = "-" if micros < 0 else ""
    hours, rest = divmod(abs(micros), 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds = format(Decimal(rest).scaleb(-6).normalize(), "f")  # 30, not 3E+1
    month_sign = -1 if months < 0 else 1
    years, months_left = divmod(abs(months), 12)
    date_units = ((month_sign * years, "Y"), (month_sign * months_left, "M"), (days, "D"))
    date_part = "".join(f"{value}{unit}" for value, unit in date_units if value)
    time_part = "".join(
        f"{sign}{value}{unit}"
        for value, unit in ((hours, "H"), (minutes, "M"), (seconds, "S"))
        if value not in (0, "0")
    )
    if not date_part and not time_part:
        return "PT0S"
    return f"P{date_part}" + (f"T{time_part}" if time_part else "")


# --- sensitive values -------------------------------------------------------------------------


def hash_(x: Any, salt: bytes = b"") -> Any:
    """SHA-256 (hex) of the value's canonical text, prefixed with the configured salt."""
    missing = _absent(x)
    if missing is not False:
        return missing
    return hashlib.sha256(salt + text_of(x).encode("utf-8")).hexdigest()


def mask(x: Any, keep: int = 4) -> Any:
    """All but the last `keep` characters replaced with `*` (length kept, so formats stay recognisable);
    a value of `keep` characters or fewer is hidden whole (it passes the pii check as masked)."""
    missing = _absent(x)
    if missing is not False:
        return missing
    text = text_of(x)
    if keep <= 0 or len(text) <= keep:  # a value no longer than `keep` would be published whole
        return "*" * len(text)
    hidden = len(text) - keep
    return "*" * hidden + text[hidden:]
