"""Bad configuration (issue #8), through the real CLI in a subprocess: broken mapping files, broken source
definitions and settings, unreachable services (closed loopback ports), a schema incompatible with the
registry's latest version under BACKWARD. Each must be a clear message naming what is wrong, a non-zero
exit, and no traceback.

Covered elsewhere, not repeated here: `transformer run` with an invalid mapping
(tests/unit/service/test_cli.py), SASL settings without SASL_SSL and secrets in setting errors (same
file), `schema check` with the registry down (tests/unit/events/test_schema_cli.py), Connect down and
PostgreSQL unreachable or with a wrong password for `source register/status/remove/check`
(tests/integration/sources/test_source_registration.py), wrong Kafka credentials
(tests/integration/security/test_acls.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.stack import REPO, StackEndpoints

FIXTURES = REPO / "tests" / "fixtures"
SAMPLE = REPO / "mappings" / "claims"


def _closed_port() -> int:
    """A loopback port nothing listens on (the OS just handed it out and it was closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str]:
    """Exit code and what a person reads: stdout and stderr without the service's JSON log lines."""
    result = subprocess.run(
        [sys.executable, "-m", "eventbus.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    text = "\n".join(
        line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("{")
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.returncode, text.strip()


def _sample_mappings(folder: Path) -> Path:
    shutil.copytree(SAMPLE, folder, ignore=shutil.ignore_patterns("tests"))
    return folder


# --- no services needed --------------------------------------------------------------------------


def test_broken_mapping_files_are_each_named_with_line_and_column() -> None:
    folder = FIXTURES / "mappings" / "broken"
    code, output = _cli("mapping", "validate", str(folder))
    assert code == 1
    for broken in sorted(folder.glob("*.yaml")):
        assert f"{broken}:" in output, f"{broken.name} not reported"
    assert "invalid mapping file(s)" in output.splitlines()[-1]


@pytest.mark.parametrize(
    "definition", sorted((FIXTURES / "connectors" / "broken").glob("*.yaml")), ids=lambda p: p.stem
)
def test_broken_source_definition_is_one_message_with_file_and_line(definition: Path) -> None:
    code, output = _cli("source", "check", str(definition.relative_to(REPO)))
    assert code == 2
    lines = output.splitlines()
    assert lines and all(line.startswith(("error: ", str(definition.relative_to(REPO)))) for line in lines)
    assert f"{definition.relative_to(REPO)}:" in lines[0]


def test_settings_file_with_an_unknown_key_or_broken_yaml(tmp_path: Path) -> None:
    mappings = _sample_mappings(tmp_path / "mappings")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("group_id: g\nbogus_key: 1\n")
    code, output = _cli("transformer", "run", "--mappings", str(mappings), "--config", str(unknown))
    assert (code, output.splitlines()[-1]) == (
        2,
        f"error: invalid transformer settings (config file {unknown} and EVENTBUS_* environment): "
        "bogus_key: unknown setting",
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("group_id: [g\n")
    code, output = _cli("transformer", "config", "--config", str(broken))
    assert code == 2
    assert output.startswith(f"error: {broken}:2:1: invalid YAML")


def test_missing_mappings_folder(tmp_path: Path) -> None:
    code, output = _cli("transformer", "run", "--mappings", str(tmp_path / "nowhere"))
    assert (code, output) == (2, f"error: {tmp_path / 'nowhere'}: not a folder of mapping files")


def test_transformer_waits_for_an_unreachable_registry_and_stops_cleanly(tmp_path: Path) -> None:
    """The service waits (not ready, one log line per attempt) instead of exiting: a registry that
    restarts must not take every transformer down with it. SIGTERM while waiting is a clean stop."""
    url = f"http://127.0.0.1:{_closed_port()}"
    env = {**os.environ, "EVENTBUS_REGISTRY__URL": url, "EVENTBUS_HTTP__ENABLED": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "eventbus.cli", "transformer", "run", "--mappings",
         str(_sample_mappings(tmp_path / "m"))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    try:
        time.sleep(4)  # at least the first attempt and its log line
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stdout + stderr
    assert "Traceback" not in stdout + stderr
    waits = [line for line in stderr.splitlines() if "schema registry not answering; waiting" in line]
    assert waits and "retry_in_s" in waits[0]
    assert url in waits[0] and "Connection refused" in waits[0]


def test_replay_with_the_registry_unreachable(tmp_path: Path) -> None:
    env = {"EVENTBUS_REGISTRY__URL": f"http://127.0.0.1:{_closed_port()}", "EVENTBUS_HTTP__ENABLED": "false"}
    code, output = _cli("dlq", "replay", "--mappings", str(_sample_mappings(tmp_path / "m")), env=env)
    assert code == 2
    assert output.startswith("error: schema registry unreachable at")


# --- with the stack ------------------------------------------------------------------------------


@pytest.mark.stack
def test_transformer_with_kafka_unreachable(stack: StackEndpoints, tmp_path: Path) -> None:
    env = {
        "EVENTBUS_REGISTRY__URL": stack.registry_url,
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}",
        "EVENTBUS_TRANSACTION_TIMEOUT_MS": "5000",  # how long it waits for the cluster
        "EVENTBUS_HTTP__ENABLED": "false",
        "EVENTBUS_GROUP_ID": f"badcfg-{uuid.uuid4().hex[:8]}",
    }
    mappings = _sample_mappings(tmp_path / "m")
    for path in mappings.glob("*.yaml"):  # private topics: the registry outlives the test
        path.write_text(path.read_text().replace("  topic: ", f"  topic: badcfg_{uuid.uuid4().hex[:6]}_"))
    code, output = _cli("transformer", "run", "--mappings", str(mappings), env=env)
    assert code == 2
    assert output.splitlines()[-1] == (
        "error: init_transactions: Timed out waiting for operation to finish, retry call to resume "
        "[_TIMED_OUT] (no answer in time: is the Kafka cluster at kafka.bootstrap_servers reachable, "
        "with these credentials?)"
    )


@pytest.mark.stack
def test_schema_incompatible_under_backward_fails_check_and_start_up(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    topic = f"badcfg_{uuid.uuid4().hex[:12]}"
    folder = tmp_path / "mappings"
    folder.mkdir()
    shutil.copytree(SAMPLE / "schemas", folder / "schemas")
    mapping = folder / "claim_withdrawn.yaml"
    mapping.write_text(
        (SAMPLE / "claim_withdrawn.yaml").read_text().replace("topic: claim_withdrawn", f"topic: {topic}")
    )
    registry = ["--registry", stack.registry_url]
    code, output = _cli("schema", "register", str(folder), *registry)
    assert code == 0, output
    subject = f"{topic}-value"
    # Apicurio's global default is NONE; the bus asks for BACKWARD, set on the subject as a team would.
    answer = httpx.put(
        f"{stack.registry_url}/config/{subject}", json={"compatibility": "BACKWARD"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    versions = httpx.get(f"{stack.registry_url}/subjects/{subject}/versions", timeout=10).json()

    schema_file = folder / "schemas" / "claim_withdrawn.avsc"
    schema = json.loads(schema_file.read_text())
    for field in schema["fields"]:
        if field["name"] == "withdrawn_at_ms":
            field["type"] = "string"  # a long becomes a string: old events cannot be read as new
    schema_file.write_text(json.dumps(schema))

    code, output = _cli("schema", "check", str(folder), *registry)
    assert code == 1
    assert f"{subject}: INCOMPATIBLE with version 1 under BACKWARD" in output
    assert "field withdrawn_at_ms: long → string" in output

    env = {
        "EVENTBUS_REGISTRY__URL": stack.registry_url,
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "EVENTBUS_HTTP__ENABLED": "false",
        "EVENTBUS_GROUP_ID": f"badcfg-{topic}",
    }
    code, output = _cli("transformer", "run", "--mappings", str(folder), env=env)
    assert code == 1  # a check failed (the contract), as for an invalid mapping
    assert output.startswith("error: ")
    assert f"{subject}: INCOMPATIBLE with version 1 under BACKWARD" in output
    assert str(mapping) in output
    # Refused before anything was registered or consumed.
    assert httpx.get(f"{stack.registry_url}/subjects/{subject}/versions", timeout=10).json() == versions
