"""Prometheus metrics and the accounting identity.

Counting happens in plain Python integers on the hot path (`Tally`), and is added to the Prometheus
metrics only when a batch is committed (`Metrics.flush`). That keeps per-record overhead to an
integer increment, and makes the metrics exactly-once too: an aborted batch is reprocessed, and its
discarded tally is not counted twice.

Every consumed staging record ends in exactly one of three outcomes, so
`consumed = emitted_from + filtered + dead_lettered` (record level); with lookups a record may wait
first (`parked`, see service/lookup_stage.py) and gets its outcome when it is run again (`resumed`),
so in general `consumed + resumed = emitted_from + filtered + dead_lettered + parked`:
- emitted-from: at least one mapping produced at least one curated event from it (and none failed);
- filtered: no event and no failure (tombstone, duplicate below the watermark, no mapping matched);
- dead-lettered: it could not be decoded, or at least one mapping failed on it.
Per mapping the same identity holds for the changes routed to it:
`changes_in = emitted_from + filtered + dead_lettered`.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from eventbus.service.freshness import SourceFreshness

FILTER_REASONS = ("tombstone", "duplicate", "no_match")
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class MappingTally:
    """Pending counts of one mapping for the open batch."""

    __slots__ = ("changes_in", "dead_lettered", "emitted_from", "events_out", "filtered", "source_ts_ms")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.changes_in = self.events_out = self.emitted_from = self.filtered = self.dead_lettered = 0
        self.source_ts_ms: list[int] = []  # of the changes this mapping emitted from


class Tally:
    """Pending counts of the open batch (record level and per mapping) and its source timestamps."""

    __slots__ = ("consumed", "dead_lettered", "duplicates", "emitted_from", "mappings", "no_match",
                 "parked", "resumed", "source_ts_ms", "tombstones", "unreadable")  # fmt: skip

    def __init__(self, mapping_names: Iterable[str]) -> None:
        self.mappings = {name: MappingTally() for name in mapping_names}
        self.reset()

    def reset(self) -> None:
        self.consumed = self.emitted_from = self.dead_lettered = 0
        self.tombstones = self.duplicates = self.no_match = 0
        self.parked = self.resumed = 0
        self.unreadable = 0  # of dead_lettered: records no mapping could read (no mapping's count)
        for tally in self.mappings.values():
            tally.reset()  # in place: the processor holds references to these objects
        self.source_ts_ms: list[int] = []

    def take(self) -> Tally:
        """A copy of the counts so far, and this tally reset (in place): the counts of a batch being
        committed while the next is processed (`commit_overlap.py`)."""
        taken = Tally(())
        for name in self.__slots__:
            if name != "mappings":
                setattr(taken, name, getattr(self, name))
        for name, tally in self.mappings.items():
            copy = taken.mappings[name] = MappingTally()
            for field_name in MappingTally.__slots__:
                setattr(copy, field_name, getattr(tally, field_name))
        self.reset()
        return taken

    @property
    def filtered(self) -> int:
        return self.tombstones + self.duplicates + self.no_match


@dataclass(slots=True)
class Accounting:
    """Totals since start (committed batches only)."""

    consumed: int = 0
    emitted_from: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    parked: int = 0
    resumed: int = 0
    events_out: int = 0
    transactions_committed: int = 0
    transactions_aborted: int = 0
    per_mapping: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        records = (
            self.consumed + self.resumed
            == self.emitted_from + self.filtered + self.dead_lettered + self.parked
        )
        mappings = all(
            m["changes_in"] == m["emitted_from"] + m["filtered"] + m["dead_lettered"]
            for m in self.per_mapping.values()
        )
        return records and mappings

    def as_dict(self) -> dict[str, object]:
        return {
            "consumed": self.consumed,
            "emitted_from": self.emitted_from,
            "filtered": self.filtered,
            "dead_lettered": self.dead_lettered,
            "parked": self.parked,
            "resumed": self.resumed,
            "events_out": self.events_out,
            "balanced": self.balanced,
            "transactions_committed": self.transactions_committed,
            "transactions_aborted": self.transactions_aborted,
            "mappings": self.per_mapping,
        }


class LatencyHistogram(Collector):
    """Source commit → publish latency, observed in bulk when a batch commits; optionally one series
    per value of one label (the mapping: bounded by the mapping set).

    A custom collector because observing thousands of values one `Histogram.observe` call (and lock)
    at a time would cost more than the rest of the commit; `bisect` per value and one lock-free
    update per batch (the loop is the only writer; the HTTP thread only reads) is enough.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
        *,
        label: str | None = None,
        label_values: Iterable[str] = (),
    ) -> None:
        self._name = name
        self._doc = documentation
        self._bounds = list(buckets)
        self._label = label
        # label value ("" without a label) → (bucket counts, sum); series exist from the start
        self._series: dict[str, tuple[list[int], list[float]]] = {}
        for value in label_values if label else [""]:
            self._series_of(value)

    def _series_of(self, value: str) -> tuple[list[int], list[float]]:
        series = self._series.get(value)
        if series is None:
            series = self._series[value] = ([0] * (len(self._bounds) + 1), [0.0])
        return series

    def observe_many(self, seconds: Iterable[float], label_value: str = "") -> None:
        bounds = self._bounds
        counts, total = self._series_of(label_value)
        added = 0.0
        for value in seconds:
            counts[bisect.bisect_left(bounds, value)] += 1
            added += value
        total[0] += added

    @property
    def count(self) -> int:
        return sum(sum(counts) for counts, _ in self._series.values())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._doc, labels=[self._label] if self._label else None)
        for value, (counts, total) in list(self._series.items()):
            cumulative, buckets = 0, []
            for bound, count in zip([*self._bounds, float("inf")], counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric([value] if self._label else [], buckets, total[0])
        yield family


class Metrics:
    """The service's metrics in their own registry (so tests and the replay tool can make several)."""

    def __init__(
        self,
        mapping_names: Iterable[str],
        registry: CollectorRegistry | None = None,
        staging_topics: Iterable[str] = (),
    ) -> None:
        self.registry = registry or CollectorRegistry()
        names = list(mapping_names)
        r = self.registry
        self.records = Counter(
            "eventbus_records_total",
            "Staging records by outcome: consumed + resumed = emitted_from + filtered + dead_lettered "
            "+ parked (parked: waiting for a looked-up row; resumed: run again).",
            ["outcome"],
            registry=r,
        )
        self.filtered = Counter(
            "eventbus_records_filtered_total", "Filtered staging records by reason.", ["reason"], registry=r
        )
        self.unreadable = Counter(
            "eventbus_records_unreadable_total",
            "Staging records dead-lettered before any mapping saw them (not a Debezium change, a "
            "payload that does not parse): part of records_total{outcome=dead_lettered}, in no "
            "mapping's count.",
            registry=r,
        )
        self.changes_in = Counter(
            "eventbus_mapping_changes_in_total", "Changes routed to a mapping.", ["mapping"], registry=r
        )
        self.events_out = Counter(
            "eventbus_mapping_events_out_total",
            "Curated events published by a mapping.",
            ["mapping"],
            registry=r,
        )
        self.mapping_emitted_from = Counter(
            "eventbus_mapping_emitted_from_total",
            "Changes a mapping produced at least one event from.",
            ["mapping"],
            registry=r,
        )
        self.mapping_filtered = Counter(
            "eventbus_mapping_filtered_total",
            "Changes a mapping produced no event from.",
            ["mapping"],
            registry=r,
        )
        self.mapping_dead_lettered = Counter(
            "eventbus_mapping_dead_lettered_total",
            "Changes a mapping failed on (sent to the dead-letter topic).",
            ["mapping"],
            registry=r,
        )
        self.transactions = Counter(
            "eventbus_transactions_total", "Kafka transactions (or at-least-once commits) by result.",
            ["result"], registry=r,
        )  # fmt: skip
        self.lag = Gauge(
            "eventbus_consumer_lag_records",
            "Records written to a staging partition and not yet consumed; 0 once all is consumed "
            "(transaction markers included, see service/progress.py).",
            ["topic", "partition"], registry=r,
        )  # fmt: skip
        self.balanced = Gauge(
            "eventbus_accounting_balanced", "1 while consumed = emitted_from + filtered + dead_lettered.",
            registry=r,
        )  # fmt: skip
        self.latency = LatencyHistogram(
            "eventbus_source_to_publish_seconds",
            "Time from the source database commit (source.ts_ms) to the curated event's Kafka commit.",
        )
        r.register(self.latency)
        self.mapping_latency = LatencyHistogram(
            "eventbus_mapping_source_to_publish_seconds",
            "Source commit (source.ts_ms) to the Kafka commit of the events, per mapping that emitted.",
            label="mapping",
            label_values=names,
        )
        r.register(self.mapping_latency)
        self.freshness = SourceFreshness(staging_topics)
        r.register(self.freshness)
        # CPU seconds, resident memory, open files of this process (process_* metrics, Linux).
        ProcessCollector(registry=r)
        # Create every labelled child up front so dashboards see zeros rather than gaps.
        for outcome in ("consumed", "emitted_from", "filtered", "dead_lettered", "parked", "resumed"):
            self.records.labels(outcome)
        for reason in FILTER_REASONS:
            self.filtered.labels(reason)
        for name in names:
            for counter in (self.changes_in, self.events_out, self.mapping_emitted_from,
                            self.mapping_filtered, self.mapping_dead_lettered):  # fmt: skip
                counter.labels(name)
        for result in ("committed", "aborted"):
            self.transactions.labels(result)
        self.balanced.set(1)
        self.totals = Accounting(per_mapping={name: _zero_mapping() for name in names})

    def flush(self, tally: Tally, *, now_ms: int | None = None) -> None:
        """Add a committed batch's tally (the caller resets it)."""
        totals = self.totals
        self.records.labels("consumed").inc(tally.consumed)
        self.records.labels("emitted_from").inc(tally.emitted_from)
        self.records.labels("filtered").inc(tally.filtered)
        self.records.labels("dead_lettered").inc(tally.dead_lettered)
        if tally.unreadable:
            self.unreadable.inc(tally.unreadable)
        if tally.parked or tally.resumed:
            self.records.labels("parked").inc(tally.parked)
            self.records.labels("resumed").inc(tally.resumed)
            totals.parked += tally.parked
            totals.resumed += tally.resumed
        self.filtered.labels("tombstone").inc(tally.tombstones)
        self.filtered.labels("duplicate").inc(tally.duplicates)
        self.filtered.labels("no_match").inc(tally.no_match)
        totals.consumed += tally.consumed
        totals.emitted_from += tally.emitted_from
        totals.filtered += tally.filtered
        totals.dead_lettered += tally.dead_lettered
        for name, m in tally.mappings.items():
            if not m.changes_in:
                continue
            self.changes_in.labels(name).inc(m.changes_in)
            self.events_out.labels(name).inc(m.events_out)
            self.mapping_emitted_from.labels(name).inc(m.emitted_from)
            self.mapping_filtered.labels(name).inc(m.filtered)
            self.mapping_dead_lettered.labels(name).inc(m.dead_lettered)
            total = totals.per_mapping.setdefault(name, _zero_mapping())
            total["changes_in"] += m.changes_in
            total["events_out"] += m.events_out
            total["emitted_from"] += m.emitted_from
            total["filtered"] += m.filtered
            total["dead_lettered"] += m.dead_lettered
            totals.events_out += m.events_out
        if tally.source_ts_ms:
            now = time.time() * 1000 if now_ms is None else now_ms
            self.latency.observe_many(max(0.0, (now - ts) / 1000) for ts in tally.source_ts_ms)
            for name, m in tally.mappings.items():
                if m.source_ts_ms:
                    seconds = (max(0.0, (now - ts) / 1000) for ts in m.source_ts_ms)
                    self.mapping_latency.observe_many(seconds, name)
        self.balanced.set(1 if totals.balanced else 0)

    def transaction(self, committed: bool) -> None:
        self.transactions.labels("committed" if committed else "aborted").inc()
        if committed:
            self.totals.transactions_committed += 1
        else:
            self.totals.transactions_aborted += 1


def _zero_mapping() -> dict[str, int]:
    return {"changes_in": 0, "events_out": 0, "emitted_from": 0, "filtered": 0, "dead_lettered": 0}
