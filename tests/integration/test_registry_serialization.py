"""Curated-event serialization and schema governance against the real registry (Apicurio ccompat).

The registry URL comes from `EVENTBUS_REGISTRY_URL` (default: the local stack's Apicurio). To move to
the session `stack` fixture, make `registry_url` return `stack.registry_url`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext
from typer.testing import CliRunner

from eventbus.cli.schema_commands import app as schema_app
from eventbus.events.avro import (
    AvroEventSerializer,
    RegistryMode,
    TopicSchemas,
    connect_registry,
    curated_deserializer,
)
from eventbus.events.compatibility import check_compatibility
from eventbus.events.errors import SchemaRegistryError
from eventbus.events.model import CuratedEvent
from eventbus.events.schema_form import as_json, fingerprint
from eventbus.events.schema_lock import SchemaLock, load_lock
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack


KEY = {"type": "record", "name": "Key", "namespace": "it", "fields": [{"name": "ClaimId", "type": "long"}]}
VALUE = {
    "type": "record",
    "name": "Value",
    "namespace": "it",
    "fields": [
        {"name": "ClaimId", "type": "long"},
        {"name": "Count", "type": "int"},
        {"name": "Status", "type": ["null", "string"], "default": None},
        {"name": "Amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "Closed", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
        {"name": "Updated", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


@pytest.fixture(scope="module")
def registry_url(stack: StackEndpoints) -> str:
    return stack.registry_url


@pytest.fixture
def registry(registry_url: str) -> SchemaRegistryClient:
    return connect_registry(registry_url)


@pytest.fixture
def topic() -> str:
    # A fresh topic per test: the registry outlives the test run.
    return f"it_{uuid.uuid4().hex[:12]}"


def _with_field(schema: dict[str, Any], name: str, field_type: Any) -> dict[str, Any]:
    fields = [{**f, "type": field_type} if f["name"] == name else f for f in schema["fields"]]
    return {**schema, "fields": fields}


def _event(topic: str) -> CuratedEvent:
    value = {
        "ClaimId": 600123456,
        "Count": 3,
        "Status": "Authorized",
        "Amount": Decimal("-12.34"),
        "Closed": dt.date(2024, 2, 29),
        "Updated": dt.datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC),
    }
    return CuratedEvent(
        "m", 1, topic, {"ClaimId": 600123456}, value, "id-1", "t", "/s", "claim/600123456", 1709294400000
    )


def test_auto_register_round_trip_read_by_a_plain_consumer(registry_url: str, topic: str) -> None:
    producer_side = connect_registry(registry_url)
    serializer = AvroEventSerializer.from_registry(
        producer_side, [TopicSchemas(topic, KEY, VALUE)], mode=RegistryMode.AUTO_REGISTER
    )
    event = _event(topic)
    record = serializer.serialize(event)

    consumer_side = connect_registry(registry_url)  # fresh cache: ids must resolve via GET /schemas/ids
    deserializer = curated_deserializer(consumer_side)
    assert deserializer(record.key, SerializationContext(topic, MessageField.KEY)) == event.key
    assert deserializer(record.value, SerializationContext(topic, MessageField.VALUE)) == event.value


def test_pinned_mode_verifies_ids_and_registers_nothing(
    registry: SchemaRegistryClient, registry_url: str, topic: str
) -> None:
    lock = SchemaLock()
    for subject, schema in ((f"{topic}-key", KEY), (f"{topic}-value", VALUE)):
        lock.pin(
            subject, registry.register_schema(subject, Schema(as_json(schema), "AVRO")), fingerprint(schema)
        )
    before = {s: registry.get_versions(s) for s in (f"{topic}-key", f"{topic}-value")}

    fresh = connect_registry(registry_url)
    serializer = AvroEventSerializer.from_registry(
        fresh, [TopicSchemas(topic, KEY, VALUE)], mode=RegistryMode.PINNED, lock=lock
    )
    assert serializer.schema_id(topic, "value") == lock.subjects[f"{topic}-value"].schema_id
    assert {s: registry.get_versions(s) for s in before} == before

    changed = _with_field(VALUE, "Count", "long")
    with pytest.raises(SchemaRegistryError, match="changed since it was pinned"):
        AvroEventSerializer.from_registry(
            fresh, [TopicSchemas(topic, KEY, changed)], mode=RegistryMode.PINNED, lock=lock
        )
    assert registry.get_versions(f"{topic}-value") == before[f"{topic}-value"]


def test_compatibility_verdicts_and_explanations(registry: SchemaRegistryClient, topic: str) -> None:
    subject = f"{topic}-value"
    registry.register_schema(subject, Schema(as_json(VALUE), "AVRO"))
    registry.set_compatibility(subject, "BACKWARD")

    broken = check_compatibility(registry, subject, _with_field(VALUE, "Count", "string"))
    assert (broken.level, broken.level_source, broken.registry_verdict) == ("BACKWARD", "subject", False)
    assert [str(i) for i in broken.issues] == ["field Count: int → string: not a promotable type change"]

    promoted = check_compatibility(registry, subject, _with_field(VALUE, "Count", "long"))
    assert promoted.registry_verdict is True and promoted.issues == ()


def test_cli_register_check_pin(registry_url: str, topic: str, tmp_path: Path) -> None:
    key, value, broken = tmp_path / "k.avsc", tmp_path / "v.avsc", tmp_path / "v2.avsc"
    key.write_text(json.dumps(KEY))
    value.write_text(json.dumps(VALUE))
    broken.write_text(json.dumps(_with_field(VALUE, "Count", "string")))
    runner = CliRunner()
    common = ["--registry", registry_url]

    registered = runner.invoke(schema_app, ["register", "-t", f"{topic}={key},{value}", *common])
    assert registered.exit_code == 0, registered.output
    checked = runner.invoke(schema_app, ["check", "-t", f"{topic}={key},{broken}", *common])
    assert checked.exit_code == 1
    assert "field Count: int → string" in checked.output
    lock_path = tmp_path / "schemas.lock.yaml"
    pinned = runner.invoke(
        schema_app, ["pin", "-t", f"{topic}={key},{value}", "--lock", str(lock_path), *common]
    )
    assert pinned.exit_code == 0, pinned.output
    assert load_lock(lock_path).subjects[f"{topic}-value"].fingerprint == fingerprint(VALUE)


def test_the_local_registry_enforces_backward_globally_and_none_is_not_a_pass(
    registry: SchemaRegistryClient, registry_url: str, topic: str, tmp_path: Path
) -> None:
    """As on the bus: a subject without a level of its own is held to BACKWARD (the stack sets the
    registry's global level), and `schema check` refuses to call a NONE verdict a pass."""
    assert registry.get_compatibility().upper() == "BACKWARD"  # `stack up` set it
    subject = f"{topic}-value"
    registry.register_schema(subject, Schema(as_json(VALUE), "AVRO"))  # no subject level set
    broken = _with_field(VALUE, "Count", "string")

    result = check_compatibility(registry, subject, broken)
    assert (result.level, result.level_source, result.registry_verdict) == ("BACKWARD", "global", False)
    with pytest.raises(Exception, match=r"(?i)incompatible"):  # refused by the registry itself
        registry.register_schema(subject, Schema(as_json(broken), "AVRO"))

    key, value = tmp_path / "k.avsc", tmp_path / "v2.avsc"
    key.write_text(json.dumps(KEY))
    value.write_text(json.dumps(broken))
    common = ["check", "-t", f"{topic}={key},{value}", "--registry", registry_url]
    refused = CliRunner().invoke(schema_app, common)
    assert refused.exit_code == 1
    assert f"{subject}: INCOMPATIBLE with version 1 under BACKWARD (global level; verdict by registry)" in (
        refused.output
    )

    registry.set_compatibility(subject, "NONE")  # the subject opts out: the registry takes anything
    unenforced = CliRunner().invoke(schema_app, common)
    assert unenforced.exit_code == 1
    assert "under NONE, where the registry accepts any change" in unenforced.output
    allowed = CliRunner().invoke(schema_app, [*common, "--allow-none"])
    assert allowed.exit_code == 0, allowed.output
