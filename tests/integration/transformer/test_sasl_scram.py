"""SASL_SSL + SCRAM: a second broker of the stack's Kafka, with a TLS listener whose certificate the
test generates and a SCRAM user created at storage format; the transformer runs against it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.transformer.support import (
    EVENTBUS,
    Scenario,
    TransformerProcess,
    apply_topics,
    assert_matches_offline,
    create_topics,
    expected_offline,
    produce_records,
    read_curated,
    service_env,
    wait_caught_up,
)
from tests.support.sasl_broker import SaslSslBroker, running_broker
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack
cryptography = pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory, stack: StackEndpoints) -> Iterator[SaslSslBroker]:
    """SCRAM-SHA-256 (the ACL tests use SHA-512), no ACLs: authentication alone."""
    folder = tmp_path_factory.mktemp("sasl-kafka")
    with running_broker(folder, mechanism="SCRAM-SHA-256", users=("transformer",), acls=False) as broker:
        yield broker


def test_transformer_over_sasl_ssl_scram(
    stack: StackEndpoints, sasl_broker: SaslSslBroker, tmp_path: Path
) -> None:
    client = sasl_broker.client_config("transformer")
    extra = {k: v for k, v in client.items() if k != "bootstrap.servers"}
    bootstrap = sasl_broker.bootstrap
    scenario = Scenario(tmp_path)
    create_topics(bootstrap, {scenario.staging_topic: 2, scenario.status_topic: 2, scenario.closed_topic: 2,
                              scenario.dlq_topic: 1}, **extra)  # fmt: skip
    mappings = scenario.write_mappings(partitions=2)
    records = scenario.records(800, seed=41)
    produce_records(bootstrap, scenario.staging_topic, [(r.key, r.value) for r in records], **extra)

    env = {**service_env(stack, scenario), **sasl_broker.transformer_env()}
    password = sasl_broker.passwords["transformer"]
    printed = subprocess.run([str(EVENTBUS), "transformer", "config"], env={**os.environ, **env},
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert password not in printed
    assert json.loads(printed)["consumer"]["sasl.password"] == "**********"

    # `topics apply` reaches the cluster with the transformer's settings: SASL_SSL, SCRAM, TLS.
    applied = apply_topics(mappings, env)
    assert f"set {scenario.dlq_topic} (dead-letter): retention.ms=1209600000" in applied
    service = TransformerProcess(mappings, tmp_path / "t.log", env).wait_ready()
    wait_caught_up(bootstrap, scenario.group, scenario.staging_topic, **extra)
    assert service.terminate() == 0
    assert password not in (tmp_path / "t.log").read_text()

    want, _ = expected_offline(mappings / "status.yaml", records, tmp_path)
    status = read_curated(bootstrap, stack.registry_url, scenario.status_topic, mappings / "schemas",
                          "status.avsc", **extra)  # fmt: skip
    assert_matches_offline(status, want)
