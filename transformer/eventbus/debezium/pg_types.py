"""Which Kafka Connect schema Debezium's PostgreSQL connector writes for a column of a given type.

A table description (`tables/<schema>.<table>.json`, read by `eventbus.mapping.tables`) is the
Connect schema of the table's change events. Without a staging record to copy it from, it is built
from the live table's column types with the rules below: the connector settings every source is
registered with (`eventbus.sources.connector_config`) are `decimal.handling.mode=precise`,
`time.precision.mode=adaptive_time_microseconds` and Debezium's defaults otherwise
(`interval.handling.mode=numeric`, `binary.handling.mode=bytes`, `hstore.handling.mode=json`).

Each column also carries, as Debezium's `column.propagate.source.type` option writes them, the
PostgreSQL type in `__debezium.source.column.type` (and its length/scale): a refreshed description
then shows `varchar(20)` becoming `varchar(40)`, which the Connect type alone (string) would not.
Column comments go into `doc` (Debezium's `include.schema.comments`). Type names are those Kafka's
`JsonConverter` writes: `float` and `double` (Connect's FLOAT32 and FLOAT64).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

DECIMAL: Final = "org.apache.kafka.connect.data.Decimal"
VARIABLE_SCALE_DECIMAL: Final = "io.debezium.data.VariableScaleDecimal"
SOURCE_TYPE: Final = "__debezium.source.column.type"
SOURCE_LENGTH: Final = "__debezium.source.column.length"
SOURCE_SCALE: Final = "__debezium.source.column.scale"

# PostgreSQL's fractional second digits when a time or timestamp column gives none.
DEFAULT_TIME_PRECISION: Final = 6


@dataclass(frozen=True, slots=True)
class PgColumn:
    """One column as the database states it (names as in `pg_type`: int4, timestamptz, ...)."""

    name: str
    type_name: str
    nullable: bool = True
    length: int | None = None  # numeric precision, character length, bit length
    scale: int | None = None  # numeric scale
    time_precision: int | None = None  # fractional second digits of time/timestamp types
    labels: tuple[str, ...] = ()  # enum labels, in order
    element: PgColumn | None = None  # arrays: the element type
    comment: str | None = None

    def describe(self) -> str:
        """The type as PostgreSQL prints it, for messages: numeric(8,2), text[], timestamptz(3)."""
        if self.element is not None:
            return f"{self.element.describe()}[]"
        if self.type_name == "numeric" and self.length is not None:
            return f"numeric({self.length},{self.scale or 0})"
        if self.length is not None and self.type_name in ("varchar", "bpchar", "bit", "varbit"):
            return f"{self.type_name}({self.length})"
        if self.time_precision is not None and self.type_name in _TEMPORAL:
            return f"{self.type_name}({self.time_precision})"
        return self.type_name


_TEMPORAL: Final = frozenset({"time", "timetz", "timestamp", "timestamptz", "interval"})

_PLAIN: Final[dict[str, str]] = {
    "bool": "boolean", "int2": "int16", "int4": "int32", "int8": "int64", "float4": "float",
    "float8": "double", "text": "string", "varchar": "string", "bpchar": "string", "name": "string",
    "char": "string",  # "char", PostgreSQL's one-byte internal type: Debezium sends its character
    "citext": "string", "inet": "string", "cidr": "string", "macaddr": "string", "macaddr8": "string",
    "tsvector": "string", "int4range": "string", "int8range": "string", "numrange": "string",
    "tsrange": "string", "tstzrange": "string", "daterange": "string", "oid": "int64", "bytea": "bytes",
}  # fmt: skip

# (Connect type, logical name) of the types whose schema does not depend on modifiers.
_NAMED: Final[dict[str, tuple[str, str]]] = {
    "uuid": ("string", "io.debezium.data.Uuid"),
    "json": ("string", "io.debezium.data.Json"),
    "jsonb": ("string", "io.debezium.data.Json"),
    "hstore": ("string", "io.debezium.data.Json"),
    "xml": ("string", "io.debezium.data.Xml"),
    "ltree": ("string", "io.debezium.data.Ltree"),
    "date": ("int32", "io.debezium.time.Date"),
    "time": ("int64", "io.debezium.time.MicroTime"),
    "timetz": ("string", "io.debezium.time.ZonedTime"),
    "timestamptz": ("string", "io.debezium.time.ZonedTimestamp"),
    "interval": ("int64", "io.debezium.time.MicroDuration"),
}

# Array elements Debezium encodes and the decoder converts item by item, each with the schema the
# element type has as a column (a timestamp(3)[] has millisecond items, a numeric(8,2)[] decimal
# items of scale 2, an enum[] Enum items); checked against Debezium 3.6.1's own records by
# tests/unit/mapping/test_unusual_types.py and tests/integration/sources/test_mapping_new.py;
# timetz (ZonedTime items) as Debezium's PostgresValueConverter states it, not yet seen on the stack.
_ARRAY_ELEMENTS: Final = frozenset(
    {"bool", "int2", "int4", "int8", "float4", "float8", "text", "varchar", "bpchar", "uuid", "json", "jsonb",
     "date", "time", "timetz", "timestamp", "timestamptz", "numeric", "bytea"}
)  # fmt: skip

# Element types whose arrays Debezium leaves out of its change events, and why (it logs "No converter
# found for column ... of type _interval. The column will not be part of change events"; seen for
# interval, the others as its PostgresValueConverter lists them: no schema, no converter).
_DROPPED_ARRAYS: Final = {
    element: f"Debezium sends no arrays of {element} (it has no converter for them)"
    for element in ("interval", "money", "name", "varbit", "xml", "point")
}

# numeric(p, s) with a negative s (PostgreSQL 15+): the type modifier keeps the scale in 11 bits, and
# Debezium states those bits as the scale: numeric(5,-2) comes with scale 2046 (and its values scaled
# to it). Positive scales stop at 1000, so a stated scale above that is a negative one.
NEGATIVE_SCALE_OFFSET: Final = 2048
MAX_SCALE: Final = 1000
_UNBOUNDED_BITS: Final = 2147483647


def stated_scale(scale: int) -> int:
    """The scale Debezium states for a numeric column of scale `scale` (see NEGATIVE_SCALE_OFFSET)."""
    return scale + NEGATIVE_SCALE_OFFSET if scale < 0 else scale


def is_negative_scale(stated: int) -> bool:
    """Is `stated` (a Decimal schema's scale) how Debezium states a negative one? 1001..2047."""
    return MAX_SCALE < stated < NEGATIVE_SCALE_OFFSET


def true_scale(stated: int) -> int:
    """The column's scale from the one Debezium states: 2046 is numeric(p,-2)'s."""
    return stated - NEGATIVE_SCALE_OFFSET if is_negative_scale(stated) else stated

# PostgreSQL's geometric point, as Debezium's PostgreSQL connector sends it.
_POINT: Final[dict[str, Any]] = {
    "type": "struct",
    "fields": [
        {"type": "double", "optional": False, "field": "x"},
        {"type": "double", "optional": False, "field": "y"},
        {"type": "bytes", "optional": True, "field": "wkb"},
        {"type": "int32", "optional": True, "field": "srid"},
    ],
    "name": "io.debezium.data.geometry.Point",
    "version": 1,
    "doc": "Geometry (POINT)",
}


class UncapturedType(ValueError):
    """A type this description cannot give Debezium's schema of from the database alone: Debezium
    skips some (`include.unknown.datatypes=false`, its default), others (arrays of less common
    elements, PostGIS types) are described from a staging record (`mapping tables --from-topic`)."""


def connect_schema(column: PgColumn, *, element: bool = False) -> dict[str, Any]:
    """The Connect schema Debezium writes for `column` (without the `field` name).

    Raises `UncapturedType` for a type Debezium does not capture under our settings (a domain
    over an unknown type, geometry without PostGIS support here, arrays of composite types).
    """
    schema: dict[str, Any]
    name = column.type_name
    if column.element is not None:
        element_type = column.element
        if element_type.type_name in _DROPPED_ARRAYS:
            raise UncapturedType(_DROPPED_ARRAYS[element_type.type_name])
        if element_type.type_name not in _ARRAY_ELEMENTS and not element_type.labels:
            raise UncapturedType(f"arrays of {element_type.describe()}")
        items = connect_schema(column.element, element=True)
        if element_type.labels:
            # As Debezium states enum elements; an array holding a NULL comes as null altogether
            items["optional"] = False
        schema = {"type": "array", "items": items}
    elif name == "numeric":
        if column.length is None:  # unconstrained numeric: every value carries its own scale
            schema = {
                "type": "struct",
                "fields": [
                    {"type": "int32", "optional": False, "field": "scale"},
                    {"type": "bytes", "optional": False, "field": "value"},
                ],
                "name": VARIABLE_SCALE_DECIMAL,
                "version": 1,
                "doc": "Variable scaled decimal",
            }
        else:
            schema = {
                "type": "bytes",
                "name": DECIMAL,
                "version": 1,
                "parameters": {
                    "scale": str(stated_scale(column.scale or 0)),
                    "connect.decimal.precision": str(column.length),
                },
            }
    elif name == "point":
        schema = copy.deepcopy(_POINT)
    elif name == "money":
        schema = {"type": "bytes", "name": DECIMAL, "version": 1, "parameters": {"scale": "2"}}
    elif name == "timestamp":
        precision = DEFAULT_TIME_PRECISION if column.time_precision is None else column.time_precision
        # adaptive_time_microseconds: up to milliseconds as millis, finer as micros
        logical = "io.debezium.time.Timestamp" if precision <= 3 else "io.debezium.time.MicroTimestamp"
        schema = {"type": "int64", "name": logical, "version": 1}
    elif name == "bit" and (column.length or 1) == 1:
        schema = {"type": "boolean"}
    elif name in ("bit", "varbit"):
        schema = {
            "type": "bytes",
            "name": "io.debezium.data.Bits",
            "version": 1,
            # an unbounded bit varying is stated with PostgreSQL's largest length
            "parameters": {"length": str(column.length or (_UNBOUNDED_BITS if name == "varbit" else 1))},
        }
    elif column.labels:
        schema = {
            "type": "string",
            "name": "io.debezium.data.Enum",
            "version": 1,
            "parameters": {"allowed": ",".join(column.labels)},
        }
    elif name in _NAMED:
        connect_type, logical = _NAMED[name]
        schema = {"type": connect_type, "name": logical, "version": 1}
    elif name in _PLAIN:
        schema = {"type": _PLAIN[name]}
    else:
        raise UncapturedType(name)
    schema["optional"] = True if element else column.nullable
    if not element:
        parameters = dict(schema.get("parameters", {}))
        parameters[SOURCE_TYPE] = column.describe()
        if column.length is not None:
            parameters[SOURCE_LENGTH] = str(column.length)
        if column.scale is not None:
            parameters[SOURCE_SCALE] = str(column.scale)
        schema["parameters"] = parameters
        if column.comment:
            schema["doc"] = column.comment
    return schema


def table_description(
    topic_prefix: str, table: str, columns: list[PgColumn]
) -> tuple[dict[str, Any], list[tuple[PgColumn, str]]]:
    """The change-event envelope schema of `table` (`<schema>.<table>`) and the skipped columns.

    Shaped as Debezium writes it (`before`/`after` row structs, `op`, `ts_ms`), without the
    `source` block, which no table description needs.
    """
    fields = []
    skipped = []
    for column in columns:
        try:
            fields.append({**connect_schema(column), "field": column.name})
        except UncapturedType as error:
            skipped.append((column, str(error)))
    row_name = f"{topic_prefix}.{table}.Value"
    envelope = {
        "type": "struct",
        "fields": [
            {"type": "struct", "fields": fields, "optional": True, "name": row_name, "field": "before"},
            {"type": "struct", "fields": fields, "optional": True, "name": row_name, "field": "after"},
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
        ],
        "optional": False,
        "name": f"{topic_prefix}.{table}.Envelope",
        "version": 2,
    }
    return envelope, skipped


def key_description(topic_prefix: str, table: str, columns: list[PgColumn]) -> dict[str, Any]:
    """The Connect schema of the table's Kafka keys: its key columns, in key order (primary-key
    columns are NOT NULL; declared key columns of a keyless table are optional when nullable, as
    Debezium writes them)."""
    fields = [
        {**connect_schema(column), "optional": column.nullable, "field": column.name} for column in columns
    ]
    return {"type": "struct", "fields": fields, "optional": False, "name": f"{topic_prefix}.{table}.Key"}
