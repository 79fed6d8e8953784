"""Staging topics created ahead of the connector, with the definition's partitions and retention.

Connect would otherwise let the broker auto-create them with its defaults (one partition, broker
retention), and production brokers (MSK) usually have auto-creation off. An existing topic keeps
its partition count: adding partitions moves keys to other partitions and breaks per-row order, so
that is reported, not done. Retention is brought in line.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from eventbus.sources.errors import KafkaAdminError
from eventbus.topics.plan import same_config

TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class TopicRequest:
    name: str
    partitions: int
    replication_factor: int | None  # None: the broker's default.replication.factor
    retention_ms: int
    # A looked-up table's topic: compacted, so every row's latest version stays (a transformer that
    # starts later, or on an empty disk, still finds rows written long ago), with every version kept
    # for `retention_ms` first (min.compaction.lag.ms), so lookups as of a commit within that window
    # still find the version that was current then.
    compacted: bool = False

    def config(self) -> dict[str, str]:
        if self.compacted:
            return {"cleanup.policy": "compact", "min.compaction.lag.ms": str(self.retention_ms)}
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


@dataclass(frozen=True, slots=True)
class TopicResult:
    name: str
    action: str  # created | unchanged | updated | kept
    detail: str = ""


def admin_client(bootstrap_servers: str) -> AdminClient:
    # log_level 4: librdkafka would print an informational line on shutdown into the CLI output.
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap_servers,
        "socket.timeout.ms": int(TIMEOUT_S * 1000),
        "log_level": 4,
    }
    return AdminClient(config)


def _existing(admin: AdminClient, bootstrap_servers: str) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=TIMEOUT_S)
    except KafkaException as error:
        raise KafkaAdminError(
            f"Kafka is not reachable at {bootstrap_servers} ({error.args[0].str()}); set "
            "--bootstrap-servers or EVENTBUS_KAFKA__BOOTSTRAP_SERVERS"
        ) from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _configs(admin: AdminClient, topic: str) -> dict[str, str | None]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result(TIMEOUT_S)
    return {name: entry.value for name, entry in configs.items()}


def ensure_topics(bootstrap_servers: str, requests: list[TopicRequest]) -> list[TopicResult]:
    admin = admin_client(bootstrap_servers)
    existing = _existing(admin, bootstrap_servers)
    results: list[TopicResult] = []
    missing = [r for r in requests if r.name not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    r.name,
                    num_partitions=r.partitions,
                    replication_factor=r.replication_factor or -1,
                    config=r.config(),
                )
                for r in missing
            ],
            request_timeout=TIMEOUT_S,
        )
        for request in missing:
            try:
                futures[request.name].result(TIMEOUT_S)
                detail = f"{request.partitions} partition(s), " + ", ".join(
                    f"{k}={v}"
                    for k, v in request.config().items()
                    if k != "cleanup.policy" or request.compacted
                )
                results.append(TopicResult(request.name, "created", detail))
            except KafkaException as error:
                if error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:  # created concurrently
                    results.append(TopicResult(request.name, "unchanged", "created concurrently"))
                    continue
                raise KafkaAdminError(f"cannot create topic {request.name}: {error.args[0].str()}") from None
    for request in requests:
        if request.name not in existing:
            continue
        try:
            results.append(_reconcile(admin, request, existing[request.name]))
        except KafkaException as error:
            raise KafkaAdminError(f"cannot update topic {request.name}: {error.args[0].str()}") from None
    order = {r.name: i for i, r in enumerate(requests)}
    return sorted(results, key=lambda result: order[result.name])


def _reconcile(admin: AdminClient, request: TopicRequest, partitions: int) -> TopicResult:
    notes = []
    action = "unchanged"
    if partitions != request.partitions:
        action = "kept"
        notes.append(
            f"has {partitions} partition(s), the definition says {request.partitions}: not changed "
            "(repartitioning reorders keys; create a new source or change the definition)"
        )
    current = _configs(admin, request.name)
    # as `topics apply` compares them: a cleanup.policy in another order is the same policy
    wanted = request.config().items()
    changes = {name: value for name, value in wanted if not same_config(name, current.get(name), value)}
    if changes:
        resource = ConfigResource(
            ResourceType.TOPIC,
            request.name,
            incremental_configs=[
                ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                for name, value in changes.items()
            ],
        )
        admin.incremental_alter_configs([resource], request_timeout=TIMEOUT_S)[resource].result(TIMEOUT_S)
        notes.append(", ".join(f"{name} set to {value}" for name, value in changes.items()))
        action = "updated" if action == "unchanged" else action
    return TopicResult(request.name, action, "; ".join(notes))


def delete_topics(bootstrap_servers: str, topics: list[str]) -> list[str]:
    """Delete those of `topics` that exist; returns the ones deleted."""
    admin = admin_client(bootstrap_servers)
    present = [topic for topic in topics if topic in _existing(admin, bootstrap_servers)]
    if not present:
        return []
    for topic, future in admin.delete_topics(present, operation_timeout=TIMEOUT_S).items():
        try:
            future.result(TIMEOUT_S)
        except KafkaException as error:
            raise KafkaAdminError(f"deleting topic {topic} failed: {error.args[0].str()}") from None
    return present
