"""Mapping files → one contract per curated topic; mappings sharing a topic must agree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from eventbus.contracts.collect import collect_contracts, default_lock_path, load_specs
from eventbus.errors import ConfigError
from eventbus.mapping.errors import MappingErrors
from tests.unit.contracts.conftest import edit, edit_schema, line_of


def test_the_sample_domain_gives_one_contract_per_topic(sample: Path) -> None:
    contracts = collect_contracts(load_specs([sample]))
    assert [c.topic for c in contracts] == [
        "claim_milestone_reached",
        "claim_withdrawn",
        "contention_classified",
        "decision_letter_available",
    ]
    withdrawn = contracts[1]
    assert withdrawn.subjects()[0][0] == "claim_withdrawn-key"
    assert withdrawn.subjects()[1][0] == "claim_withdrawn-value"
    assert withdrawn.key_schema["name"] == "ClaimKey"
    assert withdrawn.value_schema["name"] == "ClaimWithdrawn"
    assert [p.spec.name for p in withdrawn.producers] == ["claim_withdrawn"]


def _second_writer(sample: Path) -> Path:
    """A copy of claim_withdrawn.yaml under another name that writes the same topic."""
    other = sample / "claim_withdrawn_again.yaml"
    shutil.copy(sample / "claim_withdrawn.yaml", other)
    edit(other, "name: claim_withdrawn", "name: claim_withdrawn_again")
    return other


def test_mappings_that_agree_share_one_contract(sample: Path) -> None:
    _second_writer(sample)
    contracts = {c.topic: c for c in collect_contracts(load_specs([sample]))}
    producers = [p.spec.name for p in contracts["claim_withdrawn"].producers]
    assert producers == ["claim_withdrawn", "claim_withdrawn_again"]
    assert len(contracts["claim_withdrawn"].mappings) == 2


def test_mappings_that_disagree_on_a_topic_schema_are_errors_at_their_emit_block(sample: Path) -> None:
    other = _second_writer(sample)
    changed = sample / "schemas" / "claim_withdrawn_v2.avsc"
    shutil.copy(sample / "schemas" / "claim_withdrawn.avsc", changed)
    edit_schema(
        changed, lambda s: s["fields"].append({"name": "reason", "type": ["null", "string"], "default": None})
    )
    edit(other, "value_schema: schemas/claim_withdrawn.avsc", "value_schema: schemas/claim_withdrawn_v2.avsc")

    with pytest.raises(MappingErrors) as caught:
        collect_contracts(load_specs([sample]))
    (error,) = caught.value.errors
    assert error.file == str(other)
    assert error.line == line_of(other, "value_schema:")
    assert error.key_path == "emit[0].value_schema"
    assert "topic 'claim_withdrawn' gets a different value schema" in error.message
    assert str(sample / "claim_withdrawn.yaml") in error.message


def test_documentation_differences_are_not_disagreement(sample: Path) -> None:
    other = _second_writer(sample)
    documented = sample / "schemas" / "claim_withdrawn_doc.avsc"
    shutil.copy(sample / "schemas" / "claim_withdrawn.avsc", documented)
    edit_schema(documented, lambda s: s.update(doc="Another wording of the same contract."))
    edit(
        other, "value_schema: schemas/claim_withdrawn.avsc", "value_schema: schemas/claim_withdrawn_doc.avsc"
    )
    topics = [c.topic for c in collect_contracts(load_specs([sample]))]
    assert topics.count("claim_withdrawn") == 1


def test_invalid_mappings_are_reported_together(sample: Path) -> None:
    edit(sample / "claim_withdrawn.yaml", "on: delete", "on: remove")
    edit(sample / "contention_classified.yaml", "version: 1", "version: 0")
    with pytest.raises(MappingErrors) as caught:
        load_specs([sample])
    assert {Path(e.file or "").name for e in caught.value.errors} == {
        "claim_withdrawn.yaml",
        "contention_classified.yaml",
    }


def test_missing_paths_are_tool_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or folder"):
        load_specs([tmp_path / "nowhere"])
    with pytest.raises(ConfigError, match="no mapping files"):
        load_specs([tmp_path])


def test_the_lock_file_lives_beside_the_mappings(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(sample.parent)
    assert default_lock_path([Path("claims")]) == Path("claims/schemas.lock.yaml")
    assert default_lock_path([Path("claims/claim_withdrawn.yaml")]) == Path("claims/schemas.lock.yaml")
    # A lock file of the whole folder is found from a single mapping in a sub-folder.
    (sample / "sub").mkdir()
    shutil.move(sample / "claim_withdrawn.yaml", sample / "sub" / "claim_withdrawn.yaml")
    (sample / "schemas.lock.yaml").write_text("version: 1\nsubjects: {}\n")
    assert default_lock_path([Path("claims/sub/claim_withdrawn.yaml")]) == Path("claims/schemas.lock.yaml")


WITHDRAWN_SENSITIVITY = "sensitivity: {claim_id: internal, last_status: internal}"


def test_a_field_one_writer_masks_and_another_publishes_as_it_is_is_refused(sample: Path) -> None:
    other = _second_writer(sample)
    edit(other, WITHDRAWN_SENSITIVITY, "sensitivity: {claim_id: internal, last_status: pii}")
    edit(other, "last_status: before.status", "last_status: mask(before.status)")
    with pytest.raises(MappingErrors) as caught:
        collect_contracts(load_specs([sample]))
    (error,) = caught.value.errors
    first = sample / "claim_withdrawn.yaml"
    assert (error.file, error.line) == (str(first), line_of(first, "last_status: before.status"))
    assert error.key_path == "emit[0].fields.last_status"
    assert f"field 'last_status' is marked pii by {other} emit[0]" in error.message
    assert "publishes it as it is without marking it pii" in error.message
    assert "mark it pii here too" in (error.hint or "")


def test_a_field_one_writer_masks_and_another_allows_as_it_is_is_refused(sample: Path) -> None:
    other = _second_writer(sample)
    first = sample / "claim_withdrawn.yaml"
    for mapping in (first, other):
        edit(mapping, WITHDRAWN_SENSITIVITY, "sensitivity: {claim_id: internal, last_status: pii}")
    edit(first, "source: {", "allow_pii: [last_status]\nsource: {")
    edit(other, "last_status: before.status", "last_status: mask(before.status)")
    with pytest.raises(MappingErrors) as caught:
        collect_contracts(load_specs([sample]))
    (error,) = caught.value.errors
    assert (error.file, error.key_path) == (str(first), "emit[0].fields.last_status")
    assert "published as it is here (allow_pii) but hashed or masked by" in error.message
    # Both as they are, each reviewed: one way, accepted
    edit(other, "last_status: mask(before.status)", "last_status: before.status")
    edit(other, "source: {", "allow_pii: [last_status]\nsource: {")
    assert len(collect_contracts(load_specs([sample]))) == 4


def test_writers_that_protect_a_field_alike_share_the_topic(sample: Path) -> None:
    other = _second_writer(sample)
    first = sample / "claim_withdrawn.yaml"
    edit(other, WITHDRAWN_SENSITIVITY, "sensitivity: {claim_id: internal, last_status: pii}")
    edit(other, "last_status: before.status", "last_status: hash(before.status)")
    edit(first, "last_status: before.status", "last_status: hash(before.status)")  # unclassified, hashed
    contracts = {c.topic: c for c in collect_contracts(load_specs([sample]))}
    assert len(contracts["claim_withdrawn"].producers) == 2


def test_writers_that_protect_a_field_differently_are_refused(sample: Path) -> None:
    # A hash from one mapping and a mask from the other: one person, two values to join on.
    other = _second_writer(sample)
    first = sample / "claim_withdrawn.yaml"
    edit(other, WITHDRAWN_SENSITIVITY, "sensitivity: {claim_id: internal, last_status: pii}")
    edit(other, "last_status: before.status", "last_status: hash(before.status)")
    edit(first, "last_status: before.status", "last_status: mask(before.status)")
    with pytest.raises(MappingErrors) as caught:
        collect_contracts(load_specs([sample]))
    (error,) = caught.value.errors
    assert error.key_path == "emit[0].fields.last_status"
    assert "field 'last_status' is" in error.message
    assert "two different values for one person" in error.message
    assert {"hashed", "masked"} <= set(error.message.replace(",", " ").split())
