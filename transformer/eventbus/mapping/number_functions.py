"""The number functions of mapping expressions: abs(), round(), min() and max().

Apart from `functions.py` by concept. What each returns is the kind `validate` infers for it
(`expressions.ExpressionCompiler._n_Call`): abs() and round(x, digits) keep x's kind, round(x)
gives an integer, and min()/max() of numbers of mixed kinds give the one kind arithmetic would
(min(1, decimal) is a decimal, as SQL's LEAST), so a field's kind check holds for every change.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from eventbus.mapping.functions import EXACT, MAX_INTEGER_DIGITS, ExpressionRuntimeError, absent, type_name


def _need_number(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ExpressionRuntimeError(f"{name}() expects a number, got {type_name(value)}", value)
    return value


def abs_(x: Any) -> Any:
    missing = absent(x)
    if missing is not False:
        return missing
    number = _need_number("abs", x)
    return EXACT.abs(number) if isinstance(number, Decimal) else abs(number)


_NO_DIGITS: Final = object()  # round(x), not round(x, 0): to an integer, as Python's round(x)


def round_(x: Any, digits: Any = _NO_DIGITS) -> Any:
    """Half-even rounding (banker's), as Python and most SQL engines do for exact decimals. Without
    `digits`, to an integer (of a decimal too: the kind `validate` infers); with them, of x's kind."""
    missing = absent(x) if digits is _NO_DIGITS else absent(x, digits)
    if missing is not False:
        return missing
    number = _need_number("round", x)
    # an int is always finite (and math.isfinite of one beyond a double's range raises OverflowError)
    if isinstance(number, Decimal | float) and not (
        number.is_finite() if isinstance(number, Decimal) else math.isfinite(number)
    ):
        what = "decimal" if isinstance(number, Decimal) else "double"
        raise ExpressionRuntimeError(f"round() of a NaN or infinite {what} has no value; guard it in `when`")
    if digits is _NO_DIGITS:
        if isinstance(number, Decimal) and number.adjusted() >= MAX_INTEGER_DIGITS:
            raise ExpressionRuntimeError(f"round() of a decimal of more than {MAX_INTEGER_DIGITS} digits")
        return round(number)  # half-even for ints, floats and decimals alike
    if not isinstance(digits, int) or isinstance(digits, bool):
        raise ExpressionRuntimeError("round() digits must be an integer")
    if not -1000 <= digits <= 1000:
        raise ExpressionRuntimeError("round() digits must be between -1000 and 1000")
    if isinstance(number, Decimal):
        return number.quantize(Decimal(1).scaleb(-digits), context=EXACT)
    return round(number, digits)


def _comparable(name: str, values: tuple[Any, ...]) -> Any:
    missing = absent(*values)
    if missing is not False:
        return missing
    first = values[0].__class__
    as_float = False
    if any(value.__class__ is not first for value in values):
        values = common_numbers(values)
        # ints meet floats as Python compares them, exactly: float() of an int beyond a double's range
        # raises OverflowError, and min(10**400, 0.5) is 0.5 all the same; only the result is a float
        classes = {value.__class__ for value in values}
        as_float = float in classes and classes <= {int, float}
    try:
        result = min(values) if name == "min" else max(values)
    except (TypeError, InvalidOperation):  # InvalidOperation: a NaN among decimals has no order
        kinds = ", ".join(type_name(value) for value in values)
        raise ExpressionRuntimeError(f"{name}() cannot compare {kinds}", values) from None
    if as_float and result.__class__ is int:
        try:
            return float(result)
        except OverflowError:
            raise ExpressionRuntimeError(
                f"{name}() of integers and floats gives a float, and this integer is too large for one; "
                "use decimal() of the float argument for an exact decimal result",
                values,
            ) from None
    return result


def common_numbers(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Numbers of mixed kinds as the one kind arithmetic would give (`validate` infers it, see
    `operand_kinds.number_kind`): with a decimal, decimals (a float as the decimal it is written as,
    as `==` and `<` compare them). Anything else, ints and floats too, is left as it is: they compare
    exactly as they are, and `_comparable` makes the result a float."""
    if any(value.__class__ not in _NUMBER_CLASSES for value in values):
        return values
    if any(value.__class__ is Decimal for value in values):
        return tuple(Decimal(repr(v)) if v.__class__ is float else Decimal(v) for v in values)
    return values


_NUMBER_CLASSES: Final = frozenset({int, float, Decimal})  # exact classes: a bool is no number here


def min_(*values: Any) -> Any:
    return _comparable("min", values)


def max_(*values: Any) -> Any:
    return _comparable("max", values)
