"""The start-up gate's registry contract: rollbacks, subjects under NONE, pins of another subject,
a registry failing half-way, and replicas starting together (a fake Apicurio over HTTP, or the mock)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from eventbus.contracts.collect import collect_contracts, load_specs
from eventbus.contracts.gate import startup_gate
from eventbus.errors import ServiceUnavailableError
from eventbus.events.avro import RegistryMode, register_schema, verify_pinned
from eventbus.events.compatibility import check_compatibility, ensure_level
from eventbus.events.errors import IncompatibleSchemaError, SchemaRegistryError
from eventbus.events.schema_form import as_json, fingerprint
from eventbus.events.schema_lock import SchemaLock
from tests.unit.contracts.conftest import edit_schema
from tests.unit.events.fake_registry import FakeRegistry, Fault

WITHDRAWN = "claim_withdrawn-value"


def _withdrawn(sample: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((sample / "schemas" / "claim_withdrawn.avsc").read_text())
    return schema


def _writes(fake: FakeRegistry) -> list[str]:
    return [r for r in fake.requests if r.startswith("PUT") or r.endswith("/versions")]


# --- 1. a rollback to an older version -----------------------------------------------------------


def test_going_back_to_a_version_the_latest_cannot_read_is_refused(
    sample: Path, registry: SchemaRegistryClient
) -> None:
    startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER)
    # Version 2 adds `note` with a default; version 3 drops the default (it still reads version 2's
    # data, which always has the field). The mappings still write version 1, which has no `note`:
    # consumers on version 3 cannot read it.
    v1 = _withdrawn(sample)
    note: dict[str, Any] = {"name": "note", "type": "string", "default": ""}
    v2 = {**v1, "fields": [*v1["fields"], note]}
    v3 = {**v1, "fields": [*v1["fields"], {"name": "note", "type": "string"}]}
    registry.register_schema(WITHDRAWN, Schema(as_json(v2), "AVRO"))
    registry.register_schema(WITHDRAWN, Schema(as_json(v3), "AVRO"))

    with pytest.raises(IncompatibleSchemaError) as caught:
        startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER)
    message = str(caught.value)
    assert f"{WITHDRAWN}: INCOMPATIBLE with version 3" in message
    assert "field note" in message
    assert "the mapping's schema is version 1 of the subject" in message
    assert "not its latest (version 3)" in message
    assert sorted(registry.get_versions(WITHDRAWN)) == [1, 2, 3]


def test_going_back_to_a_version_the_latest_reads_starts_with_its_id(
    sample: Path, registry: SchemaRegistryClient
) -> None:
    ids = startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER)
    v1 = _withdrawn(sample)
    # Harmless both ways round: a field added with a default, and one dropped (the latest ignores it
    # in the older data; the older schema could not read the latest's data, which is not asked).
    dropped = [f for f in v1["fields"] if f["name"] != "withdrawn_at_ms"]
    v2 = {**v1, "fields": [*dropped, {"name": "note", "type": ["null", "string"], "default": None}]}
    registry.register_schema(WITHDRAWN, Schema(as_json(v2), "AVRO"))

    assert startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER) == ids
    assert sorted(registry.get_versions(WITHDRAWN)) == [1, 2]  # nothing registered


# --- 2. a subject under NONE ---------------------------------------------------------------------


def test_under_none_the_gate_judges_a_change_under_backward_itself(sample: Path) -> None:
    fake = FakeRegistry(global_level="NONE")  # Apicurio's default: the registry accepts anything
    startup_gate(load_specs([sample]), fake.client(), RegistryMode.AUTO_REGISTER)
    edit_schema(
        sample / "schemas" / "claim_withdrawn.avsc",
        lambda s: [f.update(type="string") for f in s["fields"] if f["name"] == "withdrawn_at_ms"],
    )
    writes = _writes(fake)

    with pytest.raises(IncompatibleSchemaError) as caught:
        startup_gate(load_specs([sample]), fake.client(), RegistryMode.AUTO_REGISTER)
    message = str(caught.value)
    assert f"{WITHDRAWN}: INCOMPATIBLE with version 1 under BACKWARD (global level NONE" in message
    assert "field withdrawn_at_ms: long → string" in message
    assert _writes(fake) == writes  # refused before registering; the gate sets no level either
    assert len(fake.versions[WITHDRAWN]) == 1


def test_under_none_a_compatible_change_is_registered(sample: Path) -> None:
    fake = FakeRegistry(global_level="NONE")
    startup_gate(load_specs([sample]), fake.client(), RegistryMode.AUTO_REGISTER)
    edit_schema(
        sample / "schemas" / "claim_withdrawn.avsc",
        lambda s: s["fields"].append({"name": "note", "type": ["null", "string"], "default": None}),
    )
    result = check_compatibility(fake.client(), WITHDRAWN, _withdrawn(sample), judge_none=True)
    assert (result.level, result.judged_under, result.compatible) == ("NONE", "BACKWARD", True)
    assert result.registry_verdict is None  # NONE's verdict proves nothing: not asked
    assert not any(r.startswith("POST compatibility") for r in fake.requests)


# --- 3. a pinned id of another subject -----------------------------------------------------------


def _lock(subject: str, schema_id: int, schema: dict[str, Any]) -> SchemaLock:
    lock = SchemaLock()
    lock.pin(subject, schema_id, fingerprint(schema))
    return lock


def test_a_pinned_id_of_another_subject_is_refused(sample: Path, registry: SchemaRegistryClient) -> None:
    schema = _withdrawn(sample)
    foreign = registry.register_schema("someone_else-value", Schema(as_json(schema), "AVRO"))
    with pytest.raises(
        SchemaRegistryError, match=f"{WITHDRAWN}: pinned schema id {foreign} is not a version"
    ):
        verify_pinned(registry, _lock(WITHDRAWN, foreign, schema), WITHDRAWN, schema)
    own = registry.register_schema(WITHDRAWN, Schema(as_json(schema), "AVRO"))
    assert verify_pinned(registry, _lock(WITHDRAWN, own, schema), WITHDRAWN, schema) == own


def test_a_pinned_id_shared_by_subjects_counts_only_while_ours_is_not_deleted(sample: Path) -> None:
    fake = FakeRegistry()
    schema = _withdrawn(sample)
    shared_id = fake.register("someone_else-value", schema)
    assert fake.register(WITHDRAWN, schema) == shared_id  # ids are per content
    lock = _lock(WITHDRAWN, shared_id, schema)
    assert verify_pinned(fake.client(), lock, WITHDRAWN, schema) == shared_id
    assert f"GET schemas/ids/{shared_id}/versions" in fake.requests

    fake.deleted.add(WITHDRAWN)  # the schema text is still served by id: only the subject is gone
    with pytest.raises(SchemaRegistryError, match="not a version of this subject"):
        verify_pinned(fake.client(), lock, WITHDRAWN, schema)


def test_without_the_by_id_api_the_subjects_versions_decide(sample: Path) -> None:
    fake = FakeRegistry()
    schema = _withdrawn(sample)
    foreign = fake.register("someone_else-value", schema)
    fake.faults.append(Fault("GET", r"schemas/ids/\d+/versions", 404, times=9))
    with pytest.raises(SchemaRegistryError, match="not a version of this subject"):
        verify_pinned(fake.client(), _lock(WITHDRAWN, foreign, schema), WITHDRAWN, schema)
    assert f"GET subjects/{WITHDRAWN}/versions" in fake.requests


# --- 4. a registry failing while the verdict is read -------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", f"config/{WITHDRAWN}", 503),  # the subject's level
        ("GET", f"config/{WITHDRAWN}", None),
        ("GET", f"subjects/{WITHDRAWN}/versions/latest", 500),
        ("POST", f"compatibility/subjects/{WITHDRAWN}/versions/latest", 503),  # the verdict
        ("POST", f"compatibility/subjects/{WITHDRAWN}/versions/latest", None),
    ],
)
def test_a_registry_failing_while_the_verdict_is_read_is_waited_for(
    sample: Path, method: str, path: str, status: int | None
) -> None:
    fake = FakeRegistry()
    schema = _withdrawn(sample)
    fake.register(WITHDRAWN, schema)
    fake.faults.append(Fault(method, path, status))
    # ServiceUnavailableError is what the service waits out; never a default or a final refusal.
    with pytest.raises(ServiceUnavailableError) as caught:
        check_compatibility(fake.client(), WITHDRAWN, schema)
    assert ("HTTP 50" if status else "ConnectError") in str(caught.value)
    assert check_compatibility(fake.client(), WITHDRAWN, schema).registry_verdict is True  # it is back


# --- replicas starting together --------------------------------------------------------------------


def test_a_level_set_first_by_a_concurrent_replica_counts_as_set(sample: Path) -> None:
    fake = FakeRegistry(global_level="NONE")
    fake.before_set_level = lambda subject: fake.levels.setdefault(subject, "BACKWARD")
    ensure_level(fake.client(), WITHDRAWN, "BACKWARD")  # Apicurio answered 409: the rule exists
    assert fake.requests == [f"PUT config/{WITHDRAWN}", f"GET config/{WITHDRAWN}"]

    fake = FakeRegistry(global_level="NONE")
    fake.before_set_level = lambda subject: fake.levels.setdefault(subject, "FULL")
    with pytest.raises(SchemaRegistryError, match="level is now FULL"):
        ensure_level(fake.client(), WITHDRAWN, "BACKWARD")


def test_a_schema_registered_first_by_a_concurrent_replica_counts_as_registered(sample: Path) -> None:
    fake = FakeRegistry()
    schema = _withdrawn(sample)
    theirs = fake.register(WITHDRAWN, schema)
    fake.faults.append(Fault("POST", f"subjects/{WITHDRAWN}/versions", 409))
    assert register_schema(fake.client(), WITHDRAWN, schema) == theirs

    other = {**schema, "fields": [*schema["fields"], {"name": "x", "type": "long"}]}
    fake.faults.append(Fault("POST", f"subjects/{WITHDRAWN}/versions", 409))
    with pytest.raises(IncompatibleSchemaError):
        register_schema(fake.client(), WITHDRAWN, other)


def test_replicas_starting_together_all_start(sample: Path) -> None:
    """Two replicas' gates interleaved subject by subject: whoever registers first, both get the ids."""
    fake = FakeRegistry(global_level="NONE")
    specs = load_specs([sample])
    first = startup_gate(specs, fake.client(), RegistryMode.AUTO_REGISTER)
    # The second replica looked the schemas up before the first registered them: its registration
    # races. Simulated by its registrations answering 409 while the schemas are there.
    subjects = [s for c in collect_contracts(specs) for s, _ in c.subjects()]
    fake.faults += [Fault("POST", f"subjects/{s}/versions", 409) for s in subjects]
    fake.faults += [Fault("POST", f"subjects/{s}", 404) for s in subjects]  # its lookups: not yet
    assert startup_gate(specs, fake.client(), RegistryMode.AUTO_REGISTER) == first
    assert not any(r.startswith("PUT") for r in fake.requests)  # the gate writes no levels
