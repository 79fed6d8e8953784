"""Numbers of mixed kinds (int, decimal, float): the kind `validate` infers is the kind the runtime
gives, and every comparison meets a decimal and a float as `==` does (a float as the decimal it is
written as), also `became()` and `in` against a column and `min`/`max`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.compiler import test_change
from eventbus.mapping.errors import MappingError
from eventbus.mapping.expression_language import Symbols
from eventbus.mapping.expression_runtime import runtime_namespace
from eventbus.mapping.expressions import ExpressionCompiler
from eventbus.mapping.functions import ExpressionRuntimeError
from eventbus.mapping.tables import ColumnInfo
from tests.unit.mapping.test_type_checks import COL, DECIMAL_8_2, LINE, _write


def _column(name: str, kind: str) -> ColumnInfo:
    return ColumnInfo(name, kind, True, kind, None)


COLUMNS = {
    "a": _column("a", "int"),
    "b": _column("b", "int"),
    "amount": _column("amount", "decimal"),
    "ratio": _column("ratio", "float"),
}
TYPES = {"int": int, "float": float, "decimal": Decimal}


def _kind(text: str) -> str | None:
    return ExpressionCompiler(COLUMNS).compile(text).kind


def run(text: str, after: dict[str, Any], before: dict[str, Any] | None = None) -> Any:
    """`text` as the generated code of a mapping with a table description runs it."""
    symbols = Symbols()
    compiled = ExpressionCompiler(COLUMNS, symbols).compile(text)
    scope = runtime_namespace() | symbols.constants
    for (side, column), local in symbols.columns.items():
        row = before if side == "before" else after
        scope[local] = None if row is None else row.get(column)
    return eval(compile(compiled.source, "<expression>", "eval"), {"__builtins__": {}}, scope)


ROW = {"a": 7, "b": 2, "amount": Decimal("2.5"), "ratio": 0.5}


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


# --- the kind of arithmetic, unary minus, abs, round, min and max ------------------------------------


@pytest.mark.parametrize("symbol", ["+", "-", "*", "//", "%", "/"])
@pytest.mark.parametrize(
    ("left", "right", "kind"),
    [
        ("after.a", "after.amount", "decimal"),
        ("after.amount", "after.a", "decimal"),
        ("after.a", "after.ratio", "float"),
        ("after.ratio", "after.a", "float"),
        ("after.amount", "after.ratio", "decimal"),
        ("after.ratio", "after.amount", "decimal"),
        ("after.amount", "0.5", "decimal"),
        ("after.a", "0.5", "float"),
        ("after.a", "after.b", "int"),
    ],
)
def test_mixed_number_arithmetic_has_the_kind_the_runtime_gives(
    symbol: str, left: str, right: str, kind: str
) -> None:
    text = f"{left} {symbol} {right}"
    expected = "float" if symbol == "/" and kind == "int" else kind
    assert _kind(text) == expected
    assert type(run(text, ROW)) is TYPES[expected]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("-after.amount", "decimal"),
        ("-after.ratio", "float"),
        ("-(after.a + after.amount)", "decimal"),
        ("+after.a", "int"),
        ("abs(after.a - after.ratio)", "float"),
        ("abs(-after.amount)", "decimal"),
        ("round(after.a, 1)", "int"),
        ("round(after.a * after.amount, 1)", "decimal"),
        ("round(after.ratio + after.a, 1)", "float"),
        ("round(after.a + after.amount)", "int"),
        ("min(after.a, after.amount)", "decimal"),
        ("max(after.amount, after.a)", "decimal"),
        ("max(after.a, after.ratio)", "float"),
        ("min(after.a, 0.5)", "float"),
        ("min(after.a, after.b, 1)", "int"),
        ("max(after.ratio, after.amount)", "decimal"),
        ("min(after.ratio, after.a, after.amount)", "decimal"),
    ],
)
def test_unary_abs_round_min_and_max_have_the_kind_the_runtime_gives(text: str, kind: str) -> None:
    assert _kind(text) == kind
    for row in (ROW, {"a": -3, "b": 9, "amount": Decimal("-1.25"), "ratio": 8.0}):
        assert type(run(text, row)) is TYPES[kind], row


def test_min_and_max_meet_a_decimal_and_a_float_as_comparisons_do() -> None:
    row = {"amount": Decimal("0.1"), "ratio": 0.1}
    assert run("after.amount < after.ratio", row) is False and run("after.ratio < after.amount", row) is False
    assert run("max(after.amount, after.ratio)", row) == Decimal("0.1")
    assert run("min(after.ratio, after.amount)", row) == Decimal("0.1")
    assert run("max(after.ratio, after.amount)", {"amount": Decimal("0.3"), "ratio": 0.25}) == Decimal("0.3")
    assert run("min(after.a, after.ratio)", {"a": 2, "ratio": 2.5}) == 2.0


def test_min_of_a_nan_and_a_decimal_is_an_evaluation_error() -> None:
    with pytest.raises(ExpressionRuntimeError, match=r"min\(\) cannot compare Decimal, Decimal"):
        run("min(after.amount, after.ratio)", {"amount": Decimal(1), "ratio": float("nan")})


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("coalesce(after.a, after.amount)", "decimal"),
        ("coalesce(after.a, 0.5)", "float"),
        ("coalesce(after.a, null, 1)", "int"),
        ("coalesce(after.amount, 0)", "decimal"),
        ("after.a if after.b > 0 else after.amount", "decimal"),
        ("after.a if after.b > 0 else 0.5", "float"),
        ("after.a if after.b > 0 else null", "int"),
    ],
)
def test_coalesce_and_if_of_mixed_numbers_have_the_widest_kind(text: str, kind: str) -> None:
    """They give one of their values as it is; a field must take whichever it is."""
    assert _kind(text) == kind


# --- what `validate` refuses and accepts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field_type", "expression", "message"),
    [
        (
            "int",
            "after.id + after.amount",
            "a decimal value cannot go into a int field; an exact decimal may have a fraction",
        ),
        ("long", "min(after.id, after.amount)", "a decimal value cannot go into a long field"),
        ("long", "after.id * 1.5", "this expression gives a floating-point number"),
        ("long", "coalesce(after.id, after.ratio_f)", "this expression gives a floating-point number"),
        ("double", "after.ratio_f - after.amount", "a decimal value cannot go into a double field"),
    ],
)
def test_a_mixed_number_expression_into_a_field_of_another_kind_is_refused_where_it_is(
    tmp_path: Path, field_type: str, expression: str, message: str
) -> None:
    mapping = _write(tmp_path, field_type, expression)
    with pytest.raises(MappingError) as refused:
        compile_mapping(load_mapping(mapping))
    assert refused.value.one_line().startswith(f"{mapping}:{LINE}:{COL}: emit[0].fields.x: {message}")


@pytest.mark.parametrize(
    ("field_type", "expression", "after"),
    [
        (DECIMAL_8_2, "after.id + after.amount", {"id": 1, "amount": Decimal("2.50")}),
        (DECIMAL_8_2, "max(after.id, after.amount)", {"id": 3, "amount": Decimal("2.50")}),
        ("double", "after.id + after.ratio_f", {"id": 1, "ratio_f": 0.5}),
        ("double", "min(after.id, 0.5)", {"id": 1}),
        ("long", "after.id // 2 + 1", {"id": 7}),
        ("string", "after.id * after.amount", {"id": 2, "amount": Decimal("2.50")}),
    ],
)
def test_a_mixed_number_expression_the_field_takes_is_accepted_and_published(
    tmp_path: Path, field_type: object, expression: str, after: dict[str, Any]
) -> None:
    compiled = compile_mapping(load_mapping(_write(tmp_path, field_type, expression)))
    (event,) = compiled.apply_decoded(test_change(compiled.spec, "c", None, after))
    assert event.value["x"] is not None
