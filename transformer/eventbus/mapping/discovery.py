"""Which files under a folder are mappings: one answer for the service, the CLI and `source check`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

TEST_SUFFIX = ".tests.yaml"
_TEST_SUFFIXES = (TEST_SUFFIX, ".tests.yml")
# Beside the mappings, not mappings: table descriptions, Avro schemas, test cases.
SKIPPED_DIRS = frozenset({"tables", "schemas", "tests"})
# Not mappings although they are YAML beside them: the committed schema lock (events/schema_lock.py).
SKIPPED_FILES = frozenset({"schemas.lock.yaml", "schemas.lock.yml"})


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Mapping files under `paths` (files are taken as given; test, table and schema files skipped)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
            continue
        for candidate in sorted(path.rglob("*")):
            if candidate.suffix not in (".yaml", ".yml") or candidate.name.endswith(_TEST_SUFFIXES):
                continue
            if candidate.name in SKIPPED_FILES:
                continue
            if SKIPPED_DIRS.intersection(candidate.relative_to(path).parts[:-1]):
                continue
            found.append(candidate)
    return found
