"""The start-up gate against confluent-kafka's mock registry: refuse, register, or use pinned ids."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from eventbus.contracts.collect import collect_contracts, load_specs
from eventbus.contracts.gate import check_contracts, startup_gate
from eventbus.errors import ServiceUnavailableError
from eventbus.events.avro import RegistryMode, connect_registry
from eventbus.events.errors import IncompatibleSchemaError, SchemaRegistryError
from eventbus.events.schema_form import fingerprint
from eventbus.events.schema_lock import SchemaLock
from eventbus.mapping.compiler import compile_mapping
from tests.unit.contracts.conftest import edit, edit_schema


def _versions(registry: SchemaRegistryClient) -> dict[str, list[int]]:
    return {subject: registry.get_versions(subject) for subject in registry.get_subjects()}


def _retype(sample: Path, field: str, new_type: str) -> None:
    def change(schema: dict) -> None:
        for f in schema["fields"]:
            if f["name"] == field:
                f["type"] = new_type

    edit_schema(sample / "schemas" / "claim_withdrawn.avsc", change)


def test_development_mode_registers_every_subject_once(sample: Path, registry: SchemaRegistryClient) -> None:
    compiled = [compile_mapping(spec) for spec in load_specs([sample])]
    ids = startup_gate(compiled, registry, RegistryMode.AUTO_REGISTER)
    topics = ["claim_milestone_reached", "claim_withdrawn"]
    topics += ["contention_classified", "decision_letter_available"]
    assert set(ids) == {f"{topic}-{part}" for topic in topics for part in ("key", "value")}
    before = _versions(registry)
    assert startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER) == ids
    assert _versions(registry) == before  # a restart registers nothing new


def test_an_incompatible_change_is_refused_with_its_explanation(
    sample: Path, registry: SchemaRegistryClient
) -> None:
    startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER)
    before = _versions(registry)
    _retype(sample, "withdrawn_at_ms", "string")

    with pytest.raises(IncompatibleSchemaError) as caught:
        startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER)
    message = str(caught.value)
    assert "claim_withdrawn-value: INCOMPATIBLE with version 1 under BACKWARD" in message
    assert "field withdrawn_at_ms: long → string: not a promotable type change" in message
    assert str(sample / "claim_withdrawn.yaml") in message
    assert caught.value.exit_code == 1
    assert _versions(registry) == before  # refused before registering anything


def test_a_new_required_field_breaks_backward_consumers(sample: Path, registry: SchemaRegistryClient) -> None:
    startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER)
    edit_schema(
        sample / "schemas" / "claim_withdrawn.avsc",
        lambda s: s["fields"].append({"name": "reason", "type": "string"}),
    )
    edit(
        sample / "claim_withdrawn.yaml",
        "    withdrawn_at_ms: source.ts_ms",
        "    withdrawn_at_ms: source.ts_ms\n    reason: \"'deleted'\"",
    )
    results = check_contracts(registry, collect_contracts(load_specs([sample])))
    broken = [r for r in results if not r.compatible]
    assert [r.subject for r in broken] == ["claim_withdrawn-value"]
    assert [str(i) for i in broken[0].issues] == [
        "field reason: added without a default (events written with the old schema lack it)"
    ]


def test_removing_a_required_field_is_caught_under_forward_and_full(
    sample: Path, registry: SchemaRegistryClient
) -> None:
    startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER)
    edit_schema(
        sample / "schemas" / "claim_withdrawn.avsc",
        lambda s: s.update(fields=[f for f in s["fields"] if f["name"] != "withdrawn_at_ms"]),
    )
    mapping = sample / "claim_withdrawn.yaml"
    edit(mapping, "    withdrawn_at_ms: source.ts_ms\n", "")
    edit(mapping, ", withdrawn_at_ms: 1767700000000}", "}")
    contracts = collect_contracts(load_specs([sample]))
    # Under BACKWARD removing a field is allowed (upgraded consumers simply stop reading it)...
    assert all(r.compatible for r in check_contracts(registry, contracts))
    # ...under FULL, consumers still on the old schema need it: refused.
    with pytest.raises(IncompatibleSchemaError, match="field withdrawn_at_ms: removed"):
        startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER, default_level="FULL")


def test_production_mode_uses_pinned_ids_and_never_registers(
    sample: Path, registry: SchemaRegistryClient
) -> None:
    specs = load_specs([sample])
    registered = startup_gate(specs, registry, RegistryMode.AUTO_REGISTER)
    lock = SchemaLock()
    for contract in collect_contracts(specs):
        for subject, schema in contract.subjects():
            lock.pin(subject, registered[subject], fingerprint(schema))
    before = _versions(registry)
    assert startup_gate(load_specs([sample]), registry, RegistryMode.PINNED, lock) == registered
    assert _versions(registry) == before


def test_production_mode_refuses_unpinned_or_changed_schemas_without_registering(
    sample: Path, registry: SchemaRegistryClient
) -> None:
    startup_gate(load_specs([sample]), registry, RegistryMode.AUTO_REGISTER)
    before = _versions(registry)
    with pytest.raises(SchemaRegistryError, match="no schema id pinned"):
        startup_gate(load_specs([sample]), registry, RegistryMode.PINNED, SchemaLock())
    with pytest.raises(SchemaRegistryError, match="needs the schema lock file"):
        startup_gate(load_specs([sample]), registry, RegistryMode.PINNED, None)
    _retype(sample, "withdrawn_at_ms", "string")
    with pytest.raises(IncompatibleSchemaError, match="withdrawn_at_ms: long → string"):
        startup_gate(load_specs([sample]), registry, RegistryMode.PINNED, SchemaLock())
    assert _versions(registry) == before


def test_an_unreachable_registry_is_one_clear_error(sample: Path) -> None:
    unreachable = connect_registry("http://127.0.0.1:9/apis/ccompat/v7")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        startup_gate(load_specs([sample]), unreachable, RegistryMode.AUTO_REGISTER)
    assert "schema registry unreachable" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2
    assert time.monotonic() - started < 20  # one probe, not a retry storm per subject
