"""`eventbus mapping test` compares expected and published values strictly by type: `true`, `1` and
`1.0` are one value in Python, three different ones in an event."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from eventbus.mapping.testing import TestResult, test_mapping_file

VALID = Path(__file__).parents[2] / "fixtures" / "mappings" / "valid"


def _results(
    tmp_path: Path, old: str, new: str, file: str = "claim_milestone_reached.yaml"
) -> list[TestResult]:
    shutil.copytree(VALID, tmp_path / "m")
    path = tmp_path / "m" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return test_mapping_file(tmp_path / "m" / "claim_milestone_reached.yaml")


def test_the_fixture_passes_as_written(tmp_path: Path) -> None:
    """Decimals still compare by value (an expected 1250.5 is the published 1250.50)."""
    results = _results(tmp_path, "name: decision made", "name: decision made")
    assert [r.headline() for r in results if not r.passed] == []


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        (
            "key: {claim_id: 1}",
            "key: {claim_id: true}",
            "  key.claim_id: expected True (a boolean), got 1 (an integer)",
        ),
        (
            "key: {claim_id: 1}",
            "key: {claim_id: 1.0}",
            "  key.claim_id: expected 1.0 (a float), got 1 (an integer)",
        ),
        (
            "          claim_id: 1\n",
            "          claim_id: 1.0\n",
            "  value.claim_id: expected 1.0 (a float), got 1 (an integer)",
        ),
    ],
)
def test_an_expected_value_of_another_type_is_a_difference(
    tmp_path: Path, old: str, new: str, line: str
) -> None:
    (result,) = [r for r in _results(tmp_path, old, new) if r.name == "decision made"]
    assert not result.passed
    assert result.diff == [line]


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        (
            '"key":{"claim_id":7}',
            '"key":{"claim_id":7.0}',
            "  line 1 key.claim_id: expected 7.0 (a float), got 7 (an integer)",
        ),
        (
            '"value":{"claim_id":7,',
            '"value":{"claim_id":7.0,',
            "  line 1 value.claim_id: expected 7.0 (a float), got 7 (an integer)",
        ),
    ],
)
def test_an_expected_output_line_of_another_type_is_a_difference(
    tmp_path: Path, old: str, new: str, line: str
) -> None:
    file = "tests/claim_milestone_reached/decision.expected.jsonl"
    (result,) = [r for r in _results(tmp_path, old, new, file) if r.name == "decision"]
    assert not result.passed
    assert result.diff == [line]
