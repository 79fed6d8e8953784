"""Poison records go to the DLQ with their reason, the service keeps going, and a replay after the fix
publishes exactly what the fixed mapping computes offline; at-least-once mode gives the same output."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from eventbus.service import dead_letter as dl
from tests.integration.transformer.support import (
    EVENTBUS,
    FIXED,
    POISONOUS,
    Scenario,
    TransformerProcess,
    assert_matches_offline,
    expected_offline,
    produce_records,
    read_curated,
    read_raw,
    service_env,
    wait_caught_up,
)
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack


def test_poison_to_dlq_then_replay_after_the_fix(stack: StackEndpoints, scenario: Scenario) -> None:
    broken = scenario.write_mappings("broken", claimant_name=POISONOUS)
    records = scenario.records(1500, seed=21)
    staged: list[tuple[bytes | None, bytes | None]] = [(r.key, r.value) for r in records]
    staged.insert(100, (records[0].key, b"\x00\x01 not json"))  # corrupt bytes
    staged.insert(900, (records[1].key, b'{"schema":null,"payload":{"op":"x"}}'))  # not a Debezium change
    produce_records(stack.bootstrap_servers, scenario.staging_topic, staged)
    env = service_env(stack, scenario)
    service = TransformerProcess(broken, scenario.root / "t.log", env).wait_ready()
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic)
    assert service.terminate() == 0

    want_broken, offline_dead = expected_offline(broken / "status.yaml", records, scenario.root)
    assert offline_dead, "the sample must contain poison changes"
    status = read_curated(
        stack.bootstrap_servers, stack.registry_url, scenario.status_topic, broken / "schemas", "status.avsc"
    )
    assert_matches_offline(status, want_broken)  # everything else went through

    dead = read_raw(stack.bootstrap_servers, scenario.dlq_topic)
    infos = [dl.parse_dead_letter(m.headers()) for m in dead]
    assert sorted(i.kind for i in infos) == sorted(["decode"] * 2 + ["mapping"] * len(offline_dead))
    staging = {
        (m.partition(), m.offset()): m for m in read_raw(stack.bootstrap_servers, scenario.staging_topic)
    }
    for message, info in zip(dead, infos, strict=True):
        original = staging[(info.origin.partition, info.origin.offset)]
        assert info.origin.topic == scenario.staging_topic
        assert message.value() == original.value() and message.key() == original.key()
        if info.kind == "mapping":
            assert (info.mapping, info.mapping_version) == ("claim_status_changed", 1)
            assert "claimant_name" in info.reason
        else:
            assert info.mapping is None and info.reason
    accounting = service.final_accounting()
    assert accounting["dead_lettered"] == len(dead)
    assert accounting["consumed"] == len(staged)
    assert accounting["balanced"]

    # An operator reads them: `dlq list` (a line each and counts), `dlq show` (one in full).
    def eventbus(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(EVENTBUS), *args], env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=90)  # fmt: skip

    listed = eventbus("dlq", "list", "--limit", "3")
    assert listed.returncode == 0, listed.stderr
    assert f"{len(dead)} dead letter(s) on {scenario.dlq_topic}" in listed.stdout
    assert f"{len(offline_dead):>6}  mapping       claim_status_changed" in listed.stdout
    first = dead[0]
    shown = eventbus("dlq", "show", f"{first.partition()}@{first.offset()}")
    assert shown.returncode == 0, shown.stderr
    details = json.loads(shown.stdout)
    assert details["reason"] == infos[0].reason and details["kind"] == infos[0].kind
    assert details["value_bytes"] == len(first.value()) and "value" not in details  # only with --value
    assert eventbus("dlq", "show", "0@999999").returncode == 1

    # A replay with a folder that lacks the failed mapping: its dead letters go back to the DLQ
    # saying so (they were counted as filtered and committed past, for good); exit 1.
    partial = scenario.write_mappings("partial", claimant_name=FIXED)
    (partial / "status.yaml").unlink()
    without = eventbus("dlq", "replay", "--mappings", str(partial))
    assert without.returncode == 1, without.stderr
    assert json.loads(without.stdout)["mapping_gone"] == len(offline_dead)
    back = [dl.parse_dead_letter(m.headers()) for m in read_raw(stack.bootstrap_servers, scenario.dlq_topic)]
    back = back[len(dead) :]
    assert sorted((i.kind, i.attempt) for i in back) == sorted(
        [("decode", 2)] * 2 + [("mapping", 2)] * len(offline_dead)
    )
    gone = next(i for i in back if i.kind == "mapping")
    assert (gone.mapping, gone.mapping_version) == ("claim_status_changed", 1)
    assert gone.reason.startswith("mapping claim_status_changed is not among the mappings of the replay")
    dead = [*dead, *read_raw(stack.bootstrap_servers, scenario.dlq_topic)[len(dead) :]]

    fixed = scenario.write_mappings("fixed", claimant_name=FIXED)
    replay = subprocess.run(
        [str(EVENTBUS), "dlq", "replay", "--mappings", str(fixed)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )
    # The two undecodable records fail again (exit 1) and go back to the DLQ as attempt 3.
    assert replay.returncode == 1, replay.stderr
    want_fixed, _ = expected_offline(fixed / "status.yaml", records, scenario.root)
    status = read_curated(
        stack.bootstrap_servers, stack.registry_url, scenario.status_topic, fixed / "schemas", "status.avsc"
    )
    assert_matches_offline(status, want_fixed)
    want_closed, _ = expected_offline(fixed / "closed.yaml", records, scenario.root)
    closed = read_curated(
        stack.bootstrap_servers, stack.registry_url, scenario.closed_topic, fixed / "schemas", "closed.avsc"
    )
    assert_matches_offline(closed, want_closed)  # the replay did not re-run the mapping that had succeeded
    again = [dl.parse_dead_letter(m.headers()) for m in read_raw(stack.bootstrap_servers, scenario.dlq_topic)]
    assert sorted((i.kind, i.attempt) for i in again[len(dead) :]) == [("decode", 3), ("decode", 3)]

    # A second replay continues after the first (its offsets were committed): nothing is published twice.
    second = subprocess.run(
        [str(EVENTBUS), "dlq", "replay", "--mappings", str(fixed)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert second.returncode == 1, second.stderr  # the two attempt-3 records fail once more
    status = read_curated(
        stack.bootstrap_servers, stack.registry_url, scenario.status_topic, fixed / "schemas", "status.avsc"
    )
    assert_matches_offline(status, want_fixed)


def test_at_least_once_mode_gives_the_same_output(stack: StackEndpoints, scenario: Scenario) -> None:
    mappings = scenario.write_mappings()
    records = scenario.records(2000, seed=31)
    produce_records(stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in records])
    env = service_env(stack, scenario, EVENTBUS_DELIVERY="at-least-once")
    service = TransformerProcess(mappings, scenario.root / "t.log", env).wait_ready()
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic)
    assert service.terminate() == 0
    starting = next(e for e in service.logs() if e.get("msg") == "transformer starting")
    assert starting["delivery"] == "at-least-once" and starting["transactional_id"] is None

    want, _ = expected_offline(mappings / "status.yaml", records, scenario.root)
    status = read_curated(
        stack.bootstrap_servers,
        stack.registry_url,
        scenario.status_topic,
        mappings / "schemas",
        "status.avsc",
    )
    assert_matches_offline(status, want)
    assert service.final_accounting()["balanced"]
