"""Transformer settings: sources and precedence, validation, secret masking, librdkafka rendering."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer

from eventbus.errors import ConfigError
from eventbus.events.avro import RegistryMode
from eventbus.service.kafka_settings import LIBRDKAFKA_ALIASES, refusal_hint
from eventbus.service.security import msk_iam_oauth_cb
from eventbus.service.settings import MASK, DeliveryMode, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("EVENTBUS_"):
            monkeypatch.delenv(name)


def test_defaults_are_local_exactly_once() -> None:
    settings = load_settings(instance_id="i1")
    assert settings.delivery is DeliveryMode.EXACTLY_ONCE
    assert settings.commit_interval_ms == 100
    assert settings.dlq_topic == "staging.dlq.eventbus-transformer"
    producer = settings.producer_config()
    assert producer["transactional.id"] == "eventbus-transformer.eventbus-transformer.i1"
    assert producer["enable.idempotence"] is True
    assert producer["partitioner"] == "murmur2_random"
    consumer = settings.consumer_config()
    assert consumer["isolation.level"] == "read_committed"
    assert consumer["enable.auto.commit"] is False
    assert consumer["security.protocol"] == "PLAINTEXT"


def test_compose_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker-compose.yml sets exactly these two names.
    monkeypatch.setenv("EVENTBUS_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("EVENTBUS_REGISTRY__URL", "http://registry:8080/apis/ccompat/v7")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.registry_config()["url"] == "http://registry:8080/apis/ccompat/v7"
    compose = (Path(__file__).resolve().parents[3] / "docker-compose.yml").read_text()
    assert "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS" in compose and "EVENTBUS_REGISTRY__URL" in compose


def test_config_file_below_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "transformer.yaml"
    config.write_text(
        "group_id: claims-transformer\n"
        "commit_interval_ms: 250\n"
        "kafka:\n  bootstrap_servers: file:9092\n  client_id: from-file\n"
        "registry:\n  mode: pinned\n"
    )
    monkeypatch.setenv("EVENTBUS_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    settings = load_settings(config)
    assert settings.group_id == "claims-transformer"
    assert settings.commit_interval_ms == 250
    assert settings.kafka.bootstrap_servers == "env:9092"  # the environment wins
    assert settings.kafka.client_id == "from-file"  # nested keys not set in env keep the file's value
    assert settings.registry.mode is RegistryMode.PINNED


def test_unknown_key_in_config_file_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "transformer.yaml"
    config.write_text("kafka:\n  bootstrap_server: typo:9092\n")
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_server: unknown setting"):
        load_settings(config)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("group_id: a\nkafka: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+:\d+: invalid YAML"):
        load_settings(config)


def _scram(**extra: object) -> dict[str, object]:
    return {
        "security_protocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "svc", "password": "s3cret-pw"},
        "tls": {"ca_location": "/etc/ca.pem"},
        **extra,
    }


def test_scram_rendering_and_masking() -> None:
    settings = load_settings(
        kafka=_scram(), registry={"basic_auth_user": "u", "basic_auth_password": "r3g-pw"}
    )
    revealed = settings.producer_config(reveal=True)
    assert revealed["security.protocol"] == "SASL_SSL"
    assert revealed["sasl.mechanism"] == "SCRAM-SHA-512"
    assert revealed["sasl.username"] == "svc"
    assert revealed["sasl.password"] == "s3cret-pw"
    assert revealed["ssl.ca.location"] == "/etc/ca.pem"
    assert settings.consumer_config()["sasl.password"] == MASK
    assert settings.registry_config(reveal=True)["basic.auth.user.info"] == "u:r3g-pw"
    printed = json.dumps(settings.effective(), default=str)
    assert "s3cret-pw" not in printed and "r3g-pw" not in printed
    assert MASK in printed
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in str(settings)


def test_mutual_tls_rendering() -> None:
    settings = load_settings(
        kafka={
            "security_protocol": "SSL",
            "tls": {
                "ca_location": "/ca.pem",
                "certificate_location": "/c.pem",
                "key_location": "/k.pem",
                "key_password": "kpw",
                "verify_hostname": False,
            },
        }
    )
    conf = settings.consumer_config(reveal=True)
    assert conf["security.protocol"] == "SSL"
    assert conf["ssl.certificate.location"] == "/c.pem"
    assert conf["ssl.key.location"] == "/k.pem"
    assert conf["ssl.key.password"] == "kpw"
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert settings.consumer_config()["ssl.key.password"] == MASK
    assert "sasl.mechanism" not in conf


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        ({"security_protocol": "PLAINTEXT", "sasl": {"mechanism": "SCRAM-SHA-256"}}, "use SASL_SSL"),
        ({"security_protocol": "SASL_SSL"}, "needs sasl.mechanism"),
        (
            {"security_protocol": "SASL_SSL", "sasl": {"mechanism": "SCRAM-SHA-256", "username": "u"}},
            "password",
        ),
        ({"security_protocol": "SASL_SSL", "sasl": {"mechanism": "OAUTHBEARER"}}, "aws_region"),
        ({"tls": {"ca_location": "/ca.pem"}}, "security_protocol is PLAINTEXT"),
        ({"security_protocol": "SSL", "tls": {"certificate_location": "/c.pem"}}, "go together"),
        ({"consumer": {"enable.auto.commit": True}}, "set by the service"),
        ({"producer": {"transactional.id": "mine"}}, "set by the service"),
        # librdkafka's other names of a managed property were taken, and won over the service's
        ({"producer": {"request.required.acks": "1"}}, r"acks \(librdkafka's other name for acks\)"),
        ({"consumer": {"metadata.broker.list": "h:1"}}, "other name for bootstrap.servers"),
        ({"consumer": {"auto.commit.enable": True}}, "other name for enable.auto.commit"),
        ({"security_protocol": "SSL", "tls": {"key_password": "x"}}, "tls.key_password is the password of"),
        ({"sasl": {"aws_region": "eu-west-1"}}, "sasl.aws_region: only used with sasl.mechanism OAUTHBEARER"),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl": {
                    "mechanism": "OAUTHBEARER", "aws_region": "r", "aws_role_arn": "arn", "aws_profile": "p"
                },
            },
            "give one way to sign",
        ),
        ({"bootstrap_servers": " "}, "kafka.bootstrap_servers is empty"),
    ],
)
def test_contradictory_settings_are_refused(kafka: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(kafka=kafka)


def test_secrets_among_the_extra_properties_are_masked_when_printed() -> None:
    """`transformer config` printed the extras as written, a password or client secret included."""
    settings = load_settings(
        kafka={
            "producer": {"sasl.password": "pw-1",
                         "sasl.oauthbearer.client.credentials.client.secret": "pw-2"},
            "consumer": {"sasl.oauthbearer.client.secret": "pw-3", "ssl.keystore.password": "pw-4",
                         "linger.ms": 7},
        }
    )  # fmt: skip
    printed = json.dumps(settings.effective(), default=str)
    assert not any(f"pw-{n}" in printed for n in range(1, 5)), printed
    assert printed.count(MASK) == 8 and '"linger.ms": 7' in printed  # settings and rendered configs


def test_a_refused_extra_property_is_named_as_the_user_wrote_it() -> None:
    """librdkafka names a refused property by its own name ("linger.ms" → "queue.buffering.max.ms")."""
    with pytest.raises(KafkaException) as refused:
        Producer({"linger.ms": "soon"})
    assert "queue.buffering.max.ms" in str(refused.value)
    assert refusal_hint(str(refused.value), "producer", {"acks": "all", "linger.ms": "soon"}) == (
        " (kafka.producer: linger.ms)"
    )
    assert refusal_hint(str(refused.value), "producer", {"acks": "all"}) == ""


@pytest.mark.parametrize("name", sorted(LIBRDKAFKA_ALIASES))
def test_every_alias_is_a_property_librdkafka_knows(name: str) -> None:
    consumer_only = {"enable.auto.commit", "auto.commit.enable", "max.partition.fetch.bytes",
                     "fetch.message.max.bytes"}  # fmt: skip
    value = "127.0.0.1:1"  # a loopback address, or a value a numeric property refuses
    try:
        if name in consumer_only:
            Consumer({name: value, "group.id": "g"}).close()
        else:
            Producer({name: value}).flush(0)
    except KafkaException as refused:
        assert "No such configuration property" not in str(refused)


def test_errors_never_echo_secret_input() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            kafka={
                "security_protocol": "PLAINTEXT",
                "sasl": {"mechanism": "SCRAM-SHA-256", "password": "leak-me"},
            }
        )
    assert "leak-me" not in str(raised.value)


def test_at_least_once_without_idempotence_keeps_order() -> None:
    settings = load_settings(delivery="at-least-once")
    producer = settings.producer_config()
    assert "transactional.id" not in producer
    assert producer["enable.idempotence"] is False
    assert producer["max.in.flight.requests.per.connection"] == 1
    assert settings.effective()["transactional_id"] is None
    with_idempotence = load_settings(delivery="at-least-once", idempotence=True).producer_config()
    assert with_idempotence["enable.idempotence"] is True
    assert "max.in.flight.requests.per.connection" not in with_idempotence


def test_rendered_configs_are_accepted_by_librdkafka() -> None:
    for settings in (
        load_settings(),
        load_settings(delivery="at-least-once"),
        load_settings(kafka=_scram(tls={})),
    ):
        Producer(settings.producer_config(reveal=True))
        Consumer(settings.consumer_config(reveal=True)).close()


def _fake_signer(monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, ...]]) -> None:
    class Provider:
        @staticmethod
        def generate_auth_token(region: str) -> tuple[str, int]:
            calls.append(("default", region))
            return "tok-default", 1_900_000_000_000

        @staticmethod
        def generate_auth_token_from_role_arn(region: str, arn: str) -> tuple[str, int]:
            calls.append(("role", region, arn))
            return "tok-role", 1_900_000_001_000

    module = types.ModuleType("aws_msk_iam_sasl_signer")
    module.MSKAuthTokenProvider = Provider  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer", module)


def test_msk_iam_oauthbearer_uses_the_signer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    _fake_signer(monkeypatch, calls)
    settings = load_settings(
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl": {"mechanism": "OAUTHBEARER", "aws_region": "us-gov-west-1"},
        }
    )
    conf = settings.producer_config(reveal=True)
    assert conf["sasl.mechanism"] == "OAUTHBEARER"
    assert conf["oauth_cb"]("") == ("tok-default", 1_900_000_000.0)  # milliseconds → seconds
    assert calls == [("default", "us-gov-west-1")]
    assert settings.effective()["producer"]["oauth_cb"].startswith("<")  # shown by name, not called
    role = msk_iam_oauth_cb("us-gov-west-1", role_arn="arn:aws:iam::1:role/x")
    assert role("") == ("tok-role", 1_900_000_001.0)


def test_msk_iam_without_the_optional_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"eventbus-cdc\[msk-iam\]"):
        msk_iam_oauth_cb("us-gov-west-1")


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("EVENTBUS_GROUPID", "EVENTBUS_GROUP_ID"),
        ("EVENTBUS_HTTP_PORT", "EVENTBUS_HTTP__PORT"),
        ("EVENTBUS_LOGLEVEL", "EVENTBUS_LOG_LEVEL"),
        ("EVENTBUS_REGISTRY_URL", "EVENTBUS_REGISTRY__URL"),
    ],
)
def test_a_misspelt_environment_variable_is_an_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, meant: str
) -> None:
    """It was ignored, the setting left at its default (a wrong group id, a wrong registry)."""
    monkeypatch.setenv(variable, "x")
    with pytest.raises(ConfigError, match=f"{variable} is not a transformer setting: did you mean {meant}"):
        load_settings()


def test_other_commands_variables_are_not_taken_for_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("EVENTBUS_CONNECT_URL", "EVENTBUS_MAPPINGS_DIR", "EVENTBUS_STACK_KAFKA_PORT",
                     "EVENTBUS_FIX_PASSWORD", "EVENTBUS_SOMETHING_ELSE_ENTIRELY"):  # fmt: skip
        monkeypatch.setenv(variable, "1")
    assert load_settings().group_id == "eventbus-transformer"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "registry.url: must be an http(s) URL with a host"),
        ("127.0.0.1:18081/apis", "registry.url: must be an http(s) URL with a host"),
        ("http://admin:s3cret@registry:8081", "registry.url: must not carry a user or password: set "
         "registry.basic_auth_user and registry.basic_auth_password instead"),
    ],
)  # fmt: skip
def test_registry_urls_that_cannot_work_are_refused_without_echoing_them(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(registry={"url": url})
    assert message in str(refused.value) and "s3cret" not in str(refused.value)


def test_a_nested_setting_that_is_not_json_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTBUS_KAFKA__CONSUMER", "{bad")
    with pytest.raises(ConfigError, match="the environment variable of kafka is not valid JSON"):
        load_settings()


def test_a_port_in_use_is_a_config_error() -> None:
    import socket

    from prometheus_client import CollectorRegistry

    from eventbus.service.http import Health, HealthServer

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = rf"on 127.0.0.1:{port} \(Address already in use\): set http.port"
        with pytest.raises(ConfigError, match=refused):
            HealthServer("127.0.0.1", port, Health(), CollectorRegistry())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"idempotence": True}, "idempotence: only for delivery at-least-once"),
        ({"registry": {"lock_file": "/x.yaml"}}, "registry.lock_file: only read with registry.mode pinned"),
    ],
)
def test_settings_that_would_do_nothing_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**settings)


def test_static_membership_joins_with_the_instance_id(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "group.instance.id" not in load_settings(instance_id="pod-0").consumer_config()
    monkeypatch.setenv("EVENTBUS_STATIC_MEMBERSHIP", "true")
    settings = load_settings(instance_id="pod-0")
    assert settings.static_membership is True
    assert settings.consumer_config()["group.instance.id"] == "pod-0"
    # librdkafka accepts it (an unknown or malformed property would raise here).
    Consumer(settings.consumer_config(reveal=True)).close()


def test_a_fenced_static_member_is_told_which_setting_clashes() -> None:
    from confluent_kafka import KafkaError

    from eventbus.service.kafka_errors import fatal_error

    error = fatal_error("consume", KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced", fatal=True))
    assert "group.instance.id" in str(error) and "EVENTBUS_INSTANCE_ID" in str(error)


def test_the_printed_configuration_names_the_lookup_topic_and_store() -> None:
    effective = load_settings(instance_id="i1", group_id="claims").effective()
    assert effective["parked_topic"] == "staging.parked.claims"
    assert effective["lookup_store"].endswith("lookups.claims.i1.sqlite")
