"""Debezium change envelopes: decoding staging records into `Change` objects.

Connect JSON (the staging format every connector is registered with): `ConnectJsonDecoder` /
`decode_connect_json`; per-column converters: `logical_types`. (Generated records for tests and
benchmarks are a development tool: devtools/, not this package.)
"""

from eventbus.debezium.connect_json import (
    ConnectJsonDecoder,
    ConnectTableSchema,
    decode_connect_json,
    decode_connect_key,
    table_schema_from_connect,
)
from eventbus.debezium.envelope import OPS, UNAVAILABLE, Change, SourceInfo, TableSchema
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.logical_types import ColumnType, PgInterval, identity, make_converter

__all__ = [
    "OPS",
    "UNAVAILABLE",
    "Change",
    "ColumnType",
    "ConnectJsonDecoder",
    "ConnectTableSchema",
    "DecodeError",
    "PgInterval",
    "SourceInfo",
    "TableSchema",
    "decode_connect_json",
    "decode_connect_key",
    "identity",
    "make_converter",
    "table_schema_from_connect",
]
