"""The concrete `TableSchema` of the Connect JSON decoder.

One instance exists per distinct table version (per distinct Connect schema); the decoder caches and
reuses it, so the per-column converters are built once and every `Change` of that table version
points at the same object (mapping bindings can be cached on it by identity).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.logical_types import (
    JSON_OPTIONS,
    ColumnType,
    Converter,
    ConverterOptions,
    make_converter,
)


class UnknownColumnError(DecodeError):
    """A converter was asked for a column the table does not have."""


class RowTableSchema:
    """Columns of one table version and a ready-made converter per column."""

    __slots__ = ("_columns", "_converters", "_name", "fingerprint", "key_columns", "options", "record_name")

    def __init__(
        self,
        name: str,
        columns: Iterable[tuple[str, ColumnType]],
        *,
        options: ConverterOptions = JSON_OPTIONS,
        record_name: str | None = None,
        fingerprint: str | None = None,
        key_columns: tuple[str, ...] = (),
    ) -> None:
        self._name = name
        cols = dict(columns)
        self._columns: Mapping[str, ColumnType] = MappingProxyType(cols)
        # Built eagerly: a schema problem surfaces when the table version is first seen, and the hot
        # path only does a dict lookup.
        self._converters: dict[str, Converter] = {
            col: make_converter(t, options, f"{name}.{col}") for col, t in cols.items()
        }
        self.options = options
        self.record_name = record_name
        self.fingerprint = fingerprint
        self.key_columns = key_columns

    @property
    def name(self) -> str:
        """`<schema>.<table>`, e.g. `public.claims`."""
        return self._name

    @property
    def columns(self) -> Mapping[str, ColumnType]:
        """Column name → `ColumnType`, in table order."""
        return self._columns

    def converter(self, column: str) -> Callable[[Any], Any]:
        """The converter of `column` (the same function object on every call)."""
        try:
            return self._converters[column]
        except KeyError:
            known = ", ".join(self._columns) or "(none)"
            raise UnknownColumnError(
                f"table {self._name} has no column {column!r}; columns: {known}"
            ) from None

    def convert_row(self, row: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Every column of a raw row converted (for tools and tests; mappings convert lazily)."""
        if row is None:
            return None
        convs = self._converters
        return {col: convs[col](raw) if col in convs else raw for col, raw in row.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, {len(self._columns)} columns)"


class SchemalessTableSchema:
    """For `schemas.enable=false` records: column types are unknown, so values stay raw.

    The only conversion applied is the TOAST placeholder check on strings (the placeholder is a string
    in JSON whatever the column type). Decimals stay base64 text, timestamps stay epoch integers.
    """

    __slots__ = ("_name", "_placeholder")

    def __init__(self, name: str, options: ConverterOptions = JSON_OPTIONS) -> None:
        self._name = name
        self._placeholder = options.placeholder.text

    @property
    def name(self) -> str:
        return self._name

    @property
    def columns(self) -> Mapping[str, Any]:
        """Unknown without a schema: always empty."""
        return MappingProxyType({})

    def converter(self, column: str) -> Callable[[Any], Any]:
        ph = self._placeholder

        def raw(v: Any) -> Any:
            return UNAVAILABLE if v == ph else v

        return raw

    def __repr__(self) -> str:
        return f"SchemalessTableSchema({self._name!r})"
