"""Shared helpers for the contract tests: sample mappings in a temp folder, the official AsyncAPI schema."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from eventbus.events.avro import connect_registry

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "mappings" / "claims"
# The AsyncAPI initiative publishes the specification's JSON Schemas in the npm package
# @asyncapi/specs (no PyPI package ships them). Pinned by version and by the registry's integrity hash.
SPECS_VERSION = "6.11.1"
SPECS_INTEGRITY = (
    "sha512-A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpLGE8zPeYDz2x9FmO6DSuKraQ=="
)
SPECS_CACHE = REPO / ".cache" / f"asyncapi-specs-{SPECS_VERSION}"
_counter = itertools.count()


def copy_sample(tmp_path: Path) -> Path:
    """The sample claims domain copied into `tmp_path/claims` (tests edit the copy, never the repo)."""
    target = tmp_path / "claims"
    shutil.copytree(SAMPLE, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def edit_schema(path: Path, change: Any) -> None:
    """Apply `change(schema_dict)` to an .avsc file."""
    schema = json.loads(path.read_text(encoding="utf-8"))
    change(schema)
    path.write_text(json.dumps(schema), encoding="utf-8")


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture
def registry() -> SchemaRegistryClient:
    return connect_registry(f"mock://contracts-{next(_counter)}")


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return copy_sample(tmp_path)


def _fetch_specs() -> Path:
    """`npm pack` the pinned @asyncapi/specs into .cache/ once; verify it; keep the schemas folder."""
    schema = SPECS_CACHE / "schemas" / "3.0.0.json"
    if schema.exists():
        return schema
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed once to fetch @asyncapi/specs into .cache/ (apt-get install npm)")
    download = SPECS_CACHE
    download.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "pack", f"@asyncapi/specs@{SPECS_VERSION}", "--pack-destination", str(download), "--silent"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm pack @asyncapi/specs failed: {done.stderr.strip()[-500:]}")
    tarball = download / done.stdout.strip().splitlines()[-1]
    data = tarball.read_bytes()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    assert digest == SPECS_INTEGRITY, f"{tarball}: integrity {digest} is not the pinned one"
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            if (
                member.isfile()
                and member.name.startswith("package/schemas/")
                and member.name.endswith(".json")
            ):
                target = SPECS_CACHE / "schemas" / Path(member.name).name
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = archive.extractfile(member)
                assert extracted is not None
                target.write_bytes(extracted.read())
    return schema


@pytest.fixture(scope="session")
def asyncapi_schema() -> dict[str, Any]:
    """The official AsyncAPI 3.0.0 JSON Schema (draft-07, every definition bundled)."""
    return json.loads(_fetch_specs().read_text(encoding="utf-8"))
