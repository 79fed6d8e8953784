"""The checked reading of an unusual Debezium envelope: finds and names what is wrong with it.

The decoder (`connect_json`) reads a well-formed envelope with subscripts and only the checks that a
wrong shape would not trip anyway; whatever it cannot read that way (a missing field, a row that is
not an object, an unknown op, an unusual source block) is read again here, field by field, and either
becomes a `Change` (a record Debezium may write, such as one without `ts_ms`) or raises the
`DecodeError` that says which field breaks which rule, never quoting the record's data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventbus.debezium.envelope import NEEDS_AFTER, OPS, Change, SourceInfo
from eventbus.debezium.errors import DecodeError, record_name, shown_op
from eventbus.debezium.source_block import SOURCE_TYPES


def checked_change(
    payload: Any,
    table: Any,
    key: dict[str, Any] | None,
    topic: str | None,
    schemaless_table: Callable[[dict[str, Any]], Any],
) -> Change:
    """The `Change` of an envelope `payload` checked field by field; `DecodeError` names the first
    problem. `schemaless_table` gives the table schema of a record without one (`table` is None)."""
    if payload.__class__ is not dict:
        kind = "null" if payload is None else type(payload).__name__
        raise DecodeError(
            f"{record_name('value', topic)}: payload is {kind}, expected a Debezium envelope object"
        )
    op = payload.get("op")
    if op.__class__ is not str or op not in OPS:
        raise DecodeError(
            f"{record_name('value', topic)}: unknown or missing op {shown_op(op)}; "
            "expected one of c, u, d, r, t, m"
        )
    src = payload.get("source")
    if src.__class__ is not dict:
        raise DecodeError(f"{record_name('value', topic)}: 'source' block missing or not an object")
    try:
        source = SourceInfo.from_block(src)
    except KeyError as exc:
        raise DecodeError(f"{record_name('value', topic)}: 'source' block lacks {exc.args[0]!r}") from None
    for name, kinds, wanted in SOURCE_TYPES:
        found = src.get(name)
        if found.__class__ not in kinds:
            raise DecodeError(
                f"{record_name('value', topic)}: source.{name} must be {wanted} or null, "
                f"not {type(found).__name__}"
            )
    before = payload.get("before")
    after = payload.get("after")
    if (before is not None and before.__class__ is not dict) or (
        after is not None and after.__class__ is not dict
    ):
        raise DecodeError(f"{record_name('value', topic)}: 'before'/'after' must be objects or null")
    if after is None and op in NEEDS_AFTER:
        raise DecodeError(f"{record_name('value', topic)}: op {op!r} without an 'after' row")
    if table is None:
        table = schemaless_table(src)
    return Change(
        op,
        before,
        after,
        source,
        table,
        key,
        payload.get("ts_ms"),
        payload.get("transaction"),
        payload.get("message"),
    )
