"""The transformer's image, built by the session and run on the real stack: the same events as the
offline run, `docker stop` honoured in every state, replicas, Docker's health status, hardening."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventbus_dev.stack.docker_engine import Engine
from eventbus_dev.stack.images import ImageBuild
from tests.integration.transformer.support import (
    Scenario,
    assert_matches_offline,
    committed_offsets,
    create_topics,
    expected_offline,
    produce_records,
    read_curated,
    service_env,
    wait_caught_up,
    wait_until,
)
from tests.support.containers import TransformerContainer, docker_run_once, image_facts
from tests.support.proxied_broker import ProxiedBroker, running_proxied_broker
from tests.support.sasl_broker import free_port
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack

GRACE_S = 10  # Docker's default stop grace period
MAX_IMAGE_MB = 250


@pytest.fixture
def scenario(stack: StackEndpoints, tmp_path: Path) -> Scenario:
    scenario = Scenario(tmp_path)
    create_topics(stack.bootstrap_servers, {scenario.staging_topic: 3, scenario.status_topic: 3,
                                            scenario.closed_topic: 3, scenario.dlq_topic: 1})  # fmt: skip
    return scenario


def _container(
    engine: Engine, image: ImageBuild, stack: StackEndpoints, scenario: Scenario, mappings: Path, **env: str
) -> TransformerContainer:
    settings = {**service_env(stack, scenario), **env}
    return TransformerContainer(engine, image.tag, mappings, settings, free_port())


def _expected(scenario: Scenario, mappings: Path, records: list) -> tuple[list, list]:
    status, dead = expected_offline(mappings / "status.yaml", records, scenario.root)
    closed, dead_closed = expected_offline(mappings / "closed.yaml", records, scenario.root)
    assert not dead and not dead_closed
    return status, closed


def _assert_curated_equal_offline(
    bootstrap: str, registry: str, scenario: Scenario, mappings: Path, records: list
) -> None:
    want_status, want_closed = _expected(scenario, mappings, records)
    schemas = mappings / "schemas"
    status = read_curated(bootstrap, registry, scenario.status_topic, schemas, "status.avsc", timeout=60)
    closed = read_curated(bootstrap, registry, scenario.closed_topic, schemas, "closed.avsc", timeout=60)
    assert_matches_offline(status, want_status)
    assert_matches_offline(closed, want_closed)


class Flow:
    """Produces records in chunks straight to the broker until stopped (steady traffic)."""

    def __init__(
        self, bootstrap: str, topic: str, records: list, chunk: int = 100, pace_s: float = 0.05
    ) -> None:
        self.bootstrap, self.topic, self.records = bootstrap, topic, records
        self.chunk, self.pace_s = chunk, pace_s
        self.produced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Flow:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set() and self.produced < len(self.records):
            chunk = self.records[self.produced : self.produced + self.chunk]
            produce_records(self.bootstrap, self.topic, [(r.key, r.value) for r in chunk])
            self.produced += len(chunk)
            self._stop.wait(self.pace_s)

    def finish(self) -> list:
        """Let the flow produce everything, then return what it produced."""
        self._thread.join(timeout=300)
        assert not self._thread.is_alive()
        return self.records[: self.produced]

    def stop(self) -> list:
        self._stop.set()
        return self.finish()


def _committed_total(bootstrap: str, scenario: Scenario, partitions: int = 3) -> int:
    try:
        offsets = committed_offsets(bootstrap, scenario.group, scenario.staging_topic, range(partitions))
    except Exception:  # the coordinator is loading or moving: ask again
        return -1
    return sum(max(0, o) for o in offsets.values())


# --- the image ---------------------------------------------------------------------------------------


def test_the_image_is_small_labelled_non_root_and_carries_no_build_tools(
    docker_engine: Engine, transformer_image: ImageBuild
) -> None:
    facts = image_facts(docker_engine, transformer_image.tag)
    assert transformer_image.size_mb <= MAX_IMAGE_MB, f"{transformer_image.size_mb} MB"
    config = facts["Config"]
    assert config["User"] == "10001:10001"
    labels = config["Labels"]
    for label in ("version", "revision", "source", "title"):
        assert labels.get(f"org.opencontainers.image.{label}"), label
    assert len(labels["org.opencontainers.image.revision"]) == 40
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]
    assert config["Healthcheck"]["Test"] == ["CMD", "eventbus", "transformer", "probe", "/healthz"]
    assert set(config["Volumes"]) == {"/var/lib/eventbus", "/tmp"}

    # Run as the image says, hardened: a non-root user, no compiler, no pip, the service's command.
    probe = docker_run_once(
        docker_engine, "--entrypoint", "sh", transformer_image.tag, "-c",
        "id -u; for tool in gcc cc make pip pip3; do command -v $tool || true; done; "
        "eventbus --help >/dev/null && echo cli-ok; touch /app/x 2>/dev/null || echo read-only; "
        "touch /tmp/x /var/lib/eventbus/x && echo writable-state",
    )  # fmt: skip
    lines = probe.stdout.split()
    assert probe.returncode == 0, probe.stderr
    assert lines[0] == "10001"
    assert lines[1:] == ["cli-ok", "read-only", "writable-state"], probe.stdout


def test_the_msk_iam_signer_still_signs_with_the_trimmed_aws_models(
    docker_engine: Engine, transformer_image: ImageBuild
) -> None:
    """botocore's service models are trimmed to STS and SSO: a token is still signed (locally) and an
    STS client, which assume-role and web-identity credentials need, still loads."""
    script = (
        "import boto3\n"
        "from aws_msk_iam_sasl_signer import MSKAuthTokenProvider\n"
        "token, expiry = MSKAuthTokenProvider.generate_auth_token('us-east-1')\n"
        "assert len(token) > 100 and expiry > 0\n"
        "boto3.client('sts', region_name='us-east-1'); boto3.client('sso-oidc', region_name='us-east-1')\n"
        "print('signed')\n"
    )
    result = docker_run_once(
        docker_engine, "-e", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "-e", "AWS_SECRET_ACCESS_KEY=secret-example",
        "--entrypoint", "python", transformer_image.tag, "-c", script,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "signed", result.stderr


# --- the service in the container ----------------------------------------------------------------------


def test_the_container_publishes_what_the_offline_run_does_and_stops_cleanly(
    docker_engine: Engine, transformer_image: ImageBuild, stack: StackEndpoints, scenario: Scenario
) -> None:
    mappings = scenario.write_mappings()
    records = scenario.records(3000)
    produce_records(stack.bootstrap_servers, scenario.staging_topic, [(r.key, r.value) for r in records])
    service = _container(docker_engine, transformer_image, stack, scenario, mappings).start()
    service.wait_ready()
    service.wait_health("healthy", 30)  # Docker's own verdict, from the image's HEALTHCHECK
    assert service.exec("id", "-u") == "10001"
    wait_caught_up(stack.bootstrap_servers, scenario.group, scenario.staging_topic, timeout=90)
    assert 'eventbus_records_total{outcome="consumed"} 3000.0' in service.metrics()

    code, took = service.stop(GRACE_S)
    assert code == 0 and took < GRACE_S, f"exit {code} after {took:.1f}s"
    _assert_curated_equal_offline(stack.bootstrap_servers, stack.registry_url, scenario, mappings, records)
    accounting = service.final_accounting()
    assert accounting["consumed"] == 3000 and accounting["balanced"] is True


def test_docker_stop_during_steady_traffic_then_a_restart_loses_and_duplicates_nothing(
    docker_engine: Engine, transformer_image: ImageBuild, stack: StackEndpoints, scenario: Scenario
) -> None:
    bootstrap = stack.bootstrap_servers
    mappings = scenario.write_mappings()
    records = scenario.records(12_000, seed=5)
    first = _container(docker_engine, transformer_image, stack, scenario, mappings).start().wait_ready()
    flow = Flow(bootstrap, scenario.staging_topic, records).start()
    try:
        wait_until(lambda: _committed_total(bootstrap, scenario) > 1500, 90, "the first container to commit")
        assert flow.produced < len(records), "the traffic ended before the stop"
        code, took = first.stop(GRACE_S)  # mid-flow: a transaction is open or about to be
        assert code == 0 and took < GRACE_S, f"exit {code} after {took:.1f}s:\n{first.log_text()[-3000:]}"
        assert "stop requested" in first.messages()
        second = _container(docker_engine, transformer_image, stack, scenario, mappings).start().wait_ready()
    finally:
        produced = flow.finish()
    wait_caught_up(bootstrap, scenario.group, scenario.staging_topic, timeout=120)
    code, took = second.stop(GRACE_S)
    assert code == 0 and took < GRACE_S
    _assert_curated_equal_offline(bootstrap, stack.registry_url, scenario, mappings, produced)


def test_two_replicas_one_killed_mid_flow_lose_and_duplicate_nothing(
    docker_engine: Engine, transformer_image: ImageBuild, stack: StackEndpoints, scenario: Scenario
) -> None:
    bootstrap = stack.bootstrap_servers
    mappings = scenario.write_mappings()
    records = scenario.records(12_000, seed=7)
    replicas = [
        _container(
            docker_engine, transformer_image, stack, scenario, mappings, EVENTBUS_INSTANCE_ID=name
        ).start()
        for name in ("a", "b")
    ]
    for replica in replicas:
        replica.wait_ready()
    flow = Flow(bootstrap, scenario.staging_topic, records).start()
    try:
        # Both replicas own partitions (3 between them) before one is killed.
        def both_assigned() -> bool:
            return all("partitions assigned" in r.messages() for r in replicas)

        wait_until(both_assigned, 60, "both replicas to own partitions")
        wait_until(lambda: _committed_total(bootstrap, scenario) > 2000, 90, "commits from the replicas")
        replicas[0].kill()  # SIGKILL mid-flow: its open transaction is aborted by the broker
    finally:
        produced = flow.finish()
    wait_caught_up(bootstrap, scenario.group, scenario.staging_topic, timeout=120)
    assert replicas[0].state()["ExitCode"] == 137
    code, _ = replicas[1].stop(GRACE_S)
    assert code == 0
    _assert_curated_equal_offline(bootstrap, stack.registry_url, scenario, mappings, produced)


# --- the broker gone -----------------------------------------------------------------------------------


def test_waiting_for_an_unreachable_broker_turns_unhealthy_and_docker_stop_is_honoured(
    docker_engine: Engine, transformer_image: ImageBuild, stack: StackEndpoints, scenario: Scenario
) -> None:
    mappings = scenario.write_mappings()
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens: init_transactions cannot complete
    service = _container(
        docker_engine, transformer_image, stack, scenario, mappings,
        EVENTBUS_KAFKA__BOOTSTRAP_SERVERS=nowhere, EVENTBUS_HTTP__BROKER_GONE_AFTER_S="3",
    ).start()  # fmt: skip
    service.wait_health("unhealthy", 40)
    assert "waiting for the transaction coordinator" in service.messages()
    code, took = service.stop(GRACE_S)
    assert code == 0 and took < GRACE_S, f"exit {code} after {took:.1f}s:\n{service.log_text()[-3000:]}"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, stack: StackEndpoints) -> Iterator[ProxiedBroker]:
    with running_proxied_broker(tmp_path_factory.mktemp("proxied-kafka-container")) as broker:
        yield broker


def test_docker_stop_while_the_broker_is_gone_mid_flow_then_a_restart_loses_nothing(
    docker_engine: Engine, transformer_image: ImageBuild, stack: StackEndpoints, proxied: ProxiedBroker,
    tmp_path: Path,
) -> None:  # fmt: skip
    bootstrap, scenario = proxied.bootstrap, Scenario(tmp_path)
    create_topics(bootstrap, {scenario.staging_topic: 3, scenario.status_topic: 3, scenario.closed_topic: 3,
                              scenario.dlq_topic: 1})  # fmt: skip
    mappings = scenario.write_mappings()
    records = scenario.records(12_000, seed=11)
    through_proxy = {
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": proxied.proxied_bootstrap,
        "EVENTBUS_KAFKA__CONSUMER": json.dumps(
            {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "reconnect.backoff.max.ms": 500}
        ),
        "EVENTBUS_KAFKA__PRODUCER": json.dumps({"reconnect.backoff.max.ms": 500}),
    }
    first = _container(docker_engine, transformer_image, stack, scenario, mappings, **through_proxy).start()
    first.wait_ready()
    flow = Flow(bootstrap, scenario.staging_topic, records).start()
    try:
        wait_until(lambda: _committed_total(bootstrap, scenario) > 1500, 90, "the container to commit")
        proxied.proxy.outage(20)  # every connection of the service cut, new ones refused (ended below)
        time.sleep(1.0)  # the outage is under way: records of an open transaction cannot commit
        code, took = first.stop(GRACE_S)
        assert took < GRACE_S, f"docker stop took {took:.1f}s (exit {code}):\n{first.log_text()[-3000:]}"
        assert code in (0, 2), f"exit {code}"  # 2: the open transaction could not end; fenced below
        proxied.proxy.outage(0)
        second = _container(
            docker_engine, transformer_image, stack, scenario, mappings, **through_proxy
        ).start()
        second.wait_ready()
    finally:
        produced = flow.finish()
    wait_caught_up(bootstrap, scenario.group, scenario.staging_topic, timeout=120)
    code, took = second.stop(GRACE_S)
    assert code == 0 and took < GRACE_S
    _assert_curated_equal_offline(bootstrap, stack.registry_url, scenario, mappings, produced)
