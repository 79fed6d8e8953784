"""Expressions whose values or kinds depend on the column types: arrays against list literals,
decimals against float literals, the kinds of `/` and `round()`, and a `#` that would end an
expression early."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.mapping import load_mapping
from eventbus.mapping.errors import MappingErrors
from eventbus.mapping.expression_language import ExpressionError, Symbols
from eventbus.mapping.expression_runtime import evaluate, runtime_namespace
from eventbus.mapping.expressions import ExpressionCompiler
from eventbus.mapping.tables import ColumnInfo


def _column(name: str, kind: str, element: ColumnInfo | None = None) -> ColumnInfo:
    return ColumnInfo(name, kind, True, kind, None, element=element)


COLUMNS = {
    "tags": _column("tags", "array", _column("tags", "string")),
    "counts": _column("counts", "array", _column("counts", "int")),
    "rates": _column("rates", "array", _column("rates", "decimal")),
    "amount": _column("amount", "decimal"),
    "ratio": _column("ratio", "float"),
    "a": _column("a", "int"),
    "b": _column("b", "int"),
    "status": _column("status", "string"),
}


def _compiled(text: str, columns: dict[str, ColumnInfo] | None = COLUMNS) -> tuple[str, Any]:
    """(generated source, value) of `text` compiled against `columns`, for `run`."""
    symbols = Symbols()
    compiled = ExpressionCompiler(columns, symbols).compile(text)
    return compiled.source, (compiled, symbols)


def run(
    text: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    columns: dict[str, ColumnInfo] | None = COLUMNS,
) -> Any:
    """`text` evaluated as the generated code of a mapping with a table description runs it."""
    _, (compiled, symbols) = _compiled(text, columns)
    scope = runtime_namespace() | symbols.constants
    for (side, column), local in symbols.columns.items():
        row = before if side == "before" else after
        scope[local] = None if row is None else row.get(column)
    return eval(compile(compiled.source, "<expression>", "eval"), {"__builtins__": {}}, scope)


# --- arrays against list literals -------------------------------------------------------------------


@pytest.mark.parametrize("columns", [COLUMNS, None], ids=["described", "no table"])
@pytest.mark.parametrize(
    ("text", "tags", "expected"),
    [
        ("after.tags == ['a', 'b']", ["a", "b"], True),
        ("after.tags == ['a', 'b']", ["b", "a"], False),
        ("['a', 'b'] == after.tags", ["a", "b"], True),
        ("after.tags != ['a', 'b']", ["a", "b"], False),
        ("after.tags != ['a', 'b']", ["a"], True),
        ("after.tags == []", [], True),
        ("after.tags != []", None, False),  # comparisons with null are false
        ("after.tags == ['a']", UNAVAILABLE, False),
        ("after.tags != ['a']", UNAVAILABLE, False),
    ],
)
def test_an_array_column_equals_a_list_literal_with_the_same_items(
    text: str, tags: object, expected: bool, columns: dict[str, ColumnInfo] | None
) -> None:
    assert run(text, None, {"tags": tags}, columns) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("after.tags == [after.status, 'b']", True),
        ("after.tags != [after.status, 'b']", False),
        ("after.status in [after.status, 'b']", True),
    ],
)
def test_a_list_of_columns_is_a_list_too(text: str, expected: bool) -> None:
    assert run(text, None, {"tags": ["a", "b"], "status": "a"}) is expected


def test_array_elements_meet_list_literal_items_as_the_elements_kind() -> None:
    assert run("after.counts == [1, 2]", None, {"counts": [1, 2]}) is True
    # a numeric[] column's elements are decimals: 0.1 is the decimal it is written as
    assert run("after.rates == [0.1, 2]", None, {"rates": [Decimal("0.1"), Decimal("2")]}) is True
    assert run("after.rates == [0.1, 2]", None, {"rates": [Decimal("0.2"), Decimal("2")]}) is False


def test_a_list_literal_compared_with_a_single_value_column_is_refused() -> None:
    with pytest.raises(ExpressionError) as refused:
        ExpressionCompiler(COLUMNS).compile("after.status == ['A', 'B']")
    assert "never equal" in refused.value.message
    assert refused.value.hint is not None and "x in [...]" in refused.value.hint


# --- decimals against float literals -----------------------------------------------------------------


@pytest.mark.parametrize("columns", [COLUMNS, None], ids=["described", "no table"])
@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (Decimal("0.2"), Decimal("0.1"), True),
        (Decimal("0.20"), Decimal("0.10"), True),  # a numeric(p, 2) column's 0.1
        (None, Decimal("0.1"), True),
        (Decimal("0.1"), Decimal("0.1"), False),
        (Decimal("0.1"), Decimal("0.2"), False),
        (Decimal("0.1"), UNAVAILABLE, False),
    ],
)
def test_became_of_a_decimal_column_and_a_float_literal_compares_by_value(
    before: object, after: object, expected: bool, columns: dict[str, ColumnInfo] | None
) -> None:
    assert run("became(after.amount, 0.1)", {"amount": before}, {"amount": after}, columns) is expected


def test_became_of_a_float_column_and_a_float_literal_is_unchanged() -> None:
    assert run("became(after.ratio, 0.1)", {"ratio": 0.2}, {"ratio": 0.1}) is True
    source, _ = _compiled("became(after.ratio, 0.1)")
    assert source == "(a_0 == 0.1 and b_1 != 0.1)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("after.amount == 0.1", True),
        ("after.amount != 0.1", False),
        ("after.amount >= 0.1", True),
        ("after.amount < 0.1", False),
        ("0.1 == after.amount", True),
        ("after.amount in [0.1, 5]", True),
    ],
)
def test_a_decimal_column_meets_a_float_literal_as_the_decimal_it_is_written_as(
    text: str, expected: bool
) -> None:
    assert run(text, None, {"amount": Decimal("0.10")}) is expected
    # the literal is made a decimal once, when compiled: no helper call, no conversion per change
    source, (_, symbols) = _compiled(text)
    assert "_eq(" not in source and "_lt(" not in source and "_ge(" not in source
    assert any(
        value == Decimal("0.1") or (isinstance(value, frozenset) and Decimal("0.1") in value)
        for value in symbols.constants.values()
    )


# --- kinds: `/` and round() ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "after", "value"),
    [
        ("after.a / after.b", "float", {"a": 7, "b": 2}, 3.5),
        ("after.a / after.b", "float", {"a": 4, "b": 2}, 2.0),
        ("after.ratio / after.a", "float", {"ratio": 1.0, "a": 4}, 0.25),
        ("after.amount / after.a", "decimal", {"amount": Decimal("7"), "a": 2}, Decimal("3.5")),
        ("after.a / after.amount", "decimal", {"amount": Decimal("2"), "a": 7}, Decimal("3.5")),
        ("after.amount / 2.0", "decimal", {"amount": Decimal("7")}, Decimal("3.5")),
        ("after.a // after.b", "int", {"a": 7, "b": 2}, 3),
        ("round(after.ratio)", "int", {"ratio": 2.5}, 2),
        ("round(after.amount)", "int", {"amount": Decimal("2.51")}, 3),
        ("round(after.a)", "int", {"a": 3}, 3),
        ("round(after.ratio, 1)", "float", {"ratio": 2.25}, 2.2),
        ("round(after.amount, 1)", "decimal", {"amount": Decimal("2.25")}, Decimal("2.2")),
    ],
)
def test_the_kind_validate_infers_is_the_kind_of_the_value(
    text: str, kind: str, after: dict[str, Any], value: object
) -> None:
    _, (compiled, _) = _compiled(text)
    assert compiled.kind == kind
    result = run(text, None, after)
    assert result == value and type(result) is type(value)
    assert {"int": int, "float": float, "decimal": Decimal}[kind] is type(result)


def test_round_without_digits_of_a_non_finite_decimal_is_an_evaluation_error() -> None:
    from eventbus.mapping.functions import ExpressionRuntimeError

    with pytest.raises(ExpressionRuntimeError, match="round"):
        evaluate("round(after.x)", after={"x": Decimal("NaN")})


# --- `#` in an expression -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("after.status == 'A'  # only A and after.a > 1", 1, 21),
        ("after.status == 'A' and# x", 1, 23),
        ("after.status == 'A'\nand after.a > 1  # not zero\n", 2, 17),
    ],
)
def test_a_hash_outside_text_is_refused_where_it_is(text: str, line: int, column: int) -> None:
    with pytest.raises(ExpressionError) as refused:
        ExpressionCompiler(COLUMNS).compile(text)
    assert "'#'" in refused.value.message
    assert (refused.value.line, refused.value.column) == (line, column)
    assert refused.value.hint is not None and "folded" in refused.value.hint


@pytest.mark.parametrize(
    "text", ["after.status == '#1'", 'after.status == "a # b"', "concat('#', after.status, \"#\")"]
)
def test_a_hash_inside_text_is_text(text: str) -> None:
    ExpressionCompiler(COLUMNS).compile(text)


VALID = Path(__file__).parents[2] / "fixtures" / "mappings" / "valid"


def test_a_comment_in_a_folded_condition_is_refused_at_its_file_line_and_column(tmp_path: Path) -> None:
    shutil.copytree(VALID / "schemas", tmp_path / "schemas")
    shutil.copytree(VALID / "tables", tmp_path / "tables")
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: audit\nversion: 3\ndescription: every change of a claim\n"
        "source: {connector: claims, table: public.claims}\n"
        "on: update\n"
        "when: >-\n"
        "  after.status == 'CLOSED'  # closed claims only\n"
        "  and after.claim_id > 3\n"
        "emit:\n"
        "  key_schema: schemas/claim_key.avsc\n"
        "  value_schema: schemas/claim_audit.avsc\n"
        "  key: {claim_id: after.claim_id}\n"
        "  fields: {claim_id: after.claim_id, operation: op, filed_on: after.filed_on}\n"
    )
    with pytest.raises(MappingErrors) as caught:
        load_mapping(path)
    (error,) = caught.value.errors
    assert "'#'" in error.message
    assert (error.line, error.column) == (7, 29)


def test_a_decimal_expression_that_may_give_a_float_keeps_comparing_by_value() -> None:
    """Only a column's kind is sure: `coalesce(after.amount, 0.1)` gives the float 0.1 for a null."""
    assert run("coalesce(after.amount, 0.1) == 0.1", None, {"amount": None}) is True
    assert run("coalesce(after.amount, 0.1) == 0.1", None, {"amount": Decimal("0.10")}) is True
