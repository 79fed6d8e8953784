"""What a table description lets `validate` refuse beyond the coarse kinds of `avro.incompatibility`.

A field mapped straight from a column (`after.x`, `before.x`) has that column's exact type: its
nullability, decimal precision and scale, and time unit. Each pairing refused here would otherwise
pass validation and fail, or lose data, only at run time:

- a nullable column into a non-null field: the first null dead-letters its change (unless the
  mapping's `when:` lets only non-null values through, `non_null_reads`);
- a decimal column into a decimal field with fewer digits after the point (every value of a
  numeric(p, s) column comes with s places, so every one dead-letters: rounding money is the
  author's choice, `round(x, n)`) or fewer before it (too large to encode); an unconstrained
  numeric has no scale at all, so any fixed scale is narrower;
- a microsecond time or timestamp into a millisecond field: the microseconds would be dropped;
- a bigint column into an int field: a value beyond 32 bits dead-letters (it cannot be encoded);
- a real/double column, or an expression giving a float (`a / b`), into an int or long field: a
  value with a fraction dead-letters;
- text into a decimal field: the value is not a number until `decimal(...)` says how to read it.
"""

from __future__ import annotations

import ast
from typing import Final

from eventbus.mapping.avro import FieldType
from eventbus.mapping.expression_language import ROW_NAMES, CompiledExpression, parse_expression
from eventbus.mapping.tables import ColumnInfo

# Logical column types whose values have finer than millisecond precision (PostgreSQL's default).
_FINER_THAN_MILLIS: Final = frozenset({
    "io.debezium.time.MicroTimestamp", "io.debezium.time.NanoTimestamp", "io.debezium.time.ZonedTimestamp",
    "io.debezium.time.MicroTime", "io.debezium.time.NanoTime", "io.debezium.time.ZonedTime",
})  # fmt: skip
_FINER_THAN_MICROS: Final = frozenset({"io.debezium.time.NanoTimestamp", "io.debezium.time.NanoTime"})
_MILLIS_FIELDS: Final = frozenset({"timestamp-millis", "local-timestamp-millis", "time-millis"})
_MICROS_FIELDS: Final = frozenset({"timestamp-micros", "local-timestamp-micros", "time-micros"})


# The rows Debezium sends for each operation: an insert or snapshot read has no `before`, a delete no
# `after` (an update's `before` may be empty too, without REPLICA IDENTITY FULL, but it has one).
_ROWS_OF: Final = {"c": ("after",), "r": ("after",), "u": ("before", "after"), "d": ("before",)}
_OPERATION_NAMES: Final = {"c": "insert", "r": "snapshot read", "u": "update", "d": "delete"}


def absent_rows(op_codes: frozenset[str]) -> dict[str, str]:
    """The rows (`before`/`after`) none of the mapping's operations has → those operations, named."""
    present = {row for op in op_codes for row in _ROWS_OF.get(op, ())}
    names = " or ".join(_OPERATION_NAMES[op] for op in sorted(op_codes) if op in _OPERATION_NAMES)
    article = "an" if names[:1] in ("a", "e", "i", "o", "u") else "a"
    return {row: f"{article} {names}" for row in ("before", "after") if row not in present}


def refusal(
    expression: CompiledExpression,
    field: FieldType,
    non_null: frozenset[tuple[str, str]] = frozenset(),
    absent: dict[str, str] | None = None,
    maybe_missing: frozenset[str] = frozenset(),
) -> str | None:
    """Why `expression` cannot go into `field` although their kinds are compatible, or None.

    `non_null`: the reads the mapping's conditions prove non-null (`non_null_reads`; `(lookup, "")`:
    its row is there); `absent`: the rows the mapping's operations never have (`absent_rows`);
    `maybe_missing`: lookups whose row may be missing (`on_missing: null`).
    """
    if expression.constant:
        return None  # literals are checked by converting them
    if field.kind == "decimal" and expression.kind == "string":
        return "a string value cannot go into a decimal field; convert it with decimal(...)"
    read = _direct_read(expression)
    if read is not None and absent and read[0] in absent and not field.nullable:
        side, name = read
        other = "before" if side == "after" else "after"
        return (
            f"{side}.{name} is always null here: {absent[side]} has no `{side}` row, so every event "
            f"would dead-letter on the non-null field; read {other}.{name}"
        )
    if (
        read is not None
        and read[0] in maybe_missing
        and not field.nullable
        and not {read, (read[0], "")} & non_null
    ):
        lookup, name = read
        return (
            f"{lookup}.{name} is null when lookup {lookup} finds no row (on_missing: null), and the "
            f"{field.kind} field is not nullable: make it a union [\"null\", {_avro_name(field)}], give a "
            f"value for null with coalesce(...), or let only found rows through: when: not is_null({lookup})"
        )
    column = expression.column
    if column is None:
        return _float_expression_into_integer(expression, field)
    guarded = bool(expression.reads & non_null)
    nullability = None if guarded else _nullability(column, field)
    return (
        nullability
        or _decimal_digits(column, field)
        or _time_unit(column, field)
        or _int_width(column, field)
        or _float_into_integer(column, field)
    )


def _float_into_integer(column: ColumnInfo, field: FieldType) -> str | None:
    if field.kind not in ("int", "long") or column.kind != "float":
        return None
    return (
        f"column {column.name!r} is a floating-point number and the {field.kind} field an integer: a "
        "value with a fraction, NaN or infinity would dead-letter its change; use a double field, or "
        "say how to round: int(round(x))"
    )


def _float_expression_into_integer(expression: CompiledExpression, field: FieldType) -> str | None:
    if field.kind not in ("int", "long") or expression.kind != "float":
        return None
    return (
        f"this expression gives a floating-point number (as `/` does: 7 / 2 is 3.5) and the {field.kind} "
        "field is an integer: a value with a fraction, NaN or infinity would dead-letter its change; use "
        "`//` for an integer quotient, say how to round: int(round(x)), or use a double field"
    )


def _int_width(column: ColumnInfo, field: FieldType) -> str | None:
    if field.kind != "int" or column.connect_type != "int64" or column.logical is not None:
        return None
    return (
        f"column {column.name!r} is a 64-bit integer (bigint) and an Avro int holds 32 bits: a value "
        f'beyond ±2,147,483,647 would dead-letter its change; make the field "long"'
    )


def _direct_read(expression: CompiledExpression) -> tuple[str, str] | None:
    """(row, column) when the expression is just `after.x`, `before['x']`, `lookup.x`, else None."""
    if len(expression.reads) != 1:
        return None
    try:
        return _read(parse_expression(expression.text).body)
    except SyntaxError:
        return None


def _nullability(column: ColumnInfo, field: FieldType) -> str | None:
    if not column.optional or field.nullable:
        return None
    return (
        f"column {column.name!r} is nullable and the {field.kind} field is not: a null would dead-letter "
        f'its change; make the field a union ["null", {_avro_name(field)}] with "default": null, '
        f"or give a value for null: coalesce(..., <default>)"
    )


def _avro_name(field: FieldType) -> str:
    return f'"{field.kind}"' if isinstance(field.schema, str) else "..."


def _decimal_digits(column: ColumnInfo, field: FieldType) -> str | None:
    if field.kind != "decimal" or column.kind != "decimal":
        return None
    if column.scale is None:
        return (
            f"column {column.name!r} is an unconstrained numeric: its values have any number of decimal "
            f"places, more than the field's {field.scale} would dead-letter; round(x, {field.scale}) says "
            f"how to round, or publish the exact text in a string field"
        )
    if column.scale > field.scale:
        return (
            f"column {column.name!r} is numeric({column.precision},{column.scale}) and the field keeps "
            f"{field.scale} decimal place(s): every value comes with {column.scale} and would "
            f"dead-letter; use decimal({column.precision}, {column.scale}), or round(x, {field.scale}) to "
            f"say how to round"
        )
    if column.precision is not None and column.precision - column.scale > field.precision - field.scale:
        return (
            f"column {column.name!r} is numeric({column.precision},{column.scale}): up to "
            f"{column.precision - column.scale} digits before the point, the field's decimal"
            f"({field.precision}, {field.scale}) holds {field.precision - field.scale}; use decimal"
            f"({column.precision - column.scale + field.scale}, {field.scale}) or wider"
        )
    return None


def _time_unit(column: ColumnInfo, field: FieldType) -> str | None:
    logical = column.logical or ""
    if field.kind in _MILLIS_FIELDS and logical in _FINER_THAN_MILLIS:
        finer = field.kind.replace("millis", "micros")
        # timestamp_ms() turns a timestamp into epoch milliseconds; a time of day has no such function
        truncation = ", or say the truncation: timestamp_ms(...) gives epoch milliseconds"
        if field.kind == "time-millis":
            truncation = ""
        return (
            f"column {column.name!r} ({logical.rsplit('.', 1)[-1]}) has microseconds, a {field.kind} field "
            f"drops them; use {finer}{truncation}"
        )
    if field.kind in _MICROS_FIELDS and logical in _FINER_THAN_MICROS:
        unit = logical.rsplit(".", 1)[-1]
        return f"column {column.name!r} ({unit}) has nanoseconds, a {field.kind} field drops them"
    return None


# --- columns a condition proves non-null ------------------------------------------------------------


def non_null_reads(condition: object) -> frozenset[tuple[str, str]]:
    """(side, column) pairs that `condition` (a `when:` text) is true only for non-null values of.

    Only its top-level `and` parts count: `not is_null(after.x)`, `after.x != None`, `after.x is not
    None`, a comparison with a non-null literal (comparisons with null are false), `after.x in [...]`
    without null, `became(after.x, v)`.
    """
    if not isinstance(condition, str):
        return frozenset()
    try:
        tree = parse_expression(condition).body
    except SyntaxError:
        return frozenset()
    parts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    found: set[tuple[str, str]] = set()
    for part in parts:
        found.update(_proven(part))
    return frozenset(found)


def _read(node: ast.expr) -> tuple[str, str] | None:
    """(row, column) of a column read: `after.x`, `before['x']`, or a looked-up row's `lookup.x`."""
    if not isinstance(node, ast.Attribute | ast.Subscript) or not isinstance(node.value, ast.Name):
        return None
    row = node.value.id
    if row == "source":  # the source block's fields are not columns
        return None
    if isinstance(node, ast.Attribute):
        return (row, node.attr)
    if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return (row, node.slice.value)
    return None


def _is_null_literal(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Name) and node.id in ("null", "None")
    )


def _proven(part: ast.expr) -> list[tuple[str, str]]:
    if isinstance(part, ast.UnaryOp) and isinstance(part.op, ast.Not):
        call = part.operand
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "is_null":
            argument = call.args[0] if call.args else None
            if isinstance(argument, ast.Name) and argument.id not in ROW_NAMES:
                return [(argument.id, "")]  # `not is_null(lookup)`: its row was found
            read = _read(argument) if argument is not None else None
            return [read] if read else []
        return []
    if (
        isinstance(part, ast.Call)
        and isinstance(part.func, ast.Name)
        and part.func.id == "became"
        and part.args
    ):
        read = _read(part.args[0])
        return [read] if read and len(part.args) > 1 and not _is_null_literal(part.args[1]) else []
    if not isinstance(part, ast.Compare):
        return []
    found = []
    operands = [part.left, *part.comparators]
    for op, left, right in zip(part.ops, operands, operands[1:], strict=False):
        for mine, other in ((left, right), (right, left)):
            read = _read(mine)
            if read is None:
                continue
            if isinstance(op, ast.IsNot | ast.NotEq) and _is_null_literal(other):
                found.append(read)
            elif isinstance(op, ast.Eq | ast.Lt | ast.LtE | ast.Gt | ast.GtE) and not _is_null_literal(other):
                found.append(read)  # a comparison with null is false
            elif (
                isinstance(op, ast.In)
                and mine is left
                and isinstance(other, ast.List | ast.Tuple)
                and not any(_is_null_literal(element) for element in other.elts)
            ):
                found.append(read)
    return found
