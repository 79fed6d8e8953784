"""The generated encoder must write exactly fastavro's bytes, and hand everything else to fastavro."""

from __future__ import annotations

import datetime as dt
import io
import random
import uuid
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from eventbus.events.avro import AvroEncoder
from eventbus.events.errors import SerializationFailed
from eventbus.events.fast_encoder import FastPathMiss, _long, compile_record_encoder

PREFIX = b"\x00\x00\x00\x00\x09"
EST = dt.timezone(dt.timedelta(hours=-5))

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "All",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "by", "type": "bytes"},
        {"name": "n", "type": "null"},
        {"name": "ns", "type": ["null", "string"]},
        {"name": "sn", "type": ["string", "null"]},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 4}},
        {"name": "day", "type": ["null", {"type": "int", "logicalType": "date"}]},
        {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    ],
}


def _fastavro(datum: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(SCHEMA), datum)
    return PREFIX + out.getvalue()


def _random_datum(rng: random.Random) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.3 else value

    places = rng.randint(0, 4)  # decimal(20,4): at most 16 integer digits
    big = rng.choice([0, 1, -1, 63, -64, 64, 8191, -8193, 2**27, -(2**40), 2**63 - 1, -(2**63)])
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        microseconds=rng.randint(-(10**16), 10**16)
    )
    return {
        "b": rng.random() < 0.5,
        "i": rng.randint(-(2**31), 2**31 - 1),
        "l": big + rng.randint(-3, 0) if big > 0 else big,
        "f": rng.uniform(-1e6, 1e6),
        "d": rng.uniform(-1e300, 1e300),
        "s": rng.choice(["", "a", "Authorized", "é✓中", "x" * 63, "x" * 64, "é" * 32, "x" * 200]),
        "by": bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))),
        "n": None,
        "ns": maybe("Continued at Authorization"),
        "sn": maybe(""),
        "dec": Decimal(rng.randint(-(10 ** (16 + places)) + 1, 10 ** (16 + places) - 1)).scaleb(-places),
        "day": maybe(dt.date(1970, 1, 1) + dt.timedelta(days=rng.randint(-40000, 40000))),
        "ts_us": moment.astimezone(EST) if rng.random() < 0.3 else moment,
        "ts_ms": moment,
        "id": rng.choice([uuid.UUID(int=rng.getrandbits(128)), str(uuid.UUID(int=rng.getrandbits(128)))]),
    }


def test_supported_schema_compiles() -> None:
    assert compile_record_encoder(SCHEMA, PREFIX) is not None


@pytest.mark.parametrize("seed", range(300))
def test_generated_bytes_equal_fastavro(seed: int) -> None:
    encode = compile_record_encoder(SCHEMA, PREFIX)
    assert encode is not None
    datum = _random_datum(random.Random(seed))
    assert encode(datum) == _fastavro(datum)


@pytest.mark.parametrize(
    "change",
    [
        {"ts_us": 1709296245123456},  # an int timestamp: fastavro's job
        {"ts_ms": dt.datetime(2024, 3, 1, 12, 0)},  # naive: fastavro reads it in local time
        {"day": 19000},
        {"dec": Decimal("12.5")},  # fewer fraction digits than the scale: handled
        {"f": 3},  # an int for a float
        {"by": bytearray(b"ab")},
    ],
)
def test_values_outside_the_fast_path_still_encode_like_fastavro(change: dict[str, Any]) -> None:
    datum = {**_random_datum(random.Random(1)), **change}
    encoder = AvroEncoder(topic="t", part="value", schema=SCHEMA, schema_id=9)
    assert encoder.encode(datum) == _fastavro(datum)


def test_misses_are_signalled_not_guessed() -> None:
    encode = compile_record_encoder(SCHEMA, PREFIX)
    assert encode is not None
    datum = _random_datum(random.Random(2))
    for change in ({"ts_us": 5}, {"dec": Decimal("0.00001")}, {"l": 2**63}, {"extra": 1}, {"i": 2**31}):
        with pytest.raises(FastPathMiss):
            encode({**datum, **change})
    with pytest.raises(FastPathMiss):
        encode({k: v for k, v in datum.items() if k != "s"})


@pytest.mark.parametrize(
    ("value", "actual"), [(2**31, "int beyond 32 bits"), (-(2**31) - 1, "int beyond 32 bits"), (True, "bool")]
)
def test_an_avro_int_takes_32_bit_ints_only(value: Any, actual: str) -> None:
    """fastavro writes any Python int into an Avro int, as a long, which a reader of the int decodes
    as another number. The fast path misses such a value and the general path refuses it."""
    encoder = AvroEncoder(topic="t", part="value", schema=SCHEMA, schema_id=9)
    datum = _random_datum(random.Random(4))
    with pytest.raises(SerializationFailed, match=rf"field i: expected int, got a value of type {actual}"):
        encoder.encode({**datum, "i": value})
    assert encoder.encode({**datum, "i": 2**31 - 1}) == _fastavro({**datum, "i": 2**31 - 1})


def test_rounding_a_decimal_is_an_error_not_silent() -> None:
    encoder = AvroEncoder(topic="t", part="value", schema=SCHEMA, schema_id=9)
    with pytest.raises(SerializationFailed, match=r"field dec: expected decimal\(20,4\)"):
        encoder.encode({**_random_datum(random.Random(3)), "dec": Decimal("1.00001")})


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "enum", "name": "E", "symbols": ["A"]},
        ["null", "string", "long"],
        {"type": "array", "items": "long"},
        {"type": "fixed", "name": "F", "size": 2},
    ],
)
def test_unsupported_field_types_leave_the_schema_to_fastavro(field_type: Any) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": field_type}]}
    assert compile_record_encoder(schema, PREFIX) is None


@pytest.mark.parametrize("bits", [0, 6, 7, 13, 14, 20, 21, 27, 28, 34, 41, 48, 54, 55, 56, 62, 63])
def test_long_varints_equal_fastavro_at_every_length(bits: int) -> None:
    """Each unrolled length of `_long` (1 to 8 bytes) and the loop beyond, at both edges, both signs."""
    rng = random.Random(bits)
    values = {2**bits - 1, -(2**bits), 2**bits if bits < 63 else 2**63 - 1}
    values |= {rng.randrange(-(2**bits), 2**bits) for _ in range(200)} if bits else set()
    for value in values:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, "long", value)
        assert _long(value) == out.getvalue(), value
