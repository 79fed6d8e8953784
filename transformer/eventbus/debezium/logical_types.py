"""Converters from Debezium's raw column encodings to exact Python values.

Debezium describes every column with a Kafka Connect schema: a *physical* type (`int64`, `string`,
`bytes`, `struct`, `array`, ...) and, for most non-trivial PostgreSQL types, a *logical* type carried as
the schema name (`io.debezium.time.MicroTimestamp`, `org.apache.kafka.connect.data.Decimal`, ...).
The raw value in a change record only makes sense together with that schema, so a converter is built
once per column from its `ColumnType` (see `make_converter`) and then applied to raw values.

Design points:

* Converters are plain closures chosen from two dicts of factories (`LOGICAL_FACTORIES`, keyed by the
  schema name, and `PHYSICAL_FACTORIES`, keyed by the Connect type). Nothing is looked up per value.
  The time, date and duration factories are in `temporal_types` (merged into `LOGICAL_FACTORIES`).
* Columns whose raw value already *is* the Python value (integers, booleans, `io.debezium.time.Year`)
  get the module-level `identity` function, so callers (the mapping compiler) can test
  `conv is identity` and skip the call entirely.
* Every converter maps `None` to `None`. Values Debezium could not read (unchanged TOASTed columns)
  arrive as a placeholder: the string `__debezium_unavailable_value`, its bytes (base64 in JSON), or for
  arrays a one-element text array / an int array of the placeholder's bytes. Converters of the
  column types PostgreSQL can TOAST turn those into `UNAVAILABLE`, never into data.
* The same factories serve JSON (bytes as base64 text) and Avro (bytes raw): `ConverterOptions.binary`.
* Bad raw values raise `DecodeError` naming the column, its type and the rule broken, never a bare
  `ValueError`/`TypeError`, and never quoting the value (it may be personal data; the error keeps it
  apart in `DecodeError.value`). Python's own messages may quote it, so only their type is named
  (`conversion_errors`).
"""

from __future__ import annotations

import binascii
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from uuid import UUID

from eventbus.debezium.conversion_errors import CONVERSION_ERRORS, Unfit, conversion_error, guard, named
from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.numeric_types import (
    NUMERIC_FACTORIES,
    bytes_decoder,
    bytes_placeholder,
    decimal_from_unscaled,
)
from eventbus.debezium.temporal_types import TEMPORAL_FACTORIES

Converter = Callable[[Any], Any]

PLACEHOLDER: Final = "__debezium_unavailable_value"
"""Debezium's default `unavailable.value.placeholder`."""


def identity(value: Any) -> Any:
    """The converter of columns whose raw value is already exact (ints, bools)."""
    return value


# --------------------------------------------------------------------------------------------------
# Column type descriptions


@dataclass(frozen=True, slots=True, eq=True)
class ColumnType:
    """The Kafka Connect schema of one column, array element, map value or struct field.

    `type` is the Connect physical type; `name` the Connect schema name, which is how Debezium states a
    logical type (`None` for plain columns).
    """

    type: str
    name: str | None = None
    optional: bool = True
    parameters: Mapping[str, str] = field(default_factory=dict, hash=False)
    version: int | None = None
    items: ColumnType | None = None
    keys: ColumnType | None = None
    values: ColumnType | None = None
    fields: tuple[tuple[str, ColumnType], ...] = ()
    default: Any = field(default=None, hash=False)

    @property
    def logical(self) -> str | None:
        """The logical type name (alias of `name`, which is what Connect calls it)."""
        return self.name

    def describe(self) -> str:
        """`int64 io.debezium.time.MicroTimestamp`-style text for messages."""
        return f"{self.type} {self.name}" if self.name else self.type


@dataclass(frozen=True, slots=True)
class Placeholder:
    """The configured `unavailable.value.placeholder`, in every shape Debezium emits it."""

    raw: bytes = PLACEHOLDER.encode()

    @classmethod
    def from_config(cls, value: str) -> Placeholder:
        """Read the connector property: plain text, or `hex:<octets>` as Debezium allows."""
        if value.startswith("hex:"):
            return cls(bytes.fromhex(value[4:]))
        return cls(value.encode())

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    @property
    def base64(self) -> str:
        return binascii.b2a_base64(self.raw, newline=False).decode("ascii")

    @property
    def text_array(self) -> list[str]:
        return [self.text]

    @property
    def number_array(self) -> list[int]:
        # Debezium fills int/bigint arrays with the placeholder's bytes as signed Java bytes.
        return [b - 256 if b > 127 else b for b in self.raw]


DEFAULT_PLACEHOLDER: Final = Placeholder()


@dataclass(frozen=True, slots=True)
class ConverterOptions:
    """How raw values are encoded: JSON (`binary=False`, bytes as base64) or Avro (raw bytes)."""

    binary: bool = False
    placeholder: Placeholder = DEFAULT_PLACEHOLDER


JSON_OPTIONS: Final = ConverterOptions()
AVRO_OPTIONS: Final = ConverterOptions(binary=True)

Factory = Callable[[ColumnType, ConverterOptions, str], Converter]


# --------------------------------------------------------------------------------------------------
# Helpers (the error helpers every converter shares are in conversion_errors.py)


# --------------------------------------------------------------------------------------------------
# Physical types


def _plain(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    return identity


def _float(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    # The JSON converter writes NaN and ±Infinity as the strings "NaN", "Infinity", "-Infinity".
    def convert(v: Any) -> Any:
        if v.__class__ is str:
            try:
                return float(v)
            except ValueError as exc:
                raise conversion_error(column, col, v, exc) from exc
        return v

    return named(convert, column, col)


def _string(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    ph = opts.placeholder.text
    unavailable = UNAVAILABLE

    def convert(v: Any) -> Any:
        return unavailable if v == ph else v

    _INLINE_PLACEHOLDER[convert] = ph
    return convert


# Converters that only swap the placeholder text for UNAVAILABLE, by the text they look for. Weak
# keys: an entry lives as long as its table schema's converter does.
_INLINE_PLACEHOLDER: Final[weakref.WeakKeyDictionary[Converter, str]] = weakref.WeakKeyDictionary()


def inline_form(converter: Converter) -> tuple[str, str | None]:
    """How generated code may do `converter`'s work without calling it.

    `("identity", None)`: the raw value is the value; `("placeholder", text)`: the raw value, or
    `UNAVAILABLE` when it equals `text`; `("call", None)`: call the converter. A call costs more than
    the whole work of the first two, and mappings run them on every change.
    """
    if converter is identity:
        return ("identity", None)
    text = _INLINE_PLACEHOLDER.get(converter)
    if text is not None:
        return ("placeholder", text)
    return ("call", None)


def _bytes(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    ph = bytes_placeholder(opts)
    to_bytes = bytes_decoder(opts)
    unavailable = UNAVAILABLE

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if v == ph:
            return unavailable
        return to_bytes(v)

    return guard(convert, column, col)


def _array(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    if col.items is None:
        raise DecodeError(f"column {column!r}: array schema without 'items'")
    item = make_converter(col.items, opts, f"{column}[]")
    text_ph = opts.placeholder.text_array
    number_ph = opts.placeholder.number_array
    unavailable = UNAVAILABLE

    if item is identity:

        def convert(v: Any) -> Any:
            if v is None:
                return None
            if v in (number_ph, text_ph):
                return unavailable
            return list(v)

    else:

        def convert(v: Any) -> Any:
            if v is None:
                return None
            if v in (text_ph, number_ph):
                return unavailable
            return [item(x) for x in v]

    return guard(convert, column, col)


def _map(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    key = make_converter(col.keys, opts, f"{column}{{key}}") if col.keys else identity
    val = make_converter(col.values, opts, f"{column}{{}}") if col.values else identity
    ph = opts.placeholder.text

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if v == ph:
            return UNAVAILABLE
        if v.__class__ is list:
            # Maps with non-string keys: JSON writes [[k, v], ...]; Avro writes [{key, value}, ...].
            pairs = ((p["key"], p["value"]) if p.__class__ is dict else (p[0], p[1]) for p in v)
            return {key(k): val(x) for k, x in pairs}
        return {key(k): val(x) for k, x in v.items()}

    return guard(convert, column, col)


def _struct(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    subs = tuple((name, make_converter(t, opts, f"{column}.{name}")) for name, t in col.fields)

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if v.__class__ is not dict:
            raise Unfit(f"expected an object, got {type(v).__name__}")
        return {name: conv(v.get(name)) for name, conv in subs}

    return guard(convert, column, col)


PHYSICAL_FACTORIES: Final[dict[str, Factory]] = {
    "int8": _plain,
    "int16": _plain,
    "int32": _plain,
    "int64": _plain,
    "boolean": _plain,
    # Connect's own names; its JsonConverter writes them as "float" and "double" on the wire.
    "float32": _float,
    "float64": _float,
    "float": _float,
    "double": _float,
    "string": _string,
    "bytes": _bytes,
    "array": _array,
    "map": _map,
    "struct": _struct,
}


# --------------------------------------------------------------------------------------------------
# Logical types: text-like


def _uuid(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    def convert(v: Any) -> Any:
        if v is None:
            return None
        try:
            return UUID(v)
        except CONVERSION_ERRORS as exc:
            raise conversion_error(column, col, v, exc) from exc

    return named(convert, column, col)


def _geometry(col: ColumnType, opts: ConverterOptions, column: str) -> Converter:
    # PostGIS values: {wkb (bytes), srid} (+ x, y for points); decode the WKB bytes, keep the rest.
    to_bytes = bytes_decoder(opts)
    ph = opts.placeholder.text

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if v == ph:
            return UNAVAILABLE
        out = dict(v)
        if out.get("wkb") is not None:
            out["wkb"] = to_bytes(out["wkb"])
        return out

    return guard(convert, column, col)


LOGICAL_FACTORIES: Final[dict[str, Factory]] = {
    # exact numbers and bit strings (numeric_types.py)
    **NUMERIC_FACTORIES,
    # instants, wall-clock times and durations (temporal_types.py)
    **TEMPORAL_FACTORIES,
    "io.debezium.time.Year": _plain,  # the year as an int: nothing to convert
    # text-like with a meaning; TOASTable, so they keep the placeholder check
    "io.debezium.data.Uuid": _uuid,
    "io.debezium.data.Json": _string,
    "io.debezium.data.Xml": _string,
    "io.debezium.data.Enum": _string,
    "io.debezium.data.EnumSet": _string,
    "io.debezium.data.Ltree": _string,
    "io.debezium.data.geometry.Geometry": _geometry,
    "io.debezium.data.geometry.Geography": _geometry,
    "io.debezium.data.geometry.Point": _geometry,
}


def make_converter(col: ColumnType, opts: ConverterOptions = JSON_OPTIONS, column: str = "?") -> Converter:
    """Build the converter of one column; unknown logical types fall back to their physical type.

    Call once per column (table schemas do), not per value.
    """
    factory = LOGICAL_FACTORIES.get(col.name) if col.name else None
    if factory is None:
        factory = PHYSICAL_FACTORIES.get(col.type)
        if factory is None:
            # Not quoted: a malformed record may carry anything there
            raise DecodeError(
                f"column {column!r}: unknown Kafka Connect type; expected one of "
                f"{', '.join(PHYSICAL_FACTORIES)}"
            )
    return factory(col, opts, column)


def convert_value(col: ColumnType, raw: Any, opts: ConverterOptions = JSON_OPTIONS) -> Any:
    """One-off conversion (tools, tests); hot paths keep the converter from `make_converter`."""
    return make_converter(col, opts)(raw)


__all__ = [
    "AVRO_OPTIONS",
    "DEFAULT_PLACEHOLDER",
    "JSON_OPTIONS",
    "LOGICAL_FACTORIES",
    "PHYSICAL_FACTORIES",
    "PLACEHOLDER",
    "ColumnType",
    "Converter",
    "ConverterOptions",
    "Placeholder",
    "convert_value",
    "decimal_from_unscaled",
    "identity",
    "inline_form",
    "make_converter",
]
