"""The conversion functions of a mapping expression: `int()`, `float()`, `decimal()`, `str()`,
`bool()`, `date()`, `datetime()` and `timestamp_ms()` (as `to_int`, ... here).

Null-safe as every function (`functions.py`): a null or unavailable argument gives itself back. A
value that cannot be converted exactly is an `ExpressionRuntimeError`, never a silent rounding: a
fraction lost to int(), text that is not a number, a number too large for a double.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from eventbus.debezium.infinite import Infinite, refusal
from eventbus.mapping.functions import MAX_INTEGER_DIGITS, ExpressionRuntimeError, absent, text_of, type_name

EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_INTEGER_TEXT: Final = re.compile(r"[+-]?[0-9]+\Z")
_SPECIAL_FLOAT_TEXT: Final = re.compile(r"[+-]?(?:nan|inf|infinity)\Z", re.IGNORECASE)
_NUMBER_TEXT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


def to_int(x: Any) -> Any:
    missing = absent(x)
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
                f"int() of a {type_name(x)} that is NaN or infinite: no integer is; test for it first "
                "(e.g. after.x < 1e300 and after.x > -1e300) or publish the float",
                x,
            )
        if isinstance(x, Decimal) and x.adjusted() >= MAX_INTEGER_DIGITS:
            raise ExpressionRuntimeError(f"int() of a decimal of more than {MAX_INTEGER_DIGITS} digits", x)
        if x != x.__floor__():
            raise ExpressionRuntimeError(
                f"int() of a {type_name(x)} would lose its fraction; use round()", x
            )
        return int(x)
    if isinstance(x, str):
        text = x.strip()
        # ASCII digits only: Python's int() also takes '1_000' and other scripts' digits
        if not _INTEGER_TEXT.match(text) or len(text) > MAX_INTEGER_DIGITS:
            raise ExpressionRuntimeError("int() cannot convert text that is not an integer", x)
        return int(text)
    raise ExpressionRuntimeError(f"int() cannot convert {type_name(x)}", x)


def to_float(x: Any) -> Any:
    missing = absent(x)
    if missing is not False:
        return missing
    if isinstance(x, bool) or not isinstance(x, int | float | Decimal | str):
        raise ExpressionRuntimeError(f"float() cannot convert {type_name(x)}", x)
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
    missing = absent(x)
    if missing is not False:
        return missing
    if isinstance(x, Decimal):
        return x
    if isinstance(x, bool) or not isinstance(x, int | float | str):
        raise ExpressionRuntimeError(f"decimal() cannot convert {type_name(x)}", x)
    if isinstance(x, str) and not _NUMBER_TEXT.match(x.strip()):
        raise ExpressionRuntimeError("decimal() cannot convert text that is not a number", x)
    try:
        # str() of a float is its shortest round-trip form: decimal(0.1) is 0.1, not 0.1000000000000000055
        result = Decimal(str(x).strip())
    except InvalidOperation:
        raise ExpressionRuntimeError("decimal() cannot convert text that is not a number", x) from None
    if not result.is_finite():
        raise ExpressionRuntimeError(f"decimal() of a {type_name(x)} that is not a finite number", x)
    return result


def to_str(x: Any) -> Any:
    missing = absent(x)
    return text_of(x, "str") if missing is False else missing


_TRUE: Final = frozenset({"true", "t", "yes", "y", "1"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0"})


def to_bool(x: Any) -> Any:
    missing = absent(x)
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
        f"bool() cannot convert this {type_name(x)} (accepted: booleans, 0/1, true/false/yes/no text)", x
    )


def to_date(x: Any) -> Any:
    """The calendar date of a date, a datetime or ISO text. One rule for every instant (a datetime or
    text with an offset): its date in UTC, so that the same instant gives the same date whether it
    comes from a timestamptz column (the decoder gives UTC), datetime() of text or the text itself.
    A naive datetime (wall clock, or taken as UTC) gives its own date."""
    missing = absent(x)
    if missing is not False:
        return missing
    if isinstance(x, dt.datetime):
        return utc_date(x, x)
    if isinstance(x, dt.date):
        return x
    if isinstance(x, str):
        text = x.strip()
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text)
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ExpressionRuntimeError("date() cannot parse text that is not an ISO-8601 date", x) from None
        return utc_date(moment, x)
    if x.__class__ is Infinite:
        return x  # the date of an infinite timestamp is infinite, as in PostgreSQL
    raise ExpressionRuntimeError(f"date() cannot convert {type_name(x)}", x)


def utc_date(moment: dt.datetime, x: Any) -> dt.date:
    """`moment`'s date in UTC if it has an offset, else its own; `x` is date()'s argument."""
    if moment.tzinfo is None:
        return moment.date()
    try:
        return moment.astimezone(dt.UTC).date()
    except OverflowError:  # 0001-01-01T00:00+05:00 is in the year 0 in UTC
        raise ExpressionRuntimeError(
            "date() of a datetime whose UTC date is before 0001 or after 9999", x
        ) from None


def to_datetime(x: Any) -> Any:
    """Datetimes pass, dates become midnight UTC, ISO text is parsed; naive values are taken as UTC."""
    missing = absent(x)
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
    elif x.__class__ is Infinite:
        return x  # as PostgreSQL casts 'infinity'::date to timestamp
    else:
        raise ExpressionRuntimeError(f"datetime() cannot convert {type_name(x)}", x)
    return result if result.tzinfo is not None else result.replace(tzinfo=dt.UTC)


def timestamp_ms(x: Any) -> Any:
    """Milliseconds since the epoch of a datetime (naive = UTC) or a date (midnight UTC)."""
    missing = absent(x)
    if missing is not False:
        return missing
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    if not isinstance(x, dt.date | str):
        if x.__class__ is Infinite:
            raise ExpressionRuntimeError(f"timestamp_ms() of {refusal('milliseconds')}", x)
        raise ExpressionRuntimeError(
            f"timestamp_ms() expects a datetime, a date or ISO text, got {type_name(x)}", x
        )
    try:
        moment = to_datetime(x)
    except ExpressionRuntimeError:  # text: its message would name datetime()
        raise ExpressionRuntimeError(
            "timestamp_ms() cannot parse text that is not an ISO-8601 datetime", x
        ) from None
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
