"""SASL_SSL + SCRAM: a second broker of the stack's Kafka, with a TLS listener whose certificate the
test generates and a SCRAM user created at storage format; the transformer runs against it."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventbus.stack.artifacts import find_java
from eventbus.stack.errors import StackError
from eventbus.stack.services import KafkaService, _write_properties
from eventbus.stack.settings import StackSettings
from tests.integration.transformer.support import (
    EVENTBUS,
    Scenario,
    TransformerProcess,
    assert_matches_offline,
    create_topics,
    expected_offline,
    produce_records,
    read_curated,
    service_env,
    wait_caught_up,
    wait_until,
)
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack
cryptography = pytest.importorskip("cryptography")

USER, PASSWORD = "transformer", "scram-" + uuid.uuid4().hex[:12]


def _free_port() -> int:
    # Ports the OS hands out are free now; only this test's own broker uses them.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _certificates(folder: Path) -> tuple[Path, Path, str]:
    """A CA and a broker certificate for 127.0.0.1/localhost; returns (CA PEM, PKCS12 keystore, password)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eventbus test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_pem = folder / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    password = uuid.uuid4().hex
    keystore = folder / "broker.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"broker", key, cert, [ca], serialization.BestAvailableEncryption(password.encode())
        )
    )
    return ca_pem, keystore, password


class SaslSslKafka(KafkaService):
    """The stack's broker with a SASL_SSL (SCRAM-SHA-256) client listener, own ports and state dir."""

    def __init__(
        self, settings: StackSettings, internal_port: int, ca: Path, keystore: Path, password: str
    ) -> None:
        super().__init__(settings)
        self.internal_port, self.ca, self.keystore, self.keystore_password = (
            internal_port,
            ca,
            keystore,
            password,
        )

    def client_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": f"127.0.0.1:{self.port}",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": USER,
            "sasl.password": PASSWORD,
            "ssl.ca.location": str(self.ca),
        }

    def start_broker(self, java: Path, kafka_libs: Path) -> None:
        s, host = self.settings, "127.0.0.1"
        config = self.home / "server.properties"
        _write_properties(config, {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{host}:{s.kafka_controller_port}",
            "listeners": f"SASL_SSL://{host}:{s.kafka_port},INTERNAL://{host}:{self.internal_port},"
                         f"CONTROLLER://{host}:{s.kafka_controller_port}",
            "advertised.listeners": f"SASL_SSL://{host}:{s.kafka_port},INTERNAL://{host}:{self.internal_port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": self.keystore,
            "ssl.keystore.password": self.keystore_password,
            "ssl.key.password": self.keystore_password,
            "log.dirs": self.home / "data",
            "num.partitions": 1,
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "false",
        })  # fmt: skip
        classpath = f"{kafka_libs}/*"
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        scram = f"SCRAM-SHA-256=[name={USER},password={PASSWORD}]"
        command = self._java(java, "-Xmx256m", "-cp", classpath, "kafka.tools.StorageTool", "format",
                             "-t", cluster_id, "-c", str(config), "--add-scram", scram)  # fmt: skip
        formatted = subprocess.run(command, capture_output=True, text=True, check=False)
        if formatted.returncode != 0:
            raise StackError(f"formatting the SASL broker failed:\n{formatted.stdout}{formatted.stderr}")
        self.process.start(
            self._java(java, "-Xms128m -Xmx384m", "-cp", classpath, "kafka.Kafka", str(config))
        )

    def is_ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            return bool(AdminClient({**self.client_config(), "log_level": 0}).list_topics(timeout=3).brokers)
        except Exception:
            return False


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory, stack: StackEndpoints) -> Iterator[SaslSslKafka]:
    folder = tmp_path_factory.mktemp("sasl-kafka")
    ca, keystore, password = _certificates(folder)
    stack_settings = StackSettings()
    kafka_libs = stack_settings.cache / "stack" / "kafka-libs"
    if not kafka_libs.is_dir():
        pytest.skip(f"the stack's Kafka libraries are not in {kafka_libs}")
    settings = StackSettings(
        state_dir=folder / "state", kafka_port=_free_port(), kafka_controller_port=_free_port()
    )
    broker = SaslSslKafka(settings, _free_port(), ca, keystore, password)
    broker.start_broker(find_java(17), kafka_libs)
    try:
        wait_until(broker.is_ready, 90, "the SASL_SSL broker", interval=0.5)
        yield broker
    finally:
        broker.process.stop(timeout=20)


def test_transformer_over_sasl_ssl_scram(
    stack: StackEndpoints, sasl_broker: SaslSslKafka, tmp_path: Path
) -> None:
    client = sasl_broker.client_config()
    extra = {k: v for k, v in client.items() if k != "bootstrap.servers"}
    bootstrap = client["bootstrap.servers"]
    scenario = Scenario(tmp_path)
    create_topics(bootstrap, {scenario.staging_topic: 2, scenario.status_topic: 2, scenario.closed_topic: 2,
                              scenario.dlq_topic: 1}, **extra)  # fmt: skip
    mappings = scenario.write_mappings()
    records = scenario.records(800, seed=41)
    produce_records(bootstrap, scenario.staging_topic, [(r.key, r.value) for r in records], **extra)

    env = service_env(stack, scenario)
    env.update({
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "EVENTBUS_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "EVENTBUS_KAFKA__SASL__MECHANISM": "SCRAM-SHA-256",
        "EVENTBUS_KAFKA__SASL__USERNAME": USER,
        "EVENTBUS_KAFKA__SASL__PASSWORD": PASSWORD,
        "EVENTBUS_KAFKA__TLS__CA_LOCATION": str(sasl_broker.ca),
    })  # fmt: skip
    printed = subprocess.run([str(EVENTBUS), "transformer", "config"], env={**os.environ, **env},
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert PASSWORD not in printed
    assert json.loads(printed)["consumer"]["sasl.password"] == "**********"

    service = TransformerProcess(mappings, tmp_path / "t.log", env).wait_ready()
    wait_caught_up(bootstrap, scenario.group, scenario.staging_topic, **extra)
    assert service.terminate() == 0
    assert PASSWORD not in (tmp_path / "t.log").read_text()

    want, _ = expected_offline(mappings / "status.yaml", records, tmp_path)
    status = read_curated(bootstrap, stack.registry_url, scenario.status_topic, mappings / "schemas",
                          "status.avsc", **extra)  # fmt: skip
    assert_matches_offline(status, want)
