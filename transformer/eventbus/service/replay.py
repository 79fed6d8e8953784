"""`eventbus dlq replay`: dead-letter records through the current mappings, exactly once.

After a mapping is fixed, its dead letters are re-run: each DLQ record goes only through the mapping
named in its headers (every mapping of its staging topic for a decode failure), so mappings that
had succeeded on the record do not publish twice. The replay is a transformer loop of its own: its
consumer group is `<group_id>.dlq-replay`, its transactional id `<transactional id>.dlq-replay`, and
it commits its DLQ offsets in the same transactions as the events it publishes, so a replay that is
interrupted and run again continues where it stopped. It reads up to the end of the DLQ *as of its
start*; records that fail again are written back with `eventbus_dlq_attempt` + 1 and are left for
the next replay, as are dead letters of a mapping that is not in the replay's mappings folder.
`--from-beginning` replays every dead letter again, those an earlier replay resolved too: their
events are published again (with the same event ids).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from confluent_kafka import TopicPartition

from eventbus.errors import ConfigError
from eventbus.service.app import build, load
from eventbus.service.bounds import UntilEndOffsets
from eventbus.service.dead_letter import NotADeadLetterError, parse_dead_letter
from eventbus.service.errors import ServiceError
from eventbus.service.partitions import Partitions, Record
from eventbus.service.processor import Processor
from eventbus.service.published_topics import check_published_topics
from eventbus.service.settings import TransformerSettings

log = logging.getLogger("eventbus.service.replay")


class ReplayProcessor(Processor):
    """Routes each DLQ record by its headers to its original topic's (failed) mapping."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.foreign = 0  # records on the DLQ topic that are not our dead letters
        self.mapping_gone = 0  # dead letters of a mapping that no longer exists

    def process(self, messages: Iterable[Record], partitions: Partitions) -> None:
        tally = self.tally
        for message, *_ in partitions.record(messages):
            tally.consumed += 1
            try:
                dead = parse_dead_letter(message.headers())
            except NotADeadLetterError:
                self.foreign += 1
                tally.no_match += 1
                continue
            routes = self.routes.get(dead.origin.topic, ())
            if dead.mapping is not None:
                routes = tuple(route for route in routes if route[0].spec.name == dead.mapping)
            if not routes:
                # Not ours to decide: the dead letter goes back, saying so, for a replay with the
                # mapping (skipping it would commit past it for good).
                self.mapping_gone += 1
                gone = SimpleNamespace(name=dead.mapping, version=dead.mapping_version)
                why = (
                    f"mapping {dead.mapping} is not among the mappings of the replay"
                    if dead.mapping is not None
                    else f"no mapping of the replay reads {dead.origin.topic}"
                )
                self._dead_letter(
                    message.value() or b"", message.key(), dead.original_headers, dead.origin, dead.kind,
                    f"{why}: replay with the mappings folder that has it; before: {dead.reason}",
                    gone if dead.mapping is not None else None, dead.attempt + 1,
                )  # fmt: skip
                tally.dead_lettered += 1
                continue
            # No dedup state: a dead letter is not a Debezium re-delivery, and its staging
            # partition's watermark already counts it as processed.
            self.handle(
                message.value(), message.key(), dead.original_headers, dead.origin.topic,
                dead.origin.partition, dead.origin.offset, routes, None, attempt=dead.attempt + 1,
            )  # fmt: skip


def replay_dead_letters(
    settings: TransformerSettings, mappings_dir: Path, *, from_beginning: bool = False
) -> dict[str, Any]:
    """Run one replay; returns its accounting (as the final log line prints it)."""
    mappings, serializer = load(settings, mappings_dir)
    check_published_topics(settings, mappings.mappings, mappings_dir)  # replayed events go there too
    loop, metrics, _ = build(
        settings,
        mappings,
        serializer,
        group_id=f"{settings.group_id}.dlq-replay",
        transactional_id=f"{settings.transactional_id}.dlq-replay",
        processor_class=ReplayProcessor,
    )
    consumer = loop.consumer
    topic = settings.dlq_topic
    info = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        loop.consumer.close()
        raise ConfigError(f"dead-letter topic {topic!r} does not exist (nothing was dead-lettered?)")
    # Step 1 before the committed offsets are read: a replay killed mid-transaction left offsets
    # pending in its transaction, which the broker reports as unstable (the read timed out) until
    # the new instance fences and aborts it.
    loop.install_signal_handlers()
    loop.init_transactions()
    partitions = [TopicPartition(topic, p) for p in sorted(info.partitions)]
    committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
    starts, ends = [], {}
    for tp in partitions:
        low, high = consumer.get_watermark_offsets(tp, timeout=30)
        start = committed.get(tp.partition, -1)
        if from_beginning or start < 0:
            start = low
        starts.append(TopicPartition(topic, tp.partition, start))
        ends[(topic, tp.partition)] = high
    loop.open_lookups()
    if loop.run(UntilEndOffsets(starts, ends)) != 0:
        raise ServiceError("the dead-letter replay stopped on the fatal error logged above")
    processor = loop.processor
    assert isinstance(processor, ReplayProcessor)
    result = {
        "dead_letter_topic": topic,
        "accounting": metrics.totals.as_dict(),
        "not_dead_letters": processor.foreign,
        "mapping_gone": processor.mapping_gone,
    }
    log.info("dead-letter replay finished", extra=result)
    return result
