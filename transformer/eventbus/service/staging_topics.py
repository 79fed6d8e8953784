"""The staging topics the mappings read, looked up at start-up: a missing one is a warning.

Not a reason to stop: Debezium creates a table's topic with its first change, and the consumer is
subscribed by name, so it reads the topic once it exists. But a topic that never comes (a source not
registered, a table not in its definition) looks like a quiet table; the warning names the topics
and the command that creates them (`eventbus source register`, cli/source_commands.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from eventbus.errors import EventBusError
from eventbus.mapping.compiler import CompiledMapping
from eventbus.service.loading import staging_topic_of
from eventbus.service.settings import TransformerSettings
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
        existing = read_topics(
            admin_client(settings.common_config(reveal=True), logging.getLogger("eventbus.librdkafka")),
            sources,
            bootstrap=settings.kafka.bootstrap_servers,
            timeout_s=settings.transaction_timeout_ms / 1000,
            configs=False,
            give_up=give_up,
        )
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
