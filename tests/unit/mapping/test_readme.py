"""The mapping reference (mappings/README.md) is executable: its examples are validated and tested."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eventbus.mapping.function_catalog import FUNCTIONS
from eventbus.mapping.testing import test_mapping_file

README = Path(__file__).parents[3] / "mappings" / "README.md"
_BLOCK = re.compile(r"(?:<!-- file: (?P<file>[^ ]+) -->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)


def _materialise(tmp_path: Path) -> list[Path]:
    """Write the README's files and mappings into `tmp_path`; return the mapping files."""
    mappings = []
    for number, match in enumerate(_BLOCK.finditer(README.read_text(encoding="utf-8"))):
        if match["file"]:
            target = tmp_path / match["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(match["body"], encoding="utf-8")
        elif match["lang"] == "yaml":
            target = tmp_path / f"example_{number}.yaml"
            target.write_text(match["body"], encoding="utf-8")
            mappings.append(target)
    return mappings


def _mapping_count() -> int:
    """How many mappings `_materialise` writes (a yaml block without a file name is a mapping)."""
    blocks = _BLOCK.finditer(README.read_text(encoding="utf-8"))
    return sum(1 for m in blocks if m["lang"] == "yaml" and not m["file"])


def test_readme_has_examples(tmp_path: Path) -> None:
    assert len(_materialise(tmp_path)) == _mapping_count() >= 3


@pytest.mark.parametrize("index", range(_mapping_count()))  # every example, however many there are
def test_readme_examples_validate_and_their_tests_pass(tmp_path: Path, index: int) -> None:
    mapping = _materialise(tmp_path)[index]
    results = test_mapping_file(mapping)
    assert results, "every README example carries tests"
    failures = [f"{r.headline()}\n" + "\n".join(r.diff) for r in results if not r.passed]
    assert not failures, "\n".join(failures)


def test_every_function_is_documented() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [name for name in FUNCTIONS if f"`{name}(" not in text]
    assert not missing
