"""Captured table schemas: what the mapping loader knows about a source table's columns.

Convention: `<mapping dir>/tables/<schema>.<table>.json` holds the Connect `schema` object of the
table's Debezium value envelope, exactly as a staging record with schemas enabled carries it (the
`schema` half of `{"schema": ..., "payload": ...}`). `eventbus mapping validate` then reports a
reference to a column that does not exist, and a column type that cannot go into an Avro field.

Only the column list and types are read here (validation needs no value conversion); decoding
values is `eventbus.debezium`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from eventbus.debezium.pg_types import true_scale
from eventbus.mapping.text_files import utf8_text

# Static "kinds" shared by columns, expression results and Avro fields, for load-time type checks.
_CONNECT_KINDS: Final = {
    "int8": "int", "int16": "int", "int32": "int", "int64": "int",
    "float32": "float", "float64": "float", "float": "float", "double": "float",
    "boolean": "bool", "string": "string", "bytes": "bytes",
    "struct": "struct", "array": "array", "map": "map",
}  # fmt: skip

_LOGICAL_KINDS: Final = {
    "org.apache.kafka.connect.data.Decimal": "decimal",
    "io.debezium.data.VariableScaleDecimal": "decimal",
    "org.apache.kafka.connect.data.Date": "date",
    "io.debezium.time.Date": "date",
    "org.apache.kafka.connect.data.Timestamp": "datetime",
    "io.debezium.time.Timestamp": "datetime",
    "io.debezium.time.MicroTimestamp": "datetime",
    "io.debezium.time.NanoTimestamp": "datetime",
    "io.debezium.time.ZonedTimestamp": "datetime",
    "io.debezium.time.IsoTimestamp": "datetime",  # time.precision.mode=isostring: decoded as values
    "io.debezium.time.IsoDate": "date",
    "io.debezium.time.IsoTime": "time",
    "org.apache.kafka.connect.data.Time": "time",
    "io.debezium.time.Time": "time",
    "io.debezium.time.MicroTime": "time",
    "io.debezium.time.NanoTime": "time",
    "io.debezium.time.ZonedTime": "time",
    "io.debezium.time.MicroDuration": "duration",
    "io.debezium.time.Interval": "duration",
    "io.debezium.data.Uuid": "uuid",
    "io.debezium.data.Json": "string",
    "io.debezium.data.Xml": "string",
    "io.debezium.data.Enum": "string",
    "io.debezium.data.Bits": "int",  # bit(n > 1), varbit: the bit string's value (bit(1) is a boolean)
}


_ENUM: Final = "io.debezium.data.Enum"


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    kind: str  # int | float | decimal | bool | string | bytes | date | datetime | time | uuid | ...
    optional: bool
    connect_type: str
    logical: str | None
    precision: int | None = None  # decimals: total digits (None: unconstrained numeric)
    scale: int | None = None  # decimals: digits after the point (None: each value has its own;
    # below zero: numeric(p,-s), whole numbers rounded to 10**s)
    element: ColumnInfo | None = None  # arrays: what each element is
    labels: tuple[str, ...] | None = None  # enums: the labels a value is one of (None: not known)


@dataclass(frozen=True, slots=True)
class CapturedTable:
    name: str  # <schema>.<table>
    columns: Mapping[str, ColumnInfo]
    path: str
    schema: Mapping[str, Any]  # the Connect schema as captured

    def table_schema(self, *, fingerprint: str | None = None) -> Any:
        """A debezium `TableSchema` (with value converters) for offline runs of schemaless records."""
        from eventbus.debezium.connect_schema import ConnectTableSchema

        built = ConnectTableSchema.from_connect_schema(self.schema, fingerprint=fingerprint)
        if built.name == self.name:
            return built
        # A bare row struct without a record name (hand-written descriptions) names no table: it is
        # the table of its file name, or `mapping run` would skip every record as another table's.
        return ConnectTableSchema(
            self.name, built.columns.items(), record_name=built.record_name, fingerprint=fingerprint
        )


def column_kind(connect_type: str, logical: str | None) -> str:
    if logical and logical in _LOGICAL_KINDS:
        return _LOGICAL_KINDS[logical]
    return _CONNECT_KINDS.get(connect_type, "unknown")


def columns_from_connect_schema(schema: Mapping[str, Any]) -> dict[str, ColumnInfo]:
    """Columns of a table from its envelope schema (`after`/`before` struct) or a bare row struct."""
    fields = schema.get("fields")
    if not isinstance(fields, list):
        raise ValueError("not a Connect struct schema: no 'fields' list")
    by_name = {f.get("field"): f for f in fields if isinstance(f, dict)}
    row = by_name.get("after") or by_name.get("before")
    row_fields = row.get("fields") if isinstance(row, dict) else fields
    if not isinstance(row_fields, list):
        raise ValueError("the 'after' field has no 'fields' list")
    columns: dict[str, ColumnInfo] = {}
    for field in row_fields:
        if not isinstance(field, dict) or not isinstance(field.get("field"), str):
            raise ValueError("every column needs a 'field' name")
        columns[field["field"]] = _column_info(field["field"], field)
    return columns


def _column_info(name: str, field: Mapping[str, Any]) -> ColumnInfo:
    connect_type = str(field.get("type", "unknown"))
    logical = field.get("name") if isinstance(field.get("name"), str) else None
    parameters = field.get("parameters")
    if not isinstance(parameters, dict):
        parameters = {}
    precision = str(parameters.get("connect.decimal.precision"))
    scale = str(parameters.get("scale"))
    items = field.get("items")
    allowed = parameters.get("allowed")
    return ColumnInfo(
        name=name,
        kind=column_kind(connect_type, logical),
        optional=bool(field.get("optional", False)),
        connect_type=connect_type,
        logical=logical,
        precision=int(precision) if precision.isdigit() else None,
        # numeric(p,-s) is stated with scale 2048-s (pg_types.true_scale)
        scale=true_scale(int(scale)) if scale.isdigit() else None,
        element=_column_info(name, items) if connect_type == "array" and isinstance(items, Mapping) else None,
        labels=tuple(allowed.split(",")) if logical == _ENUM and isinstance(allowed, str) else None,
    )


def captured_table_path(mapping_file: Path, table: str) -> Path:
    return mapping_file.parent / "tables" / f"{table}.json"


def near_description(mapping_file: Path, table: str) -> str | None:
    """`did you mean 'Ops.order'?` when a description beside the mapping is named like `table`
    (names are case-sensitive: `ops.order` is another table than `Ops.order`)."""
    from eventbus.mapping.expression_language import did_you_mean

    folder = captured_table_path(mapping_file, table).parent
    described = [f.name.removesuffix(".json") for f in folder.glob("*.json")]
    by_case = [name for name in described if name.lower() == table.lower() and name != table]
    return did_you_mean(table, by_case or [name for name in described if not name.endswith(".key")])


def load_captured_table(path: Path, table: str) -> CapturedTable:
    """Raises ValueError/OSError with a plain message; the loader turns it into a located error."""
    document = orjson.loads(utf8_text(path.read_bytes()))  # orjson misplaces a byte that is not UTF-8
    if isinstance(document, dict) and "schema" in document and "fields" not in document:
        document = document["schema"]  # a whole staging record was saved: take its schema half
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object (the Connect schema of the table's change events)")
    columns = columns_from_connect_schema(document)
    return CapturedTable(name=table, columns=columns, path=str(path), schema=document)


def captured_key_path(table_path: Path) -> Path:
    """`tables/<schema>.<table>.key.json` beside the captured value schema."""
    return table_path.with_name(table_path.name.removesuffix(".json") + ".key.json")


def load_captured_key(table_path: Path) -> tuple[str, ...] | None:
    """The key columns (primary key, or declared key_columns) from the captured key schema (the
    `schema` half of a staging key record), or None when none is captured. Raises ValueError/OSError
    for an unreadable file."""
    path = captured_key_path(table_path)
    if not path.exists():
        return None
    document = orjson.loads(utf8_text(path.read_bytes()))
    if isinstance(document, dict) and "schema" in document and "fields" not in document:
        document = document["schema"]
    fields = document.get("fields") if isinstance(document, dict) else None
    if not isinstance(fields, list) or not all(isinstance(f, dict) and "field" in f for f in fields):
        raise ValueError(f"{path}: expected the Connect key schema (a struct with 'fields')")
    return tuple(str(f["field"]) for f in fields)
