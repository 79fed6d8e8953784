"""The root of every error this project raises on purpose.

Each subsystem adds a few subclasses next to its code; the CLI catches `EventBusError` and prints
its message (no traceback), so messages must tell the user what to do.
"""

from __future__ import annotations

from typing import Any, Final


class EventBusError(Exception):
    """Base class: an error the user can act on."""

    exit_code = 2


class ConfigError(EventBusError):
    """A setting or a user-authored file is invalid."""


class ServiceUnavailableError(EventBusError):
    """A service we depend on (database, broker, Connect, registry) cannot be reached."""


class _NoValue:
    """The type of `NO_VALUE` (an error about no value in particular; `None` is a value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Final[Any] = _NoValue()


def quote(value: Any, limit: int = 80) -> str:
    """`repr(value)`, shortened to `limit` characters, for a message a reader may see the value in."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def exception_name(error: BaseException) -> str:
    """`ValueError`, `decimal.InvalidOperation`, `binascii.Error`: what a reason says of Python's errors.

    Their messages may quote a value (`invalid literal for int() with base 10: '123-45-6789'`, a
    `KeyError` of a row value), so reasons name only the type.
    """
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


class ValueApart:
    """Mixin of errors about one value of a record, which may be personal data (PII/PHI).

    `str(error)` names where and what: the column or field, its type and the rule the value breaks,
    never the value itself, so it can go into a dead-letter reason or a log. The value is kept apart
    in `value` (`NO_VALUE` when there is none); `with_data()` adds it, for a reader cleared to see the
    record's data: a mapping author running tests, or a dead-letter reason about a column the
    mapping's `sensitivity` makes public (`eventbus.mapping.reasons`).
    """

    value: Any = NO_VALUE

    def with_data(self) -> str:
        return str(self) if self.value is NO_VALUE else f"{self} (value: {quote(self.value)})"
