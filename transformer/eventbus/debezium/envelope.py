"""The decoded form of one Debezium change record.

`before` and `after` stay *raw* (as Debezium encoded them); `table.converter(column)` turns a raw value
into an exact Python value. Mappings read only a few columns, so conversion happens only for those.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol


class _Unavailable:
    """The TOAST placeholder: Debezium did not receive this column's value (unchanged, too large)."""

    _instance: _Unavailable | None = None

    def __new__(cls) -> _Unavailable:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNAVAILABLE"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE: Final = _Unavailable()
"""Stands for a column value Debezium did not send (the `__debezium_unavailable_value` placeholder)."""

OPS: Final = frozenset({"c", "u", "d", "r", "t", "m"})
# The ops whose envelope must carry an `after` row: create, update, read (snapshot).
NEEDS_AFTER: Final = frozenset("cru")
# Debezium's op code of each operation a mapping can be `on:`.
OP_CODES: Final[dict[str, str]] = {"insert": "c", "update": "u", "delete": "d", "snapshot": "r"}
"""Debezium operation codes: create, update, delete, read (snapshot), truncate, message."""


class TableSchema(Protocol):
    """What a mapping needs to know about the table a change came from."""

    @property
    def name(self) -> str:
        """`<schema>.<table>` as Debezium names it, e.g. `public.claims`."""
        ...

    @property
    def columns(self) -> Mapping[str, Any]:
        """Column name → column type description (logical type, optionality)."""
        ...

    def converter(self, column: str) -> Callable[[Any], Any]:
        """A function from the raw value of `column` to its exact Python value."""
        ...


@dataclass(slots=True)
class SourceInfo:
    """Where in the source database's log a change comes from."""

    connector: str
    db: str
    schema: str
    table: str
    ts_ms: int | None = None
    lsn: int | None = None
    tx_id: int | None = None
    snapshot: str | None = None
    sequence: str | None = None

    @classmethod
    def from_block(cls, src: Mapping[str, Any]) -> SourceInfo:
        """From Debezium's `source` block (its names: `name`, `txId`); KeyError without the four
        names, the optional fields default to None. Types are the decoder's business."""
        return cls(
            src["name"],
            src["db"],
            src["schema"],
            src["table"],
            src.get("ts_ms"),
            src.get("lsn"),
            src.get("txId"),
            src.get("snapshot"),
            src.get("sequence"),
        )


@dataclass(slots=True)
class Change:
    """One row change as Debezium published it."""

    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: SourceInfo
    table: TableSchema
    key: dict[str, Any] | None = None
    ts_ms: int | None = None
    transaction: dict[str, Any] | None = field(default=None)
    message: dict[str, Any] | None = None
    """For `op == "m"` (logical decoding message): `{prefix, content}`; `None` otherwise."""
