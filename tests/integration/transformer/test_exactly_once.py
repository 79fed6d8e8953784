"""The transformer on the real stack, as a subprocess: output equals `eventbus mapping run`, exactly once,
through kill -9, replayed staging segments and rebalances between two processes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.integration.transformer.support import (
    Scenario,
    TransformerProcess,
    assert_matches_offline,
    committed_offsets,
    expected_offline,
    produce_records,
    read_curated,
    service_env,
    wait_caught_up,
    wait_until,
)
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack


def _read_all(stack: StackEndpoints, scenario: Scenario, mappings: Path) -> tuple[list, list]:
    status = read_curated(
        stack.bootstrap_servers,
        stack.registry_url,
        scenario.status_topic,
        mappings / "schemas",
        "status.avsc",
    )
    closed = read_curated(
        stack.bootstrap_servers,
        stack.registry_url,
        scenario.closed_topic,
        mappings / "schemas",
        "closed.avsc",
    )
    return status, closed


def _expected(scenario: Scenario, mappings: Path, records: list) -> tuple[list, list]:
    status, dead = expected_offline(mappings / "status.yaml", records, scenario.root)
    closed, dead_closed = expected_offline(mappings / "closed.yaml", records, scenario.root)
    assert not dead and not dead_closed
    return status, closed


def test_curated_events_equal_the_offline_run(stack: StackEndpoints, scenario: Scenario) -> None:
    mappings = scenario.write_mappings()
    records = scenario.records(3000)
    produce_records(stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in records])
    service = TransformerProcess(mappings, scenario.root / "t.log", service_env(stack, scenario)).wait_ready()
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic)
    metrics = service.metrics()
    assert service.terminate() == 0, "SIGTERM must end the service cleanly"

    status, closed = _read_all(stack, scenario, mappings)
    want_status, want_closed = _expected(scenario, mappings, records)
    assert len(want_status) > 2000 and len(want_closed) > 100  # both mappings of the table fire
    assert_matches_offline(status, want_status)
    assert_matches_offline(closed, want_closed)

    accounting = service.final_accounting()
    assert accounting["consumed"] == 3000
    assert (
        accounting["consumed"]
        == accounting["emitted_from"] + accounting["filtered"] + accounting["dead_lettered"]
    )
    assert accounting["balanced"] is True
    assert accounting["events_out"] == len(want_status) + len(want_closed)
    assert accounting["mappings"]["claim_closed"]["events_out"] == len(want_closed)
    assert 'eventbus_records_total{outcome="consumed"} 3000.0' in metrics
    assert (
        f'eventbus_mapping_events_out_total{{mapping="claim_status_changed"}} {len(want_status)}.0' in metrics
    )
    assert "eventbus_source_to_publish_seconds_count" in metrics
    assert 'eventbus_transactions_total{result="committed"}' in metrics


def _background_producer(
    stack: StackEndpoints, scenario: Scenario, records: list, chunks: int, pace_s: float = 0.1
) -> threading.Thread:
    """Produces `records` in `chunks` pieces, one every `pace_s`: a steady flow that lasts a while
    (pacing shapes the load; nothing waits on it)."""

    def run() -> None:
        size = len(records) // chunks + 1
        for start in range(0, len(records), size):
            produce_records(
                stack.bootstrap_servers,
                scenario.staging_topic,
                [(r.key, r.value) for r in records[start : start + size]],
            )
            time.sleep(pace_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_kill_9_mid_flow_then_restart_loses_and_duplicates_nothing(
    stack: StackEndpoints, scenario: Scenario
) -> None:
    mappings = scenario.write_mappings()
    records = scenario.records(30_000, seed=7)
    env = service_env(stack, scenario)
    first = TransformerProcess(mappings, scenario.root / "first.log", env).wait_ready()
    producer = _background_producer(stack, scenario, records, chunks=60)

    def some_committed() -> bool:
        return (
            sum(
                max(0, o)
                for o in committed_offsets(
                    stack.bootstrap_servers, scenario.group, scenario.staging_topic, range(3)
                ).values()
            )
            > 2000
        )

    wait_until(some_committed, 60, "the first instance to commit some batches", interval=0.05)
    first.kill9()
    assert producer.is_alive(), "the flow should still be going when the transformer is killed"
    # Same instance id: the restart fences the killed producer and aborts its open transaction.
    second = TransformerProcess(mappings, scenario.root / "second.log", env).wait_ready()
    producer.join(timeout=90)
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic, timeout=90)
    assert second.terminate() == 0

    status, closed = _read_all(stack, scenario, mappings)
    want_status, want_closed = _expected(scenario, mappings, records)
    assert_matches_offline(status, want_status)
    assert_matches_offline(closed, want_closed)


def test_replayed_staging_segment_is_not_published_again(stack: StackEndpoints, scenario: Scenario) -> None:
    mappings = scenario.write_mappings()
    records = scenario.records(2000, seed=3)
    produce_records(stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in records])
    service = TransformerProcess(mappings, scenario.root / "t.log", service_env(stack, scenario)).wait_ready()
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic)
    # What Debezium does after a connector restart: the same changes again, at new offsets.
    segment = records[700:1600]
    produce_records(stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in segment])
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic)
    metrics = service.metrics()
    assert service.terminate() == 0

    status, closed = _read_all(stack, scenario, mappings)
    want_status, want_closed = _expected(scenario, mappings, records)
    assert_matches_offline(status, want_status)
    assert_matches_offline(closed, want_closed)
    accounting = service.final_accounting()
    assert accounting["consumed"] == 2000 + len(segment)
    # A copy some mapping emits from is a duplicate (claim_status_changed: every insert and update);
    # a copy every mapping filters out (a delete) is filtered again, its position not even read.
    with_outcome = sum(1 for r in segment if r.op in "cu")
    assert 800 < with_outcome < 900
    assert f'eventbus_records_filtered_total{{reason="duplicate"}} {with_outcome}.0' in metrics


def test_replay_after_restart_is_recognised_from_the_committed_watermark(
    stack: StackEndpoints, scenario: Scenario
) -> None:
    """The watermark survives the process: it lives in the committed offsets' metadata."""
    mappings = scenario.write_mappings()
    records = scenario.records(1000, seed=5)
    env = service_env(stack, scenario)
    produce_records(stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in records])
    first = TransformerProcess(mappings, scenario.root / "first.log", env).wait_ready()
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic)
    assert first.terminate() == 0
    produce_records(
        stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in records[200:]]
    )
    second = TransformerProcess(mappings, scenario.root / "second.log", env).wait_ready()
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic)
    assert second.terminate() == 0
    assert second.final_accounting()["emitted_from"] == 0

    status, closed = _read_all(stack, scenario, mappings)
    want_status, want_closed = _expected(scenario, mappings, records)
    assert_matches_offline(status, want_status)
    assert_matches_offline(closed, want_closed)


def test_two_processes_and_rebalances_mid_flow(stack: StackEndpoints, scenario: Scenario) -> None:
    mappings = scenario.write_mappings()
    records = scenario.records(24_000, seed=11)
    a = TransformerProcess(
        mappings, scenario.root / "a.log", service_env(stack, scenario, EVENTBUS_INSTANCE_ID="a")
    )
    a.wait_ready()
    producer = _background_producer(stack, scenario, records, chunks=80)

    def committed_total() -> int:
        offsets = committed_offsets(stack.bootstrap_servers, scenario.group, scenario.staging_topic, range(3))
        return sum(max(0, o) for o in offsets.values())

    wait_until(lambda: committed_total() > 1000, 60, "instance a to make progress", interval=0.05)
    # Second process joins: a rebalance while events flow.
    b = TransformerProcess(
        mappings, scenario.root / "b.log", service_env(stack, scenario, EVENTBUS_INSTANCE_ID="b")
    )
    b.wait_ready()
    wait_until(
        lambda: any(e.get("msg") == "partitions assigned" for e in b.logs()), 60, "b to get partitions"
    )
    before = committed_total()
    wait_until(lambda: committed_total() > before + 500, 60, "the group to make progress after the rebalance")
    assert producer.is_alive(), "the flow should still be going during the rebalances"
    # First process leaves (SIGTERM): its open transaction commits in on_revoke, b takes over.
    assert a.terminate() == 0
    producer.join(timeout=90)
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic, timeout=90)
    assert b.terminate() == 0

    assert a.final_accounting()["consumed"] > 0 and b.final_accounting()["consumed"] > 0
    status, closed = _read_all(stack, scenario, mappings)
    want_status, want_closed = _expected(scenario, mappings, records)
    assert_matches_offline(status, want_status)
    assert_matches_offline(closed, want_closed)
