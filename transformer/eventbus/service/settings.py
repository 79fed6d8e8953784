"""Transformer settings: one frozen pydantic-settings model, from a YAML file and the environment.

Precedence (highest first): values passed in code, environment variables (`EVENTBUS_` prefix, `__`
between nested names, e.g. `EVENTBUS_KAFKA__BOOTSTRAP_SERVERS`), the YAML file given with
`--config` (read by `settings_sources.py`, which also refuses misspelt variables), then the defaults
below. Secrets are `SecretStr`: they print as `**********` and reach librdkafka only through
`consumer_config(reveal=True)` / `producer_config(reveal=True)`, which the service calls when it
builds its clients and nowhere else.

The rendered librdkafka dictionaries are strict on purpose: properties the service manages itself
(offsets, transactions, isolation) cannot be overridden through the `consumer`/`producer` extras,
and contradictory security settings (SASL options with PLAINTEXT, SCRAM without a password) are
rejected when the settings load, not when the first connection fails.
"""

from __future__ import annotations

import os
import socket
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from eventbus import defaults
from eventbus.errors import ConfigError
from eventbus.events.avro import RegistryMode
from eventbus.service.kafka_settings import (
    MANAGED_CONSUMER_KEYS,
    MANAGED_PRODUCER_KEYS,
    MASK,
    FrozenSettings,
    KafkaSettings,
    SaslMechanism,
    SecurityProtocol,
    is_secret,
)
from eventbus.service.settings_sources import CONFIG_FILE, YamlFileSource, check_environment_names
from eventbus.sources.naming import dead_letter_topic, parked_topic

__all__ = [
    "MANAGED_CONSUMER_KEYS",
    "MANAGED_PRODUCER_KEYS",
    "MASK",
    "DeliveryMode",
    "KafkaSettings",
    "SaslMechanism",
    "SecurityProtocol",
    "TransformerSettings",
    "load_settings",
]


class DeliveryMode(StrEnum):
    EXACTLY_ONCE = "exactly-once"
    AT_LEAST_ONCE = "at-least-once"


class RegistrySettings(FrozenSettings):
    url: str = defaults.REGISTRY_URL
    mode: RegistryMode = Field(
        RegistryMode.AUTO_REGISTER,
        description="auto-register (development) or pinned (production: ids from the lock file).",
    )
    lock_file: Path | None = Field(None, description="Default: <mappings>/schemas.lock.yaml.")
    basic_auth_user: str | None = None
    basic_auth_password: SecretStr | None = None
    ca_location: Path | None = None
    # The registry client waits forever by default: a registry that accepts connections but never
    # answers would hang start-up (and schema lookups) instead of failing with a message.
    timeout_s: float = Field(30.0, gt=0, description="Timeout of each registry request, in seconds.")

    @model_validator(mode="after")
    def _auth_pair(self) -> RegistrySettings:
        if (self.basic_auth_user is None) != (self.basic_auth_password is None):
            raise ValueError("registry.basic_auth_user and registry.basic_auth_password go together")
        return self

    @field_validator("url")
    @classmethod
    def _plain_http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host, e.g. http://registry:8081")
        if parts.username is not None or parts.password is not None:
            # A password in the URL would be printed wherever the URL is (logs, /readyz, errors)
            raise ValueError(
                "must not carry a user or password: set registry.basic_auth_user and "
                "registry.basic_auth_password instead"
            )
        return url


class HttpSettings(FrozenSettings):
    enabled: bool = True
    # Loopback by default; the container image sets EVENTBUS_HTTP__HOST=0.0.0.0 so it can be scraped.
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535, description="0 picks a free port (it is logged).")
    stall_after_s: float = Field(
        60.0, gt=0, description="/healthz fails when the loop has not turned for this long."
    )
    broker_gone_after_s: float = Field(
        120.0, gt=0, description="/healthz fails when no Kafka broker has answered for this long."
    )


class TransformerSettings(BaseSettings):
    """Everything `eventbus transformer run` can be told, besides the mappings folder."""

    model_config = SettingsConfigDict(
        env_prefix="EVENTBUS_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    group_id: str = Field("eventbus-transformer", pattern=r"^[A-Za-z0-9._-]+$")
    instance_id: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9._-]+$",
        description=(
            "Distinct per process in a group and stable across its restarts: part of the "
            "transactional.id, so a restarted instance fences its predecessor and aborts its open "
            "transaction at once instead of waiting for the transaction timeout."
        ),
    )
    static_membership: bool = Field(
        False,
        description=(
            "Join the consumer group as a static member (group.instance.id = instance_id): a restarted "
            "process (kill -9, OOM, rolling update) gets its partitions back at once instead of "
            "after the dead member's session timeout (45 s by default). A stopped instance keeps its "
            "partitions until that timeout, so leave it off where instances come and go "
            "(autoscaling); on for a StatefulSet."
        ),
    )
    delivery: DeliveryMode = DeliveryMode.EXACTLY_ONCE
    idempotence: bool = Field(
        False, description="at-least-once only: enable.idempotence (needs extra IAM permissions on MSK)."
    )
    commit_interval_ms: int = Field(100, ge=1, description="Commit the transaction at least this often.")
    overlap_commits: bool = Field(
        True,
        description=(
            "Exactly-once: process the next batch while a transaction commits (its events are "
            "produced once the commit is through). Off: the loop waits for each commit."
        ),
    )
    max_records_per_transaction: int = Field(20_000, ge=1)
    batch_size: int = Field(1000, ge=1, le=100_000, description="consume(num_messages=...).")
    transaction_timeout_ms: int = Field(60_000, ge=1000)
    dedup: bool = Field(True, description="Skip changes at or before the partition's source watermark.")
    dead_letter_topic: str | None = Field(None, description="Default: staging.dlq.<group_id>.")
    dead_letter_partitions: int = Field(
        1, ge=1, le=10_000, description="Partitions of the dead-letter topic (`eventbus topics apply`)."
    )
    dead_letter_retention_ms: int = Field(
        14 * 86_400_000,
        ge=-1,
        description="Retention of the dead-letter topic (-1: forever). Two weeks by default: time to "
        "notice a dead letter, fix the mapping and replay it.",
    )
    hash_salt: SecretStr = Field(SecretStr(""), description="Salt of the mappings' hash() function.")
    state_dir: Path = Field(
        Path(".eventbus-state"),
        description="Local cache of looked-up rows (mappings with `lookup:`); rebuilt from the staging "
        "topics when empty. One per instance: not shared between processes.",
    )
    parked_topic: str | None = Field(
        None,
        description="Compacted topic of changes waiting for a looked-up row. Default: "
        "staging.parked.<group_id>.",
    )
    shutdown_timeout_s: float = Field(
        8.0,
        gt=0,
        description="The whole stop after SIGTERM: the open transaction committed or aborted, pending "
        "records delivered, the group left (the waits end a quarter of it, at most 2 s, early, for "
        "closing the clients). Keep it below the orchestrator's grace period (Docker: "
        "10 s, Kubernetes: 30 s); a transaction that cannot end in time (broker gone) is aborted by "
        "the next start's fencing.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    registry: RegistrySettings = RegistrySettings()
    http: HttpSettings = HttpSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlFileSource(settings_cls))

    @model_validator(mode="after")
    def _delivery_settings(self) -> TransformerSettings:
        if self.idempotence and self.delivery is DeliveryMode.EXACTLY_ONCE:
            raise ValueError(
                "idempotence: only for delivery at-least-once (exactly-once producers always are idempotent)"
            )
        if self.registry.lock_file is not None and self.registry.mode is not RegistryMode.PINNED:
            raise ValueError("registry.lock_file: only read with registry.mode pinned")
        return self

    @property
    def dlq_topic(self) -> str:
        return self.dead_letter_topic or dead_letter_topic(self.group_id)

    @property
    def parked_changes_topic(self) -> str:
        return self.parked_topic or parked_topic(self.group_id)

    @property
    def lookup_store_path(self) -> Path:
        return self.state_dir / f"lookups.{self.group_id}.{self.instance_id}.sqlite"

    @property
    def transactional_id(self) -> str:
        return f"eventbus-transformer.{self.group_id}.{self.instance_id}"

    @property
    def exactly_once(self) -> bool:
        return self.delivery is DeliveryMode.EXACTLY_ONCE

    # --- librdkafka -------------------------------------------------------------------------------

    def common_config(self, *, reveal: bool = False) -> dict[str, Any]:
        from eventbus.service.security import security_config  # security imports settings' enums

        conf: dict[str, Any] = {
            "bootstrap.servers": self.kafka.bootstrap_servers,
            "client.id": self.kafka.client_id,
            # When every broker is unreachable at once (a network cut), librdkafka 2.16 re-bootstraps
            # and replaces its broker handles; a transactional call still bound to the old
            # coordinator then waits far past its timeout (librdkafka #5456, #5511). Reconnecting
            # to the brokers it knows recovers (tests/integration/transformer/test_connection_cuts.py).
            "metadata.recovery.strategy": "none",
        }
        conf.update(security_config(self.kafka, reveal=reveal))
        return conf

    def consumer_config(self, *, reveal: bool = False) -> dict[str, Any]:
        conf = self.common_config(reveal=reveal)
        conf.update(
            {
                "group.id": self.group_id,
                # Offsets are committed by the loop only: inside the transaction (exactly-once) or
                # after delivery (at-least-once), always with the dedup watermark as metadata.
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                # Staging topics are written by Connect with exactly-once source support: aborted
                # connector transactions must not become curated events.
                "isolation.level": "read_committed",
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 50,
                # A small prefetch queue (16 MB ≈ 2,500 staging records of 6.5 kB, over two consume
                # batches) refilled promptly: librdkafka's default 1 s pause once the queue is full
                # starved the loop (14k → 50k+ changes/s in bench/transformer.py), and the 64 MB queue
                # it previously needed to hide that cost ~40 MB of RSS.
                "queued.max.messages.kbytes": 16384,
                "fetch.queue.backoff.ms": 5,
                # Fetches of 256 kB a partition, 1 MB in all (librdkafka: 1 MB and 50 MB): staging is
                # zstd-compressed about 20:1, and a fetch is decompressed whole, so the defaults let
                # peak RSS reach ≈ 260 MB in bench/transformer.py; these keep it at ≈ 160 MB at the
                # same throughput (uncompressed staging: 256 kB is still ≈ 40 records a fetch). With
                # 4 MB in all a 24-partition topic's backlog peaked at 265 MB (1 MB: 181 MB, as fast).
                "max.partition.fetch.bytes": 262_144,
                "fetch.max.bytes": 1_048_576,
                # A partition added to a staging topic is consumed once the group's metadata shows it:
                # librdkafka's default refresh of 5 min left its records unread (and not counted
                # as lag) that long.
                "topic.metadata.refresh.interval.ms": 30_000,
            }
        )
        if self.static_membership:
            # Unique in the group and stable across restarts, as instance_id already has to be for the
            # transactional.id: two live processes with one id fence each other (FENCED_INSTANCE_ID).
            conf["group.instance.id"] = self.instance_id
        conf.update(self.kafka.consumer)
        return conf

    def producer_config(self, *, reveal: bool = False) -> dict[str, Any]:
        conf = self.common_config(reveal=reveal)
        conf.update(
            {
                # Java clients place keys with murmur2; the same key must land on the same partition
                # whoever produces it, or per-key order across producers is lost.
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "batch.num.messages": 10_000,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 500_000,
                "compression.type": "lz4",
            }
        )
        if self.exactly_once:
            conf.update(
                {
                    "transactional.id": self.transactional_id,
                    "enable.idempotence": True,
                    "acks": "all",
                    "transaction.timeout.ms": self.transaction_timeout_ms,
                }
            )
        else:
            conf.update({"enable.idempotence": self.idempotence, "acks": "all"})
            if not self.idempotence:
                # Without idempotence a retried batch may overtake the next one: one request in
                # flight per connection keeps per-key order.
                conf["max.in.flight.requests.per.connection"] = 1
        conf.update(self.kafka.producer)
        return conf

    def registry_config(self, *, reveal: bool = False) -> dict[str, Any]:
        # One request per attempt: the service waits and retries itself (`app.wait_for_registry`, one
        # log line each); the client's own 3 retries made an attempt last 4 timeouts, unlogged.
        conf: dict[str, Any] = {
            "url": self.registry.url,
            "timeout": self.registry.timeout_s,
            "max.retries": 0,
        }
        if self.registry.basic_auth_user is not None and self.registry.basic_auth_password is not None:
            password = self.registry.basic_auth_password.get_secret_value() if reveal else MASK
            conf["basic.auth.user.info"] = f"{self.registry.basic_auth_user}:{password}"
        if self.registry.ca_location is not None:
            conf["ssl.ca.location"] = str(self.registry.ca_location)
        return conf

    def effective(self) -> dict[str, Any]:
        """The settings and the rendered client configurations, secrets masked (for printing)."""
        return {
            # JSON mode renders every SecretStr as "**********".
            "settings": self.model_dump(mode="json"),
            "transactional_id": self.transactional_id if self.exactly_once else None,
            "dead_letter_topic": self.dlq_topic,
            # Used only by mappings with `lookup:`, but named so an operator knows what to provision
            # and what to keep on a volume.
            "parked_topic": self.parked_changes_topic,
            "lookup_store": str(self.lookup_store_path),
            "consumer": mask_config(self.consumer_config()),
            "producer": mask_config(self.producer_config()),
            "registry": mask_config(self.registry_config()),
        }


def mask_config(conf: dict[str, Any]) -> dict[str, Any]:
    """A librdkafka dict safe to print: secrets masked, callbacks named instead of shown."""
    out: dict[str, Any] = {}
    for key, value in conf.items():
        if value is not None and is_secret(key):
            out[key] = MASK
        elif callable(value):
            out[key] = f"<{getattr(value, '__qualname__', type(value).__name__)}>"
        else:
            out[key] = value
    return out


def load_settings(config_file: Path | None = None, **overrides: Any) -> TransformerSettings:
    """Settings from `overrides`, the environment and `config_file`; `ConfigError` when invalid."""
    check_environment_names(os.environ, TransformerSettings)
    token = CONFIG_FILE.set(config_file)
    try:
        return TransformerSettings(**overrides)
    except ValidationError as error:
        origin = f" (config file {config_file} and EVENTBUS_* environment)" if config_file else ""
        problems = "; ".join(_describe(item) for item in error.errors(include_url=False))
        raise ConfigError(f"invalid transformer settings{origin}: {problems}") from None
    except SettingsError as error:  # a nested setting's variable that is not JSON (EVENTBUS_KAFKA='x')
        field = str(error).split('"')[1] if '"' in str(error) else "a nested setting"
        example = """EVENTBUS_KAFKA__CONSUMER='{"fetch.min.bytes": 1}'"""
        raise ConfigError(
            f"invalid transformer settings: the environment variable of {field} is not valid JSON (a "
            f"nested setting takes a JSON object, e.g. {example}, or set its parts one by one: "
            "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS=...)"
        ) from None
    finally:
        CONFIG_FILE.reset(token)


def _describe(item: Any) -> str:
    path = ".".join(str(part) for part in item["loc"]) or "<settings>"
    message = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        message = "unknown setting"
    # Never echo the offending input: it may be a password.
    return f"{path}: {message}"
