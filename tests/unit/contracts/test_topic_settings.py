"""`emit.topic_settings`: validated where it is written (file:line), merged per topic across mappings."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus.contracts.collect import TopicSettings, collect_contracts, load_specs
from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus.mapping.spec import load_mapping
from tests.unit.contracts.conftest import edit, line_of

WITHDRAWN_TOPIC = "  topic: claim_withdrawn\n"


def _declare(mapping: Path, settings: str) -> None:
    edit(mapping, WITHDRAWN_TOPIC, f"{WITHDRAWN_TOPIC}  topic_settings:\n{settings}")


def _errors(mapping: Path) -> list[MappingError]:
    with pytest.raises(MappingError) as caught:
        load_mapping(mapping)
    error = caught.value
    return list(error.errors) if isinstance(error, MappingErrors) else [error]


def test_without_settings_a_topic_gets_the_documented_defaults(sample: Path) -> None:
    contract = next(c for c in collect_contracts(load_specs([sample])) if c.topic == "claim_withdrawn")
    assert contract.settings == TopicSettings(
        partitions=1, replication_factor=None, retention_ms=7 * 86_400_000, cleanup_policy="delete"
    )
    assert contract.settings.config() == {"cleanup.policy": "delete", "retention.ms": "604800000"}


def test_declared_settings_are_read_with_kafka_units(sample: Path) -> None:
    mapping = sample / "claim_withdrawn.yaml"
    _declare(mapping, "    partitions: 6\n    replication_factor: 3\n    retention: 36h\n")
    contract = next(c for c in collect_contracts(load_specs([sample])) if c.topic == "claim_withdrawn")
    assert contract.settings == TopicSettings(6, 3, 36 * 3_600_000, "delete")
    edit(mapping, "    retention: 36h\n", "    retention: forever\n    cleanup_policy: compact,delete\n")
    contract = next(c for c in collect_contracts(load_specs([sample])) if c.topic == "claim_withdrawn")
    assert contract.settings.config() == {"cleanup.policy": "compact,delete", "retention.ms": "-1"}


@pytest.mark.parametrize(
    ("settings", "bad_line", "message"),
    [
        ("    partitions: 0\n", "partitions: 0", "greater than or equal to 1"),
        ('    partitions: "3"\n', 'partitions: "3"', "valid integer"),
        ("    replication_factor: 0\n", "replication_factor: 0", "greater than or equal to 1"),
        ("    retention: 7 days\n", "retention: 7 days", "'7 days' is not a duration"),
        ("    retention: 0s\n", "retention: 0s", "retention must be positive"),
        ("    cleanup_policy: compacted\n", "cleanup_policy: compacted", "did you mean 'compact'?"),
        ("    replicas: 3\n", "replicas: 3", "unknown key 'replicas'"),
        ("    cleanup_policy: compact\n    retention: 3d\n", "retention: 3d", "a compact topic keeps"),
    ],
)
def test_a_bad_setting_is_reported_at_its_line(
    sample: Path, settings: str, bad_line: str, message: str
) -> None:
    mapping = sample / "claim_withdrawn.yaml"
    _declare(mapping, settings)
    (error,) = _errors(mapping)
    assert (error.file, error.line) == (str(mapping), line_of(mapping, bad_line))
    assert error.key_path is not None and error.key_path.startswith("emit[0].topic_settings.")
    assert message in str(error)


def _second_writer(sample: Path, settings: str) -> Path:
    """Another mapping writing claim_withdrawn (same schemas), with its own topic_settings; before
    the sample's own mapping declares any."""
    other = sample / "claim_withdrawn_again.yaml"
    other.write_text(
        (sample / "claim_withdrawn.yaml")
        .read_text()
        .replace("name: claim_withdrawn", "name: claim_withdrawn_again")
        .replace(WITHDRAWN_TOPIC, f"{WITHDRAWN_TOPIC}  topic_settings:\n{settings}")
    )
    return other


def test_writers_of_one_topic_may_split_its_settings(sample: Path) -> None:
    _second_writer(sample, "    retention: 30d\n    partitions: 3\n")
    _declare(sample / "claim_withdrawn.yaml", "    partitions: 3\n")
    contract = next(c for c in collect_contracts(load_specs([sample])) if c.topic == "claim_withdrawn")
    assert (contract.settings.partitions, contract.settings.retention_ms) == (3, 30 * 86_400_000)


def test_writers_of_one_topic_that_disagree_are_told_where(sample: Path) -> None:
    other = _second_writer(sample, "    partitions: 6\n")
    _declare(sample / "claim_withdrawn.yaml", "    partitions: 3\n")
    with pytest.raises(MappingErrors) as caught:
        collect_contracts(load_specs([sample]))
    (error,) = caught.value.errors
    assert (error.file, error.line) == (str(other), line_of(other, "partitions: 6"))
    assert "partitions 6 differs from 3 given by" in error.message
    assert "claim_withdrawn.yaml emit[0]" in error.message


def test_a_retention_on_a_topic_another_writer_compacts_is_an_error(sample: Path) -> None:
    other = _second_writer(sample, "    retention: 3d\n")
    _declare(sample / "claim_withdrawn.yaml", "    cleanup_policy: compact\n")
    with pytest.raises(MappingErrors) as caught:
        collect_contracts(load_specs([sample]))
    (error,) = caught.value.errors
    assert (error.file, error.line) == (str(other), line_of(other, "retention: 3d"))
    assert "is compacted" in error.message
