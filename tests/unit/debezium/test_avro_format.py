"""The Avro path: envelopes encoded here with fastavro, as Connect's AvroData shapes them."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from fastavro import parse_schema, schemaless_writer

from eventbus.debezium.avro_format import AvroDecoder, confluent_frame
from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.debezium.errors import DecodeError

PH = b"__debezium_unavailable_value"


def _opt(t):
    return ["null", t]


VALUE = {
    "type": "record",
    "name": "Value",
    "namespace": "claims.public.claims",
    "fields": [
        {"name": "id", "type": {"type": "long", "connect.type": "int64"}},
        {"name": "priority", "type": {"type": "int", "connect.type": "int16"}},
        {
            "name": "amount",
            "type": _opt(
                {
                    "type": "bytes",
                    "scale": 2,
                    "precision": 12,
                    "connect.version": 1,
                    "connect.parameters": {"scale": "2", "connect.decimal.precision": "12"},
                    "connect.name": "org.apache.kafka.connect.data.Decimal",
                    "logicalType": "decimal",
                }
            ),
            "default": None,
        },
        {
            "name": "created_at",
            "type": {"type": "long", "connect.version": 1, "connect.name": "io.debezium.time.MicroTimestamp"},
        },
        {
            "name": "closed_at",
            "type": _opt(
                {
                    "type": "long",
                    "connect.version": 1,
                    "logicalType": "timestamp-millis",
                    "connect.name": "org.apache.kafka.connect.data.Timestamp",
                }
            ),
            "default": None,
        },
        {
            "name": "updated_at",
            "type": {
                "type": "string",
                "connect.version": 1,
                "connect.name": "io.debezium.time.ZonedTimestamp",
            },
        },
        {
            "name": "birth_date",
            "type": _opt(
                {
                    "type": "int",
                    "connect.version": 1,
                    "logicalType": "date",
                    "connect.name": "org.apache.kafka.connect.data.Date",
                }
            ),
            "default": None,
        },
        {
            "name": "uid",
            "type": {"type": "string", "connect.version": 1, "connect.name": "io.debezium.data.Uuid"},
        },
        {"name": "notes", "type": _opt("string"), "default": None},
        {"name": "blob", "type": _opt("bytes"), "default": None},
        {"name": "tags", "type": _opt({"type": "array", "items": _opt("string")}), "default": None},
        {
            "name": "ratio",
            "type": _opt(
                {
                    "type": "record",
                    "name": "VariableScaleDecimal",
                    "namespace": "io.debezium.data",
                    "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
                    "connect.version": 1,
                    "connect.name": "io.debezium.data.VariableScaleDecimal",
                }
            ),
            "default": None,
        },
    ],
    "connect.name": "claims.public.claims.Value",
}
SOURCE = {
    "type": "record",
    "name": "Source",
    "namespace": "io.debezium.connector.postgresql",
    "fields": [
        {"name": "version", "type": "string"},
        {"name": "connector", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "ts_ms", "type": "long"},
        {
            "name": "snapshot",
            "type": [
                {
                    "type": "string",
                    "connect.version": 1,
                    "connect.default": "false",
                    "connect.name": "io.debezium.data.Enum",
                    "connect.parameters": {"allowed": "true,last,false,incremental"},
                },
                "null",
            ],
            "default": "false",
        },
        {"name": "db", "type": "string"},
        {"name": "sequence", "type": _opt("string"), "default": None},
        {"name": "schema", "type": "string"},
        {"name": "table", "type": "string"},
        {"name": "txId", "type": _opt("long"), "default": None},
        {"name": "lsn", "type": _opt("long"), "default": None},
        {"name": "xmin", "type": _opt("long"), "default": None},
    ],
    "connect.name": "io.debezium.connector.postgresql.Source",
}
ENVELOPE = {
    "type": "record",
    "name": "Envelope",
    "namespace": "claims.public.claims",
    "fields": [
        {"name": "before", "type": _opt(VALUE), "default": None},
        {"name": "after", "type": _opt("Value"), "default": None},
        {"name": "source", "type": SOURCE},
        {
            "name": "transaction",
            "type": _opt(
                {
                    "type": "record",
                    "name": "block",
                    "namespace": "event",
                    "fields": [
                        {"name": "id", "type": "string"},
                        {"name": "total_order", "type": "long"},
                        {"name": "data_collection_order", "type": "long"},
                    ],
                    "connect.version": 1,
                    "connect.name": "event.block",
                }
            ),
            "default": None,
        },
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": _opt("long"), "default": None},
    ],
    "connect.version": 2,
    "connect.name": "claims.public.claims.Envelope",
}
KEY = {
    "type": "record",
    "name": "Key",
    "namespace": "claims.public.claims",
    "fields": [{"name": "id", "type": "long"}],
    "connect.name": "claims.public.claims.Key",
}
SCHEMAS = {11: ENVELOPE, 12: KEY}


def encode(schema_id: int, record: dict) -> bytes:
    from eventbus.debezium.avro_format import strip_logical_types

    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(strip_logical_types(SCHEMAS[schema_id])), record)
    return confluent_frame(schema_id, buf.getvalue())


ROW = {
    "id": 42,
    "priority": 3,
    "amount": (-12345).to_bytes(2, "big", signed=True),
    "created_at": -1,
    "closed_at": 1_000,
    "updated_at": "2026-11-02T14:00:00.5Z",
    "birth_date": -3653,
    "uid": "9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44",
    "notes": "n",
    "blob": b"\x01",
    "tags": ["a", None],
    "ratio": {"scale": 1, "value": b"\xff"},
}
SRC = {
    "version": "3.6.1.Final",
    "connector": "postgresql",
    "name": "claims",
    "ts_ms": 5,
    "snapshot": "false",
    "db": "claims",
    "sequence": '["1","2"]',
    "schema": "public",
    "table": "claims",
    "txId": 9,
    "lsn": 2,
    "xmin": None,
}


def test_avro_update_round_trip():
    after = dict(ROW, notes=PH.decode(), blob=PH, tags=[PH.decode()])
    value = encode(
        11, {"before": ROW, "after": after, "source": SRC, "transaction": None, "op": "u", "ts_ms": 7}
    )
    lookups = []
    dec = AvroDecoder(lambda i: lookups.append(i) or SCHEMAS[i])
    change = dec.decode(value, encode(12, {"id": 42}))
    assert change.op == "u" and change.key == {"id": 42} and change.ts_ms == 7
    assert (change.source.connector, change.source.lsn, change.source.tx_id) == ("claims", 2, 9)
    t = change.table
    assert t.name == "public.claims"
    assert t.convert_row(change.before) == {
        "id": 42,
        "priority": 3,
        "amount": Decimal("-123.45"),
        "created_at": datetime(1969, 12, 31, 23, 59, 59, 999999),
        "closed_at": datetime(1970, 1, 1, 0, 0, 1),
        "updated_at": datetime(2026, 11, 2, 14, 0, 0, 500000, tzinfo=UTC),
        "birth_date": date(1960, 1, 1),
        "uid": UUID("9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44"),
        "notes": "n",
        "blob": b"\x01",
        "tags": ["a", None],
        "ratio": Decimal("-0.1"),
    }
    conv_after = t.convert_row(change.after)
    assert (
        conv_after["notes"] is UNAVAILABLE
        and conv_after["blob"] is UNAVAILABLE
        and conv_after["tags"] is UNAVAILABLE
    )
    assert t.columns["priority"].type == "int16"
    # schemas are fetched and parsed once per id
    dec.decode(value)
    assert dec.decode(value).table is t
    assert lookups == [11, 12]


def test_avro_errors():
    dec = AvroDecoder(SCHEMAS.__getitem__)
    with pytest.raises(DecodeError, match="Confluent wire format"):
        dec.decode(b"\x01\x00\x00\x00\x0b")
    with pytest.raises(DecodeError, match="cannot get Avro schema id 99"):
        dec.decode(confluent_frame(99, b""))
    with pytest.raises(DecodeError, match="does not match schema id 11"):
        dec.decode(confluent_frame(11, b"\x02"))
    bad_op = encode(
        11, {"before": None, "after": ROW, "source": SRC, "transaction": None, "op": "z", "ts_ms": None}
    )
    with pytest.raises(DecodeError, match="unknown or missing op 'z'"):
        dec.decode(bad_op)
    assert dec.decode(None) is None
