"""The short chaos run inside `make test` (issue #8): `python -m bench.chaos --short` on a private stack.

5k source transactions of claims traffic while the transformer is SIGKILLed 10 times, the Connect worker
SIGKILLed twice (once within two seconds after the Kafka broker's restart), the broker and PostgreSQL
restarted once each, in random order; then the curated topics must equal
the offline run of the mappings over every staging record: nothing lost, nothing duplicated, per-key
order kept, the accounting identity holding. It breaks a private stack (own ports and state folder), so a
fault that a service does not recover from cannot spill into the other tests; the stack is stopped at
the end. About 2 minutes on two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos import private_settings
from eventbus_dev.stack.launcher import LocalStack
from tests.support.stack import REPO, StackEndpoints

pytestmark = [pytest.mark.stack, pytest.mark.timeout(560)]


def test_short_chaos_run_loses_and_duplicates_nothing(stack: StackEndpoints, tmp_path: Path) -> None:
    output = tmp_path / "chaos.json"
    private = tmp_path / "stack"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bench.chaos", "--short", "--seed", "8", "--output", str(output),
             "--private-stack", str(private)],
            cwd=REPO, capture_output=True, text=True, timeout=500, check=False,
        )  # fmt: skip
    finally:
        LocalStack(private_settings(private.resolve())).down()
    assert output.exists(), result.stdout[-4000:] + result.stderr[-4000:]
    figures = json.loads(output.read_text())
    assert result.returncode == 0, (figures["failures"], result.stderr[-6000:])
    assert figures["changes"] >= 5000
    assert figures["transformer_kills"] >= 10
    assert figures["connect_kills"] >= 2
    assert figures["broker_restarts"] >= 1
    assert figures["postgres_restarts"] >= 1
    # One of the Connect kills comes within two seconds after the broker restart came back.
    assert figures["connect_kills_after_broker_restart"] >= 1
    assert all(0 <= s <= 2 for s in figures["connect_kill_seconds_after_broker_back"])
    recovery = figures["recovery_seconds"]
    assert not recovery["not_recovered"]
    assert all(recovery[kind] for kind in ("transformer", "connect", "broker", "postgres")), recovery
    assert figures["expected_events"] > 1000
    assert figures["delivered_events"] == figures["expected_events"]
    findings = ("lost", "duplicated", "duplicated_by_content", "unexpected", "different_content")
    findings += ("out_of_order",)
    assert {name: figures[name] for name in findings} == dict.fromkeys(findings, 0)
    assert figures["accounting"]["balanced"] and figures["accounting"]["every_incarnation_balanced"]
    assert figures["staging_complete"]
    # The shared stack was not touched.
    assert all(s.healthy for s in LocalStack().status())
