"""Which value of an event does not fit its Avro schema: the explanation of a failed encoding.

When the encoder refuses a datum, `find_mismatch` walks schema and datum together and names the
first field that does not fit: its path, the Avro type expected and the Python type received,
never the value (it may be personal data). Only the slow path needs it, so it is apart from the
encoders (`avro.py`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Mapping
from typing import Any

from eventbus.events.schema_form import PRIMITIVES, AvroSchema, full_name

_TIMESTAMPS = frozenset(
    {"timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros"}
)
_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)


def find_mismatch(schema: AvroSchema, datum: Any) -> tuple[str, str, str] | None:
    """(field path, expected Avro type, Python type received) of the first value that does not fit."""
    return _mismatch(schema, datum, "", {}, None)


def _describe_type(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return " | ".join(_describe_type(branch) for branch in schema)
    logical = schema.get("logicalType")
    kind = schema["type"]
    if logical == "decimal":
        return f"decimal({schema.get('precision')},{schema.get('scale', 0)})"
    if logical:
        return f"{logical} ({kind})"
    if kind in ("record", "enum", "fixed", "error"):
        return f"{kind} {schema['name']}"
    if kind == "array":
        return f"array<{_describe_type(schema['items'])}>"
    if kind == "map":
        return f"map<{_describe_type(schema['values'])}>"
    return _describe_type(kind)


def _mismatch(schema: Any, datum: Any, path: str, named: dict[str, Any], ns: str | None) -> Any:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return None if _primitive_fits(schema, None, datum) else (path, schema, _what(datum))
        target = named.get(schema) or named.get(f"{ns}.{schema}")
        return None if target is None else _mismatch(target, datum, path, named, ns)
    if isinstance(schema, list):
        for branch in schema:
            if _mismatch(branch, datum, path, named, ns) is None:
                return None
        return (path, _describe_type(schema), _what(datum))
    kind = schema["type"]
    if not isinstance(kind, str):
        return _mismatch(kind, datum, path, named, ns)
    if kind in ("record", "error"):
        name = full_name(schema["name"], schema.get("namespace", ns))
        named[name] = named[schema["name"]] = schema
        inner_ns = name.rpartition(".")[0] or None
        if not isinstance(datum, Mapping):
            return (path, _describe_type(schema), _what(datum))
        for field in schema["fields"]:
            field_path = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] not in datum:
                if "default" in field:
                    continue
                return (field_path, _describe_type(field["type"]), "nothing (field missing)")
            found = _mismatch(field["type"], datum[field["name"]], field_path, named, inner_ns)
            if found:
                return found
        extra = sorted(set(datum) - {field["name"] for field in schema["fields"]})
        if extra:
            extra_path = f"{path}.{extra[0]}" if path else extra[0]
            return (extra_path, "no such field in the schema", _what(datum[extra[0]]))
        return None
    if kind == "enum":
        named[schema["name"]] = schema
        ok = isinstance(datum, str) and datum in schema["symbols"]
        return None if ok else (path, _describe_type(schema), _what(datum))
    if kind == "fixed":
        named[schema["name"]] = schema
        if schema.get("logicalType") == "decimal":
            ok = _decimal_fits(schema, datum)
        else:
            ok = isinstance(datum, bytes | bytearray) and len(datum) == schema["size"]
        return None if ok else (path, _describe_type(schema), _what(datum))
    if kind == "array":
        if not isinstance(datum, list | tuple):
            return (path, _describe_type(schema), _what(datum))
        for index, item in enumerate(datum):
            found = _mismatch(schema["items"], item, f"{path}[{index}]", named, ns)
            if found:
                return found
        return None
    if kind == "map":
        if not isinstance(datum, Mapping):
            return (path, _describe_type(schema), _what(datum))
        for item in datum.values():
            # Map keys can be data (and so PII); the path names the map, not the key.
            found = _mismatch(schema["values"], item, f"{path}.<value>", named, ns)
            if found:
                return found
        return None
    ok = _primitive_fits(kind, schema.get("logicalType"), datum, schema)
    return None if ok else (path, _describe_type(schema), _what(datum, schema))


def _what(datum: Any, schema: Any = None) -> str:
    """The received value's type, and for an integer too wide for Avro or a decimal with too many
    digits, how wide (never the value)."""
    decimal_field = isinstance(schema, dict) and schema.get("logicalType") == "decimal"
    if isinstance(datum, decimal.Decimal) and decimal_field:
        _, digits, exponent = datum.as_tuple()
        if isinstance(exponent, int):
            scale = schema.get("scale", 0)
            whole, room = len(digits) + exponent, schema["precision"] - scale
            if whole > room:
                return f"Decimal with {whole} digits before the point (the field holds {room})"
            if -exponent > scale:
                return f"Decimal with {-exponent} decimal places (the field holds {scale}; round() it)"
    if isinstance(datum, int) and not isinstance(datum, bool):
        if not _LONG_RANGE[0] <= datum <= _LONG_RANGE[1]:
            return "int beyond 64 bits (out of the range of an Avro long)"
        if not _INT_RANGE[0] <= datum <= _INT_RANGE[1]:
            return "int beyond 32 bits (out of the range of an Avro int)"
    return type(datum).__name__


def _is_int(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


def _decimal_fits(schema: dict[str, Any], value: Any) -> bool:
    if not isinstance(value, decimal.Decimal) or not value.is_finite():
        return False
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # "n", "N" or "F": not finite, refused above already
        return False
    scale = schema.get("scale", 0)
    # More fraction digits than the scale would be silently rounded; more integer digits than
    # precision - scale cannot be represented.
    integer_digits = len(digits) + exponent
    return -exponent <= scale and integer_digits <= schema["precision"] - scale


def _primitive_fits(kind: str, logical: str | None, value: Any, schema: dict[str, Any] | None = None) -> bool:
    if logical == "decimal" and schema is not None:
        return _decimal_fits(schema, value)
    if logical == "date":
        is_date = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        return is_date or _is_int(value, _INT_RANGE)
    if logical in _TIMESTAMPS:
        return isinstance(value, dt.datetime) or _is_int(value, _LONG_RANGE)
    if logical in ("time-millis", "time-micros"):
        return isinstance(value, dt.time) or _is_int(value, _LONG_RANGE)
    if logical == "uuid":
        return isinstance(value, uuid.UUID | str)
    return {
        "null": lambda v: v is None,
        "boolean": lambda v: isinstance(v, bool),
        "int": lambda v: _is_int(v, _INT_RANGE),
        "long": lambda v: _is_int(v, _LONG_RANGE),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "bytes": lambda v: isinstance(v, bytes | bytearray),
    }[kind](value)
