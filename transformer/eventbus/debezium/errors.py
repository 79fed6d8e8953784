"""Errors raised while decoding Debezium staging records.

A `DecodeError` means one record cannot be understood; the service sends that record to the
dead-letter topic and carries on, so the message must say what is wrong with *the record*: which
column, of which type, breaks which rule, never the column's value (it may be personal data). A
column value that cannot be converted is kept in `value`, with the column's name in `column`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from eventbus.errors import NO_VALUE, EventBusError, ValueApart


class DecodeError(ValueApart, EventBusError):
    """A staging record (or one of its column values) is not a Debezium change we can decode."""

    def __init__(self, message: str, *, column: str | None = None, value: Any = NO_VALUE) -> None:
        super().__init__(message)
        self.column = column
        self.value = value


def record_name(kind: str, topic: str | None) -> str:
    """How a message names the record it is about: `value record of topic 'staging.x'`."""
    return f"{kind} record of topic {topic!r}" if topic else f"{kind} record"


def shown_op(op: Any) -> str:
    """An envelope's `op` as a message shows it: Debezium's one-letter codes, else only its type.

    A hostile or corrupt record may hold anything there, row data included.
    """
    if op is None or (op.__class__ is str and len(op) == 1):
        return repr(op)
    return f"(a {type(op).__name__})"


# A part of a parser's message in quotes or backticks: the grammar it expected (`','`, `'true'`), a
# path it built (`$.after[...]`), or a piece of the document (`Invalid enum value '123-45-6789'`).
_QUOTED: Final = re.compile(r"""'[^']*'|"[^"]*"|`[^`]*`""")
# Quoted parts that are JSON's grammar, or a path of our own names and positions, never the data
_GRAMMAR: Final = re.compile(
    r"""(['"`])(?:[][{}:,"']|true|false|null|\$(?:\.[A-Za-z_]\w*|\[(?:[0-9]+|\.\.\.)\])*)\1"""
)


def parser_message(error: BaseException) -> str:
    """What a JSON parser (msgspec, orjson, json) says is wrong, with any part of the document it
    quotes left out: the rule and the byte position stay, a key or value of the record does not."""
    return _QUOTED.sub(lambda quoted: quoted[0] if _GRAMMAR.fullmatch(quoted[0]) else "<...>", str(error))


def shown_keys(keys: Iterable[Any], known: Iterable[str]) -> str:
    """A JSON object's keys as a message shows them: the `known` names (ours: an envelope's fields),
    and of any other only how many there are (a key may be a value, in a malformed record)."""
    names = frozenset(known)
    keys = list(keys)
    listed = sorted(key for key in keys if key in names)
    others = len(keys) - len(listed)
    parts = [repr(key) for key in listed] + ([f"{others} other key(s)"] if others else [])
    return ", ".join(parts) if parts else "no keys"
