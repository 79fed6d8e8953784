"""`topics plan|apply` decisions and the transformer's start-up gate, on topics described in memory."""

from __future__ import annotations

from typing import Any

from eventbus.contracts.collect import TopicSettings, collect_contracts, load_specs
from eventbus.topics.cluster import apply_plans
from eventbus.topics.model import (
    DesiredTopic,
    ExistingTopic,
    TopicRole,
    curated_topics,
    dead_letter_topic,
    parked_changes_topic,
)
from eventbus.topics.plan import plan_topics, startup_problems
from tests.unit.contracts.conftest import SAMPLE

WEEK_MS = "604800000"


def _curated(partitions: int = 3, replication_factor: int | None = None) -> DesiredTopic:
    settings = TopicSettings(partitions=partitions, replication_factor=replication_factor)
    return DesiredTopic(
        "claim_withdrawn", TopicRole.CURATED, settings.partitions, settings.replication_factor,
        settings.config(), "claim_withdrawn.yaml emit[0] (topic_settings)",
    )  # fmt: skip


def _existing(partitions: int = 3, replicas: int = 1, **config: str) -> ExistingTopic:
    return ExistingTopic(
        "claim_withdrawn",
        partitions,
        replicas,
        {"cleanup.policy": "delete", "retention.ms": WEEK_MS, **config},
    )


def test_a_missing_topic_is_created_with_its_settings() -> None:
    (plan,) = plan_topics([_curated()], {"claim_withdrawn": None})
    assert (plan.action, plan.settled) == ("create", False)
    assert plan.render() == (
        "create         claim_withdrawn (curated): 3 partitions, the broker's default replication factor, "
        f"cleanup.policy=delete, retention.ms={WEEK_MS}"
    )
    assert plan_topics([_curated()], {})[0].action == "create"  # absent from the answer: missing too


def test_a_topic_as_declared_is_settled() -> None:
    (plan,) = plan_topics([_curated()], {"claim_withdrawn": _existing()})
    assert (plan.action, plan.settled, plan.config_changes, plan.refusals) == ("ok", True, {}, ())


def test_differing_configs_are_set() -> None:
    existing = _existing(**{"retention.ms": "86400000"})
    (plan,) = plan_topics([_curated()], {"claim_withdrawn": existing})
    assert plan.action == "alter"
    assert plan.config_changes == {"retention.ms": ("86400000", WEEK_MS)}
    assert plan.render().endswith(f"retention.ms 86400000 -> {WEEK_MS}")


def test_more_partitions_than_declared_is_refused_kafka_cannot_shrink() -> None:
    (plan,) = plan_topics([_curated(3)], {"claim_withdrawn": _existing(6)}, add_partitions=True)
    assert plan.action == "refuse" and plan.partitions_to_add == 0
    (reason,) = plan.refusals
    assert reason.startswith("has 6 partitions, claim_withdrawn.yaml emit[0] (topic_settings) declares 3")
    assert "Kafka cannot take partitions away; declare 6" in reason


def test_fewer_partitions_are_added_only_when_asked() -> None:
    (plan,) = plan_topics([_curated(6)], {"claim_withdrawn": _existing(3)})
    assert plan.action == "refuse"
    assert "adding partitions moves keys" in plan.refusals[0] and "--add-partitions" in plan.refusals[0]
    (plan,) = plan_topics([_curated(6)], {"claim_withdrawn": _existing(3)}, add_partitions=True)
    assert (plan.action, plan.partitions_to_add, plan.refusals) == ("add-partitions", 3, ())
    assert "partitions 3 -> 6" in plan.render()


def test_another_replication_factor_is_reported_not_changed() -> None:
    (plan,) = plan_topics([_curated(replication_factor=3)], {"claim_withdrawn": _existing(replicas=1)})
    assert plan.action == "refuse"
    assert plan.refusals[0].startswith("has replication factor 1, claim_withdrawn.yaml emit[0]")
    # Not declared: whatever the broker chose is fine.
    assert plan_topics([_curated()], {"claim_withdrawn": _existing(replicas=1)})[0].settled


def test_the_published_topics_of_the_sample() -> None:
    topics = curated_topics(collect_contracts(load_specs([SAMPLE])))
    topics += [dead_letter_topic("staging.dlq.g", 2, 1_209_600_000), parked_changes_topic("staging.parked.g")]
    by_name = {topic.name: topic for topic in topics}
    letters = by_name["decision_letter_available"]
    assert (letters.role, letters.partitions, letters.replication_factor) == (TopicRole.CURATED, 1, None)
    assert letters.declared_by.startswith(str(SAMPLE / "decision_letter_available.yaml") + " emit[0]")
    dead = by_name["staging.dlq.g"]
    assert (dead.partitions, dead.config["retention.ms"]) == (2, "1209600000")
    assert "dead_letter_partitions" in dead.declared_by
    assert by_name["staging.parked.g"].config["cleanup.policy"] == "compact"


def test_the_start_up_gate_names_each_missing_or_repartitioned_topic() -> None:
    dead = dead_letter_topic("staging.dlq.g", 1, 1_209_600_000)
    existing = {"claim_withdrawn": _existing(1, **{"retention.ms": "1"})}
    assert startup_problems([_curated(3), dead], existing) == [
        "curated topic claim_withdrawn has 1 partition, claim_withdrawn.yaml emit[0] (topic_settings) "
        "declares 3",
        "dead-letter topic staging.dlq.g does not exist",
    ]
    # Configs do not stop the service (they do not change where events go); plan reports them.
    healthy = {"claim_withdrawn": _existing(3, **{"retention.ms": "1"}),
               "staging.dlq.g": ExistingTopic("staging.dlq.g", 1, 1)}  # fmt: skip
    assert startup_problems([_curated(3), dead], healthy) == []


def test_a_partition_count_left_to_the_default_says_so() -> None:
    topics = {t.name: t for t in curated_topics(collect_contracts(load_specs([SAMPLE])))}
    withdrawn = topics["claim_withdrawn"]
    assert withdrawn.partitions == 1
    assert withdrawn.declared_by == (
        f"{SAMPLE / 'claim_withdrawn.yaml'} emit[0] (no topic_settings.partitions: the default)"
    )


def test_cleanup_policy_is_compared_as_a_set_of_policies() -> None:
    compacted = DesiredTopic(
        "claim_withdrawn", TopicRole.CURATED, 3, None,
        {"cleanup.policy": "compact,delete", "retention.ms": WEEK_MS}, "claim_withdrawn.yaml emit[0]",
    )  # fmt: skip
    for kept in ("delete,compact", "compact, delete", "compact,delete"):
        (plan,) = plan_topics([compacted], {"claim_withdrawn": _existing(**{"cleanup.policy": kept})})
        assert plan.settled, kept
    (plan,) = plan_topics([compacted], {"claim_withdrawn": _existing(**{"cleanup.policy": "compact"})})
    assert plan.config_changes == {"cleanup.policy": ("compact", "compact,delete")}


class _RecordingAdmin:
    """Records every change asked of it; each request succeeds."""

    def __init__(self) -> None:
        self.altered: list[str] = []
        self.grown: list[str] = []

    def incremental_alter_configs(self, resources: list[Any], **_: Any) -> dict[Any, Any]:
        self.altered += [resource.name for resource in resources]
        return {resource: _Done() for resource in resources}

    def create_partitions(self, partitions: list[Any], **_: Any) -> dict[str, Any]:
        self.grown += [p.topic for p in partitions]
        return {p.topic: _Done() for p in partitions}


class _Done:
    def result(self) -> None:
        return None


def test_apply_changes_no_config_of_a_topic_it_refuses() -> None:
    refused_existing = _existing(6, **{"retention.ms": "86400000"})  # more partitions than declared
    other = DesiredTopic("staging.dlq.g", TopicRole.DEAD_LETTER, 1, None, {"retention.ms": "1"}, "settings")
    plans = plan_topics(
        [_curated(3), other],
        {"claim_withdrawn": refused_existing, "staging.dlq.g": ExistingTopic("staging.dlq.g", 1, 1)},
    )
    assert [plan.action for plan in plans] == ["refuse", "alter"]
    assert "apply changes none of its configs while it is refused" in plans[0].render()
    admin = _RecordingAdmin()
    done = apply_plans(admin, plans, bootstrap="b:9092", timeout_s=1.0)  # type: ignore[arg-type]
    assert admin.altered == ["staging.dlq.g"]
    assert done == ["set staging.dlq.g (dead-letter): retention.ms=1"]
