"""Which kinds of value the expression language's operations can take, checked when a mapping loads.

`validate` knows a column's kind from its table description (`tables.ColumnInfo`: int, string,
datetime, ...); the compiler (`expressions.py`) carries kinds through each sub-expression and asks
here whether a function argument, an arithmetic operand, a comparison or a `min`/`max`/`coalesce`
fits. Each refusal is of an expression that would dead-letter, or be false, for every change, as the
runtime (`functions.py`, `expression_runtime.py`) treats those values. A kind that is not known
(None: no table description, a null literal; "unknown") is never refused.

Timestamps come in two kinds of value: a `timestamp` column is a wall-clock reading (a datetime
without a zone), a `timestamptz` one an instant (with a zone, as `datetime(...)` gives). Python can
neither order one against the other nor ever find them equal, so `zoned` tells them apart.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Final, Protocol

from eventbus.mapping.tables import ColumnInfo

NUMBERS: Final = frozenset({"int", "float", "decimal"})
TEXT: Final = frozenset({"string"})
INTEGER: Final = frozenset({"int"})
COMPOUND: Final = frozenset({"array", "map", "struct"})
# Everything that has a canonical text (`functions.text_of`): a list, map or record has none.
SCALAR: Final = frozenset({"int", "float", "decimal", "bool", "string", "bytes", "date", "datetime",
                           "time", "uuid", "duration"})  # fmt: skip

_A_KIND: Final = {
    "int": "an integer",
    "float": "a floating-point number",
    "decimal": "a decimal number",
    "bool": "a boolean",
    "string": "text",
    "bytes": "bytes",
    "date": "a date",
    "datetime": "a timestamp",
    "time": "a time of day",
    "uuid": "a uuid",
    "duration": "a duration (interval)",
    "array": "a list (an array column)",
    "map": "a map",
    "struct": "a record (a struct column)",
}
KNOWN: Final = frozenset(_A_KIND)

# Kinds whose values Python compares with each other (a bool is an int: 1 == true holds).
_FAMILY: Final = {"int": "number", "float": "number", "decimal": "number", "bool": "number"}

# Logical types of columns whose values carry a zone, and of those whose values may or may not
# (isostring text has an offset or not, as its column type): the other timestamps are wall-clock.
_ZONED_LOGICALS: Final = frozenset({"io.debezium.time.ZonedTimestamp", "io.debezium.time.ZonedTime"})
_EITHER_LOGICALS: Final = frozenset({"io.debezium.time.IsoTimestamp", "io.debezium.time.IsoTime"})


class Operand(Protocol):
    """One compiled sub-expression (`expression_language.CompiledOperand`), as far as kinds go."""

    kind: str | None
    zoned: bool | None
    literal: bool
    value: object
    column: ColumnInfo | None


class KindRefused(Exception):
    """An operation given a kind of value it can never work with; `hint` says what to write."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def column_zoned(column: ColumnInfo) -> bool | None:
    """Whether a timestamp/time column's values carry a zone; None for other columns."""
    if column.kind not in ("datetime", "time") or column.logical in _EITHER_LOGICALS:
        return None
    return column.logical in _ZONED_LOGICALS


def a_kind(kind: str | None, zoned: bool | None = None) -> str:
    """`kind` as a message names it: 'an integer', 'text', 'a timestamp without time zone'."""
    if kind == "datetime" and zoned is not None:
        return "a timestamp with time zone" if zoned else "a timestamp without time zone"
    return _A_KIND.get(kind or "", f"a {kind} value")


def kind_of_value(value: object) -> str | None:
    """The kind of a literal's value (None for null)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return None


def _known(operand: Operand) -> bool:
    return operand.kind in KNOWN


# --- functions ----------------------------------------------------------------------------------

# What to write instead, by (the kinds a function takes, the kind it was given).
_CONVERT: Final = {
    (TEXT, "*"): "convert it to text first: str(x)",
    (NUMBERS, "string"): "convert the text to a number first: decimal(x) or int(x)",
}


def _either(kinds: Iterable[str]) -> str:
    names = [a_kind(kind) for kind in sorted(kinds, key=list(_A_KIND).index)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def argument_refusal(
    name: str, position: int, accepts: tuple[frozenset[str] | None, ...], operand: Operand
) -> KindRefused | None:
    """Why argument `position` (0-based) of `name()` can never be taken, or None. `accepts`: the
    kinds each argument takes (the last entry stands for the rest; None: any single value)."""
    if not accepts or not _known(operand):
        return None
    wanted = accepts[min(position, len(accepts) - 1)]
    if wanted is None or operand.kind in wanted:
        return None
    kinds = _either(wanted)
    which = f"argument {position + 1} of {name}()" if len(accepts) > 1 or position else f"{name}()"
    hint = _CONVERT.get((wanted, operand.kind or "")) or _CONVERT.get((wanted, "*"))
    return KindRefused(
        f"{which} takes {kinds}, and this is {a_kind(operand.kind, operand.zoned)}: every change "
        "would dead-letter",
        hint,
    )


# --- arithmetic ---------------------------------------------------------------------------------


def arithmetic_refusal(symbol: str, left: Operand, right: Operand) -> KindRefused | None:
    """Why `left <symbol> right` fails for every change: the runtime does arithmetic on numbers only
    (`+` also joins two texts); None when it may work or a kind is not known."""
    for operand in (left, right):
        if not _known(operand) or operand.kind in NUMBERS:
            continue
        if operand.kind == "string" and symbol == "+":
            other = right if operand is left else left
            if _known(other) and other.kind != "string":
                return KindRefused(
                    f"'+' joins two texts or adds two numbers, and this adds text and "
                    f"{a_kind(other.kind, other.zoned)}: every change would dead-letter",
                    "join texts with concat(x, y), or convert the text: decimal(x) + y",
                )
            continue
        hint = "convert it first: decimal(x), int(x)"
        if operand.kind in ("datetime", "date"):
            hint = "subtract epoch milliseconds: timestamp_ms(after.x) - timestamp_ms(after.y)"
        elif operand.kind == "duration":
            hint = "use its length: duration_seconds(x) or duration_micros(x)"
        elif operand.kind == "bool":
            hint = "count it as a number: int(x)"
        return KindRefused(
            f"'{symbol}' needs numbers, and this is {a_kind(operand.kind, operand.zoned)}: every change "
            "would dead-letter",
            hint,
        )
    return None


def number_kind(kinds: Iterable[str | None]) -> str | None:
    """The kind of a number computed from numbers of these kinds, as the runtime gives it (`_arith`
    in `expression_runtime.py`, `number_functions.common_numbers`): with a decimal a decimal (a float
    meets it as the decimal it is written as), else with a float a float; None unless each is known."""
    found = set(kinds)
    if not found or not found <= NUMBERS:
        return None
    return "decimal" if "decimal" in found else "float" if "float" in found else "int"


def arithmetic_kind(symbol: str, left: Operand, right: Operand) -> str | None:
    """The kind of `left <symbol> right`: two texts joined by `+` are text; numbers as `number_kind`,
    except that a quotient `/` of integers is a float (7 / 2 is 3.5)."""
    if symbol == "+" and left.kind == right.kind == "string":
        return "string"
    kind = number_kind((left.kind, right.kind))
    return "float" if symbol == "/" and kind == "int" else kind


def numbers_kind(operands: Iterable[Operand]) -> str | None:
    """The kind of `min`/`max`/`coalesce` of numbers, or of `x if c else y`: min and max give their
    numbers' one kind (`number_kind`); coalesce and `if` give one of them as it is, and the widest
    kind stands for all, so a field takes the value whichever it is (`coalesce(after.count, 0.5)`
    may be 0.5: not for an int field). Null literals aside; None when another's kind is not known."""
    return number_kind(o.kind for o in operands if not (o.literal and o.value is None))


# --- comparisons, min, max, coalesce --------------------------------------------------------------


def _family(kind: str | None) -> str | None:
    return _FAMILY.get(kind or "", kind)


def _clash(left: Operand, right: Operand) -> bool:
    return _known(left) and _known(right) and _family(left.kind) != _family(right.kind)


def _zones_clash(left: Operand, right: Operand) -> bool:
    return (
        left.kind == right.kind
        and left.kind in ("datetime", "time")
        and left.zoned is not None
        and right.zoned is not None
        and left.zoned != right.zoned
    )


_WALL_CLOCK_HINT: Final = (
    "compare a `timestamp` column with another `timestamp` column, or compare dates: "
    "date(after.x) >= date(after.y)"
)


def _text_for(kind: str | None, zoned: bool | None) -> str:
    """How to write a literal of a temporal kind, for hints."""
    if kind == "date":
        return "write the date as date('2024-01-31')"
    if kind == "datetime" and zoned:
        return "write the instant as datetime('2024-01-31T00:00:00Z')"
    if kind == "datetime":
        return "compare dates instead: date(x) >= date('2024-01-31')"
    return "compare its text, which sorts as the time: str(x) >= '12:00:00'"


def comparison_refusal(ordering: bool, left: Operand, right: Operand) -> KindRefused | None:
    """Why comparing `left` with `right` is never true (==, !=, in) or dead-letters every change
    (<, >, min, max), or None. `ordering`: <, <=, >, >=, min(), max()."""
    # "<the two kinds> {are}": never equal, or their ordering dead-letters every change
    are = "cannot be ordered: every change would dead-letter" if ordering else "are never equal"
    if _zones_clash(left, right):
        what = "timestamp" if left.kind == "datetime" else "time"
        return KindRefused(
            f"a {what} without time zone (a wall-clock reading) and one with a time zone {are}",
            _WALL_CLOCK_HINT if what == "timestamp" else "compare their text: str(x) == str(y)",
        )
    if not _clash(left, right):
        return None
    kinds = {left.kind, right.kind}
    if kinds == {"uuid", "string"}:
        outcome = are if ordering else "is never equal"  # a UUID never equals a str
        return KindRefused(f"a uuid compared with text {outcome}", "compare str(x)")
    if kinds == {"date", "datetime"}:
        return KindRefused(
            f"a date and a timestamp {are}", "compare dates: date(x) == after.day"
        )
    for mine, other in ((left, right), (right, left)):
        if mine.kind in ("date", "datetime", "time") and other.kind == "string":
            literal = " (the text is not read as one)" if other.literal else ""
            return KindRefused(
                f"{a_kind(mine.kind, mine.zoned)} and text{literal} {are}",
                _text_for(mine.kind, mine.zoned),
            )
    hint = "convert one side so both are the same kind: str(x), decimal(x), date(x)"
    if "array" in kinds and not ordering and (left.literal or right.literal):
        hint = "to test membership, write `in`: x in [...]"  # `after.status == ['A', 'B']`
    elif kinds & {"date", "datetime"} and kinds & NUMBERS:  # most often source.ts_ms
        hint = "compare epoch milliseconds: timestamp_ms(after.x) > source.ts_ms"
    return KindRefused(
        f"{a_kind(left.kind, left.zoned)} and {a_kind(right.kind, right.zoned)} {are}", hint
    )


def first_refusal(ordering: bool, operands: Iterable[Operand]) -> tuple[int, KindRefused] | None:
    """(index, why) of the first of `min`/`max`/`coalesce`'s arguments that does not go with the
    earlier ones; `coalesce` (not ordering) only refuses mixing wall-clock and zoned timestamps,
    whose results could then neither be ordered nor compared."""
    seen: list[Operand] = []
    for index, operand in enumerate(operands):
        for earlier in seen:
            if ordering:
                refused = comparison_refusal(True, earlier, operand)
            elif _zones_clash(earlier, operand):
                what = "timestamp" if operand.kind == "datetime" else "time"
                refused = KindRefused(
                    f"coalesce() of a {what} without time zone and one with a time zone: its "
                    "value could be either, and the two can neither be ordered nor be equal",
                    "make both the same: datetime(x) reads a wall-clock value as UTC"
                    if what == "timestamp"
                    else "make both text: str(x)",
                )
            else:
                refused = None
            if refused is not None:
                return index, refused
        if _known(operand):
            seen.append(operand)
    return None


# --- enum labels ----------------------------------------------------------------------------------


def label_refusal(column_side: Operand, literal: Operand) -> KindRefused | None:
    """Why an enum column compared with this text literal (or list of them) is never equal: none of
    its labels is that text; None when the labels are not known or every text is one."""
    column = column_side.column
    if column is None or not column.labels or not literal.literal:
        return None
    values = literal.value if isinstance(literal.value, tuple) else (literal.value,)
    for value in values:
        if isinstance(value, str) and value not in column.labels:
            close = difflib.get_close_matches(value, column.labels, n=1, cutoff=0.5)
            folded = [label for label in column.labels if label.lower() == value.lower()]
            suggestions = folded or close
            hint = f"did you mean {suggestions[0]!r}?" if suggestions else None
            labels = ", ".join(column.labels)
            if len(labels) > 200:
                labels = labels[:200] + "..."
            return KindRefused(
                f"{value!r} is not a label of enum column {column.name!r} ({labels}): never equal",
                hint,
            )
    return None
