"""Lifecycle and sensitivity in mapping files: personal fields are published hashed, masked or on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus.mapping.spec import load_mapping
from tests.unit.contracts.conftest import edit, line_of

LETTER = "decision_letter_available.yaml"
PARTICIPANT = "    veteran_participant_id: claim.veteran_participant_id"


def _errors(path: Path) -> list[MappingError]:
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    error = caught.value
    return list(error.errors) if isinstance(error, MappingErrors) else [error]


def test_the_sample_declares_lifecycle_and_sensitivity(sample: Path) -> None:
    spec = load_mapping(sample / LETTER)
    assert spec.lifecycle == "production"
    assert spec.sensitivity["veteran_participant_id"] == "pii"
    assert spec.allow_pii == ["veteran_participant_id"]


def test_publishing_a_pii_field_as_it_is_is_refused_with_its_line(sample: Path) -> None:
    mapping = sample / LETTER
    edit(mapping, "allow_pii: [veteran_participant_id]\n", "")
    (error,) = _errors(mapping)
    assert (error.file, error.line) == (str(mapping), line_of(mapping, PARTICIPANT))
    assert error.column == len("    veteran_participant_id: ") + 1
    assert error.key_path == "emit[0].fields.veteran_participant_id"
    assert "marked pii and this expression publishes it as it is" in error.message
    assert "allow_pii" in (error.hint or "")


def _participant_published_as(sample: Path, expression: str) -> Path:
    """The letter mapping with `veteran_participant_id` (pii, no longer allowed) published as
    `expression`; its schema field becomes a string (a hash or mask is text)."""
    mapping = sample / LETTER
    edit(mapping, "allow_pii: [veteran_participant_id]\n", "")
    edit(
        sample / "schemas" / "decision_letter_available.avsc",
        '{"name": "veteran_participant_id", "type": "long"}',
        '{"name": "veteran_participant_id", "type": "string"}',
    )
    edit(mapping, PARTICIPANT, f"    veteran_participant_id: {expression}")
    return mapping


@pytest.mark.parametrize(
    "expression",
    [
        "hash(claim.veteran_participant_id)",
        "hash(concat('letters:', claim.veteran_participant_id))",  # a hash of more is still a hash
        "mask(str(claim.veteran_participant_id), keep=2)",
        "coalesce(hash(claim.veteran_participant_id), 'unknown')",
        '"hash(claim.veteran_participant_id) if claim.veteran_participant_id != null else null"',
    ],
)
def test_hashed_or_masked_personal_fields_load(sample: Path, expression: str) -> None:
    mapping = _participant_published_as(sample, expression)
    assert load_mapping(mapping).sensitivity["veteran_participant_id"] == "pii"


@pytest.mark.parametrize(
    "expression",
    [
        "concat(hash(claim.veteran_participant_id), claim.veteran_participant_id)",
        "coalesce(hash(claim.veteran_participant_id), claim.veteran_participant_id)",
        "\"hash(claim.veteran_participant_id) if after.status == 'X' else claim.veteran_participant_id\"",
        "str(claim.veteran_participant_id)",
    ],
)
def test_expressions_that_still_leak_the_value_are_refused(sample: Path, expression: str) -> None:
    mapping = _participant_published_as(sample, expression)
    messages = [e.message for e in _errors(mapping)]
    assert any("marked pii and this expression publishes it" in m for m in messages), messages


@pytest.mark.parametrize(
    "expression",
    [
        "mask(claim.veteran_participant_id)",
        "mask(trim(str(claim.veteran_participant_id)), keep=4)",
        "mask(upper(after['status']), keep=0)",
        "mask(hash(claim.veteran_participant_id), keep=12)",  # a hash, partly shown, is still a hash
        "coalesce(mask(str(claim.veteran_participant_id)), hash(claim.veteran_participant_id))",
    ],
)
def test_a_mask_of_the_column_itself_keeping_at_most_four_characters_protects(
    sample: Path, expression: str
) -> None:
    mapping = _participant_published_as(sample, expression)
    assert load_mapping(mapping).sensitivity["veteran_participant_id"] == "pii"


@pytest.mark.parametrize(
    ("expression", "at", "why"),
    [
        # The last 11 characters of 'X' + the id are the whole id: published in clear
        ("mask(concat('X', claim.veteran_participant_id), keep=11)", "concat(", "not the column itself"),
        ("mask(str(claim.veteran_participant_id), keep=9)", "9)", "keep=9 shows up to 9 characters"),
        ("mask(substr(str(claim.veteran_participant_id), 1, 5))", "substr(", "not the column itself"),
        ("coalesce(mask(concat(claim.veteran_participant_id, '')), 'none')", "concat(", "not the column"),
    ],
)
def test_a_mask_that_can_show_the_value_is_refused_where_it_is_written(
    sample: Path, expression: str, at: str, why: str
) -> None:
    mapping = _participant_published_as(sample, expression)
    (error,) = _errors(mapping)
    line = f"    veteran_participant_id: {expression}"
    assert (error.file, error.line) == (str(mapping), line_of(mapping, line))
    assert error.column == line.index(at) + 1
    assert error.key_path == "emit[0].fields.veteran_participant_id"
    assert "is marked pii and this mask() does not hide it" in error.message and why in error.message
    assert "keeping at most 4 characters" in (error.hint or "") and "allow_pii" in (error.hint or "")


def test_a_personal_key_field_masked_with_a_long_keep_is_refused(sample: Path) -> None:
    # A key field also goes into every event's `ce_subject` header
    mapping = sample / "claim_withdrawn.yaml"
    edit(mapping, "sensitivity: {claim_id: internal, ", "sensitivity: {claim_id: pii, ")
    key, fields = "  key:\n    claim_id: ", "  fields:\n    claim_id: "
    edit(mapping, f"{key}before.claim_id", f"{key}mask(before.claim_id, keep=12)")
    edit(mapping, f"{fields}before.claim_id", f"{fields}hash(before.claim_id)")
    edit(sample / "schemas" / "claim_key.avsc", '"type": "long"', '"type": "string"')
    edit(sample / "schemas" / "claim_withdrawn.avsc", '{"name": "claim_id", "type": "long"}',
         '{"name": "claim_id", "type": "string"}')  # fmt: skip
    (error,) = _errors(mapping)
    assert error.key_path == "emit[0].key.claim_id"
    assert error.line == line_of(mapping, "keep=12") and "keep=12" in error.message


def test_personal_key_fields_are_checked_too(sample: Path) -> None:
    mapping = sample / "claim_withdrawn.yaml"
    edit(mapping, "sensitivity: {claim_id: internal, last_status: internal}", "sensitivity: {claim_id: phi}")
    errors = _errors(mapping)
    assert {e.key_path for e in errors} == {"emit[0].key.claim_id", "emit[0].fields.claim_id"}


def test_phi_counts_as_personal_and_allow_pii_covers_it(sample: Path) -> None:
    mapping = sample / "contention_classified.yaml"
    assert load_mapping(mapping).sensitivity["classification_name"] == "phi"
    edit(
        mapping,
        "allow_pii: [classification_code, classification_name, veteran_participant_id]",
        "allow_pii: [classification_code, veteran_participant_id]",
    )
    (error,) = _errors(mapping)
    assert error.key_path == "emit[0].fields.classification_name"
    assert "marked phi" in error.message


def test_sensitivity_of_an_unknown_field_and_needless_allow_pii_are_errors(sample: Path) -> None:
    mapping = sample / LETTER
    edit(mapping, "  actor_station: internal\n", "  actor_statoin: internal\n")
    edit(mapping, "allow_pii: [veteran_participant_id]", "allow_pii: [veteran_participant_id, claim_id]")
    errors = {e.key_path: e for e in _errors(mapping)}
    unknown = errors["sensitivity.actor_statoin"]
    assert unknown.line == line_of(mapping, "actor_statoin")
    assert "did you mean 'actor_station'" in (unknown.hint or "")
    needless = errors["allow_pii[1]"]
    assert "'claim_id' is not marked pii or phi" in needless.message


def test_an_unknown_sensitivity_level_is_refused(sample: Path) -> None:
    mapping = sample / LETTER
    edit(mapping, "  actor_station: internal", "  actor_station: secret")
    (error,) = _errors(mapping)
    assert error.line == line_of(mapping, "actor_station: secret")
    assert "'public', 'internal', 'confidential', 'pii' or 'phi'" in error.message


def test_deprecated_needs_a_removal_date(sample: Path) -> None:
    mapping = sample / LETTER
    edit(mapping, "lifecycle: production", "lifecycle: deprecated")
    (error,) = _errors(mapping)
    assert (error.line, error.key_path) == (line_of(mapping, "lifecycle: deprecated"), "lifecycle")
    assert "removal_date" in error.message
    edit(mapping, "lifecycle: deprecated", "lifecycle: deprecated\nremoval_date: 2027-06-30")
    assert str(load_mapping(mapping).removal_date) == "2027-06-30"


def test_a_removal_date_without_deprecation_and_unknown_lifecycles_are_refused(sample: Path) -> None:
    mapping = sample / LETTER
    edit(mapping, "lifecycle: production", "lifecycle: production\nremoval_date: 2027-06-30")
    (error,) = _errors(mapping)
    assert error.key_path == "removal_date" and "only to 'lifecycle: deprecated'" in error.message
    edit(mapping, "lifecycle: production\nremoval_date: 2027-06-30", "lifecycle: retired")
    (error,) = _errors(mapping)
    assert error.key_path == "lifecycle" and error.line == line_of(mapping, "lifecycle: retired")
