"""A generated, pure-Python Avro encoder for the flat records curated events usually are.

fastavro's Cython writer costs about 1 µs per call plus a generic dispatch per field and per logical
type; for a 6-field value and its key that was ≈7 µs, over the 5 µs budget. Like a mapping, a
schema is compiled once into one straight-line function (`compile_record_encoder`) that appends
each field's bytes with no per-field dispatch.

Scope on purpose: top-level records whose fields are primitives, `date`, `timestamp-millis`,
`timestamp-micros`, `decimal` (bytes), `uuid` (string), or a two-branch union of one of these with
`null`. Any other schema gets `None` and is written by fastavro. The generated function accepts
only exactly-typed values and raises `FastPathMiss` on anything else (an `int` for a timestamp, a
naive datetime, a missing or extra key...), so the caller retries with fastavro, which owns those
semantics; when the function does return, its bytes are identical to fastavro's (tested).
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
import uuid
from collections.abc import Callable
from typing import Any

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
# Exact arithmetic for rescaling decimals: the default context would round past 28 digits.
_EXACT = decimal.Context(prec=decimal.MAX_PREC)
_PACK_FLOAT = struct.Struct("<f").pack
_PACK_DOUBLE = struct.Struct("<d").pack


class FastPathMiss(Exception):
    """The value is not one the generated encoder handles; use the general encoder."""


def _varint(n: int) -> bytes:
    """The varint of a non-negative `n` (7-bit groups, low first, the continuation bit on all but
    the last): the reference the tables below are built from."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Per 14-bit value: its two 7-bit groups as the middle of a longer varint (continuation bits set),
# and its varint as the end of one (one or two bytes). A varint of up to 8 bytes is two to four
# lookups joined: no per-byte arithmetic in Python.
_SEVEN_BIT_GROUPS = tuple(bytes((v & 0x7F | 0x80, (v >> 7) | 0x80)) for v in range(0x4000))
_TAIL = tuple(_varint(v) for v in range(0x4000))


def _long(n: int) -> bytes:
    """Zig-zag varint: table lookups up to 8 bytes (|n| < 2**55: ids, lengths, and epoch
    microseconds for ±500 years, the usual timestamps); a loop only beyond that."""
    if n < _LONG_MIN or n > _LONG_MAX:
        raise FastPathMiss
    n = (n << 1) ^ (n >> 63)
    if n < 0x4000:
        return _TAIL[n]
    groups = _SEVEN_BIT_GROUPS
    if n < 0x10000000:
        return groups[n & 0x3FFF] + _TAIL[n >> 14]
    if n < 0x40000000000:
        return groups[n & 0x3FFF] + groups[(n >> 14) & 0x3FFF] + _TAIL[n >> 28]
    if n < 0x100000000000000:
        return groups[n & 0x3FFF] + groups[(n >> 14) & 0x3FFF] + groups[(n >> 28) & 0x3FFF] + _TAIL[n >> 42]
    return _varint(n)


def _decimal_bytes(value: decimal.Decimal, limit: int, scale: int) -> bytes:
    """Two's-complement big-endian unscaled value, as fastavro writes it.

    Accepts a subset of what fastavro does: the value must be exact at `scale` (no rounding) and
    its unscaled form must have at most `precision` digits (`limit` = 10**precision); NaN and
    infinities make `int()` raise. Everything else is a miss and goes to fastavro.
    """
    scaled = value.scaleb(scale, _EXACT)
    unscaled = int(scaled)
    if unscaled != scaled or not -limit < unscaled < limit:
        raise FastPathMiss
    return unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)


# A non-negative int below 2**13 (zig-zag 2n < 2**14) is written straight from the table: most
# lengths, small counts and codes (a call of `_long` costs as much as the rest of a string field).
_INLINE_LONG = "a(_TAIL[{0} + {0}] if 0 <= {0} < 0x2000 else _long({0}))"
# The length of local `b`, then `b`
_LENGTH_THEN_BYTES = ("n = len(b)", _INLINE_LONG.format("n"), "a(b)")


# Per supported type: source lines that append the bytes of local `v` (indentation added later).
def _lines_for(schema: Any) -> list[str] | None:
    kind, logical = (
        (schema, None) if isinstance(schema, str) else (schema.get("type"), schema.get("logicalType"))
    )
    if not isinstance(kind, str):
        return None
    if logical == "date" and kind == "int":
        return ["if type(v) is not _date: raise _Miss", "a(_long(v.toordinal() - _EPOCH_ORDINAL))"]
    if logical in ("timestamp-micros", "timestamp-millis") and kind == "long":
        per_second, micros = (
            ("1000000", "d.microseconds")
            if logical == "timestamp-micros"
            else (
                "1000",
                "d.microseconds // 1000",
            )
        )
        return [
            "if type(v) is not _datetime or v.tzinfo is None: raise _Miss",
            "d = v - _EPOCH",
            f"a(_long((d.days * 86400 + d.seconds) * {per_second} + {micros}))",
        ]
    if logical == "decimal" and kind == "bytes":
        precision, scale = int(schema["precision"]), int(schema.get("scale", 0))
        return [
            "if type(v) is not _Decimal: raise _Miss",
            f"b = _decimal_bytes(v, {10**precision}, {scale})",
            *_LENGTH_THEN_BYTES,
        ]
    if logical == "uuid" and kind == "string":
        return [
            "if type(v) is _UUID: v = str(v)",
            "if type(v) is not str: raise _Miss",
            "b = v.encode()",
            *_LENGTH_THEN_BYTES,
        ]
    if logical is not None and kind not in ("int", "long", "string", "bytes"):
        return None
    # Unknown logical types are ignored by Avro writers: encode the underlying type.
    return {
        "null": ["if v is not None: raise _Miss"],
        "boolean": ["if v is True: a(b'\\x01')", "elif v is False: a(b'\\x00')", "else: raise _Miss"],
        "int": ["if type(v) is not int or not -0x80000000 <= v <= 0x7FFFFFFF: raise _Miss",
                _INLINE_LONG.format("v")],
        "long": ["if type(v) is not int: raise _Miss", _INLINE_LONG.format("v")],
        "float": ["if type(v) is not float: raise _Miss", "a(_PACK_FLOAT(v))"],
        "double": ["if type(v) is not float: raise _Miss", "a(_PACK_DOUBLE(v))"],
        "string": ["if type(v) is not str: raise _Miss", "b = v.encode()", *_LENGTH_THEN_BYTES],
        "bytes": ["if type(v) is not bytes: raise _Miss", "b = v", *_LENGTH_THEN_BYTES],
    }.get(kind)


def _field_lines(field_type: Any) -> list[str] | None:
    if isinstance(field_type, list):
        if len(field_type) != 2 or "null" not in field_type:
            return None
        null_index = field_type.index("null")
        other = _lines_for(field_type[1 - null_index])
        if other is None:
            return None
        # A union is written as the branch index (zig-zag: 0 → 0x00, 1 → 0x02), then the value.
        null_byte, other_byte = ("b'\\x00'", "b'\\x02'") if null_index == 0 else ("b'\\x02'", "b'\\x00'")
        return [
            f"if v is None: a({null_byte})",
            "else:",
            f"    a({other_byte})",
            *("    " + x for x in other),
        ]
    return _lines_for(field_type)


def compile_record_encoder(schema: Any, prefix: bytes) -> Callable[[Any], bytes] | None:
    """A function `datum -> prefix + Avro bytes` for a supported flat record schema, else `None`."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    fields = schema.get("fields", [])
    body = [
        "def encode(datum):",
        f"    if type(datum) is not dict or len(datum) != {len(fields)}: raise _Miss",
        "    parts = [PREFIX]",
        "    a = parts.append",
        "    try:",
    ]
    for field in fields:
        lines = _field_lines(field["type"])
        if lines is None:
            return None
        body.append(f"        v = datum[{field['name']!r}]")
        body += ["        " + line for line in lines]
    body += ["    except KeyError:", "        raise _Miss from None", "    return b''.join(parts)"]
    namespace: dict[str, Any] = {
        "PREFIX": prefix,
        "_Miss": FastPathMiss,
        "_long": _long,
        "_TAIL": _TAIL,
        "_decimal_bytes": _decimal_bytes,
        "_date": dt.date,
        "_datetime": dt.datetime,
        "_Decimal": decimal.Decimal,
        "_UUID": uuid.UUID,
        "_EPOCH": _EPOCH,
        "_EPOCH_ORDINAL": _EPOCH_ORDINAL,
        "_PACK_FLOAT": _PACK_FLOAT,
        "_PACK_DOUBLE": _PACK_DOUBLE,
    }
    # The source is built only from type names and repr()'d field names, never from data.
    exec(compile("\n".join(body), f"<avro encoder {schema.get('name')}>", "exec"), namespace)
    encode: Callable[[Any], bytes] = namespace["encode"]
    return encode
