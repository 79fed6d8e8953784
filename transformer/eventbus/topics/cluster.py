"""A cluster's topics through Kafka's admin API: read them, and apply a plan to them.

The admin client is built from the same librdkafka configuration as the transformer's own clients
(`TransformerSettings.common_config`): the same brokers, TLS, SASL/SCRAM or MSK IAM, so `topics
apply` reaches the cluster exactly as the service will, and fails the same way when it cannot.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from eventbus.errors import ServiceUnavailableError
from eventbus.topics.errors import TopicsCheckInterrupted, TopicsError
from eventbus.topics.model import ExistingTopic
from eventbus.topics.plan import TopicPlan

# Codes that mean "no broker answered", as opposed to an answer we must report as it is.
_UNREACHABLE = frozenset(
    {KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
     KafkaError._AUTHENTICATION, KafkaError._SSL}
)  # fmt: skip


def admin_client(config: dict[str, Any], logger: logging.Logger | None = None) -> AdminClient:
    """An admin client on `config` (a librdkafka dict with secrets revealed); librdkafka's own log
    lines go to `logger` when given (the service's JSON logs), else to stderr (the CLI)."""
    conf: dict[str, Any] = dict(config)
    if logger is not None:
        conf["logger"] = logger
    admin = AdminClient(conf)
    if "oauth_cb" in config:
        # librdkafka asks for the first MSK IAM token through the client's poll queue.
        admin.poll(1.0)
    return admin


def _wait_for(futures: Iterable[concurrent.futures.Future[Any]], give_up: Callable[[], bool] | None) -> None:
    # The requests end by themselves at their request timeout; this only lets the caller leave first.
    pending = set(futures)
    while pending and give_up is not None:
        if give_up():
            raise TopicsCheckInterrupted("stopping: the topics were not checked")
        _, pending = concurrent.futures.wait(pending, timeout=0.5)


def _failure(error: KafkaError, what: str, bootstrap: str) -> Exception:
    if error.code() in _UNREACHABLE:
        return ServiceUnavailableError(
            f"{what}: Kafka did not answer at {bootstrap} ({error.str()}): is the cluster reachable, "
            "with these credentials?"
        )
    if error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED):
        return TopicsError(
            f"{what}: not allowed ({error.str()}); the principal needs the ACLs in docs/security.md"
        )
    return TopicsError(f"{what}: {error.str()}")


def read_topics(
    admin: AdminClient,
    names: Iterable[str],
    *,
    bootstrap: str,
    timeout_s: float,
    configs: bool = True,
    give_up: Callable[[], bool] | None = None,
) -> dict[str, ExistingTopic | None]:
    """Each named topic as the cluster has it, None when it does not exist. `configs=False` skips the
    configs (and the DESCRIBE_CONFIGS right they need): partitions and replicas only. `give_up` is
    asked every half second while the cluster has not answered; True raises `TopicsCheckInterrupted`
    (a service told to stop does not wait out `timeout_s` for a broker that is gone)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    found: dict[str, ExistingTopic | None] = {}
    futures = admin.describe_topics(TopicCollection(wanted), request_timeout=timeout_s)
    _wait_for(futures.values(), give_up)
    for name, future in futures.items():
        try:
            description = future.result()
        except KafkaException as exception:
            error = exception.args[0]
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                found[name] = None
                continue
            raise _failure(error, f"describing topic {name}", bootstrap) from None
        partitions = description.partitions
        replicas = min((len(partition.replicas) for partition in partitions), default=0)
        found[name] = ExistingTopic(name, len(partitions), replicas)
    present = [name for name, topic in found.items() if topic is not None]
    if configs and present:
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in present]
        described = admin.describe_configs(resources, request_timeout=timeout_s)
        _wait_for(described.values(), give_up)
        for resource, future in described.items():
            try:
                entries = future.result()
            except KafkaException as exception:
                raise _failure(
                    exception.args[0], f"reading the configs of topic {resource.name}", bootstrap
                ) from None
            topic = found[resource.name]
            assert topic is not None
            found[resource.name] = ExistingTopic(
                topic.name, topic.partitions, topic.replication_factor,
                {name: entry.value for name, entry in entries.items()},
            )  # fmt: skip
    return found


def apply_plans(
    admin: AdminClient, plans: Iterable[TopicPlan], *, bootstrap: str, timeout_s: float
) -> list[str]:
    """Create the missing topics, add partitions where planned, set differing configs; returns one
    line per change made. A refused topic is not changed at all (the caller reports it)."""
    plans = list(plans)
    done: list[str] = []
    missing = [plan.topic for plan in plans if plan.existing is None]
    if missing:
        new = [
            NewTopic(topic.name, num_partitions=topic.partitions,
                     replication_factor=topic.replication_factor or -1, config=dict(topic.config))
            for topic in missing
        ]  # fmt: skip
        futures = admin.create_topics(new, request_timeout=timeout_s)
        for topic in missing:
            try:
                futures[topic.name].result()
                done.append(f"created {topic.name} ({topic.role}): {topic.describe()}")
            except KafkaException as exception:
                error = exception.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:  # someone else was quicker
                    done.append(f"exists {topic.name} ({topic.role}): created meanwhile by another client")
                    continue
                raise _failure(error, f"creating topic {topic.name}", bootstrap) from None
    grow = [
        plan for plan in plans if plan.existing is not None and plan.partitions_to_add and not plan.refusals
    ]
    if grow:
        totals = {plan.topic.name: plan.topic.partitions for plan in grow}
        futures = admin.create_partitions(
            [NewPartitions(name, total) for name, total in totals.items()], request_timeout=timeout_s
        )
        for name, total in totals.items():
            try:
                futures[name].result()
            except KafkaException as exception:
                raise _failure(exception.args[0], f"adding partitions to {name}", bootstrap) from None
            done.append(f"partitions of {name}: now {total}")
    for plan in plans:
        # A refused topic is left entirely as it is, configs included: the refusal may mean the
        # topic is not the one declared (another's, or declared otherwise), and apply says so.
        if plan.existing is None or not plan.config_changes or plan.refusals:
            continue
        resource = ConfigResource(
            ResourceType.TOPIC,
            plan.topic.name,
            incremental_configs=[
                ConfigEntry(name, wanted, incremental_operation=AlterConfigOpType.SET)
                for name, (_, wanted) in sorted(plan.config_changes.items())
            ],
        )
        try:
            admin.incremental_alter_configs([resource], request_timeout=timeout_s)[resource].result()
        except KafkaException as exception:
            raise _failure(
                exception.args[0], f"setting the configs of {plan.topic.name}", bootstrap
            ) from None
        changes = ", ".join(f"{name}={wanted}" for name, (_, wanted) in sorted(plan.config_changes.items()))
        done.append(f"set {plan.topic.name} ({plan.topic.role}): {changes}")
    return done
