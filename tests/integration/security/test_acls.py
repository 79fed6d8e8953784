"""The transformer against a broker with SASL_SSL (SCRAM-SHA-512 + TLS) and ACLs (docs/security.md):
its principal reads staging, writes curated topics and the dead-letter topic, with its group and
transactional id — and nothing else. Unauthenticated clients and wrong passwords are refused. The
secrets in play never appear in its log, its /metrics, `eventbus transformer config` or any `--help`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
import typer.main
from confluent_kafka import (
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from typer.testing import CliRunner

from eventbus.cli.main import app
from eventbus.mapping.avro import load_record_schema, to_avro_json
from tests.integration.transformer.support import (
    EVENTBUS,
    Curated,
    Scenario,
    TransformerProcess,
    assert_matches_offline,
    create_topics,
    expected_offline,
    produce_records,
    read_raw,
    service_env,
    wait_caught_up,
    wait_until,
)
from tests.support.sasl_broker import SaslSslBroker, running_broker
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack
pytest.importorskip("cryptography")

INSTANCE = "a"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, stack: StackEndpoints) -> Iterator[SaslSslBroker]:
    """SCRAM-SHA-512 with ACLs enforced; `stranger` is a valid user without any ACL."""
    folder = tmp_path_factory.mktemp("acl-kafka")
    with running_broker(
        folder, mechanism="SCRAM-SHA-512", users=("transformer", "stranger"), acls=True
    ) as broker:
        yield broker


def _allow(principal: str, kind: ResourceType, name: str, *operations: AclOperation,
           pattern: ResourcePatternType = ResourcePatternType.LITERAL) -> list[AclBinding]:  # fmt: skip
    return [
        AclBinding(kind, name, pattern, principal, "*", operation, AclPermissionType.ALLOW)
        for operation in operations
    ]


def transformer_acls(scenario: Scenario) -> list[AclBinding]:
    """The transformer's whole ACL set (the table in docs/security.md)."""
    who = "User:transformer"
    read, write, describe = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE
    acls = _allow(who, ResourceType.TOPIC, scenario.staging_topic, read, describe)
    for topic in (*scenario.curated_topics, scenario.dlq_topic):
        acls += _allow(who, ResourceType.TOPIC, topic, write, describe)
    acls += _allow(who, ResourceType.GROUP, scenario.group, read, describe)
    acls += _allow(who, ResourceType.TRANSACTIONAL_ID, f"eventbus-transformer.{scenario.group}.{INSTANCE}",
                   write, describe)  # fmt: skip
    return acls


@pytest.fixture(scope="module")
def scenario(broker: SaslSslBroker, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    scenario = Scenario(tmp_path_factory.mktemp("acl-scenario"))
    admin = broker.client_config("admin")
    create_topics(broker.bootstrap, {scenario.staging_topic: 2, scenario.status_topic: 2,
                                     scenario.closed_topic: 2, scenario.dlq_topic: 1,
                                     f"{scenario.source}_private": 1},
                  **{k: v for k, v in admin.items() if k != "bootstrap.servers"})  # fmt: skip
    client = AdminClient(admin)
    for future in client.create_acls(transformer_acls(scenario)).values():
        future.result(timeout=30)
    return scenario


def _read_curated(
    bootstrap: str, topic: str, schemas: Path, value_schema: str, extra: dict[str, Any]
) -> list[Curated]:
    """The curated records (read_committed), decoded with the mapping's schemas. Not through the
    registry: confluent-kafka's client has no default timeout and was seen to wait forever on Apicurio
    after its 404 to the `associations` lookup; this test is about Kafka's ACLs, not the registry."""
    key_schema, value_record = (
        load_record_schema(schemas / "key.avsc"),
        load_record_schema(schemas / value_schema),
    )
    parsed_key = fastavro.parse_schema(json.loads((schemas / "key.avsc").read_text()))
    parsed_value = fastavro.parse_schema(json.loads((schemas / value_schema).read_text()))
    out = []
    for message in read_raw(bootstrap, topic, **extra):
        key = fastavro.schemaless_reader(io.BytesIO(message.key()[5:]), parsed_key)
        value = fastavro.schemaless_reader(io.BytesIO(message.value()[5:]), parsed_value)
        headers = {k: v.decode() for k, v in message.headers() or []}
        out.append(Curated(topic, message.partition(), message.offset(), to_avro_json(key, key_schema),
                           to_avro_json(value, value_record), headers))  # fmt: skip
    return out


def _extra(conf: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in conf.items() if k != "bootstrap.servers"}


SECRETS_ENV = {
    # Secrets beyond the SASL password, set for every command so none can leak unnoticed. (A TLS key
    # password alone is refused now, as it would do nothing: its masking is a unit test's.)
    "EVENTBUS_HASH_SALT": f"salt-{uuid.uuid4().hex}",
}


def test_the_transformer_principal_reads_staging_and_publishes(
    stack: StackEndpoints, broker: SaslSslBroker, scenario: Scenario, tmp_path: Path
) -> None:
    admin = _extra(broker.client_config("admin"))
    mappings = scenario.write_mappings(partitions=2)
    records = scenario.records(600, seed=5)
    # Debezium's role: only the connector's principal (here the admin) writes staging.
    produce_records(broker.bootstrap, scenario.staging_topic, [(r.key, r.value) for r in records], **admin)

    env = {
        **service_env(stack, scenario, EVENTBUS_INSTANCE_ID=INSTANCE),
        **broker.transformer_env(),
        **SECRETS_ENV,
    }
    log = tmp_path / "transformer.log"
    service = TransformerProcess(mappings, log, env).wait_ready(90)
    wait_caught_up(broker.bootstrap, scenario.group, scenario.staging_topic, timeout=90, **admin)
    metrics = service.metrics()
    assert service.terminate() == 0
    accounting = service.final_accounting()
    assert accounting["consumed"] == 600 and accounting["balanced"]

    # The hash salt is only in play when a mapping uses hash(); with salt, offline must use it too.
    want, _ = expected_offline(mappings / "status.yaml", records, tmp_path)
    status = _read_curated(
        broker.bootstrap, scenario.status_topic, mappings / "schemas", "status.avsc", admin
    )
    assert_matches_offline(status, want)

    printed = subprocess.run([str(EVENTBUS), "transformer", "config"], env={**os.environ, **env},
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    secrets = [broker.passwords["transformer"], *SECRETS_ENV.values()]
    for where, text in (("log", log.read_text()), ("/metrics", metrics), ("transformer config", printed)):
        for secret in secrets:
            assert secret not in text, f"a secret in the transformer's {where}"
    assert "**********" in printed


def _commands(command: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the CLI (groups and their commands)."""
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*prefix, name))


def test_no_help_text_shows_a_secret(broker: SaslSslBroker) -> None:
    env = {**broker.transformer_env(), **SECRETS_ENV, "CLAIMS_DB_PASSWORD": f"db-{uuid.uuid4().hex}",
           "EVENTBUS_REGISTRY__BASIC_AUTH_PASSWORD": f"reg-{uuid.uuid4().hex}"}  # fmt: skip
    runner = CliRunner()
    paths = list(_commands(typer.main.get_command(app)))
    assert len(paths) > 20  # every group and command, not just the top (stack and demo: eventbus-dev)
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env=env)
        assert result.exit_code == 0, (path, result.output)
        for name, secret in env.items():
            if "PASSWORD" in name or "SALT" in name:
                assert secret not in result.output, f"{name} shown by `eventbus {' '.join(path)} --help`"


def _first_error(consumer: Consumer, timeout: float = 30) -> KafkaError | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is not None:
            return message.error()
        if message is not None:
            return None  # a record was read: no refusal
    raise AssertionError("neither a record nor an error within the timeout")


def test_what_the_transformer_principal_may_not_do(broker: SaslSslBroker, scenario: Scenario) -> None:
    transformer = broker.client_config("transformer")

    # Write staging (it could forge source changes): refused.
    failures: list[KafkaError] = []
    producer = Producer({**transformer, "on_delivery": lambda error, _m: failures.append(error),
                         "message.timeout.ms": 15000})  # fmt: skip
    producer.produce(scenario.staging_topic, b"forged", b"k")
    producer.flush(30)
    assert failures and failures[0] is not None
    assert failures[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # A topic it has no ACL for: not even described (Kafka answers as for a missing topic's rights).
    private = f"{scenario.source}_private"
    probe = AdminClient(transformer).list_topics(private, timeout=15).topics[private]
    assert probe.error is not None and probe.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Topics it may only write (curated, dead letters): reading them is refused.
    for topic in (scenario.status_topic, scenario.dlq_topic):
        consumer = Consumer({**transformer, "group.id": scenario.group, "enable.auto.commit": False})
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            error = _first_error(consumer)
            assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (topic, error)
        finally:
            consumer.close()

    # Another group than its own: refused (group ACL).
    consumer = Consumer({**transformer, "group.id": "someone-elses-group", "enable.auto.commit": False})
    try:
        consumer.subscribe([scenario.staging_topic])
        error = _first_error(consumer)
        assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, error
    finally:
        consumer.close()


def test_a_valid_user_without_acls_sees_nothing(broker: SaslSslBroker, scenario: Scenario) -> None:
    stranger = broker.client_config("stranger")
    metadata = AdminClient(stranger).list_topics(timeout=15)
    assert scenario.staging_topic not in metadata.topics  # not even that it exists
    consumer = Consumer({**stranger, "group.id": f"stranger-{uuid.uuid4().hex[:6]}"})
    try:
        consumer.assign([TopicPartition(scenario.staging_topic, 0, 0)])
        error = _first_error(consumer)
        refusals = (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)
        assert error is not None and error.code() in refusals, error
    finally:
        consumer.close()


def test_unauthenticated_and_wrong_password_clients_are_refused(broker: SaslSslBroker) -> None:
    errors: list[KafkaError] = []
    # TLS without SASL on the SASL_SSL listener: the broker never lets it past the handshake.
    anonymous = AdminClient({**broker.client_config(None), "error_cb": errors.append})
    with pytest.raises(Exception):  # noqa: B017 - librdkafka reports a timeout or a transport failure
        anonymous.list_topics(timeout=8)
    wrong: list[KafkaError] = []
    intruder = AdminClient(
        {**broker.client_config("transformer", password="guess"), "error_cb": wrong.append}
    )
    with pytest.raises(Exception):  # noqa: B017
        intruder.list_topics(timeout=8)

    def refused() -> bool:
        intruder.poll(0.5)  # the error callback runs when the client is polled
        return any(e.code() == KafkaError._AUTHENTICATION for e in wrong)

    wait_until(refused, 30, "an authentication error")


def test_transformer_with_a_wrong_password_stops_with_one_line(
    stack: StackEndpoints, broker: SaslSslBroker, scenario: Scenario
) -> None:
    guess = f"guess-{uuid.uuid4().hex}"
    env = {**service_env(stack, scenario, EVENTBUS_INSTANCE_ID="wrong"), **broker.transformer_env(),
           "EVENTBUS_KAFKA__SASL__PASSWORD": guess, "EVENTBUS_TRANSACTION_TIMEOUT_MS": "8000"}  # fmt: skip
    mappings = scenario.write_mappings("m2", partitions=2)
    result = subprocess.run(
        [sys.executable, "-m", "eventbus.cli", "transformer", "run", "--mappings", str(mappings)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert guess not in result.stdout + result.stderr
    human = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(human) == 1 and human[0].startswith("error: init_transactions: "), result.stderr[-2000:]
