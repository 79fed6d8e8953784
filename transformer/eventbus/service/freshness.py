"""Per source: when its newest change consumed was written, and how old that is now.

A source that stops sending changes shows nowhere else: the lag stays 0 (nothing arrives to be
behind on) and the loop keeps turning. The age of the newest change seen per source is the signal
(alert rules: deploy/prometheus/eventbus-rules.yaml). Time is the Kafka record's timestamp, i.e.
when Kafka Connect wrote the change, so a transformer catching up on a backlog reports that backlog's
age, not the moment it read it.

Cost on the hot path: one pass per consumed batch from its end, one timestamp read per partition.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from eventbus.service.partitions import Record
from eventbus.sources.naming import STAGING_PREFIX


def source_of_topic(topic: str) -> str:
    """`staging.<source>.<schema>.<table>` → `<source>` (eventbus.sources.naming); another name
    is its own source."""
    prefix = f"{STAGING_PREFIX}."
    if not topic.startswith(prefix) or topic.count(".") < 3:
        return topic
    return topic[len(prefix) :].rsplit(".", 2)[0]


class SourceFreshness(Collector):
    """`eventbus_source_last_change_timestamp_seconds{source}`, a series per source once a change
    of it was consumed, and `..._age_seconds{source}`, a series per source of the mappings from
    start-up: until a change is seen, the time since start-up (a lower bound of the true age).
    Otherwise a source that died before a restart would have no age series at all, and the
    stale-source alert, which compares the age with a threshold, could never fire after it."""

    def __init__(self, staging_topics: Iterable[str], *, started_s: float | None = None) -> None:
        self._source_of = {topic: source_of_topic(topic) for topic in staging_topics}
        self._newest_ms: dict[str, int] = {}
        self._started_s = time.time() if started_s is None else started_s

    def saw(self, records: Sequence[Record]) -> None:
        """A consumed batch: per partition its last record is its newest (a partition is in order)."""
        seen: set[tuple[str, int]] = set()
        newest = self._newest_ms
        for record in reversed(records):
            key = (record.topic(), record.partition())
            if key in seen:
                continue
            seen.add(key)
            source = self._source_of.get(key[0]) or source_of_topic(key[0])
            timestamp_ms = record.timestamp()[1]
            if timestamp_ms > newest.get(source, -1):
                newest[source] = timestamp_ms

    def age_s(self, source: str, now_s: float | None = None) -> float | None:
        newest = self._newest_ms.get(source)
        if newest is None:
            return None
        now = time.time() if now_s is None else now_s
        return max(0.0, now - newest / 1000)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stamps = GaugeMetricFamily(
            "eventbus_source_last_change_timestamp_seconds",
            "When the newest change consumed from a source was written to Kafka (Unix time).",
            labels=["source"],
        )
        ages = GaugeMetricFamily(
            "eventbus_source_last_change_age_seconds",
            "Seconds since the newest change consumed from a source was written to Kafka.",
            labels=["source"],
        )
        now = time.time()
        for source, newest in sorted(self._newest_ms.items()):
            stamps.add_metric([source], newest / 1000)
            ages.add_metric([source], max(0.0, now - newest / 1000))
        for source in sorted(set(self._source_of.values()) - self._newest_ms.keys()):
            ages.add_metric([source], max(0.0, now - self._started_s))
        yield stamps
        yield ages
