"""Backstage catalog entries and the AsyncAPI document generated from the sample domain, validated."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from eventbus.cli.main import app
from eventbus.contracts.catalog import (
    AVRO_FORMAT,
    asyncapi_document,
    catalog_entities,
    catalog_entity,
    entity_name,
)
from eventbus.contracts.collect import collect_contracts, load_specs
from eventbus.mapping.errors import MappingErrors
from tests.unit.contracts.conftest import edit, line_of

# Backstage's documented entity envelope (docs/features/software-catalog/descriptor-format): apiVersion
# and kind strings, metadata.name 1-63 characters of [a-zA-Z0-9] runs joined by one of -_. ;
# description a string; tags 1-63 of [a-z0-9:+#] runs joined by '-'; annotations string → string.
# The kinds that carry a lifecycle (Component, API) require spec.type, spec.lifecycle, spec.owner.
BACKSTAGE_EVENT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "backstage.io/v1alpha1"},
        "kind": {"const": "Event"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-zA-Z0-9]+([-_.][a-zA-Z0-9]+)*$", "maxLength": 63},
                "title": {"type": "string", "minLength": 1},
                "description": {"type": "string", "minLength": 1},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                "tags": {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "pattern": r"^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$",
                        "maxLength": 63,
                    },
                },
            },
        },
        "spec": {
            "type": "object",
            "required": ["type", "lifecycle", "owner", "topics"],
            "properties": {
                "type": {"const": "event"},
                "lifecycle": {"type": "string", "minLength": 1},
                "owner": {"type": "string", "minLength": 1},
                "topics": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "object", "required": ["topic"]},
                },
            },
        },
    },
}


def _load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


@pytest.fixture
def entities(sample: Path) -> dict[str, dict[str, Any]]:
    entities = [catalog_entity(c) for c in collect_contracts(load_specs([sample]))]
    return {e["metadata"]["name"]: e for e in entities}


def test_every_sample_event_gets_a_valid_backstage_entity(entities: dict[str, dict[str, Any]]) -> None:
    assert sorted(entities) == [
        "claim-milestone-reached",
        "claim-withdrawn",
        "contention-classified",
        "decision-letter-available",
    ]
    for entity in entities.values():
        jsonschema.validate(entity, BACKSTAGE_EVENT)


def test_an_entity_carries_owner_lifecycle_topic_schemas_and_sensitivity(
    entities: dict[str, dict[str, Any]],
) -> None:
    letter = entities["decision-letter-available"]
    spec = letter["spec"]
    assert (spec["owner"], spec["lifecycle"], spec["domain"]) == ("claims-team", "production", "claims")
    assert spec["topics"] == [
        {"topic": "decision_letter_available", "partitions": 1, "cleanupPolicy": "delete",
         "retentionMs": 7 * 86_400_000}
    ]  # fmt: skip
    assert spec["eventTypes"] == ["decision_letter_available.v2"]
    assert letter["metadata"]["description"].startswith("The decision letter of a Veteran's own")
    assert json.loads(spec["schema"]["key"])["name"] == "ClaimKey"
    assert json.loads(spec["schema"]["value"])["name"] == "DecisionLetterAvailable"
    assert spec["schema"]["valueSubject"] == "decision_letter_available-value"
    fields = {(f["part"], f["name"]): f for f in spec["fields"]}
    participant = fields[("value", "veteran_participant_id")]
    assert participant["sensitivity"] == "pii"
    assert participant["protection"].startswith("as is (allowed by allow_pii")
    assert fields[("value", "actor_station")]["sensitivity"] == "internal"
    assert fields[("value", "program_type_code")]["sensitivity"] == "unclassified"
    assert "pii" in letter["metadata"]["tags"]
    assert "phi" in entities["contention-classified"]["metadata"]["tags"]


def test_hashed_fields_are_shown_as_protected(sample: Path) -> None:
    mapping = sample / "decision_letter_available.yaml"
    edit(mapping, "allow_pii: [veteran_participant_id]\n", "")
    edit(
        mapping,
        "veteran_participant_id: claim.veteran_participant_id",
        "veteran_participant_id: hash(claim.veteran_participant_id)",
    )
    edit(
        sample / "schemas" / "decision_letter_available.avsc",
        '{"name": "veteran_participant_id", "type": "long"}',
        '{"name": "veteran_participant_id", "type": "string"}',
    )
    contract = next(
        c for c in collect_contracts(load_specs([sample])) if c.topic == "decision_letter_available"
    )
    row = next(f for f in catalog_entity(contract)["spec"]["fields"] if f["name"] == "veteran_participant_id")
    assert (row["sensitivity"], row["protection"]) == ("pii", "hashed")


def test_a_deprecated_event_shows_its_removal_date(sample: Path) -> None:
    edit(
        sample / "claim_withdrawn.yaml",
        "lifecycle: development",
        "lifecycle: deprecated\nremoval_date: 2027-01-31",
    )
    contract = next(c for c in collect_contracts(load_specs([sample])) if c.topic == "claim_withdrawn")
    spec = catalog_entity(contract)["spec"]
    assert (spec["lifecycle"], spec["removalDate"]) == ("deprecated", "2027-01-31")


def test_the_catalog_needs_an_owner_and_one_owner_per_topic(sample: Path) -> None:
    mapping = sample / "claim_withdrawn.yaml"
    edit(mapping, "owner: claims-team\n", "")
    contract = next(c for c in collect_contracts(load_specs([sample])) if c.topic == "claim_withdrawn")
    with pytest.raises(MappingErrors, match="the catalog needs an 'owner'"):
        catalog_entity(contract)

    edit(mapping, "lifecycle: development", "owner: claims-team\nlifecycle: development")
    other = sample / "claim_withdrawn_again.yaml"
    other.write_text(
        mapping.read_text()
        .replace("name: claim_withdrawn", "name: claim_withdrawn_again")
        .replace("owner: claims-team", "owner: records-team")
    )
    contract = next(c for c in collect_contracts(load_specs([sample])) if c.topic == "claim_withdrawn")
    with pytest.raises(MappingErrors) as caught:
        catalog_entity(contract)
    (error,) = caught.value.errors
    assert (error.file, error.line) == (str(other), line_of(other, "owner: records-team"))
    assert "differs from 'claims-team'" in error.message


def test_entity_names_follow_backstage_rules() -> None:
    assert entity_name("decision_letter_available") == "decision-letter-available"
    with pytest.raises(ValueError, match="no valid Backstage entity name"):
        entity_name("x" * 64)


def test_the_asyncapi_document_validates_against_the_official_schema(
    sample: Path, asyncapi_schema: dict[str, Any]
) -> None:
    document = asyncapi_document(collect_contracts(load_specs([sample])))
    jsonschema.Draft7Validator(asyncapi_schema).validate(document)

    channel = document["channels"]["decision_letter_available"]
    assert channel["bindings"]["kafka"]["topic"] == "decision_letter_available"
    message = channel["messages"]["decision_letter_available"]
    assert message["payload"] == {"$ref": "#/components/schemas/decision_letter_available-value"}
    key = message["bindings"]["kafka"]["key"]
    assert key["properties"] == {"claim_id": {"type": "integer", "format": "int64"}}
    assert message["x-eventbus-sensitivity"]["veteran_participant_id"] == "pii"
    value = document["components"]["schemas"]["decision_letter_available-value"]
    assert value["schemaFormat"] == AVRO_FORMAT == "application/vnd.apache.avro;version=1.9.0"
    assert value["schema"]["name"] == "DecisionLetterAvailable"
    headers = document["components"]["schemas"]["CloudEventsHeaders"]
    assert {"ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_specversion", "eventbus_mapping",
            "eventbus_mapping_version"} <= set(headers["properties"])  # fmt: skip
    assert "ce_time" not in headers["required"]  # absent when the source time is unknown
    operation = document["operations"]["send_decision_letter_available"]
    assert operation["action"] == "send"
    assert operation["channel"] == {"$ref": "#/channels/decision_letter_available"}


def test_declared_topic_settings_reach_the_entity_and_the_asyncapi_binding(
    sample: Path, asyncapi_schema: dict[str, Any]
) -> None:
    edit(
        sample / "claim_withdrawn.yaml",
        "  topic: claim_withdrawn\n",
        "  topic: claim_withdrawn\n"
        "  topic_settings: {partitions: 6, replication_factor: 3, cleanup_policy: compact}\n",
    )
    contracts = collect_contracts(load_specs([sample]))
    withdrawn = next(c for c in contracts if c.topic == "claim_withdrawn")
    assert catalog_entity(withdrawn)["spec"]["topics"] == [
        {"topic": "claim_withdrawn", "partitions": 6, "replicationFactor": 3, "cleanupPolicy": "compact"}
    ]
    document = asyncapi_document(contracts)
    jsonschema.Draft7Validator(asyncapi_schema).validate(document)
    assert document["channels"]["claim_withdrawn"]["bindings"]["kafka"] == {
        "topic": "claim_withdrawn",
        "partitions": 6,
        "replicas": 3,
        "topicConfiguration": {"cleanup.policy": ["compact"]},
        "bindingVersion": "0.5.0",
    }
    letter = document["channels"]["decision_letter_available"]["bindings"]["kafka"]
    assert letter["topicConfiguration"] == {"cleanup.policy": ["delete"], "retention.ms": 7 * 86_400_000}
    assert "replicas" not in letter  # the broker's default: not promised


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d["operations"]["send_claim_withdrawn"].update(action="publish"),  # AsyncAPI 2 wording
        lambda d: d["components"]["schemas"]["claim_withdrawn-value"]["schema"].pop("fields"),  # bad Avro
        lambda d: d.update(asyncapi="2.6.0"),
    ],
)
def test_the_validation_would_catch_a_broken_document(
    sample: Path, asyncapi_schema: dict[str, Any], corrupt: Any
) -> None:
    document = copy.deepcopy(asyncapi_document(collect_contracts(load_specs([sample]))))
    corrupt(document)
    assert list(jsonschema.Draft7Validator(asyncapi_schema).iter_errors(document))


def test_the_cli_writes_entities_a_location_and_the_asyncapi_document(
    sample: Path, tmp_path: Path, asyncapi_schema: dict[str, Any]
) -> None:
    out = tmp_path / "catalog"
    result = CliRunner().invoke(
        app, ["catalog", str(sample), "--out", str(out), "--environment", "development"]
    )
    assert result.exit_code == 0, result.output
    entity = _load(out / "claim-withdrawn" / "catalog-info.yaml")
    jsonschema.validate(entity, BACKSTAGE_EVENT)
    assert entity["spec"]["topics"] == [
        {"topic": "claim_withdrawn", "environment": "development", "partitions": 1, "cleanupPolicy": "delete",
         "retentionMs": 7 * 86_400_000}
    ]  # fmt: skip
    location = _load(out / "catalog-info.yaml")
    assert location["kind"] == "Location"
    assert all((out / target).exists() for target in location["spec"]["targets"])
    jsonschema.Draft7Validator(asyncapi_schema).validate(_load(out / "asyncapi.yaml"))


def test_the_cli_reports_an_invalid_mapping_with_exit_1(sample: Path, tmp_path: Path) -> None:
    edit(sample / "decision_letter_available.yaml", "allow_pii: [veteran_participant_id]\n", "")
    result = CliRunner().invoke(app, ["catalog", str(sample), "--out", str(tmp_path / "c")])
    assert result.exit_code == 1
    assert "decision_letter_available.yaml:" in result.output and "marked pii" in result.output
    assert not (tmp_path / "c").exists()


def _withdrawn_row(sample: Path, field: str) -> dict[str, Any]:
    contract = next(c for c in collect_contracts(load_specs([sample])) if c.topic == "claim_withdrawn")
    return next(f for f in catalog_entity(contract)["spec"]["fields"] if f["name"] == field)


@pytest.mark.parametrize(
    ("expression", "protection"),
    [
        ("mask(before.status)", "masked"),
        ("coalesce(hash(before.status), mask(before.status))", "hashed and masked"),
        ("\"'withdrawn'\"", "no source value (constants, true/false, the schema default)"),
        ("before.status == 'OPEN'", "no source value (constants, true/false, the schema default)"),
    ],
)
def test_the_catalog_says_how_a_personal_field_is_protected(
    sample: Path, expression: str, protection: str
) -> None:
    mapping = sample / "claim_withdrawn.yaml"
    edit(mapping, "last_status: internal}", "last_status: pii}")
    edit(mapping, "last_status: before.status", f"last_status: {expression}")
    if "==" in expression:
        edit(sample / "schemas" / "claim_withdrawn.avsc", '["null", "string"]', '["null", "boolean"]')
    row = _withdrawn_row(sample, "last_status")
    assert (row["sensitivity"], row["protection"]) == ("pii", protection)


def test_the_catalog_describes_every_writer_of_a_personal_field(sample: Path) -> None:
    other = sample / "claim_withdrawn_again.yaml"
    shutil.copy(sample / "claim_withdrawn.yaml", other)
    edit(other, "name: claim_withdrawn", "name: claim_withdrawn_again")
    edit(other, "last_status: internal}", "last_status: pii}")
    edit(other, "last_status: before.status", "last_status: hash(before.status)")
    # The first writer neither classifies nor maps the field: the schema's default (null) goes out
    edit(sample / "claim_withdrawn.yaml", "    last_status: before.status\n", "")
    edit(sample / "claim_withdrawn.yaml", ", last_status: internal}", "}")
    edit(sample / "claim_withdrawn.yaml", ", last_status: UNDER_REVIEW", "")
    row = _withdrawn_row(sample, "last_status")
    assert row["protection"] == "hashed; no source value (constants, true/false, the schema default)"


def test_the_cli_reports_every_mapping_without_an_owner_in_one_run(sample: Path, tmp_path: Path) -> None:
    """Not only the first topic's: the operator fixes them all, each at its file:line."""
    missing = [sample / "claim_withdrawn.yaml", sample / "decision_letter_available.yaml"]
    for mapping in missing:
        edit(mapping, "owner: claims-team\n", "")
    result = CliRunner().invoke(app, ["catalog", str(sample), "--out", str(tmp_path / "c")])
    assert result.exit_code == 1
    for mapping in missing:
        where = f"{mapping}:{line_of(mapping, f'name: {mapping.stem}')}:"
        assert result.output.count(where) == 1, result.output
    assert result.output.count("the catalog needs an 'owner'") == 2
    assert not (tmp_path / "c").exists()


def test_a_mapping_writing_two_topics_is_told_of_its_missing_owner_once(sample: Path) -> None:
    mapping = sample / "claim_withdrawn.yaml"
    edit(mapping, "owner: claims-team\n", "")
    contract = next(c for c in collect_contracts(load_specs([sample])) if c.topic == "claim_withdrawn")
    twice = [contract, dataclasses.replace(contract, topic="claim_withdrawn_copy")]
    with pytest.raises(MappingErrors) as caught:
        catalog_entities(twice)
    (error,) = caught.value.errors
    assert (error.file, error.line) == (str(mapping), line_of(mapping, "name: claim_withdrawn"))
