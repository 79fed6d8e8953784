from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from eventbus.events.avro import AvroEncoder, AvroEventSerializer, RegistryMode, TopicSchemas
from eventbus.events.errors import SchemaRegistryError, SerializationFailed
from eventbus.events.mismatch import find_mismatch
from eventbus.events.model import CuratedEvent
from eventbus.events.schema_form import as_json, fingerprint
from eventbus.events.schema_lock import SchemaLock

from .conftest import KEY_SCHEMA, VALUE_SCHEMA

TOPIC = "decision_letter_availability"
UPDATED = dt.datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=dt.UTC)


def _value(**overrides: Any) -> dict[str, Any]:
    value = {
        "ClaimId": 600123456,
        "ClaimTypeCode": "010LCMN",
        "ClaimLifecycleStatus": "Authorized",
        "Amount": Decimal("-1234.50"),
        "DateClosed": dt.date(2024, 2, 29),
        "DateUpdated": UPDATED,
    }
    value.update(overrides)
    return value


def _event(value: dict[str, Any] | None = None) -> CuratedEvent:
    return CuratedEvent(
        mapping="decision_letter",
        mapping_version=3,
        topic=TOPIC,
        key={"ClaimId": 600123456},
        value=value or _value(),
        event_id="1b4e28ba-2fa1-51d2-883f-0016d3cca427",
        event_type="gov.va.claims.decision_letter_availability",
        event_source="/cdc/claims",
        subject="claim/600123456",
        time_ms=1709296245123,
    )


def _topics(value_schema: dict[str, Any] = VALUE_SCHEMA) -> list[TopicSchemas]:
    return [TopicSchemas(TOPIC, KEY_SCHEMA, value_schema)]


def _decode(registry: SchemaRegistryClient, data: bytes, field: str) -> Any:
    # confluent-kafka's own deserializer: proves a plain consumer reads what we write.
    deserializer = AvroDeserializer(registry)
    return deserializer(data, SerializationContext(TOPIC, getattr(MessageField, field)))


def test_round_trip_through_confluent_deserializer(registry: SchemaRegistryClient) -> None:
    serializer = AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.AUTO_REGISTER)
    record = serializer.serialize(_event())

    assert _decode(registry, record.key, "KEY") == {"ClaimId": 600123456}
    assert _decode(registry, record.value, "VALUE") == _value()


def test_wire_format_prefix_carries_the_registered_ids(registry: SchemaRegistryClient) -> None:
    serializer = AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.AUTO_REGISTER)
    record = serializer.serialize(_event())
    key_id = registry.get_latest_version(f"{TOPIC}-key").schema_id
    value_id = registry.get_latest_version(f"{TOPIC}-value").schema_id

    assert key_id != value_id
    assert record.key[:5] == b"\x00" + key_id.to_bytes(4, "big")
    assert record.value[:5] == b"\x00" + value_id.to_bytes(4, "big")
    assert serializer.schema_id(TOPIC, "value") == value_id


@pytest.mark.parametrize(
    "overrides",
    [
        {"ClaimLifecycleStatus": None, "DateClosed": None},
        {"Amount": Decimal("0.01"), "DateClosed": dt.date(1969, 12, 31)},
        {"Amount": Decimal("9999999999.99"), "DateUpdated": dt.datetime(1970, 1, 1, tzinfo=dt.UTC)},
        {"Amount": Decimal("5")},  # fewer fraction digits than the scale are padded, not rejected
    ],
)
def test_logical_types_and_nullable_unions_round_trip(
    registry: SchemaRegistryClient, overrides: dict[str, Any]
) -> None:
    serializer = AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.AUTO_REGISTER)
    decoded = _decode(registry, serializer.serialize(_event(_value(**overrides))).value, "VALUE")
    assert decoded == _value(**overrides)


def test_fast_path_writes_the_same_bytes_as_schemaless_writer() -> None:
    encoder = AvroEncoder(topic=TOPIC, part="value", schema=VALUE_SCHEMA, schema_id=7)
    reference = io.BytesIO()
    fastavro.schemaless_writer(reference, fastavro.parse_schema(VALUE_SCHEMA), _value())
    assert encoder.encode(_value()) == b"\x00\x00\x00\x00\x07" + reference.getvalue()


@pytest.mark.parametrize(
    ("overrides", "field", "expected", "actual"),
    [
        ({"ClaimTypeCode": 10}, "ClaimTypeCode", "string", "int"),
        ({"ClaimId": "600123456"}, "ClaimId", "long", "str"),
        ({"ClaimLifecycleStatus": 5}, "ClaimLifecycleStatus", "null | string", "int"),
        ({"DateClosed": dt.time(1, 2)}, "DateClosed", "null | date (int)", "time"),
        ({"Amount": 1234.5}, "Amount", "decimal(12,2)", "float"),
        ({"Amount": Decimal("1.005")}, "Amount", "decimal(12,2)",
         "Decimal with 3 decimal places (the field holds 2; round() it)"),
        ({"Amount": Decimal("12345678901.50")}, "Amount", "decimal(12,2)",
         "Decimal with 11 digits before the point (the field holds 10)"),
        ({"Surprise": "x"}, "Surprise", "no such field in the schema", "str"),
    ],
)
def test_value_that_does_not_fit_names_field_and_types_but_not_the_value(
    overrides: dict[str, Any], field: str, expected: str, actual: str
) -> None:
    encoder = AvroEncoder(topic=TOPIC, part="value", schema=VALUE_SCHEMA, schema_id=7)
    with pytest.raises(SerializationFailed) as caught:
        encoder.encode(_value(**overrides))
    error = caught.value
    assert (error.path, error.expected, error.actual_type) == (field, expected, actual)
    assert str(error) == f"{TOPIC} value: field {field}: expected {expected}, got a value of type {actual}"
    assert error.__cause__ is None and error.__suppress_context__
    offending = overrides[field]
    assert str(offending) not in str(error) or len(str(offending)) < 2  # the value itself never appears
    assert isinstance(error, SerializationError)  # catchable as the Kafka client's error too


def test_missing_field_without_default_is_reported() -> None:
    value = _value()
    del value["ClaimTypeCode"]
    assert find_mismatch(VALUE_SCHEMA, value) == ("ClaimTypeCode", "string", "nothing (field missing)")
    del value["DateClosed"]  # has a default: allowed
    value["ClaimTypeCode"] = "x"
    assert find_mismatch(VALUE_SCHEMA, value) is None


def test_unknown_topic_is_a_clear_error(registry: SchemaRegistryClient) -> None:
    serializer = AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.AUTO_REGISTER)
    event = _event()
    other = CuratedEvent(**{**{f: getattr(event, f) for f in event.__slots__}, "topic": "elsewhere"})
    with pytest.raises(SchemaRegistryError, match="'elsewhere', which has no schemas loaded"):
        serializer.serialize(other)


# --- pinned mode ---------------------------------------------------------------------------------


def _bus_team_registers(registry: SchemaRegistryClient, value_schema: dict[str, Any]) -> SchemaLock:
    """What the bus team does in production: register, hand out ids, which we pin."""
    lock = SchemaLock()
    for subject, schema in ((f"{TOPIC}-key", KEY_SCHEMA), (f"{TOPIC}-value", value_schema)):
        schema_id = registry.register_schema(subject, Schema(as_json(schema), "AVRO"))
        lock.pin(subject, schema_id, fingerprint(schema))
    return lock


def _versions(registry: SchemaRegistryClient) -> dict[str, list[int]]:
    return {s: sorted(registry.get_versions(s)) for s in registry.get_subjects()}


def test_pinned_mode_uses_lock_ids_and_never_registers(registry: SchemaRegistryClient) -> None:
    lock = _bus_team_registers(registry, VALUE_SCHEMA)
    before = _versions(registry)

    serializer = AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.PINNED, lock=lock)
    record = serializer.serialize(_event())

    assert _versions(registry) == before
    assert serializer.schema_id(TOPIC, "value") == lock.subjects[f"{TOPIC}-value"].schema_id
    assert _decode(registry, record.value, "VALUE") == _value()


def test_pinned_mode_on_an_empty_registry_registers_nothing(registry: SchemaRegistryClient) -> None:
    lock = SchemaLock()
    lock.pin(f"{TOPIC}-key", 41, fingerprint(KEY_SCHEMA))
    lock.pin(f"{TOPIC}-value", 42, fingerprint(VALUE_SCHEMA))
    with pytest.raises(SchemaRegistryError, match="pinned schema id 41 does not exist"):
        AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.PINNED, lock=lock)
    assert registry.get_subjects() == []


def test_stale_pin_is_detected_before_touching_the_registry(registry: SchemaRegistryClient) -> None:
    lock = _bus_team_registers(registry, VALUE_SCHEMA)
    changed = {
        **VALUE_SCHEMA,
        "fields": [*VALUE_SCHEMA["fields"], {"name": "Extra", "type": "int", "default": 0}],
    }
    with pytest.raises(SchemaRegistryError, match=r"changed since it was pinned to id \d+") as caught:
        AvroEventSerializer.from_registry(registry, _topics(changed), mode=RegistryMode.PINNED, lock=lock)
    assert "register the new schema and re-pin" in str(caught.value)
    assert registry.get_versions(f"{TOPIC}-value") == [1]


def test_pin_pointing_at_another_schema_is_refused(registry: SchemaRegistryClient) -> None:
    lock = _bus_team_registers(registry, VALUE_SCHEMA)
    # Fingerprint fresh but id wrong: e.g. a hand-edited lock pointing the value at the key's id.
    lock.pin(f"{TOPIC}-value", lock.subjects[f"{TOPIC}-key"].schema_id, fingerprint(VALUE_SCHEMA))
    with pytest.raises(SchemaRegistryError, match="holds a different schema than the mapping's"):
        AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.PINNED, lock=lock)


def test_a_pinned_schema_returned_without_its_text_is_refused(
    registry: SchemaRegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = _bus_team_registers(registry, VALUE_SCHEMA)
    # The client reads a registry answer without a "schema" field as a schema whose text is None.
    monkeypatch.setattr(registry, "get_schema", lambda schema_id, *args, **kwargs: Schema(None, "AVRO"))
    with pytest.raises(SchemaRegistryError, match=r"returned pinned schema id \d+ without its text"):
        AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.PINNED, lock=lock)


def test_pinned_mode_without_a_pin_says_what_to_do(registry: SchemaRegistryClient) -> None:
    with pytest.raises(SchemaRegistryError, match="no schema id pinned"):
        AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.PINNED, lock=SchemaLock())
    with pytest.raises(SchemaRegistryError, match="needs the schema lock file"):
        AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.PINNED)


def test_auto_register_is_idempotent(registry: SchemaRegistryClient) -> None:
    first = AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.AUTO_REGISTER)
    second = AvroEventSerializer.from_registry(registry, _topics(), mode=RegistryMode.AUTO_REGISTER)
    assert first.schema_id(TOPIC, "value") == second.schema_id(TOPIC, "value")
    assert registry.get_versions(f"{TOPIC}-value") == [1]


def test_a_url_that_is_no_registry_api_is_said_to_be_so() -> None:
    """A 404 without a registry's JSON error (a wrong path) said only 'code -1: Unknown Schema
    Registry Error'; a registry's own 404 (no such subject) keeps its words."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientError

    from eventbus.events.avro import registry_failure

    wrong_path = registry_failure(ClientError(404, -1, "Unknown Schema Registry Error: b''"), "lookup")
    assert "the URL does not lead to a schema registry's Confluent-compatible API (registry.url" in str(
        wrong_path
    )
    no_subject = registry_failure(ClientError(404, 40401, "Subject 'x' not found."), "lookup")
    assert str(no_subject) == "lookup: HTTP 404, code 40401: Subject 'x' not found."
