"""The staging topics the mappings read, looked up at start-up: a missing one is a warning, and so
is a looked-up table's topic that is not compacted.

Not a reason to stop: Debezium creates a table's topic with its first change, and the consumer is
subscribed by name, so it reads the topic once it exists. But a topic that never comes (a source not
registered, a table not in its definition) looks like a quiet table; the warning names the topics
and the command that creates them (`eventbus source register`, cli/source_commands.py).

A looked-up table's topic must keep every row's latest version: the lookup store is rebuilt from it
(a new pod, an empty disk). `source register` compacts the topics of the tables the mappings look
up when it runs, so a lookup added to the mappings later finds its table's topic still deleting
rows after `retention.ms`; lookups of rows older than that would then answer "missing".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from eventbus.errors import EventBusError
from eventbus.lookups.versions import Interest
from eventbus.mapping.compiler import CompiledMapping
from eventbus.service.loading import staging_topic_of
from eventbus.service.settings import TransformerSettings
from eventbus.sources.naming import staging_topic
from eventbus.topics.cluster import admin_client, read_topics
from eventbus.topics.model import ExistingTopic

log = logging.getLogger("eventbus.service")


def warn_of_missing_staging_topics(
    settings: TransformerSettings,
    mappings: tuple[CompiledMapping, ...],
    give_up: Callable[[], bool] | None = None,
) -> None:
    """Log one warning when a staging topic a mapping reads does not exist. A cluster that does not
    answer this is left to the consumer to report; `give_up` as for `read_topics`."""
    sources = {staging_topic_of(mapping): mapping.spec.source.connector for mapping in mappings}
    try:
        existing = _read(settings, sources, configs=False, give_up=give_up)
    except EventBusError as error:  # a warning's check never stops the service
        log.info("staging topics not checked", extra={"error": str(error)})
        return
    report_missing_staging_topics(sources, existing)


def report_missing_staging_topics(
    sources: Mapping[str, str], existing: Mapping[str, ExistingTopic | None]
) -> None:
    """The warning itself: `sources` is staging topic → its source, `existing` what the cluster has."""
    missing = sorted(topic for topic in sources if existing.get(topic) is None)
    if not missing:
        return
    commands = [f"eventbus source register {source}" for source in sorted({sources[t] for t in missing})]
    log.warning(
        "staging topics the mappings read do not exist yet: their changes are read once they do "
        "(Debezium creates a table's topic with its first change); registering the source creates "
        "them now, once each table is in the source's definition (connectors/<source>.yaml)",
        extra={"topics": missing, "command": " && ".join(commands)},
    )


def warn_of_uncompacted_lookup_topics(
    settings: TransformerSettings,
    mappings: tuple[CompiledMapping, ...],
    give_up: Callable[[], bool] | None = None,
) -> None:
    """Log one warning when a looked-up table's staging topic deletes old records (not compacted,
    retention not infinite). Nothing is read without lookups; a cluster that does not answer, or
    refuses DESCRIBE_CONFIGS, is one info line: the check never stops the service."""
    interest = Interest.of(mappings)
    sources = {staging_topic(connector, table): connector for connector, table in interest.tables}
    if not sources:
        return
    try:
        existing = _read(settings, sources, configs=True, give_up=give_up)
    except EventBusError as error:
        log.info("looked-up staging topics' cleanup policy not checked", extra={"error": str(error)})
        return
    report_uncompacted_lookup_topics(sources, existing)


def report_uncompacted_lookup_topics(
    sources: Mapping[str, str], existing: Mapping[str, ExistingTopic | None]
) -> None:
    """The warning itself: `sources` is looked-up staging topic → its source."""
    deleting = sorted(
        name
        for name, topic in existing.items()
        if topic is not None and name in sources and _deletes_old_records(topic)
    )
    if not deleting:
        return
    commands = [f"eventbus source register {source}" for source in sorted({sources[t] for t in deleting})]
    log.warning(
        "looked-up tables' staging topics are not compacted: their rows are deleted after retention.ms, "
        "and a transformer that rebuilds its lookup store (a new instance, an empty disk) then finds "
        "such rows missing; registering the source again, with these mappings in its mappings folder, "
        "compacts them",
        extra={"topics": deleting, "command": " && ".join(commands)},
    )


def _deletes_old_records(topic: ExistingTopic) -> bool:
    policy = {part.strip() for part in (topic.config.get("cleanup.policy") or "delete").split(",")}
    return "compact" not in policy and (topic.config.get("retention.ms") or "") != "-1"


def _read(
    settings: TransformerSettings,
    names: Iterable[str],
    *,
    configs: bool,
    give_up: Callable[[], bool] | None,
) -> dict[str, ExistingTopic | None]:
    """The topics as the cluster has them, asked as the service's own clients would ask."""
    return read_topics(
        admin_client(settings.common_config(reveal=True), logging.getLogger("eventbus.librdkafka")),
        names,
        bootstrap=settings.kafka.bootstrap_servers,
        timeout_s=settings.transaction_timeout_ms / 1000,
        configs=configs,
        give_up=give_up,
    )
