"""Lookups of related rows: the checks of a mapping's `lookup:` block and the plan the compiler runs.

A lookup names a row of another table by its primary key, computed from the triggering change (and
from earlier lookups). At run time the row is the version that was current at the triggering
change's source commit (`eventbus.lookups` keeps the versions); here we only check what can be
checked before any change arrives:

- the name is usable in expressions (an identifier that is not a row, `source`, `op` or a function);
- the table is captured beside the mapping (`tables/<schema>.<table>.json`), so columns are known,
  and the key names exactly its key when the key schema is captured too
  (`tables/<schema>.<table>.key.json`: the primary key, or a keyless table's declared key_columns);
- each key expression has the type of its key column;
- the related table is of the same source, whose log gives the one commit order (another source's
  table only with `consistency: latest`);
- lookups that use each other form no cycle; they are run in dependency order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from eventbus.mapping.errors import MappingError
from eventbus.mapping.expression_language import CompiledExpression, did_you_mean
from eventbus.mapping.expressions import ExpressionCompiler
from eventbus.mapping.function_catalog import FUNCTIONS
from eventbus.mapping.spec import RESERVED_NAMES, LookupSpec, MappingSpec
from eventbus.mapping.tables import (
    CapturedTable,
    ColumnInfo,
    captured_table_path,
    load_captured_key,
    load_captured_table,
    near_description,
)
from eventbus.mapping.yaml_loader import KeyPath


class _Skip:
    def __repr__(self) -> str:
        return "LOOKUP_SKIP"


LOOKUP_SKIP: Final = _Skip()
"""What a resolver returns for a missing row whose `on_missing` is `skip`: the change makes no event."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Kinds that compare equal as key text when the expression's kind is not known statically


@dataclass(frozen=True, slots=True)
class LookupPlan:
    """One lookup as the compiler and the runtime need it."""

    index: int  # in run order (dependencies first)
    name: str
    table: str
    connector: str
    key_columns: tuple[str, ...]  # the table's key columns (primary key or declared), in key order
    key: tuple[CompiledExpression, ...]  # one per key column
    depends: frozenset[str]  # lookups its key uses
    columns: tuple[str, ...]  # columns of the related row the mapping reads
    wait_ms: int
    on_missing: str  # skip | dead_letter | null
    consistency: str  # commit | latest


def lookup_tables(spec: MappingSpec, problems: list[MappingError]) -> dict[str, CapturedTable | None]:
    """Lookup name → its captured table (None when the mapping has no file, as in unit tests)."""
    tables: dict[str, CapturedTable | None] = {}
    for name, lookup in spec.lookup.items():
        path: KeyPath = ("lookup", name)
        if not _NAME.match(name) or name in RESERVED_NAMES or name in FUNCTIONS:
            problems.append(
                spec.error(
                    path,
                    f"{name!r} cannot name a lookup",
                    hint="use a lower-case identifier that is not before, after, source, op or a function",
                    at_key=True,
                )
            )
        tables[name] = _captured(spec, path, lookup, problems)
    return tables


def _captured(
    spec: MappingSpec, path: KeyPath, lookup: LookupSpec, problems: list[MappingError]
) -> CapturedTable | None:
    if spec.file is None:
        return None
    file = captured_table_path(Path(spec.file), lookup.table)
    if not file.exists():
        near = near_description(Path(spec.file), lookup.table)
        connector = lookup.connector or spec.source.connector
        add = (
            f"add the table to the source's `tables:`, then write its description with `eventbus mapping "
            f"tables --source {connector}` (or save the `schema` half of one of its staging records "
            "there), so its columns and key can be checked"
        )
        problems.append(
            spec.error(
                (*path, "table"),
                f"looked-up table {lookup.table} is not captured: no {file.parent.name}/{file.name} "
                "beside the mapping",
                hint=f"{near} Else {add}" if near else add,
            )
        )
        return None
    try:
        return load_captured_table(file, lookup.table)
    except (OSError, ValueError) as error:
        problems.append(spec.error((*path, "table"), f"captured table schema {file} is unreadable: {error}"))
        return None


def plan_lookups(
    spec: MappingSpec,
    compiler: ExpressionCompiler,
    tables: Mapping[str, CapturedTable | None],
    compile_expression: Callable[[KeyPath, Any], CompiledExpression | None],
    problems: list[MappingError],
) -> list[LookupPlan]:
    """Compile the key expressions and order the lookups; `compiler` already knows every lookup name."""
    compiled: dict[str, tuple[tuple[str, ...], tuple[CompiledExpression, ...], frozenset[str]]] = {}
    for name, lookup in spec.lookup.items():
        path: KeyPath = ("lookup", name)
        table = tables.get(name)
        key_columns = _key_columns(spec, path, lookup, table, problems)
        expressions = []
        for column in key_columns:
            expression = compile_expression((*path, "key", column), lookup.key[column])
            if expression is None:
                continue
            _check_key_kind(spec, (*path, "key", column), lookup, column, expression, table, problems)
            expressions.append(expression)
        if len(expressions) != len(key_columns):
            continue
        depends = frozenset(side for e in expressions for side, _ in e.reads if side in spec.lookup)
        compiled[name] = (key_columns, tuple(expressions), depends)
        _check_source(spec, path, lookup, problems)
        try:
            lookup.wait_ms  # noqa: B018  # parses the duration
        except ValueError as error:
            problems.append(spec.error((*path, "wait"), str(error)))
    order = _run_order(spec, {name: entry[2] for name, entry in compiled.items()}, problems)
    reads = _reads_per_lookup(compiler)
    plans = []
    for index, name in enumerate(order):
        lookup = spec.lookup[name]
        key_columns, key_expressions, depends = compiled[name]
        plans.append(
            LookupPlan(
                index=index,
                name=name,
                table=lookup.table,
                connector=lookup.connector or spec.source.connector,
                key_columns=key_columns,
                key=key_expressions,
                depends=depends,
                columns=tuple(sorted(reads.get(name, ()))),
                wait_ms=_wait_ms(lookup),
                on_missing=lookup.on_missing,
                consistency=lookup.consistency,
            )
        )
    return plans


def _wait_ms(lookup: LookupSpec) -> int:
    try:
        return lookup.wait_ms
    except ValueError:
        return 0


def _key_columns(
    spec: MappingSpec,
    path: KeyPath,
    lookup: LookupSpec,
    table: CapturedTable | None,
    problems: list[MappingError],
) -> tuple[str, ...]:
    written = tuple(lookup.key)
    if table is None:
        return written
    unknown = [column for column in written if column not in table.columns]
    for column in unknown:
        problems.append(
            spec.error(
                (*path, "key", column),
                f"unknown column {column!r} of {lookup.table}",
                hint=did_you_mean(column, table.columns.keys()),
                at_key=True,
            )
        )
    try:
        table_key = load_captured_key(Path(table.path))
    except (OSError, ValueError) as error:
        problems.append(spec.error((*path, "table"), f"captured key schema is unreadable: {error}"))
        return written
    if table_key is None:
        return written
    if set(written) != set(table_key):
        problems.append(
            spec.error(
                (*path, "key"),
                f"the key of a lookup must be the primary key (or declared key_columns) of {lookup.table}: "
                f"({', '.join(table_key)}), not ({', '.join(written)})",
                hint="lookups read one row by the key its changes are captured with "
                f"(tables/{lookup.table}.key.json); for other columns look up through the table "
                "that holds the key",
                at_key=True,
            )
        )
        return written
    return tuple(table_key)


# The function that turns a value into a key column's kind (a uuid has none: read a uuid column).
_CONVERSIONS: Final = {"int": "int", "decimal": "decimal", "float": "float", "string": "str",
                       "datetime": "datetime", "date": "date", "bool": "bool"}  # fmt: skip


def _check_key_kind(
    spec: MappingSpec,
    path: KeyPath,
    lookup: LookupSpec,
    column: str,
    expression: CompiledExpression,
    table: CapturedTable | None,
    problems: list[MappingError],
) -> None:
    info: ColumnInfo | None = table.columns.get(column) if table is not None else None
    if info is None or expression.kind is None or expression.kind == info.kind:
        return
    # Keys are matched by their text; a decimal's by its number, so integers and decimals meet
    if {expression.kind, info.kind} <= {"int", "decimal"}:
        return
    message = (
        f"key column {column!r} of {lookup.table} is {info.kind}, but this expression gives {expression.kind}"
    )
    conversion = _CONVERSIONS.get(info.kind)
    hint = f"convert it: {conversion}(...)" if conversion else f"read a {info.kind} column for it"
    problems.append(spec.error(path, message, hint=hint))


def _check_source(spec: MappingSpec, path: KeyPath, lookup: LookupSpec, problems: list[MappingError]) -> None:
    if lookup.connector in (None, spec.source.connector) or lookup.consistency == "latest":
        return
    problems.append(
        spec.error(
            (*path, "connector"),
            f"{lookup.table} comes from source {lookup.connector!r}, the change from "
            f"{spec.source.connector!r}: two databases have no common commit order, so 'as of the "
            "change's commit' cannot be kept",
            hint="set `consistency: latest` to read whatever version is known (documented: not "
            "repeatable on replay), or capture the table in the same source",
        )
    )


def _run_order(
    spec: MappingSpec, depends: dict[str, frozenset[str]], problems: list[MappingError]
) -> list[str]:
    """Dependencies first, otherwise as written; a cycle is an error at each lookup in it."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*trail[trail.index(name) :], name]
            problems.append(
                spec.error(
                    ("lookup", name, "key"),
                    f"lookups form a cycle: {' → '.join(cycle)}",
                    hint="a lookup's key may use only lookups that do not, in turn, need it",
                )
            )
            return
        state[name] = "visiting"
        for other in sorted(depends.get(name, ())):
            if other in depends:
                visit(other, [*trail, name])
        state[name] = "done"
        order.append(name)

    for name in depends:
        visit(name, [])
    return order


def _reads_per_lookup(compiler: ExpressionCompiler) -> dict[str, set[str]]:
    reads: dict[str, set[str]] = {}
    for side, column in compiler.symbols.columns:
        if side not in ("before", "after"):
            reads.setdefault(side, set()).add(column)
    return reads
