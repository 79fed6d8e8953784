"""Curated and dead-letter topics are provisioned, not auto-created (the stack's broker, like the bus,
has `auto.create.topics.enable=false`): the transformer refuses to start, in one line naming the topic
and the command, until `eventbus topics apply` has created them with the mappings' settings; a topic
with more partitions than declared is never shrunk, one with fewer grows only when asked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from tests.integration.transformer.support import (
    EVENTBUS,
    Scenario,
    TransformerProcess,
    create_topics,
    produce_records,
    service_env,
    wait_caught_up,
)
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack
WEEK_MS = str(7 * 86_400_000)


def _eventbus(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EVENTBUS), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def _human_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What a person reads on stderr: the JSON log lines aside."""
    return [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")]


def _partitions(stack: StackEndpoints, topic: str) -> int:
    metadata = AdminClient({"bootstrap.servers": stack.bootstrap_servers}).list_topics(topic, timeout=15)
    return len(metadata.topics[topic].partitions)


def _config(stack: StackEndpoints, topic: str, name: str) -> str:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    return str(admin.describe_configs([resource])[resource].result(15)[name].value)


def test_the_transformer_refuses_missing_topics_until_topics_apply(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    scenario = Scenario(tmp_path)
    create_topics(stack.bootstrap_servers, {scenario.staging_topic: 3})  # the source's part: registration
    mappings = scenario.write_mappings()  # each curated topic declares 3 partitions
    env = service_env(stack, scenario)

    planned = _eventbus("topics", "plan", "--mappings", str(mappings), env=env)
    assert planned.returncode == 1, planned.stdout + planned.stderr
    assert planned.stdout.splitlines() == [
        f"create         {scenario.closed_topic} (curated): 3 partitions, the broker's default replication "
        f"factor, cleanup.policy=delete, retention.ms={WEEK_MS}",
        f"create         {scenario.status_topic} (curated): 3 partitions, the broker's default replication "
        f"factor, cleanup.policy=delete, retention.ms={WEEK_MS}",
        f"create         {scenario.dlq_topic} (dead-letter): 1 partition, the broker's default replication "
        "factor, cleanup.policy=delete, retention.ms=1209600000",
    ]

    refused = _eventbus("transformer", "run", "--mappings", str(mappings), env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    assert _human_lines(refused) == [
        f"error: not started: curated topic {scenario.closed_topic} does not exist; curated topic "
        f"{scenario.status_topic} does not exist; dead-letter topic {scenario.dlq_topic} does not exist; "
        f"run `eventbus topics apply --mappings {mappings}` (with the transformer's settings) to provision "
        "its topics"
    ]
    # Refusing did not create them either (no produce reached the broker).
    assert _eventbus("topics", "plan", "--mappings", str(mappings), env=env).returncode == 1

    applied = _eventbus("topics", "apply", "--mappings", str(mappings), env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"created {scenario.status_topic} (curated): 3 partitions" in applied.stdout
    assert f"created {scenario.dlq_topic} (dead-letter): 1 partition" in applied.stdout
    assert [_partitions(stack, t) for t in (*scenario.curated_topics, scenario.dlq_topic)] == [3, 3, 1]
    assert _config(stack, scenario.status_topic, "retention.ms") == WEEK_MS
    replanned = _eventbus("topics", "plan", "--mappings", str(mappings), env=env)
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr
    assert all(line.startswith("ok ") for line in replanned.stdout.splitlines())

    records = scenario.records(200, seed=18)
    produce_records(stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in records])
    service = TransformerProcess(mappings, tmp_path / "t.log", env).wait_ready()
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic)
    assert service.terminate() == 0
    accounting = service.final_accounting()
    assert accounting["consumed"] == 200 and accounting["events_out"] > 0 and accounting["balanced"]


def test_partitions_are_never_taken_away_and_added_only_when_asked(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    scenario = Scenario(tmp_path)
    # status: more partitions than the mappings declare (3); closed: fewer, and a one-day retention.
    create_topics(
        stack.bootstrap_servers,
        {
            scenario.staging_topic: 3,
            scenario.status_topic: 6,
            scenario.closed_topic: 1,
            scenario.dlq_topic: 1,
        },
    )
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    one_day = ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, scenario.closed_topic, incremental_configs=[one_day])
    admin.incremental_alter_configs([resource])[resource].result(15)
    mappings = scenario.write_mappings()
    env = service_env(stack, scenario)
    status_file = mappings / "status.yaml"

    refused = _eventbus("transformer", "run", "--mappings", str(mappings), env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = _human_lines(refused)
    assert line.startswith(
        f"error: not started: curated topic {scenario.closed_topic} has 1 partition, "
        f"{mappings / 'closed.yaml'} emit[0] (topic_settings) declares 3; curated topic "
        f"{scenario.status_topic} has 6 partitions, {status_file} emit[0] (topic_settings) declares 3; run "
        f"`eventbus topics apply --mappings {mappings}`"
    ), line

    applied = _eventbus("topics", "apply", "--mappings", str(mappings), env=env)
    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert "Kafka cannot take partitions away; declare 6" in applied.stderr
    assert "--add-partitions" in applied.stderr
    assert (_partitions(stack, scenario.status_topic), _partitions(stack, scenario.closed_topic)) == (6, 1)
    # A topic apply refuses is left as it is, configs included (as it says)
    assert f"set {scenario.closed_topic}" not in applied.stdout
    assert _config(stack, scenario.closed_topic, "retention.ms") == "86400000"

    grown = _eventbus("topics", "apply", "--mappings", str(mappings), "--add-partitions", env=env)
    assert grown.returncode == 1, grown.stdout + grown.stderr  # status still has 6: not shrunk
    assert f"partitions of {scenario.closed_topic}: now 3" in grown.stdout
    assert f"set {scenario.closed_topic} (curated): retention.ms={WEEK_MS}" in grown.stdout
    assert (_partitions(stack, scenario.status_topic), _partitions(stack, scenario.closed_topic)) == (6, 3)
    assert _config(stack, scenario.closed_topic, "retention.ms") == WEEK_MS
    assert "Kafka cannot take partitions away" in grown.stderr


def test_a_topic_deleted_while_running_is_named_when_its_records_time_out(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    """Records to a topic deleted under the running service are never delivered; the commit times
    out and the service stops (nothing of the batch is committed). The line said "is the Kafka
    cluster reachable?"; it names the missing topic and the command that provisions it."""
    scenario = Scenario(tmp_path)
    create_topics(stack.bootstrap_servers, {scenario.staging_topic: 3})
    mappings = scenario.write_mappings()
    env = service_env(stack, scenario, EVENTBUS_TRANSACTION_TIMEOUT_MS="8000")
    assert _eventbus("topics", "apply", "--mappings", str(mappings), env=env).returncode == 0
    records = scenario.records(200, seed=19)
    pairs = [(r.key, r.value) for r in records]
    produce_records(stack.bootstrap_servers, scenario.staging_topic, pairs[:100])
    service = TransformerProcess(mappings, tmp_path / "t.log", env).wait_ready()
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic)

    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    admin.delete_topics([scenario.status_topic])[scenario.status_topic].result(30)
    produce_records(stack.bootstrap_servers, scenario.staging_topic, pairs[100:])
    code = service.process.wait(timeout=120)

    assert code == 2
    (line,) = [e["error"] for e in service.logs() if e.get("msg") == "stopping: fatal error"]
    assert f"; curated topic {scenario.status_topic} does not exist: run `eventbus topics apply" in line
    assert "reachable" not in line
