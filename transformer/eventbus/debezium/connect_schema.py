"""Connect schemas → column types and table schemas: what a Debezium record's `schema` part says.

Kafka Connect's `JsonConverter` (schemas enabled) writes each record's Connect schema next to its
payload; `column_type_from_connect` turns one schema object into a `ColumnType`, and
`ConnectTableSchema` a whole envelope (or row) schema into a table version with a converter per
column. Apart from the record decoder (`connect_json`) because offline tools and the lookup store
build table schemas from captured schemas without decoding records, and without its JSON parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventbus.debezium.errors import DecodeError
from eventbus.debezium.logical_types import JSON_OPTIONS, ColumnType, ConverterOptions
from eventbus.debezium.table_schema import RowTableSchema


def column_type_from_connect(schema: Any, path: str = "schema") -> ColumnType:
    """Translate one Connect JSON schema object (as `JsonConverter` writes it) into a `ColumnType`."""
    if not isinstance(schema, Mapping):
        raise DecodeError(f"{path}: expected a Connect schema object, got {type(schema).__name__}")
    typ = schema.get("type")
    if not isinstance(typ, str):
        raise DecodeError(f"{path}: Connect schema without a string 'type'")
    items = keys = values = None
    fields: tuple[tuple[str, ColumnType], ...] = ()
    if typ == "array":
        if "items" not in schema:
            raise DecodeError(f"{path}: array schema without 'items'")
        items = column_type_from_connect(schema["items"], f"{path}.items")
    elif typ == "map":
        keys = column_type_from_connect(schema.get("keys"), f"{path}.keys")
        values = column_type_from_connect(schema.get("values"), f"{path}.values")
    elif typ == "struct":
        raw_fields = schema.get("fields")
        if not isinstance(raw_fields, list):
            raise DecodeError(f"{path}: struct schema without a 'fields' list")
        out = []
        for i, f in enumerate(raw_fields):
            fname = f.get("field") if isinstance(f, Mapping) else None
            if not isinstance(fname, str):
                raise DecodeError(f"{path}.fields[{i}]: struct field without a 'field' name")
            out.append((fname, column_type_from_connect(f, f"{path}.{fname}")))
        fields = tuple(out)
    params = schema.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise DecodeError(f"{path}: 'parameters' must be an object")
    if not isinstance(schema.get("name"), str | None):
        raise DecodeError(f"{path}: 'name' must be a string")
    return ColumnType(
        type=typ,
        name=schema.get("name"),
        optional=bool(schema.get("optional", False)),
        parameters=dict(params),
        version=schema.get("version"),
        items=items,
        keys=keys,
        values=values,
        fields=fields,
        default=schema.get("default"),
    )


def _table_name(record_name: str | None) -> str:
    """`claims.public.claims.Value` (or `.Envelope`/`.Key`) → `public.claims`."""
    if not record_name or not isinstance(record_name, str):
        return "?"
    parts = record_name.split(".")
    if len(parts) >= 4 and parts[-1] in ("Value", "Envelope", "Key"):
        return f"{parts[-3]}.{parts[-2]}"
    return record_name


class ConnectTableSchema(RowTableSchema):
    """A `TableSchema` built from a Debezium Connect schema (one per distinct table version)."""

    __slots__ = ()

    @classmethod
    def from_connect_schema(
        cls,
        schema: Mapping[str, Any],
        *,
        options: ConverterOptions = JSON_OPTIONS,
        fingerprint: str | None = None,
    ) -> ConnectTableSchema:
        """Build from a captured schema: a whole record (`{"schema", "payload"}`), the `Envelope`
        struct, or the row (`Value`) struct itself. Useful for offline tools and tests.
        """
        if isinstance(schema, Mapping) and "payload" in schema and "schema" in schema:
            schema = schema["schema"]
        if not isinstance(schema, Mapping) or schema.get("type") != "struct":
            raise DecodeError("a Debezium table schema must be a Connect struct schema")
        fields = schema.get("fields")
        if not isinstance(fields, list):
            raise DecodeError("Connect struct schema without a 'fields' list")
        by_name = {
            f.get("field"): f for f in fields if isinstance(f, Mapping) and isinstance(f.get("field"), str)
        }
        row = None
        if "op" in by_name or "source" in by_name:  # an envelope: the row schema is before/after
            row = by_name.get("after") or by_name.get("before")
            name = _table_name((row or schema).get("name"))
        else:  # already the row struct
            row = schema
            name = _table_name(schema.get("name"))
        columns: list[tuple[str, ColumnType]] = []
        if row is not None:
            row_type = column_type_from_connect(row, "schema.after")
            if row_type.type != "struct":
                raise DecodeError("the before/after field of a Debezium envelope must be a struct")
            columns = list(row_type.fields)
        return cls(
            name,
            columns,
            options=options,
            record_name=(row or schema).get("name"),
            fingerprint=fingerprint,
        )


def table_schema_from_connect(schema: Mapping[str, Any], **kwargs: Any) -> ConnectTableSchema:
    """Function form of `ConnectTableSchema.from_connect_schema`."""
    return ConnectTableSchema.from_connect_schema(schema, **kwargs)
