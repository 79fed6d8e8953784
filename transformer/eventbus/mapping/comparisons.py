"""How the expression compiler writes a comparison: the null-safe helpers (`_eq`, `_lt`, ..., `_in`,
in `expression_runtime.py`) in general, and inline code where one side is a literal and the other a
plain name (the common `after.status == 'X'`, `after.status in [...]`), which costs no call. A literal
is made, once, the constant of the kind it meets: a list for an array (`after.tags == ['a']`), the
decimal it is written as for a decimal column (`after.amount == 0.1`, `became(after.amount, 0.1)`)."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Protocol

from eventbus.mapping.operand_kinds import column_zoned, comparison_refusal, kind_of_value, label_refusal
from eventbus.mapping.tables import ColumnInfo

_HELPERS: Final = {
    ast.Eq: "_eq", ast.NotEq: "_ne", ast.Lt: "_lt", ast.LtE: "_le", ast.Gt: "_gt", ast.GtE: "_ge",
}  # fmt: skip
_SYMBOLS: Final = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
}  # fmt: skip


class Operand(Protocol):
    """One compiled side of a comparison (`expression_language.CompiledOperand`)."""

    code: str
    kind: str | None
    zoned: bool | None  # timestamps and times: with a time zone or wall-clock (None: not known)
    simple: bool  # a local name or a literal: safe to repeat
    literal: bool
    value: Any
    column: ColumnInfo | None  # a plain read of this row column


@dataclass(slots=True)
class _Constant:
    """A literal the compiler replaced by a load-time constant of the kind it meets."""

    code: str
    kind: str | None
    value: Any
    zoned: bool | None = None
    simple: bool = True
    literal: bool = True
    column: ColumnInfo | None = None


class ComparisonRefused(Exception):
    """A comparison the compiler refuses; `at_right`: the error is placed at the right operand."""

    def __init__(self, message: str, hint: str | None = None, *, at_right: bool = False) -> None:
        super().__init__(message)
        self.hint, self.at_right = hint, at_right


def comparison_code(op: ast.cmpop, left: Operand, right: Operand, constant: Callable[[Any], str]) -> str:
    """The code of `left <op> right`; `constant` names a value the generated code holds. Raises
    `ComparisonRefused` for a comparison that is always true or always false, or cannot be made."""
    if isinstance(op, ast.Is | ast.IsNot):
        if not (right.literal and right.value is None):
            raise ComparisonRefused("'is' is only allowed as 'x is None' / 'x is not None'", "use ==")
        return f"({left.code} {'is' if isinstance(op, ast.Is) else 'is not'} None)"
    _refuse_kinds(op, left, right)
    if isinstance(op, ast.In | ast.NotIn):
        negate = isinstance(op, ast.NotIn)
        if right.literal and isinstance(right.value, tuple):
            try:
                # null is never found (comparisons with null are false), and a float literal
                # also matches the decimal it is written as (0.1 finds a numeric 0.1)
                members = frozenset(v for v in right.value if v is not None) | {
                    Decimal(repr(v)) for v in right.value if v.__class__ is float and math.isfinite(v)
                }
            except TypeError:
                raise ComparisonRefused("list members must be plain values", at_right=True) from None
            name = constant(members)
            if left.simple:
                if negate:
                    guard = f"{left.code} is not None and {left.code} is not _U"
                    return f"({guard} and {left.code} not in {name})"
                return f"({left.code} in {name})"
            return f"_not_in({left.code}, {name})" if negate else f"_in({left.code}, {name})"
        return f"_not_in({left.code}, {right.code})" if negate else f"_in({left.code}, {right.code})"
    if left.literal and right.literal:
        raise ComparisonRefused("comparing two literals is always true or always false")
    if isinstance(op, ast.Eq | ast.NotEq):
        left, right = _list_literal(left, right, constant), _list_literal(right, left, constant)
    left, right = _exact_literal(left, right, constant), _exact_literal(right, left, constant)
    # `x == None` / `x != None` are the explicit null tests
    for mine, other in ((left, right), (right, left)):
        if other.literal and other.value is None:
            if isinstance(op, ast.Eq):
                return f"({mine.code} is None)"
            if isinstance(op, ast.NotEq):
                return f"({mine.code} is not None)"
            raise ComparisonRefused("ordering comparisons with None are always false", "use is_null(x)")
    if any(side.literal and isinstance(side.value, float) for side in (left, right)):
        # against a decimal column a float literal is compared as the decimal it is written as
        return f"{_HELPERS[type(op)]}({left.code}, {right.code})"
    if isinstance(op, ast.Eq) and (left.literal or right.literal) and left.simple and right.simple:
        # None == 'x' and UNAVAILABLE == 'x' are already false: no guard needed
        return f"({left.code} == {right.code})"
    if left.simple and right.simple and (left.literal or right.literal):
        name = right.code if left.literal else left.code
        symbol = _SYMBOLS[type(op)]
        return f"({name} is not None and {name} is not _U and {left.code} {symbol} {right.code})"
    return f"{_HELPERS[type(op)]}({left.code}, {right.code})"


def _list_literal(side: Operand, other: Operand, constant: Callable[[Any], str]) -> Operand:
    """`side` compared with `other` by == or !=: a list literal becomes a list constant (Debezium's
    arrays arrive as lists, and a list never equals the tuple a literal is compiled to)."""
    if not (side.literal and isinstance(side.value, tuple)):
        return side
    if other.simple and other.kind is not None and other.kind != "array":  # a column, op, source.x
        raise ComparisonRefused(
            f"a list is never equal to a single {other.kind} value",
            "to test membership, write `in`: x in [...]",
        )
    element = other.column.element if other.column is not None else None
    value = _as_list(side.value, element.kind if element is not None else None)
    return _Constant(constant(value), "array", value)


def _as_list(items: tuple[Any, ...], kind: str | None) -> list[Any]:
    return [
        _as_list(item, None) if isinstance(item, tuple)
        else Decimal(repr(item)) if kind == "decimal" and item.__class__ is float and math.isfinite(item)
        else item
        for item in items
    ]  # fmt: skip


def _exact_literal(side: Operand, other: Operand, constant: Callable[[Any], str]) -> Operand:
    """A float literal compared with a decimal column is the decimal it is written as (0.1, not
    the binary 0.1000000000000000055...), made once here rather than by a helper per change. Only a
    column's kind is sure (`coalesce(after.amount, 0.1)` may give the float): others keep the helper."""
    column = other.column
    if side.literal and side.value.__class__ is float and column is not None and column.kind == "decimal":
        exact = Decimal(repr(side.value))
        return _Constant(constant(exact), "decimal", exact)
    return side


def became_code(after: Operand, before: Operand, value: Operand, constant: Callable[[Any], str]) -> str:
    """`became(after.x, <literal>)`: after is the value and before is not. A float literal meets a
    decimal column as the decimal it is written as, and a column of unknown kind as either (both
    made once, here)."""
    a, b, code = after.code, before.code, value.code
    if isinstance(value.value, tuple) and after.kind in ("array", None):
        code = _list_literal(value, after, constant).code
    elif value.value.__class__ is float and after.kind in ("decimal", None):
        exact = Decimal(repr(value.value))
        if after.kind is None:
            either = constant((value.value, exact))
            return f"({a} in {either} and {b} not in {either})"
        code = constant(exact)
    return f"({a} == {code} and {b} != {code})"


@dataclass(slots=True)
class _Member:
    """One literal of an `in [...]` list, as an operand of its own."""

    value: Any
    kind: str | None
    zoned: bool | None = None
    literal: bool = True
    column: ColumnInfo | None = None


def _refuse_kinds(op: ast.cmpop, left: Operand, right: Operand) -> None:
    """Comparisons that are false for every change (==, !=, in) or dead-letter it (<, >...): kinds
    that never meet, and an enum column with a text that is none of its labels. Load time only."""
    if isinstance(op, ast.Is | ast.IsNot):
        return
    equality = isinstance(op, ast.Eq | ast.NotEq)
    if isinstance(op, ast.In | ast.NotIn):
        element = right.column.element if right.column is not None and right.kind == "array" else None
        if element is not None:  # `x in after.tags`: x meets each element of the array column
            member = _Member(None, element.kind, column_zoned(element), literal=False, column=element)
            refused = comparison_refusal(False, left, member) or label_refusal(member, left)
            if refused is not None:
                raise ComparisonRefused(str(refused), refused.hint)
        if not (right.literal and isinstance(right.value, tuple)):
            return  # `'x' in after.note` looks for text in text
        members = [_Member(v, kind_of_value(v)) for v in right.value if v is not None]
        refused = next(
            (why for m in members if (why := comparison_refusal(False, left, m)) is not None), None
        )
        if refused is not None:
            raise ComparisonRefused(str(refused), refused.hint, at_right=True)
        equality = True
    else:
        refused = comparison_refusal(not equality, left, right)
        if refused is not None:
            raise ComparisonRefused(str(refused), refused.hint)
    if equality:
        for mine, other in ((left, right), (right, left)):
            refused = label_refusal(mine, other)
            if refused is not None:
                raise ComparisonRefused(str(refused), refused.hint, at_right=other is right)
