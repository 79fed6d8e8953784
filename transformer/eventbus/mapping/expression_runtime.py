"""What generated expression code runs against: the null-safe helpers it calls, and `evaluate`.

The compiler (`expressions.py`) turns comparisons, arithmetic, `in` and `became()` into calls of
these helpers (`_eq`, `_add`, ...) and function calls into `_f_<name>`; `runtime_namespace` is the
whole namespace that code runs in, with no builtins. Apart from the compiler because this is the
per-change side: it must hold nothing but what generated code may reach.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any, Final

from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.mapping.expression_language import SOURCE_FIELDS, Symbols
from eventbus.mapping.expressions import ExpressionCompiler
from eventbus.mapping.function_catalog import FUNCTIONS
from eventbus.mapping.functions import EXACT, QUOTIENT, ExpressionRuntimeError

_U: Final = UNAVAILABLE


def _known(*values: Any) -> bool:
    return all(value is not None and value is not _U for value in values)


def _same_footing(x: Any, y: Any) -> tuple[Any, Any]:
    """A decimal and a float meet as decimals (the float is nearly always a literal such as 2.675,
    whose binary value is not 2.675): compared as they are, `amount == 2.675` would be false."""
    if x.__class__ is Decimal and y.__class__ is float:
        return x, _decimal_of(y)
    if y.__class__ is Decimal and x.__class__ is float:
        return _decimal_of(x), y
    return x, y


def _decimal_of(value: float) -> Decimal | float:
    return Decimal(repr(value)) if value == value and value not in (float("inf"), float("-inf")) else value


def _equal(x: Any, y: Any) -> bool:
    if x is None or y is None or x is _U or y is _U:
        return False
    x, y = _same_footing(x, y)
    return bool(x == y)


def _ordering(compare: Callable[[Any, Any], bool], symbol: str) -> Callable[[Any, Any], bool]:
    def helper(x: Any, y: Any) -> bool:
        if x is None or y is None or x is _U or y is _U:
            return False
        x, y = _same_footing(x, y)
        try:
            return compare(x, y)
        except TypeError:
            raise ExpressionRuntimeError(_why_not_comparable(x, y, symbol), (x, y)) from None

    return helper


def _why_not_comparable(x: Any, y: Any, symbol: str) -> str:
    message = f"cannot compare {type(x).__name__} {symbol} {type(y).__name__}"
    if isinstance(x, dt.datetime) and isinstance(y, dt.datetime):
        return (
            f"{message}: one has no time zone (a `timestamp` column: a wall-clock reading) and the other "
            "has one (a `timestamptz` column, or datetime(), which is always UTC); compare the wall-clock "
            "value with another `timestamp` column, or compare dates: date(after.x) >= date('2024-01-01')"
        )
    return message


def _in(x: Any, container: Any) -> bool:
    if not _known(x, container):
        return False
    if isinstance(container, str):
        return isinstance(x, str) and x in container
    if isinstance(container, frozenset):  # a literal list: it holds the decimals of its floats too
        return x in container
    if isinstance(container, tuple | list):
        # a decimal and a float meet as `==` has them meet (a float as the decimal it is written as)
        return x in container or (
            (x.__class__ is Decimal or x.__class__ is float) and any(_equal(x, item) for item in container)
        )
    raise ExpressionRuntimeError(f"'in' needs a list or text on its right, got {type(container).__name__}")


def _not_in(x: Any, container: Any) -> bool:
    if not _known(x, container):
        return False
    return not _in(x, container)


def _became(before: Any, after: Any, value: Any) -> bool:
    """`became(after.x, <not a literal>)`: after equals `value` and before does not, as `==` has them
    (a decimal meets a float as the decimal it is written as; a null `value` equals nothing)."""
    return after is not _U and _equal(after, value) and not _equal(before, value)


def _numbers(x: Any, y: Any, symbol: str) -> tuple[Any, Any]:
    for value in (x, y):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ExpressionRuntimeError(
                f"'{symbol}' needs numbers, got {type(x).__name__} and {type(y).__name__}"
            )
    # Decimal and float don't mix in Python; the float is almost always a literal like 1.5
    if isinstance(x, Decimal) and isinstance(y, float):
        y = Decimal(str(y))
    elif isinstance(y, Decimal) and isinstance(x, float):
        x = Decimal(str(x))
    return x, y


def _arith(
    compute: Callable[[Any, Any], Any],
    exact: Callable[[Any, Any], Decimal],
    symbol: str,
    text_ok: bool = False,
) -> Callable[[Any, Any], Any]:
    """The operator `symbol`: `compute` on ints and floats, `exact` (a `Context` method) when a
    decimal is involved, so no digit is rounded away (see `functions.EXACT`)."""

    def helper(x: Any, y: Any) -> Any:
        if x is None or y is None:
            return None
        if x is _U or y is _U:
            return _U
        if text_ok and isinstance(x, str) and isinstance(y, str):
            return x + y
        x, y = _numbers(x, y, symbol)
        try:
            result = exact(x, y) if isinstance(x, Decimal) or isinstance(y, Decimal) else compute(x, y)
        except (ZeroDivisionError, DivisionByZero, InvalidOperation):  # decimals: 0 / 0, x % 0 are invalid
            if y == 0:
                raise ExpressionRuntimeError(f"division by zero in '{symbol}'") from None
            raise
        if isinstance(result, int) and result.bit_length() > 256:
            raise ExpressionRuntimeError(f"result of '{symbol}' is too large")
        return result

    return helper


def _floor_divide(x: Decimal, y: Decimal) -> Decimal:
    """`x // y` of decimals as of integers: the quotient rounded down (-7 // 2 is -4), not toward
    zero as Decimal's own `//` does (-3): a numeric column and an integer column agree."""
    quotient = EXACT.divide_int(x, y)
    if (x < 0) != (y < 0) and EXACT.remainder(x, y) != 0:
        quotient = EXACT.subtract(quotient, 1)
    return quotient


def _floor_remainder(x: Decimal, y: Decimal) -> Decimal:
    """`x % y` of decimals as of integers: the sign of `y` (-7 % 2 is 1, Decimal's own gives -1)."""
    return EXACT.subtract(x, EXACT.multiply(_floor_divide(x, y), y))


def _negate(x: Any) -> Any:
    if x is None or x is _U:
        return x
    number = _numbers(x, 0, "-")[0]
    return EXACT.minus(number) if isinstance(number, Decimal) else -number


def _positive(x: Any) -> Any:
    if x is None or x is _U:
        return x
    number = _numbers(x, 0, "+")[0]
    return EXACT.plus(number) if isinstance(number, Decimal) else number


def runtime_namespace(salt: bytes = b"") -> dict[str, Any]:
    """Everything generated expression code may reference, and nothing else (no builtins)."""
    namespace: dict[str, Any] = {
        "_U": _U,
        "_SALT": salt,
        "_eq": _equal,
        "_ne": lambda x, y: _known(x, y) and not _equal(x, y),
        "_lt": _ordering(operator.lt, "<"),
        "_le": _ordering(operator.le, "<="),
        "_gt": _ordering(operator.gt, ">"),
        "_ge": _ordering(operator.ge, ">="),
        "_in": _in,
        "_not_in": _not_in,
        "_became": _became,
        "_add": _arith(operator.add, EXACT.add, "+", text_ok=True),
        "_sub": _arith(operator.sub, EXACT.subtract, "-"),
        "_mul": _arith(operator.mul, EXACT.multiply, "*"),
        "_div": _arith(operator.truediv, QUOTIENT.divide, "/"),
        "_floordiv": _arith(operator.floordiv, _floor_divide, "//"),
        "_mod": _arith(operator.mod, _floor_remainder, "%"),
        "_neg": _negate,
        "_pos": _positive,
    }
    for name, spec in FUNCTIONS.items():
        if spec.impl is not None:
            namespace[f"_f_{name}"] = spec.impl
    return namespace


def evaluate(
    text: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    op: str = "u",
    source: Mapping[str, Any] | None = None,
    salt: bytes = b"",
) -> Any:
    """Evaluate one expression on decoded rows: for tests and the README, not for the hot path."""
    symbols = Symbols()
    compiled = ExpressionCompiler(symbols=symbols).compile(text)
    scope = runtime_namespace(salt) | symbols.constants
    scope.update({"_op": op, "_b": before, "_a": after})
    for (side, column), local in symbols.columns.items():
        row = before if side == "before" else after
        scope[local] = None if row is None else row.get(column)
    for name in SOURCE_FIELDS:
        scope[f"_s_{name}"] = (source or {}).get(name)
    code = compile(compiled.source, "<expression>", "eval")
    return eval(code, {"__builtins__": {}}, scope)  # source generated from a whitelisted tree
