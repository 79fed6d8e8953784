"""Event contracts against the real local registry (Apicurio, Confluent-compatible API).

Each test copies the sample `claim_withdrawn` mapping into tmp_path under a fresh topic name (the
registry outlives the test run), registers it as version 1, then edits the copy.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from typer.testing import CliRunner

from eventbus.cli.main import app
from eventbus.contracts.collect import load_specs
from eventbus.contracts.gate import startup_gate
from eventbus.events.avro import AvroEventSerializer, RegistryMode, TopicSchemas, connect_registry
from eventbus.events.errors import IncompatibleSchemaError, SchemaRegistryError
from eventbus.events.schema_lock import load_lock
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack

SAMPLE = Path(__file__).resolve().parents[3] / "mappings" / "claims"


@pytest.fixture(scope="module")
def registry_url(stack: StackEndpoints) -> str:
    return stack.registry_url


@pytest.fixture
def registry(registry_url: str) -> SchemaRegistryClient:
    return connect_registry(registry_url)


@pytest.fixture
def topic() -> str:
    return f"it_contract_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mapping(tmp_path: Path, topic: str) -> Path:
    """claim_withdrawn.yaml alone in tmp_path/claims, writing `topic`."""
    folder = tmp_path / "claims"
    folder.mkdir()
    shutil.copytree(SAMPLE / "schemas", folder / "schemas")
    path = folder / "claim_withdrawn.yaml"
    path.write_text(
        (SAMPLE / "claim_withdrawn.yaml").read_text().replace("topic: claim_withdrawn", f"topic: {topic}")
    )
    return path


def _schema_file(mapping: Path) -> Path:
    return mapping.parent / "schemas" / "claim_withdrawn.avsc"


def _change_schema(mapping: Path, change: Any) -> None:
    path = _schema_file(mapping)
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema))


def _retype(schema: dict[str, Any]) -> None:
    for field in schema["fields"]:
        if field["name"] == "withdrawn_at_ms":
            field["type"] = "string"


def _schema(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["schema", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _versions(registry: SchemaRegistryClient, topic: str) -> dict[str, list[int]]:
    return {s: registry.get_versions(s) for s in (f"{topic}-key", f"{topic}-value")}


def test_check_catches_an_incompatible_type_change(
    mapping: Path, topic: str, registry_url: str, registry: SchemaRegistryClient
) -> None:
    code, output = _schema("register", str(mapping), "--registry", registry_url)
    assert code == 0, output
    assert registry.get_compatibility(f"{topic}-value").upper() == "BACKWARD"

    _change_schema(mapping, _retype)
    code, output = _schema("check", str(mapping), "--registry", registry_url)
    assert code == 1, output
    assert (
        f"{topic}-value: INCOMPATIBLE with version 1 under BACKWARD (subject level; verdict by registry)"
        in output
    )
    assert "field withdrawn_at_ms: long → string: not a promotable type change" in output
    assert f"{topic}-key: compatible with version 1" in output


def test_check_catches_a_removed_required_field_under_full(
    mapping: Path, topic: str, registry_url: str
) -> None:
    code, output = _schema("register", str(mapping), "--registry", registry_url, "--compatibility", "FULL")
    assert code == 0, output

    _change_schema(
        mapping, lambda s: s.update(fields=[f for f in s["fields"] if f["name"] != "withdrawn_at_ms"])
    )
    text = mapping.read_text().replace("    withdrawn_at_ms: source.ts_ms\n", "")
    mapping.write_text(text.replace(", withdrawn_at_ms: 1767700000000}", "}"))
    code, output = _schema("check", str(mapping), "--registry", registry_url)
    assert code == 1, output
    assert f"{topic}-value: INCOMPATIBLE with version 1 under FULL" in output
    assert "field withdrawn_at_ms: removed, and the old schema has no default for it" in output


def test_check_catches_a_new_required_field(mapping: Path, topic: str, registry_url: str) -> None:
    assert _schema("register", str(mapping), "--registry", registry_url)[0] == 0
    _change_schema(mapping, lambda s: s["fields"].append({"name": "reason", "type": "string"}))
    mapping.write_text(
        mapping.read_text().replace(
            "    withdrawn_at_ms: source.ts_ms\n",
            "    withdrawn_at_ms: source.ts_ms\n    reason: \"'deleted'\"\n",
        )
    )
    code, output = _schema("check", str(mapping), "--registry", registry_url)
    assert code == 1, output
    assert "field reason: added without a default" in output


def test_register_pin_then_production_mode_uses_the_pinned_ids_and_never_registers(
    mapping: Path, topic: str, registry_url: str, registry: SchemaRegistryClient
) -> None:
    assert _schema("register", str(mapping), "--registry", registry_url)[0] == 0
    code, output = _schema("pin", str(mapping), "--registry", registry_url)
    assert code == 0, output
    lock = load_lock(mapping.parent / "schemas.lock.yaml")
    pinned = {s: lock.subjects[s].schema_id for s in (f"{topic}-key", f"{topic}-value")}
    assert pinned[f"{topic}-value"] == registry.get_latest_version(f"{topic}-value").schema_id
    before = _versions(registry, topic)

    code, output = _schema("verify", str(mapping), "--registry", registry_url)
    assert code == 0, output
    assert f"{topic}-value: schema id {pinned[f'{topic}-value']}" in output

    fresh = connect_registry(registry_url)
    ids = startup_gate(load_specs([mapping]), fresh, RegistryMode.PINNED, lock)
    assert ids == pinned
    schemas = TopicSchemas(
        topic,
        json.loads((mapping.parent / "schemas" / "claim_key.avsc").read_text()),
        json.loads(_schema_file(mapping).read_text()),
    )
    serializer = AvroEventSerializer([schemas], ids)
    assert serializer.schema_id(topic, "value") == pinned[f"{topic}-value"]

    # A changed schema in production: refused before anything is registered (there is no pin for it).
    _change_schema(
        mapping, lambda s: s["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    )
    with pytest.raises(SchemaRegistryError, match="changed since it was pinned"):
        startup_gate(load_specs([mapping]), fresh, RegistryMode.PINNED, lock)
    assert _versions(registry, topic) == before


def test_the_startup_gate_refuses_an_incompatible_mapping(
    mapping: Path, topic: str, registry_url: str, registry: SchemaRegistryClient
) -> None:
    ids = startup_gate(load_specs([mapping]), connect_registry(registry_url), RegistryMode.AUTO_REGISTER)
    assert ids[f"{topic}-value"] == registry.get_latest_version(f"{topic}-value").schema_id
    registry.set_compatibility(f"{topic}-value", "BACKWARD")  # Apicurio's global default is NONE
    before = _versions(registry, topic)

    _change_schema(mapping, _retype)
    with pytest.raises(IncompatibleSchemaError) as caught:
        startup_gate(load_specs([mapping]), connect_registry(registry_url), RegistryMode.AUTO_REGISTER)
    message = str(caught.value)
    assert f"{topic}-value: INCOMPATIBLE with version 1 under BACKWARD" in message
    assert "field withdrawn_at_ms: long → string" in message
    assert str(mapping) in message
    assert _versions(registry, topic) == before
