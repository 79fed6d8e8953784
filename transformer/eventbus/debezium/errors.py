"""Errors raised while decoding Debezium staging records.

A `DecodeError` means one record cannot be understood; the service sends that record to the
dead-letter topic and carries on, so the message must say what is wrong with *the record*: which
column, of which type, breaks which rule, never the column's value (it may be personal data). A
column value that cannot be converted is kept in `value`, with the column's name in `column`.
"""

from __future__ import annotations

from typing import Any

from eventbus.errors import NO_VALUE, EventBusError, ValueApart


class DecodeError(ValueApart, EventBusError):
    """A staging record (or one of its column values) is not a Debezium change we can decode."""

    def __init__(self, message: str, *, column: str | None = None, value: Any = NO_VALUE) -> None:
        super().__init__(message)
        self.column = column
        self.value = value


def shown_op(op: Any) -> str:
    """An envelope's `op` as a message shows it: Debezium's one-letter codes, else only its type.

    A hostile or corrupt record may hold anything there, row data included.
    """
    if op is None or (op.__class__ is str and len(op) == 1):
        return repr(op)
    return f"(a {type(op).__name__})"
