"""What the reason of a failed change may say: names, types and rules; a value only when it is public.

A dead-letter reason (`eventbus_dlq_reason`) is printed by tools (`eventbus dlq`) and may be copied
into logs and tickets, beyond the dead-letter topic's ACL; the values of a change may be personal
data. So a reason names where the mapping failed (emit block, field, column), the types involved
and the rule broken, and shows the value only when every column it comes from is *public*: a column
is public when the mapping publishes it as it is (`status: after.status`) in a field its
`sensitivity` marks `public`. Columns of looked-up rows never are (`sensitivity` speaks of the
mapping's own table). Python's own exception messages may quote a value (`invalid literal for int()
with base 10: '123-45-6789'`), so for those only the exception's type is named.

The value, or Python's message, stays in the error (`MappingEvaluationError.with_data()`) for the
mapping author's offline tools, which run on test data (`eventbus mapping test`, `mapping run`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Final

from eventbus.errors import NO_VALUE, ValueApart, exception_name
from eventbus.mapping.analysis import Analysis
from eventbus.mapping.errors import MappingEvaluationError
from eventbus.mapping.expression_language import ROW_NAMES, CompiledExpression
from eventbus.mapping.spec import MappingSpec
from eventbus.sql_names import quote_table

# Where generated code was when it failed: (emit index, label) as `codegen.CodeGenerator.position`
# records them; labels are "reading columns", "when", "key.<field>", "fields.<field>" and "event".
Position = tuple[int | None, str]
Failure = Callable[[int, BaseException], MappingEvaluationError]


def public_columns(spec: MappingSpec, analysis: Analysis) -> frozenset[str]:
    """The columns of the mapping's table that a field marked `public` publishes as they are
    (`before.c` or `after.c`)."""
    locals_ = analysis.symbols.columns  # (side, column) -> the local variable generated code reads
    public = set()
    for plan in analysis.emits:
        for field_plan in (*plan.key, *plan.fields):
            expression = field_plan.expression
            if spec.sensitivity.get(field_plan.name) != "public" or expression is None:
                continue
            if len(expression.reads) == 1:
                (read,) = expression.reads
                # the bare column, not a function of it
                if read[0] in ROW_NAMES and expression.source == locals_[read]:
                    public.add(read[1])
    return frozenset(public)


# Python messages that name types, never values: they go into a reason whole.
_VALUE_FREE: Final = re.compile(
    r"^(?:'[<>=!]{1,2}' not supported between instances of '[\w.]+' and '[\w.]+'"
    r"|unsupported operand type\(s\) for [^:']{1,3}: '[\w.]+' and '[\w.]+'"
    r"|bad operand type for unary .: '[\w.]+'"
    r"|cannot convert float (?:NaN|infinity) to integer"
    r"|can't compare offset-naive and offset-aware datetimes)$"
)


def failure_factory(spec: MappingSpec, analysis: Analysis, positions: Sequence[Position]) -> Failure:
    """`fail(position, error)`: the `MappingEvaluationError` generated code raises for `error`."""
    public = public_columns(spec, analysis)
    # Per position, whether a value met there comes from public columns only (None: the column
    # conversions, where the error names its column)
    shows: list[bool | None] = [_public_at(analysis, index, label, public) for index, label in positions]
    name, version = spec.name, spec.version
    table_prefix = spec.source.table + "."  # table schemas name a column `<schema>.<table>.<column>`

    def fail(position: int, error: BaseException) -> MappingEvaluationError:
        emit_index, label = positions[position]
        if isinstance(error, ValueApart):  # our own errors: value-free message, value apart
            show = shows[position]
            if show is None:
                column = getattr(error, "column", None) or ""
                show = column.removeprefix(table_prefix) in public
            reason, value, detail = str(error), error.value, None
        else:  # Python's own message may quote a value: only its type goes into the reason
            show = False
            reason, value = f"unexpected {exception_name(error)}", NO_VALUE
            detail = f"{exception_name(error)}: {error}"
            if _VALUE_FREE.match(str(error)):  # a message of types only says what to fix
                reason = f"{reason}: {error}"
        return MappingEvaluationError(
            reason,
            mapping=name,
            mapping_version=version,
            emit_index=emit_index,
            field=label,
            value=value,
            public=show,
            detail=detail,
        )

    return fail


def _public_at(analysis: Analysis, emit_index: int | None, label: str, public: frozenset[str]) -> bool | None:
    if label == "reading columns":
        return None
    if emit_index is None:  # the mapping's `when`
        return label == "when" and _reads_only(public, [analysis.when])
    plan = next((plan for plan in analysis.emits if plan.index == emit_index), None)
    if plan is None:
        return False
    if label == "when":
        return _reads_only(public, [plan.when])
    if label == "event":  # the key's text (the subject) and the event id are built from the key
        return _reads_only(public, [field_plan.expression for field_plan in plan.key])
    part, _, name = label.partition(".")
    field_plans = {"key": plan.key, "fields": plan.fields}.get(part, [])
    expression = next((f.expression for f in field_plans if f.name == name), None)
    return expression is not None and _reads_only(public, [expression])


def _reads_only(public: frozenset[str], expressions: Iterable[CompiledExpression | None]) -> bool:
    """Do these expressions read public columns only (source fields and literals are no row data)?"""
    reads = [read for e in expressions if e is not None for read in e.reads]
    return all(side in ROW_NAMES and column in public for side, column in reads)


def no_old_row_factory(spec: MappingSpec, analysis: Analysis) -> Callable[[], MappingEvaluationError]:
    """The error of an update that came without the old row the mapping reads (`old_row_reads`).

    Its reason names the table, the columns read and both fixes; it is built on the first such
    update (quoting the table loads SQLAlchemy, which the service otherwise never needs): the
    generated code calls this only in its branch for a missing `before`.
    """
    table = spec.source.table
    reads = ", ".join(f"before.{column}" for column in analysis.old_row_reads)
    name, version = spec.name, spec.version

    @cache
    def reason() -> str:
        return (
            f"an update of {table} came without its old row (before is null: the table's REPLICA "
            f"IDENTITY is not FULL), and this mapping reads {reads} (directly, or through changed()/"
            f"became()), so it would take every update for a transition; fix the table: ALTER TABLE "
            f"{quote_table(table)} REPLICA IDENTITY FULL (`eventbus source check --fix` applies it), "
            "or handle such updates in the mapping with is_null(before)"
        )

    def no_old_row() -> MappingEvaluationError:
        return MappingEvaluationError(reason(), mapping=name, mapping_version=version)

    return no_old_row
