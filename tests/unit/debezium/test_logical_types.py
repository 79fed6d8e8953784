"""Converters for every logical type, on raw values as Debezium's PostgreSQL connector writes them."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.infinite import INFINITY, NEG_INFINITY
from eventbus.debezium.logical_types import (
    AVRO_OPTIONS,
    ColumnType,
    Placeholder,
    identity,
    make_converter,
)
from eventbus.debezium.temporal_types import PgInterval, parse_iso_interval
from eventbus_dev.samples import encode_decimal, encode_micro_timestamp

PH = "__debezium_unavailable_value"
PH_B64 = base64.b64encode(PH.encode()).decode()
DEC = "org.apache.kafka.connect.data.Decimal"


def conv(type_: str, name: str | None = None, **kw):
    return make_converter(ColumnType(type_, name, **kw), column="c")


def test_plain_types_get_the_shared_identity():
    for t in ("int8", "int16", "int32", "int64", "boolean"):
        assert conv(t) is identity
    assert conv("int32", "io.debezium.time.Year") is identity


@pytest.mark.parametrize(
    ("b64", "scale", "expected"),
    [
        ("AMo5", 2, Decimal("517.69")),
        ("/zzH", 2, Decimal("-499.77")),
        ("AA==", 2, Decimal("0.00")),
        ("/w==", 0, Decimal("-1")),
        ("gA==", 2, Decimal("-1.28")),
        # 30 significant digits: more than the default decimal context would keep
        (
            base64.b64encode((10**30 - 1).to_bytes(13, "big", signed=True)).decode(),
            10,
            Decimal("99999999999999999999.9999999999"),
        ),
    ],
)
def test_decimal_exact(b64, scale, expected):
    value = conv("bytes", DEC, parameters={"scale": str(scale)})(b64)
    assert value == expected and str(value) == str(expected)


def test_decimal_null_and_toast():
    c = conv("bytes", DEC, parameters={"scale": "2"})
    assert c(None) is None
    assert c(PH_B64) is UNAVAILABLE


def test_decimal_without_scale_is_a_decode_error():
    with pytest.raises(DecodeError, match="scale"):
        conv("bytes", DEC)


def test_decimal_avro_bytes():
    c = make_converter(ColumnType("bytes", DEC, parameters={"scale": "3"}), AVRO_OPTIONS, "c")
    assert c((-12345).to_bytes(2, "big", signed=True)) == Decimal("-12.345")
    assert c(PH.encode()) is UNAVAILABLE


def test_variable_scale_decimal():
    c = conv("struct", "io.debezium.data.VariableScaleDecimal")
    assert c({"scale": 3, "value": "/8c="}) == Decimal("-0.057")
    assert c({"scale": 0, "value": "AQ=="}) == Decimal(1)
    assert c(None) is None
    with pytest.raises(DecodeError, match="column 'c'"):
        c({"scale": 1})


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**20), max_value=10**20))
def test_decimal_round_trip(d):
    c = conv("bytes", DEC, parameters={"scale": "4"})
    assert c(encode_decimal(d, 4)) == d


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)))
def test_micro_timestamp_round_trip(dt):
    c = conv("int64", "io.debezium.time.MicroTimestamp")
    assert c(encode_micro_timestamp(dt)) == dt


def test_timestamps_before_1970():
    micro = conv("int64", "io.debezium.time.MicroTimestamp")
    assert micro(-1) == datetime(1969, 12, 31, 23, 59, 59, 999999)
    assert micro(-1234567890123456) == datetime(1930, 11, 18, 0, 28, 29, 876544)
    millis = conv("int64", "io.debezium.time.Timestamp")
    assert millis(-86400001) == datetime(1969, 12, 30, 23, 59, 59, 999000)
    connect = conv("int64", "org.apache.kafka.connect.data.Timestamp")
    assert connect(1_000) == datetime(1970, 1, 1, 0, 0, 1)
    nano = conv("int64", "io.debezium.time.NanoTimestamp")
    assert nano(-1) == datetime(1969, 12, 31, 23, 59, 59, 999999)  # floors, never rounds up across
    assert nano(1700000000123456789) == datetime(2023, 11, 14, 22, 13, 20, 123456)


def test_timestamp_out_of_range_names_the_column():
    with pytest.raises(DecodeError, match=r"column 'c'.*outside the range.*not one of Debezium's"):
        conv("int64", "io.debezium.time.MicroTimestamp")(9223372036825200001)  # next to 'infinity'
    with pytest.raises(DecodeError, match="expected an integer"):
        conv("int64", "io.debezium.time.MicroTimestamp")("2024-01-01")


# Debezium 3.6's encodings of PostgreSQL 'infinity' / '-infinity' (see temporal_types._INFINITIES)
INFINITIES = [
    ("int64", "io.debezium.time.MicroTimestamp", 9223372036825200000, INFINITY),
    ("int64", "io.debezium.time.MicroTimestamp", -9223372036832400000, NEG_INFINITY),
    ("int64", "io.debezium.time.MicroTimestamp", 2**63 - 1, INFINITY),  # after Debezium's dbz#2524
    ("int64", "io.debezium.time.MicroTimestamp", -(2**63), NEG_INFINITY),
    ("int64", "io.debezium.time.Timestamp", 9223372036825200, INFINITY),  # timestamp(0..3): millis
    ("int64", "io.debezium.time.Timestamp", -9223372036832400, NEG_INFINITY),
    ("int64", "io.debezium.time.NanoTimestamp", 2**63 - 1, INFINITY),
    ("int64", "io.debezium.time.NanoTimestamp", -(2**63), NEG_INFINITY),
    ("int32", "io.debezium.time.Date", -2147472692, INFINITY),  # streamed (pgoutput text)
    ("int32", "io.debezium.time.Date", -2147472691, NEG_INFINITY),
    ("int32", "io.debezium.time.Date", -622191234, INFINITY),  # snapshot (pgjdbc's java.sql.Date)
    ("int32", "io.debezium.time.Date", -625821272, NEG_INFINITY),
    ("string", "io.debezium.time.ZonedTimestamp", "infinity", INFINITY),
    ("string", "io.debezium.time.ZonedTimestamp", "-infinity", NEG_INFINITY),
    ("string", "io.debezium.time.IsoTimestamp", "+294247-01-10T04:00:25.2Z", INFINITY),
]


@pytest.mark.parametrize(("type_", "logical", "sent", "expected"), INFINITIES)
def test_debeziums_infinities_decode_to_the_sentinels(type_, logical, sent, expected):
    assert conv(type_, logical)(sent) is expected


@pytest.mark.parametrize(
    ("type_", "logical", "sent"),
    [
        ("int64", "io.debezium.time.MicroTimestamp", 2**63 - 2),
        ("int64", "io.debezium.time.Timestamp", 9223372036825200000),  # the micros, not the millis
        ("int32", "io.debezium.time.Date", -2147472690),
        ("int32", "io.debezium.time.Date", 2**31 - 1),
        ("string", "io.debezium.time.ZonedTimestamp", "+294276-12-31T23:59:59.999999Z"),
        ("string", "io.debezium.time.ZonedTimestamp", "+294247-01-10T04:00:25.2Z"),  # a real year
        ("string", "io.debezium.time.ZonedTimestamp", "Infinity"),
    ],
)
def test_any_other_value_out_of_range_stays_a_decode_error(type_, logical, sent):
    with pytest.raises(DecodeError, match="column 'c'"):
        conv(type_, logical)(sent)


def test_nanos_next_to_debeziums_infinity_are_a_date_in_2262():
    """Long.MAX_VALUE nanos is in Python's range: only the exact value is 'infinity'."""
    nano = conv("int64", "io.debezium.time.NanoTimestamp")
    assert nano(2**63 - 1001) == datetime(2262, 4, 11, 23, 47, 16, 854774)


def test_zoned_timestamp():
    c = conv("string", "io.debezium.time.ZonedTimestamp")
    assert c("2024-02-29T23:59:59.5Z") == datetime(2024, 2, 29, 23, 59, 59, 500000, tzinfo=UTC)
    assert c("1969-07-20T20:17:40Z") == datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC)
    assert c(None) is None
    with pytest.raises(DecodeError, match="ZonedTimestamp"):
        c("yesterday")


def test_dates():
    for name in ("io.debezium.time.Date", "org.apache.kafka.connect.data.Date"):
        c = conv("int32", name)
        assert c(0) == date(1970, 1, 1)
        assert c(-3653) == date(1960, 1, 1)
        assert c(19782) == date(2024, 2, 29)
        assert c(None) is None


def test_times():
    assert conv("int64", "io.debezium.time.MicroTime")(34200000001) == time(9, 30, 0, 1)
    assert conv("int32", "io.debezium.time.Time")(64800000) == time(18, 0)
    assert conv("int32", "org.apache.kafka.connect.data.Time")(1) == time(0, 0, 0, 1000)
    assert conv("int64", "io.debezium.time.NanoTime")(1_500) == time(0, 0, 0, 1)
    assert conv("string", "io.debezium.time.ZonedTime")("10:15:30.25Z") == time(
        10, 15, 30, 250000, tzinfo=UTC
    )
    with pytest.raises(DecodeError, match="24:00"):
        conv("int64", "io.debezium.time.MicroTime")(86_400_000_000)


def test_durations():
    c = conv("int64", "io.debezium.time.MicroDuration")
    assert c(-90061000001) == -timedelta(days=1, hours=1, minutes=1, seconds=1, microseconds=1)
    i = conv("string", "io.debezium.time.Interval")
    assert i("P1Y2M3DT4H5M6.78S") == PgInterval(months=14, days=3, microseconds=14_706_780_000)
    assert i("P-1Y0M-3DT-4H0M0S") == PgInterval(months=-12, days=-3, microseconds=-14_400_000_000)
    assert parse_iso_interval("PT0.000001S").microseconds == 1
    with pytest.raises(DecodeError, match="Interval"):
        i("one week")


def test_text_like_types_and_toast():
    assert conv("string", "io.debezium.data.Uuid")("9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44") == UUID(
        "9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44"
    )
    for name in (None, "io.debezium.data.Json", "io.debezium.data.Enum", "io.debezium.data.Xml"):
        c = conv("string", name)
        assert c('{"a": 1}') == '{"a": 1}'
        assert c(PH) is UNAVAILABLE
        assert c(None) is None


def test_bytes_and_bits():
    b = conv("bytes")
    assert b("3q2+7w==") == b"\xde\xad\xbe\xef"
    assert b(PH_B64) is UNAVAILABLE
    bits = conv("bytes", "io.debezium.data.Bits", parameters={"length": "5"})
    assert bits("Cw==") == 0b01011
    assert bits(base64.b64encode(bytes([0x01, 0x02])).decode()) == 0x0201  # little-endian


def test_floats_accept_jsonconverter_special_values():
    c = conv("float64")
    assert c(1.5) == 1.5
    assert c("Infinity") == float("inf")
    assert c("NaN") != c("NaN")


def test_arrays_convert_elements_and_detect_toast():
    tags = conv("array", items=ColumnType("string"))
    assert tags(["a", None]) == ["a", None]
    assert tags([PH]) is UNAVAILABLE
    ints = conv("array", items=ColumnType("int32"))
    assert ints([1, -2]) == [1, -2]
    assert ints(list(PH.encode())) is UNAVAILABLE
    dates = conv("array", items=ColumnType("int32", "io.debezium.time.Date"))
    assert dates([-1, None]) == [date(1969, 12, 31), None]
    decs = conv("array", items=ColumnType("bytes", DEC, parameters={"scale": "1"}))
    assert decs(["/w=="]) == [Decimal("-0.1")]


def test_custom_placeholder_from_config():
    ph = Placeholder.from_config("hex:00ff")
    assert ph.raw == b"\x00\xff"
    assert ph.number_array == [0, -1]


def test_bad_raw_value_names_column_and_type_and_keeps_the_value_apart():
    expected = r"^column 'c' \(string io.debezium.data.Uuid\): cannot convert the str value: ValueError$"
    with pytest.raises(DecodeError, match=expected) as caught:
        conv("string", "io.debezium.data.Uuid")("123-45-6789")
    assert (caught.value.column, caught.value.value) == ("c", "123-45-6789")
    assert caught.value.with_data().endswith("(value: '123-45-6789')")  # for readers cleared to see it


SECRET = "123-45-6789"  # what a column value may be: the messages must not quote it


@pytest.mark.parametrize(
    ("column_type", "raw"),
    [
        (ColumnType("string", "io.debezium.data.Uuid"), SECRET),
        (ColumnType("string", "io.debezium.time.ZonedTimestamp"), SECRET),
        (ColumnType("string", "io.debezium.time.ZonedTime"), SECRET),
        (ColumnType("string", "io.debezium.time.IsoDate"), SECRET),
        (ColumnType("string", "io.debezium.time.Interval"), SECRET),
        (ColumnType("int64", "io.debezium.time.MicroTimestamp"), SECRET),
        (ColumnType("int32", "io.debezium.time.Date"), SECRET),
        (ColumnType("int64", "io.debezium.time.MicroDuration"), SECRET),
        (ColumnType("float64"), SECRET),
        (ColumnType("bytes", DEC, parameters={"scale": "2"}), SECRET),
        (ColumnType("bytes"), SECRET),
        (ColumnType("struct", "io.debezium.data.VariableScaleDecimal"), {"scale": SECRET, "value": "AQ=="}),
        (ColumnType("struct", fields=(("a", ColumnType("string")),)), SECRET),
        (
            ColumnType("map", keys=ColumnType("string"), values=ColumnType("int32", "io.debezium.time.Date")),
            {"k": SECRET},
        ),
    ],
)
def test_conversion_errors_never_quote_the_value(column_type, raw):
    # e.g. int() of the VariableScaleDecimal scale says "invalid literal for int() with base 10: '...'"
    with pytest.raises(DecodeError) as caught:
        make_converter(column_type, column="ssn")(raw)
    assert SECRET not in str(caught.value) and "ssn" in str(caught.value)
    assert SECRET in caught.value.with_data()


def test_unknown_logical_type_falls_back_to_physical():
    assert conv("string", "com.example.Custom")("x") == "x"
    with pytest.raises(DecodeError, match="unknown Kafka Connect type"):
        conv("decimal")


def test_a_negative_scale_numeric_is_the_whole_number_debezium_scaled_up():
    """numeric(5,-2) (PostgreSQL 15+): Debezium 3.6.1 states scale 2046 (the typmod's 11 bits) and
    sends 1234600 scaled to it. The value is 1234600, not 1234600.000... with 2046 places, whose
    text would be thousands of characters and which no Avro decimal could hold."""
    c = conv("bytes", DEC, parameters={"scale": "2046", "connect.decimal.precision": "5"})

    def scaled(whole: int) -> str:  # as Debezium sends it: the unscaled BigInteger's bytes, base64
        raw = whole * 10**2046
        return base64.b64encode(raw.to_bytes((raw.bit_length() + 8) // 8, "big", signed=True)).decode()

    value = c(scaled(1234600))
    assert value == Decimal(1234600) and value.as_tuple().exponent == 0 and str(value) == "1234600"
    assert c(scaled(-500)) == Decimal(-500)
    assert c(None) is None and c(PH_B64) is UNAVAILABLE
    with pytest.raises(DecodeError, match="not a whole number"):
        c(base64.b64encode((7).to_bytes(1, "big")).decode())


def test_arrays_of_decimals_timestamps_and_enums_convert_each_element():
    """Shapes of the items Debezium 3.6.1 writes for numeric(8,2)[], timestamp(3)[], timestamp[]."""
    scale_2 = {"scale": "2", "connect.decimal.precision": "8"}
    decimals = conv("array", items=ColumnType("bytes", DEC, parameters=scale_2))
    assert decimals(["ALxhTg==", None]) == [Decimal("123456.78"), None]
    millis = conv("array", items=ColumnType("int64", "io.debezium.time.Timestamp"))
    assert millis([1709208000500]) == [datetime(2024, 2, 29, 12, 0, 0, 500000)]
    micros = conv("array", items=ColumnType("int64", "io.debezium.time.MicroTimestamp"))
    assert micros([-14182939876544, None]) == [datetime(1969, 7, 20, 20, 17, 40, 123456), None]
    enums = conv("array", items=ColumnType("string", "io.debezium.data.Enum", optional=False))
    assert enums(["calm", "on fire"]) == ["calm", "on fire"]


def test_a_scale_no_column_can_have_is_not_taken_for_a_negative_one():
    """Only 1001..2047 state a negative scale: a garbled record's scale of 10**20 made the converter
    compute 10**(10**20) (the fuzz test's timeout); it is read as that scale, as before: a decode
    error, at once."""
    c = conv("bytes", DEC, parameters={"scale": str(10**20), "connect.decimal.precision": "12"})
    with pytest.raises(DecodeError):
        c("AQ==")
    assert conv("bytes", DEC, parameters={"scale": "2048"})("AQ==") == Decimal(1).scaleb(-2048)
