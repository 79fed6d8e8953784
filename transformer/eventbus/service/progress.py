"""What the loop tells about how far it got: consumer lag per partition, and a periodic log line.

`update_lag` sets the `eventbus_consumer_lag_records` gauge of each assigned partition (every couple
of seconds: it asks the consumer for positions and watermarks); `report` logs one "progress" line
every `progress_every_s`, which tells an idle service from a stuck one. Apart from the loop
(`loop.py`), which decides what happens when; this only measures and reports.
"""

from __future__ import annotations

import contextlib
import logging
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from eventbus.service.metrics import Metrics
from eventbus.service.partitions import Partitions

# The loop's logger: operators follow one logger for everything the loop does.
log = logging.getLogger("eventbus.service.loop")
_LAG_EVERY_S = 2.0


class Progress:
    """Lag and progress of one `TransformerLoop`; `committed()` is told of every commit."""

    def __init__(self, consumer: Consumer, partitions: Partitions, metrics: Metrics, every_s: float) -> None:
        self._consumer = consumer
        self._partitions = partitions
        self._metrics = metrics
        self._every_s = every_s
        self._lag_at = 0.0
        self.lag_total = 0  # records behind, summed over the assigned partitions
        self._reported_at = time.monotonic()
        self._committed_at: float | None = None

    def committed(self) -> None:
        self._committed_at = time.monotonic()

    def forget(self, partitions: list[TopicPartition]) -> None:
        """Partitions no longer assigned have no lag to report."""
        for tp in partitions:
            with contextlib.suppress(KeyError):  # no lag was reported for it yet
                self._metrics.lag.remove(tp.topic, str(tp.partition))

    def update_lag(self) -> None:
        """Per assigned partition: records written and not yet consumed, 0 once all is consumed.

        "High watermark minus the offset after the last record processed" is not that: staging
        records are written in Kafka Connect's transactions, and each transaction's commit marker
        (and each aborted record) occupies an offset that no consumer ever receives, so that
        difference stays >= 1 on a partition read to its end and could never be alerted on.
        The consumer's own position is the offset after the last *entry* it went past: librdkafka
        moves it over the markers and aborted records it skips (in read_committed mode), so a
        partition consumed to its end has position == high watermark, and the lag is 0 there.
        The processed position still counts when it is ahead (right after assignment, before the
        consumer has a position). While behind, markers between the position and the end are
        counted with the records (one per source transaction); records of a transaction still open
        count too, as written and not yet readable. A hanging transaction therefore shows as lag
        that never goes down: a stuck source, as it should.
        """
        now = time.monotonic()
        if now - self._lag_at < _LAG_EVERY_S:
            return
        self._lag_at = now
        processed = list(self._partitions.positions())
        try:
            consumed = {
                (tp.topic, tp.partition): tp.offset
                for tp in self._consumer.position([TopicPartition(t, p) for t, p, _ in processed])
            }
        except KafkaException:
            consumed = {}
        total = 0
        for topic, partition, position in processed:
            read_to = max(position if position is not None else -1, consumed.get((topic, partition), -1))
            if read_to < 0:  # neither processed nor fetched anything yet: nothing to measure from
                continue
            try:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except KafkaException:
                continue
            if high >= 0:
                lag = max(0, high - read_to)
                self._metrics.lag.labels(topic, str(partition)).set(lag)
                total += lag
        self.lag_total = total

    def report(self) -> None:
        """Every `progress_every_s`: totals, lag and the age of the last commit, in one log line.
        Records flowing, lag 0 and recent commits: healthy; nothing consumed but lag growing: stuck."""
        now = time.monotonic()
        if now - self._reported_at < self._every_s:
            return
        self._reported_at = now
        totals = self._metrics.totals
        since_commit = None if self._committed_at is None else round(now - self._committed_at, 1)
        log.info("progress", extra={
            "consumed": totals.consumed, "events_out": totals.events_out,
            "dead_lettered": totals.dead_lettered, "lag_records": self.lag_total,
            "transactions_committed": totals.transactions_committed, "last_commit_s_ago": since_commit,
        })  # fmt: skip
