"""Desired topics against a cluster's topics: what `topics apply` would do, what it must not.

Pure functions (no Kafka): the same comparison serves `eventbus topics plan|apply` and the
transformer's start-up gate, and is unit-tested on its own.

Partitions are the setting that cannot simply be brought in line. A key's partition is its hash
modulo the partition count, so adding partitions sends keys to other partitions: a consumer can read
a key's newer events before its older ones around the change. Kafka cannot take partitions away at
all. So a topic with more partitions than declared is refused, and one with fewer gets them only
when asked (`--add-partitions`). Replicas are not moved either (Kafka's partition reassignment
does that); configs (`retention.ms`, `cleanup.policy`) are set, except on a refused topic, which
apply leaves entirely as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from eventbus.topics.model import DesiredTopic, ExistingTopic, partitions_text


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """One desired topic compared with the cluster."""

    topic: DesiredTopic
    existing: ExistingTopic | None
    config_changes: Mapping[str, tuple[str | None, str]] = field(default_factory=dict)  # name → (now, wanted)
    partitions_to_add: int = 0
    refusals: tuple[str, ...] = ()  # differences apply leaves as they are, each with what to do

    @property
    def action(self) -> str:
        """create | refuse | add-partitions | alter | ok."""
        if self.existing is None:
            return "create"
        if self.refusals:
            return "refuse"
        if self.partitions_to_add:
            return "add-partitions"
        return "alter" if self.config_changes else "ok"

    @property
    def settled(self) -> bool:
        """The cluster already has the topic as declared."""
        return self.action == "ok"

    def render(self) -> str:
        """One line: `create  claim_withdrawn (curated): 1 partition, ...`."""
        topic = self.topic
        head = f"{self.action:<14} {topic.name} ({topic.role})"
        if self.existing is None:
            return f"{head}: {topic.describe()}"
        details = [
            f"{name} {now if now is not None else '(unset)'} -> {wanted}"
            for name, (now, wanted) in sorted(self.config_changes.items())
        ]
        if self.partitions_to_add:
            total = self.existing.partitions + self.partitions_to_add
            details.append(
                f"partitions {self.existing.partitions} -> {total} (keys move: a key's events may be read "
                "out of order around the change)"
            )
        details += self.refusals
        if self.refusals and self.config_changes:
            details.append("apply changes none of its configs while it is refused")
        return f"{head}: {'; '.join(details) if details else topic.describe()}"


def plan_topics(
    desired: Iterable[DesiredTopic],
    existing: Mapping[str, ExistingTopic | None],
    *,
    add_partitions: bool = False,
) -> list[TopicPlan]:
    """Compare each desired topic with `existing` (name → topic, None or absent when missing)."""
    return [_plan(topic, existing.get(topic.name), add_partitions) for topic in desired]


def _plan(topic: DesiredTopic, existing: ExistingTopic | None, add_partitions: bool) -> TopicPlan:
    if existing is None:
        return TopicPlan(topic, None)
    refusals: list[str] = []
    to_add = 0
    if existing.partitions > topic.partitions:
        refusals.append(
            f"has {partitions_text(existing.partitions)}, {topic.declared_by} declares {topic.partitions}: "
            f"Kafka cannot take partitions away; declare {existing.partitions}, or delete and recreate "
            "the topic (its events are lost)"
        )
    elif existing.partitions < topic.partitions:
        if add_partitions:
            to_add = topic.partitions - existing.partitions
        else:
            refusals.append(
                f"has {partitions_text(existing.partitions)}, {topic.declared_by} declares "
                f"{topic.partitions}: adding partitions moves keys, so a key's events may be read out "
                "of order around the change; add them with `eventbus topics apply --add-partitions`, or "
                f"declare {existing.partitions}"
            )
    if topic.replication_factor is not None and existing.replication_factor != topic.replication_factor:
        refusals.append(
            f"has replication factor {existing.replication_factor}, {topic.declared_by} declares "
            f"{topic.replication_factor}: not changed here (Kafka's partition reassignment moves replicas)"
        )
    changes = {
        name: (existing.config.get(name), value)
        for name, value in topic.config.items()
        if not same_config(name, existing.config.get(name), value)
    }
    return TopicPlan(topic, existing, changes, to_add, tuple(refusals))


def same_config(name: str, now: str | None, wanted: str) -> bool:
    """Whether a topic's config `name` is `wanted` already. `cleanup.policy` is a list that Kafka
    keeps in the order it was given: "delete,compact" is "compact,delete", not a change to plan."""
    if now == wanted:
        return True
    if name == "cleanup.policy" and now is not None:
        return _policies(now) == _policies(wanted)
    return False


def _policies(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def startup_problems(
    desired: Iterable[DesiredTopic], existing: Mapping[str, ExistingTopic | None]
) -> list[str]:
    """What stops the transformer: a topic it writes that is missing or has another partition count.

    Configs are not checked here (a retention that differs does not change what is published);
    `eventbus topics plan` reports them."""
    problems = []
    for topic in desired:
        found = existing.get(topic.name)
        if found is None:
            problems.append(f"{topic.role} topic {topic.name} does not exist")
        elif found.partitions != topic.partitions:
            problems.append(
                f"{topic.role} topic {topic.name} has {partitions_text(found.partitions)}, "
                f"{topic.declared_by} declares {topic.partitions}"
            )
    return problems
