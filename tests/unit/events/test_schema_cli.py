"""`eventbus schema check|register|pin|verify` driven by mapping files, on the mock registry."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from typer.testing import CliRunner

from eventbus.cli import schema_commands
from eventbus.cli.main import app
from eventbus.events.schema_form import fingerprint
from eventbus.events.schema_lock import load_lock
from tests.unit.events.fake_registry import FakeRegistry

SAMPLE = Path(__file__).resolve().parents[3] / "mappings" / "claims"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SAMPLE, tmp_path / "claims"))


@pytest.fixture
def shared(registry: SchemaRegistryClient, monkeypatch: pytest.MonkeyPatch) -> SchemaRegistryClient:
    # Every command invocation builds its client; the mock keeps state per instance, so share one.
    monkeypatch.setattr(schema_commands, "_client", lambda url: registry)
    return registry


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["schema", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _retype_withdrawn_at(sample: Path) -> None:
    path = sample / "schemas" / "claim_withdrawn.avsc"
    schema = json.loads(path.read_text())
    for field in schema["fields"]:
        if field["name"] == "withdrawn_at_ms":
            field["type"] = "string"
    path.write_text(json.dumps(schema))


def test_check_register_check_again_then_an_incompatible_change(
    sample: Path, shared: SchemaRegistryClient
) -> None:
    code, output = _run("check", str(sample))
    assert code == 0, output
    assert "claim_withdrawn-value: new subject (level BACKWARD)" in output

    code, output = _run("register", str(sample))
    assert code == 0, output
    assert len(shared.get_subjects()) == 8
    assert f"`eventbus topics plan --mappings {sample}`" in output  # registering creates no topic

    code, output = _run("check", str(sample))
    assert code == 0 and "claim_withdrawn-value: compatible with version 1" in output

    _retype_withdrawn_at(sample)
    code, output = _run("check", str(sample))
    assert code == 1
    assert "claim_withdrawn-value: INCOMPATIBLE with version 1 under BACKWARD" in output
    assert "field withdrawn_at_ms: long → string: not a promotable type change" in output
    assert "1 incompatible subject(s): claim_withdrawn-value" in output

    code, output = _run("register", str(sample))
    assert code == 1 and "nothing registered" in output
    assert shared.get_versions("claim_withdrawn-value") == [1]


def test_pin_writes_the_lock_beside_the_mappings_and_verify_resolves_it(
    sample: Path, shared: SchemaRegistryClient
) -> None:
    assert _run("register", str(sample))[0] == 0
    code, output = _run("pin", str(sample))
    assert code == 0, output
    lock = load_lock(sample / "schemas.lock.yaml")
    schema = json.loads((sample / "schemas" / "claim_withdrawn.avsc").read_text())
    pin = lock.subjects["claim_withdrawn-value"]
    assert pin.fingerprint == fingerprint(schema)
    assert pin.schema_id == shared.get_latest_version("claim_withdrawn-value").schema_id

    versions = {s: shared.get_versions(s) for s in shared.get_subjects()}
    code, output = _run("verify", str(sample))
    assert code == 0, output
    assert (
        f"claim_withdrawn-value: schema id {pin.schema_id} (pinned in {sample / 'schemas.lock.yaml'})"
        in output
    )
    assert {s: shared.get_versions(s) for s in shared.get_subjects()} == versions


def test_verify_refuses_a_changed_schema_in_production_mode(
    sample: Path, shared: SchemaRegistryClient
) -> None:
    assert _run("register", str(sample))[0] == 0
    assert _run("pin", str(sample))[0] == 0
    _retype_withdrawn_at(sample)
    result = CliRunner().invoke(app, ["schema", "verify", str(sample)])
    assert "withdrawn_at_ms: long → string" in str(result.exception)
    assert shared.get_versions("claim_withdrawn-value") == [1]


def test_pin_refuses_an_unregistered_schema(sample: Path, shared: SchemaRegistryClient) -> None:
    result = CliRunner().invoke(app, ["schema", "pin", str(sample)])
    assert "this schema is not registered" in str(result.exception)
    assert not (sample / "schemas.lock.yaml").exists()


def test_the_topic_option_still_works(sample: Path, shared: SchemaRegistryClient, tmp_path: Path) -> None:
    key, value = sample / "schemas" / "claim_key.avsc", sample / "schemas" / "claim_withdrawn.avsc"
    code, output = _run("register", "-t", f"adhoc={key},{value}")
    assert code == 0, output
    assert sorted(shared.get_subjects()) == ["adhoc-key", "adhoc-value"]
    lock = tmp_path / "adhoc.lock.yaml"
    assert _run("pin", "-t", f"adhoc={key},{value}", "--lock", str(lock))[0] == 0
    assert set(load_lock(lock).subjects) == {"adhoc-key", "adhoc-value"}


def test_disagreeing_mappings_exit_1_with_the_position(sample: Path, shared: SchemaRegistryClient) -> None:
    other = sample / "claim_withdrawn_again.yaml"
    widened = json.loads((sample / "schemas" / "claim_withdrawn.avsc").read_text())
    widened["fields"].append({"name": "reason", "type": ["null", "string"], "default": None})
    (sample / "schemas" / "claim_withdrawn_v2.avsc").write_text(json.dumps(widened))
    other.write_text(
        (sample / "claim_withdrawn.yaml")
        .read_text()
        .replace("name: claim_withdrawn", "name: claim_withdrawn_again")
        .replace("schemas/claim_withdrawn.avsc", "schemas/claim_withdrawn_v2.avsc")
    )
    code, output = _run("check", str(sample))
    assert code == 1
    assert f"{other}:" in output and "gets a different value schema" in output
    assert shared.get_subjects() == []


def test_an_unreachable_registry_is_one_line_and_exit_2(sample: Path) -> None:
    eventbus = Path(sys.executable).with_name("eventbus")
    done = subprocess.run(
        [str(eventbus), "schema", "check", str(sample), "--registry", "http://127.0.0.1:9/apis/ccompat/v7"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("error: schema registry unreachable")


@pytest.fixture
def apicurio(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    """A registry with levels over HTTP (the mock has none), under Apicurio's default global NONE."""
    fake = FakeRegistry(global_level="NONE")
    monkeypatch.setattr(schema_commands, "_client", lambda url: fake.client())
    return fake


def test_register_under_none_judges_the_change_unless_allow_none(
    sample: Path, apicurio: FakeRegistry
) -> None:
    apicurio.register(
        "claim_withdrawn-value", json.loads((sample / "schemas" / "claim_withdrawn.avsc").read_text())
    )
    _retype_withdrawn_at(sample)

    code, output = _run("register", str(sample))
    assert code == 1 and "nothing registered" in output
    assert "claim_withdrawn-value: INCOMPATIBLE with version 1 under BACKWARD (global level NONE" in output
    assert "field withdrawn_at_ms: long → string" in output
    assert len(apicurio.versions) == 1 and not apicurio.levels

    code, output = _run("register", str(sample), "--allow-none")  # deliberately
    assert code == 0, output
    assert len(apicurio.versions["claim_withdrawn-value"]) == 2


def test_register_counts_a_level_a_concurrent_run_set_first_as_set(
    sample: Path, apicurio: FakeRegistry
) -> None:
    # Another replica or deploy job creates each subject's rule between our decision and our write:
    # Apicurio answers 409 "A rule named 'COMPATIBILITY' already exists".
    apicurio.before_set_level = lambda subject: apicurio.levels.setdefault(subject, "BACKWARD")
    code, output = _run("register", str(sample))
    assert code == 0, output
    assert len(apicurio.levels) == 8 and set(apicurio.levels.values()) == {"BACKWARD"}
    assert "claim_withdrawn-value: schema id" in output
