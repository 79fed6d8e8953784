"""The functions a mapping expression may call, and the runtime helpers generated code uses.

What each function is called and takes, as the compiler checks it: `function_catalog.FUNCTIONS`. The
conversions (`int()`, `decimal()`, `date()`, ...): `conversion_functions.py`.

Every function is null-safe: a null argument gives null (`coalesce` and `is_null` excepted, they
exist to handle nulls). The TOAST placeholder `UNAVAILABLE` propagates like null but stays distinct,
so that emitting it is caught (it must never reach an event) while conditions treat it as unknown.
PostgreSQL's 'infinity' / '-infinity' dates and timestamps (`debezium.infinite`) are values: their
text is 'infinity' / '-infinity', date() and datetime() keep them, and anything needing a calendar
date or a number of them is this module's error.
Nothing here reads the clock, randomness or the environment: a replay must give the same events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import re
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Final
from uuid import UUID

from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.debezium.infinite import Infinite
from eventbus.debezium.temporal_types import PgInterval, parse_iso_interval
from eventbus.errors import NO_VALUE, ValueApart

_U: Final = UNAVAILABLE
# Decimal arithmetic of mappings is exact: Python's default context keeps 28 significant digits, which
# would round a numeric(38, 10) sum or product silently. A quotient that does not end (1 / 3) cannot
# be exact: it gets 100 significant digits, and a decimal field's scale check then asks for round().
EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
QUOTIENT: Final = Context(prec=100, Emax=MAX_EMAX, Emin=MIN_EMIN)
# The most digits int() and round() give: more than any Avro field takes, and int() of a decimal of a
# numeric column's 131072 digits would take seconds (Python's int() refuses text beyond 4300).
MAX_INTEGER_DIGITS: Final = 4000


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


def absent(*values: Any) -> Any:
    """The value to return when an argument is null or unavailable, else the sentinel `False`."""
    for value in values:
        if value is None:
            return None
    for value in values:
        if value is _U:
            return _U
    return False


def type_name(value: Any) -> str:
    return type(value).__name__


def _need_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ExpressionRuntimeError(f"{name}() expects text, got {type_name(value)}", value)
    return value


def text_of(value: Any, function: str = "") -> str:
    """The canonical text of a value: exact decimals, ISO dates, times and durations, lowercase
    booleans. `function`: the expression function asking, named in the error."""
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
    if isinstance(value, dt.timedelta | PgInterval):
        # ISO-8601 (PT25H1S), not Python's "1 day, 1:00:01"; an interval in Debezium's string mode as
        # Debezium wrote it
        return str(duration_iso(value))
    if isinstance(value, int | float | UUID):
        return str(value)
    if value.__class__ is Infinite:
        return str(value.text)  # as PostgreSQL prints it
    asking = f"{function}() " if function else ""
    raise ExpressionRuntimeError(f"{asking}cannot turn {type_name(value)} into text", value)


# --- text -------------------------------------------------------------------------------------
# Each text function first tests for the common case (plain `str` arguments) with class identity
# checks, which cost less than the null/unavailable/type checks of the general path they skip.


def lower(x: Any) -> Any:
    if x.__class__ is str:
        return x.lower()
    missing = absent(x)
    return _need_text("lower", x).lower() if missing is False else missing


def upper(x: Any) -> Any:
    if x.__class__ is str:
        return x.upper()
    missing = absent(x)
    return _need_text("upper", x).upper() if missing is False else missing


def trim(x: Any) -> Any:
    if x.__class__ is str:
        return x.strip()
    missing = absent(x)
    return _need_text("trim", x).strip() if missing is False else missing


def length(x: Any) -> Any:
    missing = absent(x)
    if missing is not False:
        return missing
    if not isinstance(x, str | bytes | list | tuple):
        raise ExpressionRuntimeError(f"length() expects text or a list, got {type_name(x)}", x)
    return len(x)


def substr(x: Any, start: Any, count: Any = None) -> Any:
    """1-based start as in SQL; a count of None means "to the end"."""
    if x.__class__ is str and start.__class__ is int and start >= 1:
        if count is None:
            return x[start - 1 :]
        if count.__class__ is int and count >= 0:
            return x[start - 1 : start - 1 + count]
    missing = absent(x, start)
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
    missing = absent(*parts)
    return "".join(text_of(part, "concat") for part in parts) if missing is False else missing


def startswith(x: Any, prefix: Any) -> Any:
    missing = absent(x, prefix)
    if missing is not False:
        return missing
    return _need_text("startswith", x).startswith(_need_text("startswith", prefix))


def endswith(x: Any, suffix: Any) -> Any:
    missing = absent(x, suffix)
    if missing is not False:
        return missing
    return _need_text("endswith", x).endswith(_need_text("endswith", suffix))


def replace(x: Any, old: Any, new: Any) -> Any:
    missing = absent(x, old, new)
    if missing is not False:
        return missing
    return _need_text("replace", x).replace(_need_text("replace", old), _need_text("replace", new))


def matches(x: Any, pattern: re.Pattern[str]) -> Any:
    """`pattern` is compiled once at load time; the compiler passes the compiled object."""
    missing = absent(x)
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


def is_infinite(x: Any) -> bool:
    """PostgreSQL 'infinity' or '-infinity' of a date, timestamp or timestamptz column."""
    return x.__class__ is Infinite


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
    raise ExpressionRuntimeError(f"{name}() expects a duration (an interval column), got {type_name(x)}", x)


def duration_micros(x: Any) -> Any:
    return _micros("duration_micros", x)


def duration_seconds(x: Any) -> Any:
    micros = _micros("duration_seconds", x)
    return micros if micros is None or micros is _U else Decimal(micros).scaleb(-6)


def _micros(function: str, x: Any) -> Any:
    missing = absent(x)
    if missing is not False:
        return missing
    months, days, micros = _duration_parts(function, x)
    month_micros = (months * _DAYS_PER_MONTH * _MICROS_PER_DAY).to_integral_value(rounding=ROUND_HALF_EVEN)
    return int(month_micros) + days * _MICROS_PER_DAY + micros


def duration_iso(x: Any) -> Any:
    """ISO-8601 text keeping months and days apart (`P1Y2M3DT4H5M6.5S`, `PT0S` for zero)."""
    missing = absent(x)
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
    """HMAC-SHA-256 (hex) of the value's canonical text, keyed with the configured salt: the standard
    keyed hash for pseudonymisation. SHA-256 of salt + text, as before, is none (length extension;
    no boundary between key and text)."""
    missing = absent(x)
    if missing is not False:
        return missing
    try:
        data = text_of(x, "hash").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a JSON "\ud800" escape) is no Unicode text
        raise ExpressionRuntimeError(
            "hash() of text that is not valid Unicode (a lone surrogate)", x
        ) from None
    return hmac.new(salt, data, hashlib.sha256).hexdigest()


def mask(x: Any, keep: int = 4) -> Any:
    """All but the last `keep` characters replaced with `*` (length kept, so formats stay recognisable);
    a value of `keep` characters or fewer is hidden whole (it passes the pii check as masked).

    A character is a Unicode code point, as `length()` and `substr()` count (Python's `str`), not what
    a reader sees as one: counting those (grapheme clusters) needs a library the service does not
    have. An accented letter written with a combining mark, or an emoji sequence, is several; what is
    kept is never more code points than `keep`, so never more than `keep` visible characters."""
    missing = absent(x)
    if missing is not False:
        return missing
    text = text_of(x, "mask")
    if keep <= 0 or len(text) <= keep:  # a value no longer than `keep` would be published whole
        return "*" * len(text)
    hidden = len(text) - keep
    return "*" * hidden + text[hidden:]
