"""Decoding Debezium envelopes written by an Avro converter in the Confluent wire format.

A record is: magic byte 0, a 4-byte big-endian schema id, then Avro binary. The writer schema comes
from `schema_lookup(id)` (a registry client in production, a dict in tests) and is parsed once per id.

Connect's logical types survive in Avro as `connect.name` / `connect.parameters` properties on the
Avro types, so the `TableSchema` is built from those with the same converters as the JSON path. The
Avro `logicalType` annotations (decimal, date, timestamp-millis, ...) are removed before parsing:
`fastavro` would otherwise convert every such field of every record, while mappings read only a few
columns; raw values also keep the two paths identical (a Connect `Timestamp` stays epoch millis and
becomes a naive `datetime` through its converter, as in JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any, Final

from fastavro import parse_schema, schemaless_reader

from eventbus.debezium.envelope import OPS, Change, SourceInfo
from eventbus.debezium.errors import DecodeError, shown_op
from eventbus.debezium.logical_types import (
    PLACEHOLDER,
    ColumnType,
    ConverterOptions,
    Placeholder,
)
from eventbus.debezium.table_schema import RowTableSchema
from eventbus.errors import exception_name

_AVRO_PRIMITIVES: Final = {
    "boolean": "boolean",
    "int": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "bytes": "bytes",
    "string": "string",
    "enum": "string",
    "fixed": "bytes",
}
_NEEDS_AFTER: Final = frozenset("cru")


def strip_logical_types(schema: Any) -> Any:
    """A copy of an Avro schema without `logicalType` annotations (see module docstring)."""
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def _full_name(schema: Mapping[str, Any], namespace: str | None) -> str:
    name = schema["name"]
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


def column_type_from_avro(
    schema: Any, named: dict[str, Any] | None = None, namespace: str | None = None, path: str = "schema"
) -> ColumnType:
    """Translate an Avro type written by Connect's AvroData into a `ColumnType`."""
    named = {} if named is None else named
    optional = False
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) != 1:
            raise DecodeError(f"{path}: unions other than [null, T] are not Connect types")
        optional = len(branches) != len(schema)
        schema = branches[0]
    if isinstance(schema, str):
        if schema in _AVRO_PRIMITIVES:
            return ColumnType(type=_AVRO_PRIMITIVES[schema], optional=optional)
        ref = named.get(schema) or (named.get(f"{namespace}.{schema}") if namespace else None)
        if ref is None:
            raise DecodeError(f"{path}: unknown Avro type name {schema!r}")
        schema = ref
    if not isinstance(schema, Mapping):
        raise DecodeError(f"{path}: not an Avro schema: {schema!r}")
    typ = schema.get("type")
    if isinstance(typ, (list, dict)):  # {"type": {...}} nesting
        inner = column_type_from_avro(typ, named, namespace, path)
        return _with_optional(inner, optional or inner.optional)
    common = {
        "name": schema.get("connect.name"),
        "optional": optional,
        "parameters": dict(schema.get("connect.parameters") or {}),
        "version": schema.get("connect.version"),
        "default": schema.get("connect.default"),
    }
    if typ == "record":
        full = _full_name(schema, namespace)
        named[full] = schema
        ns = full.rpartition(".")[0] or None
        fields = tuple(
            (f["name"], column_type_from_avro(f["type"], named, ns, f"{path}.{f['name']}"))
            for f in schema.get("fields", ())
        )
        common["name"] = schema.get("connect.name") or full
        return ColumnType(type="struct", fields=fields, **common)
    if typ == "array":
        return ColumnType(
            type="array",
            items=column_type_from_avro(schema["items"], named, namespace, f"{path}[]"),
            **common,
        )
    if typ == "map":
        values = column_type_from_avro(schema["values"], named, namespace, f"{path}{{}}")
        return ColumnType(type="map", keys=ColumnType("string"), values=values, **common)
    if typ in ("enum", "fixed"):
        named[_full_name(schema, namespace)] = schema
    if typ in _AVRO_PRIMITIVES:
        # Connect's int8/int16 are Avro ints tagged with connect.type.
        return ColumnType(type=schema.get("connect.type") or _AVRO_PRIMITIVES[typ], **common)
    raise DecodeError(f"{path}: unsupported Avro type {typ!r}")


def _with_optional(t: ColumnType, optional: bool) -> ColumnType:
    if t.optional == optional:
        return t
    return ColumnType(
        t.type, t.name, optional, t.parameters, t.version, t.items, t.keys, t.values, t.fields, t.default
    )


class AvroTableSchema(RowTableSchema):
    """A `TableSchema` built from a Debezium Avro envelope schema (one per schema id)."""

    __slots__ = ()

    @classmethod
    def from_avro_schema(
        cls,
        schema: Mapping[str, Any],
        *,
        options: ConverterOptions | None = None,
        fingerprint: str | None = None,
    ) -> AvroTableSchema:
        opts = options or ConverterOptions(binary=True)
        envelope = column_type_from_avro(schema)
        if envelope.type != "struct":
            raise DecodeError("a Debezium Avro envelope schema must be a record")
        fields = dict(envelope.fields)
        row = fields.get("after") or fields.get("before")
        if row is None:  # message events, or the row schema itself
            row = None if ("op" in fields or "source" in fields) else envelope
        name = (row.name if row else envelope.name) or "?"
        parts = name.split(".")
        table = f"{parts[-3]}.{parts[-2]}" if len(parts) >= 4 else name
        return cls(table, row.fields if row else (), options=opts, record_name=name, fingerprint=fingerprint)


class AvroDecoder:
    """Decodes Confluent-framed Avro Debezium records into `Change` objects.

    `schema_lookup(schema_id)` returns the parsed (JSON) writer schema; results are cached per id.
    """

    __slots__ = ("_by_id", "_lookup", "_opts")

    def __init__(self, schema_lookup: Callable[[int], Mapping[str, Any]], *, placeholder: str = PLACEHOLDER):
        self._lookup = schema_lookup
        self._opts = ConverterOptions(binary=True, placeholder=Placeholder.from_config(placeholder))
        self._by_id: dict[int, tuple[Any, AvroTableSchema | None]] = {}

    def _schema(self, schema_id: int, *, key: bool) -> tuple[Any, AvroTableSchema | None]:
        cached = self._by_id.get(schema_id)
        if cached is not None and (key or cached[1] is not None):
            return cached
        try:
            writer = self._lookup(schema_id)
        except DecodeError:
            raise
        except Exception as exc:  # a registry failure must name the id it was asked for
            raise DecodeError(f"cannot get Avro schema id {schema_id}: {exc}") from exc
        try:
            parsed = parse_schema(strip_logical_types(writer))
        except Exception as exc:
            raise DecodeError(f"Avro schema id {schema_id} is not a valid Avro schema: {exc}") from exc
        table = (
            None
            if key
            else AvroTableSchema.from_avro_schema(writer, options=self._opts, fingerprint=str(schema_id))
        )
        self._by_id[schema_id] = (parsed, table)
        return parsed, table

    def _read(self, data: bytes, what: str, *, key: bool) -> tuple[Any, AvroTableSchema | None]:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
        if len(data) < 5 or data[0] != 0:
            raise DecodeError(f"{what}: not in the Confluent wire format (magic byte 0 + 4-byte schema id)")
        schema_id = int.from_bytes(data[1:5], "big")
        parsed, table = self._schema(schema_id, key=key)
        try:
            return schemaless_reader(BytesIO(memoryview(data)[5:]), parsed), table
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError... on bad input
            # (not fastavro's message: a UnicodeDecodeError, for one, quotes the bytes of a value)
            raise DecodeError(
                f"{what}: Avro body does not match schema id {schema_id}: {exception_name(exc)}"
            ) from exc

    def decode_key(self, key: bytes | None) -> dict[str, Any] | None:
        if key is None:
            return None
        payload, _ = self._read(key, "key record", key=True)
        return payload

    def decode(self, value: bytes | None, key: bytes | None = None) -> Change | None:
        """Decode one record; `None` for a tombstone."""
        if value is None:
            return None
        payload, table = self._read(value, "value record", key=False)
        if payload.__class__ is not dict:
            raise DecodeError("value record: Avro payload is not a Debezium envelope record")
        op = payload.get("op")
        if op.__class__ is not str or op not in OPS:
            raise DecodeError(
                f"value record: unknown or missing op {shown_op(op)}; expected one of c, u, d, r, t, m"
            )
        src = payload.get("source")
        if src.__class__ is not dict:
            raise DecodeError("value record: 'source' block missing")
        try:
            source = SourceInfo.from_block(src)
        except KeyError as exc:
            raise DecodeError(f"value record: 'source' block lacks {exc.args[0]!r}") from None
        after = payload.get("after")
        if after is None and op in _NEEDS_AFTER:
            raise DecodeError(f"value record: op {op!r} without an 'after' row")
        return Change(
            op,
            payload.get("before"),
            after,
            source,
            table,  # type: ignore[arg-type]
            self.decode_key(key),
            payload.get("ts_ms"),
            payload.get("transaction"),
            payload.get("message"),
        )


def confluent_frame(schema_id: int, body: bytes) -> bytes:
    """Magic byte + schema id + Avro body (what a Confluent-compatible serializer writes)."""
    return b"\x00" + schema_id.to_bytes(4, "big") + body
