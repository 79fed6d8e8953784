"""The catalogue of the expression language's functions: what each is called, takes and returns.

`FUNCTIONS` is what the expression compiler checks calls against (name, arity, keywords, result
kind) and what generated code is given to call; `NON_DETERMINISTIC` the names refused with a reason.
The implementations are in `functions.py` (the conversions in `conversion_functions.py`); the
catalogue is apart so that the language's surface, which mappings/README.md documents function by
function, reads as one table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from eventbus.mapping.conversion_functions import (
    timestamp_ms,
    to_bool,
    to_date,
    to_datetime,
    to_decimal,
    to_float,
    to_int,
    to_str,
)
from eventbus.mapping.functions import (
    coalesce,
    concat,
    duration_iso,
    duration_micros,
    duration_seconds,
    endswith,
    hash_,
    is_infinite,
    is_null,
    is_unavailable,
    length,
    lower,
    mask,
    matches,
    replace,
    startswith,
    substr,
    trim,
    upper,
)
from eventbus.mapping.number_functions import abs_, max_, min_, round_
from eventbus.mapping.operand_kinds import INTEGER, NUMBERS, SCALAR, TEXT


@dataclass(frozen=True, slots=True)
class Function:
    """One callable function of the expression language, as documented in mappings/README.md."""

    name: str
    impl: Callable[..., Any] | None  # None: compiled inline by the compiler (changed, became)
    min_args: int
    max_args: int | None
    signature: str
    doc: str
    returns: str | None = None  # static kind of the result, for type checks against Avro fields
    keywords: frozenset[str] = frozenset()
    # The kinds (`operand_kinds`) each positional argument takes, the last for any further ones;
    # None: any single value; empty: not checked. What the implementation fails on for every value.
    accepts: tuple[frozenset[str] | None, ...] = ()


def _f(
    name: str,
    impl: Callable[..., Any] | None,
    arity: tuple[int, int | None],
    signature: str,
    doc: str,
    returns: str | None = None,
    keywords: frozenset[str] = frozenset(),
    accepts: tuple[frozenset[str] | None, ...] = (),
) -> Function:
    return Function(name, impl, arity[0], arity[1], signature, doc, returns, keywords, accepts)


FUNCTIONS: Final[dict[str, Function]] = {
    f.name: f
    for f in (
        _f(
            "changed",
            None,
            (1, 1),
            "changed(after.col)",
            "true when the column's value differs between before and after; an unavailable (TOAST) "
            "after value counts as unchanged",
            "bool",
        ),
        _f(
            "became",
            None,
            (2, 2),
            "became(after.col, value)",
            "true when before.col was not `value` and after.col is `value`",
            "bool",
        ),
        _f(
            "coalesce",
            coalesce,
            (1, None),
            "coalesce(x, y, ...)",
            "the first argument that is neither null nor unavailable, else null",
        ),
        _f(
            "is_null",
            is_null,
            (1, 1),
            "is_null(x)",
            "true when x is null (also `is_null(before)` for a missing before image)",
            "bool",
        ),
        _f(
            "is_unavailable",
            is_unavailable,
            (1, 1),
            "is_unavailable(x)",
            "true when x is the TOAST placeholder (Debezium did not send the value)",
            "bool",
        ),
        _f(
            "is_infinite",
            is_infinite,
            (1, 1),
            "is_infinite(x)",
            "true when x is PostgreSQL 'infinity' or '-infinity' (a date, timestamp or timestamptz)",
            "bool",
        ),
        _f("lower", lower, (1, 1), "lower(text)", "lower-case text", "string"),
        _f("upper", upper, (1, 1), "upper(text)", "upper-case text", "string"),
        _f("trim", trim, (1, 1), "trim(text)", "text without leading and trailing whitespace", "string"),
        _f("length", length, (1, 1), "length(text)", "number of characters (code points)", "int"),
        _f(
            "substr",
            substr,
            (2, 3),
            "substr(text, start, count?)",
            "part of the text from 1-based `start`, `count` characters (to the end if omitted)",
            "string",
        ),
        _f(
            "concat",
            concat,
            (1, None),
            "concat(x, y, ...)",
            "the texts of all arguments joined; null if any is null",
            "string",
        ),
        _f(
            "startswith",
            startswith,
            (2, 2),
            "startswith(text, prefix)",
            "true if text starts with prefix",
            "bool",
        ),
        _f("endswith", endswith, (2, 2), "endswith(text, suffix)", "true if text ends with suffix", "bool"),
        _f("replace", replace, (3, 3), "replace(text, old, new)", "every `old` replaced by `new`", "string"),
        _f(
            "matches",
            matches,
            (2, 2),
            "matches(text, 'regex')",
            "true if the regular expression matches anywhere in text (anchor with ^...$); the regex must "
            "be a literal, compiled once at load time",
            "bool",
        ),
        _f("int", to_int, (1, 1), "int(x)", "integer from a number (no fraction allowed) or text", "int"),
        _f("float", to_float, (1, 1), "float(x)", "binary floating-point number", "float"),
        _f("decimal", to_decimal, (1, 1), "decimal(x)", "exact decimal from a number or text", "decimal"),
        _f(
            "str",
            to_str,
            (1, 1),
            "str(x)",
            "canonical text: exact decimals, ISO-8601 dates, times and durations, true/false",
            "string",
        ),
        _f(
            "bool",
            to_bool,
            (1, 1),
            "bool(x)",
            "boolean from a boolean, 0/1 or true/false/yes/no text",
            "bool",
        ),
        _f(
            "date",
            to_date,
            (1, 1),
            "date(x)",
            "calendar date from a date, datetime or ISO text; a datetime or text with an offset gives "
            "its UTC date (the same instant, the same date), a naive one its own",
            "date",
        ),
        _f(
            "datetime",
            to_datetime,
            (1, 1),
            "datetime(x)",
            "datetime from a datetime, date or ISO text; naive values are taken as UTC",
            "datetime",
        ),
        _f(
            "duration_micros",
            duration_micros,
            (1, 1),
            "duration_micros(x)",
            "microseconds of a duration or ISO-8601 text (a month is 365.25/12 days, as Debezium's)",
            "int",
        ),
        _f(
            "duration_seconds",
            duration_seconds,
            (1, 1),
            "duration_seconds(x)",
            "seconds of a duration, exact to the microsecond (a decimal)",
            "decimal",
        ),
        _f(
            "duration_iso",
            duration_iso,
            (1, 1),
            "duration_iso(x)",
            "ISO-8601 text of a duration, months and days kept apart (P1Y2M3DT4H5M6.5S)",
            "string",
        ),
        _f(
            "timestamp_ms",
            timestamp_ms,
            (1, 1),
            "timestamp_ms(x)",
            "milliseconds since 1970-01-01T00:00:00Z of a datetime or date",
            "int",
        ),
        _f(
            "hash",
            hash_,
            (1, 1),
            "hash(x)",
            "HMAC-SHA-256 hex digest of x's canonical text, keyed with the service's configured salt",
            "string",
        ),
        _f(
            "mask",
            mask,
            (1, 1),
            "mask(x, keep=4)",
            "all but the last `keep` characters (code points) replaced by `*`",
            "string",
            frozenset({"keep"}),
        ),
        _f("abs", abs_, (1, 1), "abs(x)", "absolute value"),
        _f(
            "round",
            round_,
            (1, 2),
            "round(x, digits?)",
            "rounded half-to-even to `digits` decimals (x's kind); without digits, to an integer",
        ),
        _f("min", min_, (2, None), "min(x, y, ...)", "smallest argument; null if any is null"),
        _f("max", max_, (2, None), "max(x, y, ...)", "largest argument; null if any is null"),
    )
}

_TEMPORAL_TEXT: Final = frozenset({"date", "datetime", "string"})  # ISO text is parsed
_DURATION_TEXT: Final = frozenset({"duration", "string"})  # ISO-8601 text is parsed

# What each function's arguments can be (see `Function.accepts`): a kind outside these fails in the
# implementation for every value, so `validate` refuses it. Conversions take the text they parse.
_ACCEPTS: Final[dict[str, tuple[frozenset[str] | None, ...]]] = {
    "lower": (TEXT,), "upper": (TEXT,), "trim": (TEXT,),
    "length": (frozenset({"string", "bytes", "array"}),),
    "substr": (TEXT, INTEGER), "startswith": (TEXT,), "endswith": (TEXT,), "replace": (TEXT,),
    "matches": (TEXT, None),
    "concat": (SCALAR,), "str": (SCALAR,), "hash": (SCALAR,), "mask": (SCALAR,),
    "int": (NUMBERS | {"bool", "string"},), "float": (NUMBERS | TEXT,), "decimal": (NUMBERS | TEXT,),
    "bool": (frozenset({"bool", "int", "string"}),),
    "date": (_TEMPORAL_TEXT,), "datetime": (_TEMPORAL_TEXT,), "timestamp_ms": (_TEMPORAL_TEXT | INTEGER,),
    "duration_micros": (_DURATION_TEXT,), "duration_seconds": (_DURATION_TEXT,),
    "duration_iso": (_DURATION_TEXT,),
    "abs": (NUMBERS,), "round": (NUMBERS, INTEGER),
}  # fmt: skip
for _name, _kinds in _ACCEPTS.items():
    FUNCTIONS[_name] = dataclasses.replace(FUNCTIONS[_name], accepts=_kinds)

NON_DETERMINISTIC: Final[dict[str, str]] = {
    name: "non-deterministic functions break replays: a re-processed change must give the same event "
    "(and event id); use source.ts_ms, the time of the change in the database"
    for name in (
        "now",
        "now_ms",
        "today",
        "utcnow",
        "current_timestamp",
        "random",
        "rand",
        "uuid",
        "uuid4",
        "time",
    )
}
