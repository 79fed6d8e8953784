"""`static_membership`: an instance killed with SIGKILL and started again under the same instance id
takes its partitions back at once, instead of after the dead member's session timeout."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.transformer.support import (
    Scenario,
    TransformerProcess,
    assert_matches_offline,
    expected_offline,
    produce_records,
    read_curated,
    service_env,
    wait_caught_up,
)
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack

SESSION_TIMEOUT_MS = 30_000


def test_a_killed_static_member_restarts_without_waiting_out_its_session(
    stack: StackEndpoints, scenario: Scenario
) -> None:
    mappings = scenario.write_mappings()
    records = scenario.records(4000, seed=11)
    first_half, second_half = records[:2000], records[2000:]
    env = service_env(
        stack,
        scenario,
        EVENTBUS_STATIC_MEMBERSHIP="true",
        # Long enough that waiting it out cannot pass for a prompt restart.
        EVENTBUS_KAFKA__CONSUMER=json.dumps(
            {"session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 3000}
        ),
    )
    produce_records(stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in first_half])
    first = TransformerProcess(mappings, scenario.root / "first.log", env).wait_ready()
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic)
    first.kill9()

    produce_records(stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in second_half])
    started = time.monotonic()
    second = TransformerProcess(mappings, scenario.root / "second.log", env)
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic, timeout=90)
    took = time.monotonic() - started
    assert second.terminate() == 0
    # A dynamic member waits for the killed one to be evicted: the whole session timeout (30 s).
    assert took < SESSION_TIMEOUT_MS / 1000 / 2, f"caught up {took:.1f} s after the restart"

    status = read_curated(
        stack.bootstrap_servers,
        stack.registry_url,
        scenario.status_topic,
        mappings / "schemas",
        "status.avsc",
    )
    want_status, dead = expected_offline(mappings / "status.yaml", records, scenario.root)
    assert not dead
    assert_matches_offline(status, want_status)
