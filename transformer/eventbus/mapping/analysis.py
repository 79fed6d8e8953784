"""Semantic checks of a `MappingSpec`, producing what the compiler needs.

Run once when a mapping loads: every expression is compiled (so syntax, sandbox, unknown columns and
functions are reported with file:line:col), Avro schemas are read and matched field by field
against the mapping, and, when a captured table schema exists, column references and column types
are checked. All problems of a file are collected and raised together as `MappingErrors`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventbus.mapping import avro
from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus.mapping.expression_language import (
    CompiledExpression,
    ExpressionError,
    Symbols,
    did_you_mean,
    parse_expression,
)
from eventbus.mapping.expressions import ExpressionCompiler
from eventbus.mapping.lookups import LookupPlan, lookup_tables, plan_lookups
from eventbus.mapping.sensitivity import check_sensitivity
from eventbus.mapping.spec import MappingSpec
from eventbus.mapping.tables import CapturedTable, captured_table_path, load_captured_table
from eventbus.mapping.type_checks import absent_rows, non_null_reads, refusal
from eventbus.mapping.yaml_loader import KeyPath


@dataclass(frozen=True, slots=True)
class FieldPlan:
    name: str
    expression: CompiledExpression | None  # None: not mapped, the schema default is used
    field: avro.RecordField


@dataclass(slots=True)
class EmitPlan:
    index: int
    topic: str
    when: CompiledExpression | None
    key_schema: avro.RecordSchema
    value_schema: avro.RecordSchema
    key: list[FieldPlan] = field(default_factory=list)
    fields: list[FieldPlan] = field(default_factory=list)


@dataclass(slots=True)
class Analysis:
    symbols: Symbols
    when: CompiledExpression | None
    emits: list[EmitPlan]
    table: CapturedTable | None
    lookups: list[LookupPlan] = field(default_factory=list)  # in run order
    # `when` split at its top-level `and`s (only for mappings with lookups): the compiler resolves
    # each lookup just before the first part that reads it, so a change that an earlier part
    # already filters out is never looked up (and never waits).
    when_parts: list[CompiledExpression] = field(default_factory=list)
    # The `before` columns an update must carry for this mapping to be right (see `old_row_reads`);
    # empty when an update without its old row may run as any other change.
    old_row_reads: tuple[str, ...] = ()


def analyse(spec: MappingSpec) -> Analysis:
    """Check `spec` and cache the result on it (`spec._analysis`); raises `MappingErrors`."""
    if spec._analysis is not None:
        return spec._analysis
    problems: list[MappingError] = []
    table = _captured_table(spec, problems)
    looked_up = lookup_tables(spec, problems)
    compiler = ExpressionCompiler(
        table.columns if table else None,
        lookups={name: (t.columns if t else None) for name, t in looked_up.items()},
    )

    def expression(path: KeyPath, value: Any) -> CompiledExpression | None:
        try:
            if isinstance(value, str):
                return compiler.compile(value)
            return compiler.literal(value)
        except ExpressionError as error:
            problems.append(
                spec.error(path, error.message, hint=error.hint, offset=(error.line, error.column))
            )
            return None

    when = None if spec.when in (None, True) else expression(("when",), spec.when)
    when_parts = _conjuncts(compiler, spec.when) if when is not None and spec.lookup else []
    lookup_keys = bool(spec.lookup)
    emits = []
    for index, block in enumerate(spec.emit):
        base: KeyPath = ("emit", index)
        key_schema = _schema(spec, (*base, "key_schema"), block.key_schema, problems)
        value_schema = _schema(spec, (*base, "value_schema"), block.value_schema, problems)
        block_when = expression((*base, "when"), block.when) if block.when is not None else None
        # Columns the conditions let through only when non-null may go into non-null fields
        non_null = non_null_reads(spec.when) | non_null_reads(block.when)
        plan_key = _fields(spec, (*base, "key"), block.key, key_schema, "key", expression, problems, non_null)
        plan_fields = _fields(
            spec, (*base, "fields"), block.fields, value_schema, "value", expression, problems, non_null
        )
        if key_schema and value_schema:
            plan = EmitPlan(
                index, block.topic or spec.name, block_when, key_schema, value_schema, plan_key, plan_fields
            )
            emits.append(plan)
    lookups = plan_lookups(spec, compiler, looked_up, expression, problems) if lookup_keys else []
    _check_tests(spec, table, emits, problems)
    _check_given(spec, looked_up, problems)
    check_sensitivity(spec, emits, problems)
    collected = MappingErrors.collect(problems)
    if collected is not None:
        raise collected
    old_row = old_row_reads(spec, compiler.symbols)
    spec._analysis = Analysis(compiler.symbols, when, emits, table, lookups, when_parts, old_row)
    return spec._analysis


def old_row_reads(spec: MappingSpec, symbols: Symbols) -> tuple[str, ...]:
    """The `before` columns the mapping's updates are read with (`before.x`, `changed()`, `became()`).

    Without REPLICA IDENTITY FULL an update comes with `before` null: every column reads as null,
    `changed()` is true, and the mapping would publish every edit as a transition. Such an update is
    a dead letter (the generated code checks it only where `before` is null already), unless the
    mapping handles it by testing `is_null(before)`, or handles no updates.
    """
    if "u" not in spec.op_codes or "before" in symbols.null_tested_rows:
        return ()
    return tuple(sorted(column for side, column in symbols.columns if side == "before"))


def _rows_maybe_missing(spec: MappingSpec) -> frozenset[str]:
    """Lookups whose row may be missing when the mapping runs (`on_missing: null`)."""
    return frozenset(name for name, lookup in spec.lookup.items() if lookup.on_missing == "null")


def _conjuncts(compiler: ExpressionCompiler, when: Any) -> list[CompiledExpression]:
    """The parts of `a and b and c` compiled one by one (the whole compiled already, so no errors)."""
    text = str(when).strip("\n")
    tree = parse_expression(text)
    if not (isinstance(tree.body, ast.BoolOp) and isinstance(tree.body.op, ast.And)):
        return []
    parts = [ast.get_source_segment(text, value) for value in tree.body.values]
    if any(part is None for part in parts):
        return []
    return [compiler.compile(part) for part in parts if part is not None]


def _captured_table(spec: MappingSpec, problems: list[MappingError]) -> CapturedTable | None:
    if spec.file is None:
        return None
    path = captured_table_path(Path(spec.file), spec.source.table)
    if not path.exists():
        return None
    try:
        return load_captured_table(path, spec.source.table)
    except (OSError, ValueError) as error:
        problems.append(
            spec.error(("source", "table"), f"captured table schema {path} is unreadable: {error}")
        )
        return None


def _schema(
    spec: MappingSpec, path: KeyPath, relative: str, problems: list[MappingError]
) -> avro.RecordSchema | None:
    file = spec.base_dir / relative
    if not file.is_file():
        siblings = (
            sorted(p.relative_to(spec.base_dir).as_posix() for p in file.parent.glob("*.avsc"))
            if file.parent.is_dir()
            else []
        )
        hint = did_you_mean(relative, siblings) or (f"found: {', '.join(siblings)}" if siblings else None)
        problems.append(spec.error(path, f"schema file not found: {relative}", hint=hint))
        return None
    try:
        return avro.load_record_schema(file)
    except (OSError, ValueError) as error:
        problems.append(spec.error(path, f"{relative}: {error}"))
        return None


def _fields(
    spec: MappingSpec,
    path: KeyPath,
    mapped: dict[str, Any],
    schema: avro.RecordSchema | None,
    what: str,
    expression: Any,
    problems: list[MappingError],
    non_null: frozenset[tuple[str, str]] = frozenset(),
) -> list[FieldPlan]:
    compiled = {name: expression((*path, name), value) for name, value in mapped.items()}
    if schema is None:
        return []
    plans = []
    for name in mapped:
        if name not in schema.fields:
            problems.append(
                spec.error(
                    (*path, name),
                    f"field {name!r} is not in the {what} schema {schema.name}",
                    hint=did_you_mean(name, schema.fields.keys()),
                    at_key=True,
                )
            )
    for name, record_field in schema.fields.items():
        expr = compiled.get(name)
        if name not in mapped:
            if not record_field.has_default:
                problems.append(
                    spec.error(
                        path,
                        f"{what} schema field {name!r} is not mapped and has no default",
                        hint=f"add `{name}: <expression>` or give the field a default in the schema",
                        at_key=True,
                    )
                )
            else:
                plans.append(FieldPlan(name, None, record_field))
            continue
        if expr is None:
            continue
        problem = avro.incompatibility(expr.kind, record_field.type) or refusal(
            expr, record_field.type, non_null, absent_rows(spec.op_codes), _rows_maybe_missing(spec)
        )
        if problem is None and expr.constant:
            _, coerce = avro.coercer(record_field.type)
            try:
                coerce(expr.value)
            except ValueError as error:
                problem = str(error)
        if problem:
            problems.append(spec.error((*path, name), f"{problem} (field {name!r} of {schema.name})"))
        else:
            plans.append(FieldPlan(name, expr, record_field))
    return plans


def _check_tests(
    spec: MappingSpec, table: CapturedTable | None, emits: list[EmitPlan], problems: list[MappingError]
) -> None:
    if table is not None:
        for index, test in enumerate(spec.tests):
            for side in ("before", "after"):
                row = getattr(test.change, side)
                for column in row or {}:
                    if column not in table.columns:
                        problems.append(
                            spec.error(
                                ("tests", index, "change", side, column),
                                f"unknown column {column!r} of {spec.source.table}",
                                hint=did_you_mean(column, table.columns.keys()),
                                at_key=True,
                            )
                        )
    known_fields = {name for plan in emits for name in plan.value_schema.fields}
    if not emits:
        return
    for index, test in enumerate(spec.tests):
        for position, expected in enumerate(test.expect or []):
            for part in ("value", "contains"):
                for name in getattr(expected, part) or {}:
                    if name not in known_fields:
                        problems.append(
                            spec.error(
                                ("tests", index, "expect", position, part, name),
                                f"field {name!r} is in no value schema of this mapping",
                                hint=did_you_mean(name, sorted(known_fields)),
                                at_key=True,
                            )
                        )


def _check_given(
    spec: MappingSpec, looked_up: dict[str, CapturedTable | None], problems: list[MappingError]
) -> None:
    """Test rows of related tables: only looked-up tables, and only their columns."""
    tables = {spec.lookup[name].table: captured for name, captured in looked_up.items()}
    for index, test in enumerate(spec.tests):
        for table_name, rows in test.given.items():
            path: KeyPath = ("tests", index, "given", table_name)
            if table_name not in tables:
                problems.append(
                    spec.error(
                        path,
                        f"{table_name} is not looked up by this mapping",
                        hint=did_you_mean(table_name, sorted(tables))
                        or (f"looked-up tables: {', '.join(sorted(tables))}" if tables else None),
                        at_key=True,
                    )
                )
                continue
            captured = tables[table_name]
            if captured is None:
                continue
            for number, row in enumerate(rows):
                for column in row:
                    if column not in captured.columns:
                        problems.append(
                            spec.error(
                                (*path, number, column),
                                f"unknown column {column!r} of {table_name}",
                                hint=did_you_mean(column, captured.columns.keys()),
                                at_key=True,
                            )
                        )
