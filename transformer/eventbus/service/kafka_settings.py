"""The Kafka client's settings: brokers, security (TLS, SASL/SCRAM, AWS MSK IAM) and the extra
librdkafka properties, checked for contradictions when they load; `settings.TransformerSettings`
renders them into the consumer's and producer's configurations.

The extras are strict on purpose: properties the service manages itself (offsets, transactions,
isolation) cannot be overridden through `consumer`/`producer`, and contradictory security settings
(SASL options with PLAINTEXT, SCRAM without a password) are refused when the settings load, not when
the first connection fails.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer, model_validator

from eventbus import defaults

MASK: Final = "**********"
LibrdkafkaValue = str | int | float | bool

# librdkafka properties whose values must never be printed (and any whose name says it is one).
SECRET_KEYS: Final = frozenset(
    {"sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.client.secret",
     "sasl.oauthbearer.client.credentials.client.secret", "basic.auth.user.info", "ssl.key.pem",
     "sasl.oauthbearer.config"}
)  # fmt: skip
_SECRET_NAME: Final = re.compile(r"password|secret|credential|token|user\.info|\.pem$", re.IGNORECASE)

# librdkafka's second names for a property (its CONFIGURATION.md, "Alias for"), both ways: a
# property the service manages must not come back under its other name, and a refusal of the
# client names the property as librdkafka knows it, which may not be the name the user wrote.
LIBRDKAFKA_ALIASES: Final = {
    alias: name
    for first, second in (
        ("bootstrap.servers", "metadata.broker.list"),
        ("max.in.flight", "max.in.flight.requests.per.connection"),
        ("sasl.mechanism", "sasl.mechanisms"),
        ("sasl.oauthbearer.client.credentials.client.id", "sasl.oauthbearer.client.id"),
        ("sasl.oauthbearer.client.credentials.client.secret", "sasl.oauthbearer.client.secret"),
        ("max.partition.fetch.bytes", "fetch.message.max.bytes"),
        ("linger.ms", "queue.buffering.max.ms"),
        ("retries", "message.send.max.retries"),
        ("compression.type", "compression.codec"),
        ("acks", "request.required.acks"),
        ("delivery.timeout.ms", "message.timeout.ms"),
        ("enable.auto.commit", "auto.commit.enable"),
    )
    for alias, name in ((first, second), (second, first))
}


def is_secret(key: str) -> bool:
    """Whether a librdkafka property's value must be masked when printed or logged."""
    return key in SECRET_KEYS or LIBRDKAFKA_ALIASES.get(key) in SECRET_KEYS or bool(_SECRET_NAME.search(key))


def refusal_hint(error: str, kind: str, extras: dict[str, LibrdkafkaValue]) -> str:
    """Which of the user's `kafka.<kind>` properties a refusal of the Kafka client is about, when
    librdkafka names it by its other name ("linger.ms" is refused as "queue.buffering.max.ms")."""
    for key in extras:
        names = (key, LIBRDKAFKA_ALIASES.get(key))
        if any(name and f'"{name}"' in error for name in names):
            return f" (kafka.{kind}: {key})"
    return ""


def masked(conf: dict[str, object]) -> dict[str, object]:
    """`conf` with the values of secret properties replaced by the mask."""
    return {key: MASK if value is not None and is_secret(key) else value for key, value in conf.items()}

# Properties the loop depends on: overriding them through the extras would silently break
# exactly-once (e.g. auto-commit) or the dedup watermark (offset metadata), so they are refused.
MANAGED_CONSUMER_KEYS: Final = frozenset(
    {"group.id", "enable.auto.commit", "enable.auto.offset.store", "isolation.level", "bootstrap.servers",
     "security.protocol", "on_commit", "oauth_cb", "group.instance.id"}
)  # fmt: skip
MANAGED_PRODUCER_KEYS: Final = frozenset(
    {"transactional.id", "enable.idempotence", "bootstrap.servers", "security.protocol", "oauth_cb",
     "transaction.timeout.ms", "acks"}
)  # fmt: skip


class FrozenSettings(BaseModel):
    # forbid: a typo in the config file is an error, not a silently ignored key
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    OAUTHBEARER = "OAUTHBEARER"  # AWS MSK IAM through the optional signer package


class TlsSettings(FrozenSettings):
    """TLS for SSL and SASL_SSL: the CA to trust and, for mutual TLS, our certificate and key."""

    ca_location: Path | None = Field(None, description="PEM file of the CA(s) to trust (default: system).")
    certificate_location: Path | None = Field(None, description="Client certificate (PEM), mutual TLS.")
    key_location: Path | None = Field(None, description="Client private key (PEM), mutual TLS.")
    key_password: SecretStr | None = Field(None, description="Password of the client key.")
    verify_hostname: bool = Field(True, description="Check the broker certificate matches its host name.")


class SaslSettings(FrozenSettings):
    """SASL for SASL_SSL: SCRAM with a user and password, or OAUTHBEARER tokens from AWS MSK IAM."""

    mechanism: SaslMechanism | None = None
    username: str | None = None
    password: SecretStr | None = None
    aws_region: str | None = Field(None, description="MSK IAM: region the token is signed for.")
    aws_role_arn: str | None = Field(None, description="MSK IAM: assume this role for the token.")
    aws_profile: str | None = Field(None, description="MSK IAM: AWS profile to sign with.")


class KafkaSettings(FrozenSettings):
    bootstrap_servers: str = defaults.BOOTSTRAP_SERVERS
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    sasl: SaslSettings = SaslSettings()
    tls: TlsSettings = TlsSettings()
    client_id: str = "eventbus-transformer"
    consumer: dict[str, LibrdkafkaValue] = Field(
        default_factory=dict, description="Extra librdkafka consumer properties."
    )
    producer: dict[str, LibrdkafkaValue] = Field(
        default_factory=dict, description="Extra librdkafka producer properties."
    )

    @field_serializer("consumer", "producer")
    def _masked(self, extras: dict[str, LibrdkafkaValue]) -> dict[str, object]:
        return masked(dict(extras))  # the settings are printed (`transformer config`)

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        sasl, protocol = self.sasl, self.security_protocol
        uses_sasl = sasl.mechanism is not None or sasl.username is not None or sasl.password is not None
        if protocol is not SecurityProtocol.SASL_SSL and uses_sasl:
            raise ValueError(f"sasl settings are given but security_protocol is {protocol}; use SASL_SSL")
        if protocol is SecurityProtocol.SASL_SSL:
            if sasl.mechanism is None:
                raise ValueError("security_protocol SASL_SSL needs sasl.mechanism")
            if sasl.mechanism is SaslMechanism.OAUTHBEARER:
                if not sasl.aws_region:
                    raise ValueError("sasl.mechanism OAUTHBEARER (AWS MSK IAM) needs sasl.aws_region")
                if sasl.username or sasl.password:
                    raise ValueError("sasl.username/password are not used with OAUTHBEARER; remove them")
            elif not (sasl.username and sasl.password):
                raise ValueError(f"sasl.mechanism {sasl.mechanism} needs sasl.username and sasl.password")
        tls_given = any(
            value is not None
            for value in (self.tls.ca_location, self.tls.certificate_location, self.tls.key_location)
        )
        if protocol is SecurityProtocol.PLAINTEXT and tls_given:
            raise ValueError("tls settings are given but security_protocol is PLAINTEXT; use SSL or SASL_SSL")
        if (self.tls.certificate_location is None) != (self.tls.key_location is None):
            raise ValueError("tls.certificate_location and tls.key_location go together (mutual TLS)")
        if self.tls.key_password is not None and self.tls.key_location is None:
            raise ValueError("tls.key_password is the password of tls.key_location, which is not set")
        aws = [name for name in ("aws_region", "aws_role_arn", "aws_profile") if getattr(sasl, name)]
        if aws and sasl.mechanism is not SaslMechanism.OAUTHBEARER:
            raise ValueError(
                f"sasl.{', sasl.'.join(aws)}: only used with sasl.mechanism OAUTHBEARER (AWS MSK IAM)"
            )
        if sasl.aws_role_arn and sasl.aws_profile:
            raise ValueError("sasl.aws_role_arn and sasl.aws_profile: give one way to sign, not both")
        if not self.bootstrap_servers.strip():
            raise ValueError("kafka.bootstrap_servers is empty: host:port[,host:port...]")
        for extras, managed, kind in (
            (self.consumer, MANAGED_CONSUMER_KEYS, "consumer"),
            (self.producer, MANAGED_PRODUCER_KEYS, "producer"),
        ):
            refused = sorted(
                key if key in managed else f"{key} (librdkafka's other name for {LIBRDKAFKA_ALIASES[key]})"
                for key in extras
                if key in managed or LIBRDKAFKA_ALIASES.get(key) in managed
            )
            if refused:
                raise ValueError(f"kafka.{kind}: {', '.join(refused)} is set by the service, not here")
        return self
