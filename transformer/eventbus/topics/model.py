"""What a topic should be (`DesiredTopic`) and what a cluster has (`ExistingTopic`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from eventbus.contracts.collect import TopicContract

# The parked-changes topic keeps only unresolved entries (a resolved one is overwritten by a
# tombstone), so it is compacted; a minute's lag keeps a just-resolved entry readable meanwhile.
PARKED_TOPIC_CONFIG: Mapping[str, str] = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


class TopicRole(StrEnum):
    CURATED = "curated"
    DEAD_LETTER = "dead-letter"
    PARKED = "parked-changes"


@dataclass(frozen=True, slots=True)
class DesiredTopic:
    """A topic as the mappings and settings declare it."""

    name: str
    role: TopicRole
    partitions: int
    replication_factor: int | None  # None: the broker's default.replication.factor
    config: Mapping[str, str]
    declared_by: str  # where a reader changes it: a mapping's emit block, or a setting

    def describe(self) -> str:
        """`3 partitions, replication factor 3, cleanup.policy=delete, retention.ms=604800000`."""
        replicas = (
            f"replication factor {self.replication_factor}"
            if self.replication_factor
            else "the broker's default replication factor"
        )
        settings = ", ".join(f"{name}={value}" for name, value in sorted(self.config.items()))
        return f"{partitions_text(self.partitions)}, {replicas}, {settings}"


@dataclass(frozen=True, slots=True)
class ExistingTopic:
    """A topic as the cluster has it; `config` holds the values of the configs a `DesiredTopic` sets
    (None when the cluster did not say)."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str | None] = field(default_factory=dict)


def partitions_text(count: int) -> str:
    """`1 partition`, `3 partitions`."""
    return f"{count} partition{'s' if count != 1 else ''}"


def curated_topics(contracts: Iterable[TopicContract]) -> list[DesiredTopic]:
    """One `DesiredTopic` per curated topic, with the settings its mappings declare."""
    topics = []
    for contract in contracts:
        settings = contract.settings
        topics.append(
            DesiredTopic(
                contract.topic,
                TopicRole.CURATED,
                settings.partitions,
                settings.replication_factor,
                settings.config(),
                _declared_by(contract),
            )
        )
    return topics


def _declared_by(contract: TopicContract) -> str:
    """Where the partition count comes from: the emit block that gives it, or the default."""
    for producer in contract.producers:
        block = producer.spec.emit[producer.emit_index].topic_settings
        if block is not None and "partitions" in block.model_fields_set:
            return f"{producer.where} (topic_settings)"
    where = f"{contract.producers[0].where} " if contract.producers else ""
    return f"{where}(no topic_settings.partitions: the default)"


def dead_letter_topic(name: str, partitions: int, retention_ms: int) -> DesiredTopic:
    """The transformer's dead-letter topic (settings `dead_letter_partitions`, `..._retention_ms`)."""
    return DesiredTopic(
        name,
        TopicRole.DEAD_LETTER,
        partitions,
        None,
        {"cleanup.policy": "delete", "retention.ms": str(retention_ms)},
        "the settings dead_letter_partitions and dead_letter_retention_ms",
    )


def parked_changes_topic(name: str) -> DesiredTopic:
    """The topic of changes waiting for a looked-up row (mappings with `lookup:` only)."""
    return DesiredTopic(name, TopicRole.PARKED, 1, None, PARKED_TOPIC_CONFIG, "the setting parked_topic")
