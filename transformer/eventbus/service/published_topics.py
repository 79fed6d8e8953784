"""The topics a transformer writes, as its mappings and settings declare them, and the start-up gate
that refuses to run when one of them is missing or has another partition count.

With the broker's auto-creation off (as on the bus), a produce to a missing topic waits for the
message timeout and then fails; with it on, the topic gets the broker's defaults and a key's
partition is whatever they make it. Either way the mistake shows long after start-up, so the
service checks first and names the command that provisions them (`eventbus topics apply`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from eventbus.contracts.collect import TopicContract, collect_contracts
from eventbus.errors import EventBusError
from eventbus.mapping.compiler import CompiledMapping
from eventbus.service.settings import TransformerSettings
from eventbus.topics.cluster import admin_client, read_topics
from eventbus.topics.errors import TopicsNotProvisionedError
from eventbus.topics.model import DesiredTopic, curated_topics, dead_letter_topic, parked_changes_topic
from eventbus.topics.plan import startup_problems

log = logging.getLogger("eventbus.service")


def published_topics(
    settings: TransformerSettings, contracts: Iterable[TopicContract], *, lookups: bool
) -> list[DesiredTopic]:
    """Curated topics, the dead-letter topic and (with lookups) the parked-changes topic."""
    topics = curated_topics(contracts)
    topics.append(
        dead_letter_topic(
            settings.dlq_topic, settings.dead_letter_partitions, settings.dead_letter_retention_ms
        )
    )
    if lookups:
        topics.append(parked_changes_topic(settings.parked_changes_topic))
    return topics


def apply_command(mappings_dir: Path) -> str:
    return f"eventbus topics apply --mappings {mappings_dir}"


def check_published_topics(
    settings: TransformerSettings,
    mappings: Iterable[CompiledMapping],
    mappings_dir: Path,
    give_up: Callable[[], bool] | None = None,
) -> None:
    """Raise `TopicsNotProvisionedError` (one line) unless every curated topic and the dead-letter
    topic exists with its declared partition count. The parked-changes topic is not checked: the
    lookup stage creates it itself when it is missing. `give_up` (asked while waiting for the
    cluster) returning True raises `TopicsCheckInterrupted`: the service is stopping."""
    wanted = published_topics(settings, collect_contracts(mappings), lookups=False)
    problems = _problems(settings, wanted, settings.transaction_timeout_ms / 1000, give_up)
    if problems:
        raise TopicsNotProvisionedError(
            f"not started: {'; '.join(problems)}; run `{apply_command(mappings_dir)}` (with the "
            "transformer's settings) to provision its topics"
        )
    log.info("published topics provisioned", extra={"topics": [topic.name for topic in wanted]})


def vanished_topics(
    settings: TransformerSettings, mappings: Iterable[CompiledMapping], mappings_dir: Path, timeout_s: float
) -> str | None:
    """What is wrong with the published topics now, as a hint for a produce that timed out (a topic
    deleted while the service ran times out like a broker that does not answer); None when they
    are fine or the cluster does not answer either."""
    wanted = published_topics(settings, collect_contracts(mappings), lookups=False)
    try:
        problems = _problems(settings, wanted, timeout_s, None)
    except EventBusError:
        return None
    if not problems:
        return None
    return f"{'; '.join(problems)}: run `{apply_command(mappings_dir)}` (with the transformer's settings)"


def _problems(
    settings: TransformerSettings,
    wanted: list[DesiredTopic],
    timeout_s: float,
    give_up: Callable[[], bool] | None,
) -> list[str]:
    existing = read_topics(
        admin_client(settings.common_config(reveal=True), logging.getLogger("eventbus.librdkafka")),
        [topic.name for topic in wanted],
        bootstrap=settings.kafka.bootstrap_servers,
        timeout_s=timeout_s,
        configs=False,  # only partitions decide where events land; DESCRIBE is all the principal needs
        give_up=give_up,
    )
    return startup_problems(wanted, existing)
