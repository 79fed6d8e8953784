"""Numbers of mixed kinds (int, decimal, float): every comparison meets a decimal and a float as `==`
does (a float as the decimal it is written as), also `became()` and `in` against a column."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from eventbus.mapping.expression_language import Symbols
from eventbus.mapping.expression_runtime import runtime_namespace
from eventbus.mapping.expressions import ExpressionCompiler
from eventbus.mapping.tables import ColumnInfo


def _column(name: str, kind: str) -> ColumnInfo:
    return ColumnInfo(name, kind, True, kind, None)


COLUMNS = {
    "a": _column("a", "int"),
    "b": _column("b", "int"),
    "amount": _column("amount", "decimal"),
    "ratio": _column("ratio", "float"),
}


def run(text: str, after: dict[str, Any], before: dict[str, Any] | None = None) -> Any:
    """`text` as the generated code of a mapping with a table description runs it."""
    symbols = Symbols()
    compiled = ExpressionCompiler(COLUMNS, symbols).compile(text)
    scope = runtime_namespace() | symbols.constants
    for (side, column), local in symbols.columns.items():
        row = before if side == "before" else after
        scope[local] = None if row is None else row.get(column)
    return eval(compile(compiled.source, "<expression>", "eval"), {"__builtins__": {}}, scope)


# --- became() and `in` against a column of another number kind ------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "was", "now", "other"),
    [
        ("amount", "after.ratio", Decimal("0.2"), Decimal("0.1"), 0.1),
        ("ratio", "after.amount", 0.2, 0.1, Decimal("0.10")),
        ("a", "after.amount", 0, 1, Decimal("1.00")),
        ("a", "after.ratio", 0, 1, 1.0),
    ],
)
def test_became_against_a_column_of_another_number_kind_compares_as_equality_does(
    column: str, value: str, was: object, now: object, other: object
) -> None:
    text = f"became(after.{column}, {value})"
    after = {column: now, value.removeprefix("after."): other}
    assert run(f"after.{column} == {value}", after) is True  # the `==` of the language
    assert run(text, after, {column: was}) is True
    assert run(text, after, {column: now}) is False
    assert run(text, after, None) is True  # an insert: before was not the value


def test_became_of_a_null_column_value_is_false_as_equality_with_null_is() -> None:
    """Only the literal `null` asks whether a column became null, as `x == null` is the null test."""
    assert run("after.amount == after.ratio", {"amount": None, "ratio": None}) is False
    nulls = {"amount": None, "ratio": None}
    assert run("became(after.amount, after.ratio)", nulls, {"amount": Decimal(1)}) is False
    assert run("became(after.amount, null)", {"amount": None}, {"amount": Decimal(1)}) is True


def test_in_a_list_of_columns_meets_a_decimal_and_a_float_as_equality_does() -> None:
    row = {"amount": Decimal("0.1"), "ratio": 0.1, "a": 3}
    assert run("after.amount in [after.a, after.ratio]", row) is True
    assert run("after.ratio in [after.amount]", row) is True
    assert run("after.ratio not in [after.amount]", row) is False
    assert run("after.amount in [after.a]", row) is False
