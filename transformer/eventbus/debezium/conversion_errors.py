"""How a column converter reports a raw value it cannot convert.

A bad raw value raises `DecodeError` naming the column, its type and the rule broken, never quoting
the value: it may be personal data, so the error keeps it apart (`DecodeError.value`). Python's own
messages may quote it, so only their exception type is named, unless the rule is one of ours
(`Unfit`). Shared by the converter modules (`logical_types`, `temporal_types`), which is why it is
a module of its own: neither has to import the other for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from eventbus.debezium.errors import DecodeError
from eventbus.errors import exception_name

if TYPE_CHECKING:
    from eventbus.debezium.logical_types import ColumnType, Converter


class Unfit(ValueError):
    """A raw value breaks a rule a converter states; the message names the rule, not the value."""


# What a malformed raw value makes a conversion raise (DecodeError is not among them).
CONVERSION_ERRORS: Final = (ValueError, TypeError, OverflowError, ArithmeticError, AttributeError, KeyError)


def conversion_error(column: str, col: ColumnType, value: Any, exc: BaseException) -> DecodeError:
    # Python's messages quote the value ("invalid literal ... '123-45-6789'", KeyError('...')): only
    # the type of the exception is named, unless it is one of the converters' own rules (`Unfit`).
    why = str(exc) if isinstance(exc, Unfit) else exception_name(exc)
    return DecodeError(
        f"column {column!r} ({col.describe()}): cannot convert the {type(value).__name__} value: {why}",
        column=column,
        value=value,
    )


def named(convert: Converter, column: str, col: ColumnType) -> Converter:
    convert.__qualname__ = f"convert[{column}:{col.describe()}]"
    return convert


def guard(fn: Converter, column: str, col: ColumnType) -> Converter:
    """Wrap `fn` so that a malformed raw value raises `DecodeError` naming the column and type.

    The converters of the common column types (numbers, decimals, timestamps, dates) do not use
    this wrapper but catch the same errors themselves: a wrapper is one more Python call per
    value, on the hot path of every change.
    """

    def convert(value: Any) -> Any:
        try:
            return fn(value)
        except DecodeError:
            raise
        except CONVERSION_ERRORS as exc:
            raise conversion_error(column, col, value, exc) from exc

    return named(convert, column, col)
