"""Lookups in the running service: the barrier before each batch, parked changes, their changelog.

At start-up, after the producer's `init_transactions`:

  L0. The parked-changes topic exists; the store is opened and read up to the related topics' end
      (rebuilt from them when the disk is empty). Only then does the loop consume.

Per batch of staging records (steps of the loop in docs/transformer.md):

  L1. Before the batch's records are processed, the related tables' staging topics are read up to
      their last stable offset (`RelatedTopicsFeeder.catch_up`): every version committed before any
      change of the batch is then in the store (the barrier, see lookups/feeder.py).
  L2. A change whose lookup must wait (`LookupPending`) is *parked*: kept in memory and written to the
      parked-changes topic (compacted, keyed by its staging topic/partition/offset) in the batch's
      transaction. Its partition's offset moves on as usual: the parked copy is the durable one.
  L3. After the batch, and every `retry_interval_s` while idle, parked changes run again (after a
      new catch-up); one that is resolved produces its events (or dead letter) and a tombstone for
      its parked entry, in the same transaction.
  L4. On commit the batch's parking changes are final; on abort they are undone with the rest of the
      batch (the records are consumed again).
  L5. On assignment the parked-changes topic is read to its end (read_committed): the entries of the
      assigned partitions are parked again, so a restart, or another instance taking a partition
      over, forgets no waiting change. On revocation the revoked partitions' entries are dropped here
      (their new owner reads them back).

Parked changes of a partition may be published after later changes of the same partition; the
event ids are those the change would have had anyway.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from eventbus.debezium.positions import BEFORE_STREAMING
from eventbus.errors import ConfigError
from eventbus.lookups.feeder import CatchUpError, RelatedTopicsFeeder
from eventbus.lookups.resolver import LookupResolver
from eventbus.lookups.store import StoreFormatError, VersionStore
from eventbus.mapping.compiler import CompiledMapping
from eventbus.service.dead_letter import Origin
from eventbus.service.dedup import decode_watermark
from eventbus.service.errors import ServiceError
from eventbus.service.processor import ParkedRecord as Parked
from eventbus.service.processor import Processor, Produce
from eventbus.topics.model import PARKED_TOPIC_CONFIG

log = logging.getLogger("eventbus.service.lookups")


class LookupStage:
    """The lookup side of one transformer loop (see the module docstring for the steps)."""

    def __init__(
        self,
        mappings: Iterable[CompiledMapping],
        feeder: RelatedTopicsFeeder,
        produce: Produce,
        parked_topic: str,
        consumer_config: dict[str, Any],
        *,
        retry_interval_s: float = 0.5,
        prune_every_s: float = 300.0,
        read_changelog: Callable[[str, dict[str, Any]], dict[str, tuple[Parked, int] | None]] | None = None,
        admin_config: dict[str, Any] | None = None,
    ) -> None:
        self._admin_config = admin_config
        self._read_changelog = read_changelog or _read_changelog
        self.feeder = feeder
        self.group = str(consumer_config["group.id"]).removesuffix(".lookups")
        self.prune_every_s = prune_every_s
        self._pruned_at = time.monotonic()
        self._parked_commits: dict[str, int] = {}  # changelog key → the parked change's commit
        self.resolver = LookupResolver(feeder.store, progress_ts={})
        self.parked_topic = parked_topic
        self._produce = produce
        self._consumer_config = consumer_config
        self.retry_interval_s = retry_interval_s
        mappings = list(mappings)
        self.topics = frozenset(_staging_topic(m) for m in mappings if m.lookups)
        self._functions = {
            m.spec.name: self.resolver.for_mapping(m.spec.name, m.lookups) for m in mappings if m.lookups
        }
        self.parked: dict[str, Parked] = {}  # by changelog key, in park order
        self._journal: list[tuple[str, Parked | None]] = []  # this batch: (key, entry before)
        self._retried_at = 0.0
        self._assigned: set[tuple[str, int]] = set()
        self.processor: Processor | None = None

    # --- what the processor calls ---------------------------------------------------------------

    def function(self, mapping: CompiledMapping) -> Any:
        return self._functions[mapping.spec.name]

    def at(self, position: tuple[int, int] | None, ts_ms: int | None, lag_ms: int = 0) -> None:
        # Snapshot reads stand before every streamed change (debezium/positions.py).
        self.resolver.at(BEFORE_STREAMING[0] if position is None else position[0], ts_ms, lag_ms)

    def park(self, record: Parked) -> None:
        key = _changelog_key(record.origin)
        self._journal.append((key, self.parked.get(key)))
        self.parked[key] = record
        commit = self._parked_commits[key] = self.resolver.commit
        self._produce(self.parked_topic, _encode(record, commit), key.encode())

    # --- what the loop calls --------------------------------------------------------------------

    def produce_with(self, produce: Produce) -> None:
        """Parked entries and their tombstones go to `produce` from now on (a renewed producer)."""
        self._produce = produce

    def attach(self, processor: Processor) -> None:
        """Run `processor`'s mappings with lookups through this stage (no network yet)."""
        self.processor = processor
        processor.use_lookups(self)

    def open(self) -> None:
        """L0: the parked-changes topic exists, the store is opened and read up to now, before the
        loop consumes anything: an empty disk (a new container) is rebuilt here, and the service is
        not ready until then. Kafka problems are one clear `ServiceError`."""
        try:
            if self._admin_config is not None:
                ensure_parked_topic(self._admin_config, self.parked_topic)
            self.feeder.start()
            started = time.monotonic()
            read = self.feeder.catch_up()
        except KafkaException as error:
            raise ServiceError(
                f"lookup store: {error.args[0].str()} (is the Kafka cluster reachable?)"
            ) from None
        except CatchUpError as error:
            raise ServiceError(str(error)) from None
        log.info(
            "lookup store caught up",
            extra={"records_read": read, "seconds": round(time.monotonic() - started, 3),
                   "rows": self.feeder.store.row_count()},
        )  # fmt: skip

    def before_batch(self) -> None:
        """L1: the barrier for the records just consumed."""
        self.feeder.catch_up()
        self.resolver.progress_ts = dict(self.feeder.progress_ts)
        self.resolver.heartbeat_ts = dict(self.feeder.heartbeat_ts)

    def retry_parked(self, *, force: bool = False) -> int:
        """L3: run the parked changes again; returns how many were resolved."""
        if not self.parked or self.processor is None:
            return 0
        now = time.monotonic()
        if not force and now - self._retried_at < self.retry_interval_s:
            return 0
        self._retried_at = now
        processor = self.processor
        resolved = 0
        for key, record in list(self.parked.items()):
            routes = tuple(
                r for r in processor.routes.get(record.origin.topic, ()) if r[0].spec.name in record.mappings
            )
            origin = record.origin
            still = processor.handle(
                record.value, record.key, record.headers, origin.topic, origin.partition, origin.offset,
                routes, None, attempt=record.attempt, resumed=True,
            )  # fmt: skip
            if still:
                continue
            processor.tally.resumed += 1
            self._journal.append((key, record))
            del self.parked[key]
            self._produce(self.parked_topic, None, key.encode())
            resolved += 1
        return resolved

    def idle_due(self) -> bool:
        return bool(self.parked) and time.monotonic() - self._retried_at >= self.retry_interval_s

    def committed(self) -> None:
        """L4; and now and then, drop the versions no change can still ask for."""
        self._journal.clear()
        if time.monotonic() - self._pruned_at >= self.prune_every_s:
            self._pruned_at = time.monotonic()
            try:
                self.prune()
            except KafkaException as error:  # housekeeping: the next time will do
                log.warning("lookup store not pruned this time; it will be at the next interval",
                            extra={"error": error.args[0].str()})  # fmt: skip

    def prune(self) -> int:
        """Drop versions older than what any change still to be processed can ask for: below the
        oldest of every trigger partition's committed position (all of the group's, not only ours:
        a partition may move here) and of every parked change. Returns how many were dropped."""
        bound = self._prune_bound()
        if bound is None:
            return 0
        dropped = self.feeder.store.prune(bound)
        log.info("lookup store pruned", extra={"below_commit": bound, "versions_dropped": dropped})
        return dropped

    def _prune_bound(self) -> int | None:
        committed = self.feeder.committed_offsets(self.group, sorted(self.topics))
        watermarks = {
            key: decode_watermark(metadata) if offset >= 0 else None
            for key, (offset, metadata) in committed.items()
        }
        if not watermarks or any(position is None for position in watermarks.values()):
            return None  # a partition with nothing ordered committed yet may still need everything
        bound = min(position[0] for position in watermarks.values() if position is not None)
        parked = [self._parked_commits.get(key, 0) for key in self.parked]
        return min([bound, *parked])

    def rolled_back(self) -> None:
        """L4: undo this batch's parking (its records are consumed again)."""
        for key, before in reversed(self._journal):
            if before is None:
                self.parked.pop(key, None)
            elif (before.origin.topic, before.origin.partition) in self._assigned:
                self.parked[key] = before
        self._journal.clear()

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """L5: park again what the parked-changes topic holds for these partitions."""
        wanted = {(tp.topic, tp.partition) for tp in partitions if tp.topic in self.topics}
        self._assigned |= wanted
        if not wanted:
            return
        restored = 0
        for key, record in self._read_changelog(self.parked_topic, self._consumer_config).items():
            if record is not None and (record[0].origin.topic, record[0].origin.partition) in wanted:
                self.parked[key], self._parked_commits[key] = record
                restored += 1
        if restored:
            log.info("parked changes restored", extra={"count": restored, "topic": self.parked_topic})

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._assigned -= gone
        for key, record in list(self.parked.items()):
            if (record.origin.topic, record.origin.partition) in gone:
                del self.parked[key]

    def close(self) -> None:
        self.feeder.close()

    def collector(self) -> Collector:
        return _LookupCollector(self)


def _staging_topic(mapping: CompiledMapping) -> str:
    from eventbus.sources.naming import staging_topic

    return staging_topic(mapping.spec.source.connector, mapping.spec.source.table)


def _changelog_key(origin: Origin) -> str:
    return f"{origin.topic}/{origin.partition}/{origin.offset}"


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _encode(record: Parked, commit: int) -> bytes:
    return orjson.dumps({
        "format": 1, "commit": commit,
        "topic": record.origin.topic, "partition": record.origin.partition, "offset": record.origin.offset,
        "value": _b64(record.value), "key": _b64(record.key),
        "headers": None if record.headers is None else [[k, _b64(v)] for k, v in record.headers],
        "mappings": list(record.mappings), "attempt": record.attempt,
    })  # fmt: skip


def _decode(value: bytes) -> tuple[Parked, int]:
    """A parked-changes entry and the commit position of its change."""
    document = orjson.loads(value)
    headers = document.get("headers")
    return Parked(
        value=_unb64(document["value"]) or b"",
        key=_unb64(document.get("key")),
        headers=None if headers is None else [(k, _unb64(v)) for k, v in headers],
        origin=Origin(document["topic"], int(document["partition"]), int(document["offset"])),
        mappings=tuple(document["mappings"]),
        attempt=int(document.get("attempt", 1)),
    ), int(document.get("commit", 0))


def _read_changelog(topic: str, consumer_config: dict[str, Any]) -> dict[str, tuple[Parked, int] | None]:
    """The parked-changes topic read to its end (read_committed): key → entry (None: resolved)."""
    config = dict(consumer_config) | {
        "group.id": f"{consumer_config['group.id']}.parked-restore",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    }
    config.pop("logger", None)
    consumer = Consumer(config)
    entries: dict[str, tuple[Parked, int] | None] = {}
    try:
        metadata = consumer.list_topics(topic, timeout=30)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            return entries
        partitions = [TopicPartition(topic, p, 0) for p in sorted(info.partitions)]
        ends = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=30, cached=False)
            if high > low:
                ends[tp.partition] = high
        if not ends:
            return entries
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + 60
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.2):
                if message.error() is not None:
                    continue
                key = (message.key() or b"").decode()
                value = message.value()
                entries[key] = None if value is None else _decode(value)
            # Reached the end when the position is at the high watermark (markers count as read).
            for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
                if tp.offset >= ends[tp.partition]:
                    ends.pop(tp.partition)
        if ends:
            raise KafkaException(f"parked-changes topic {topic} not read to its end in 60 s")
    finally:
        consumer.close()
    return entries


class _LookupCollector(Collector):
    """Per-lookup counts and the store's size on /metrics (read at scrape time)."""

    def __init__(self, stage: LookupStage) -> None:
        self.stage = stage

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self.stage.resolver.stats
        families = {
            "hits": CounterMetricFamily("eventbus_lookup_hits", "Lookups answered as of the change's commit.",
                                        labels=["mapping", "lookup"]),
            "waited": CounterMetricFamily("eventbus_lookup_waited", "Lookups answered by a row committed "
                                          "after the change, within its wait.", labels=["mapping", "lookup"]),
            "wait_ms": CounterMetricFamily("eventbus_lookup_wait_source_ms", "Source time waited for "
                                           "rows committed after the change.", labels=["mapping", "lookup"]),
            "missing": CounterMetricFamily("eventbus_lookup_missing", "Lookups that found no row "
                                           "(on_missing applied).", labels=["mapping", "lookup"]),
            "pending": CounterMetricFamily("eventbus_lookup_pending", "Times a change had to wait for a row.",
                                           labels=["mapping", "lookup"]),
        }  # fmt: skip
        for (mapping, lookup), counts in stats.items():
            for name, family in families.items():
                family.add_metric([mapping, lookup], getattr(counts, name))
        yield from families.values()
        parked = GaugeMetricFamily("eventbus_lookup_parked_changes", "Changes waiting for a looked-up row.")
        parked.add_metric([], len(self.stage.parked))
        yield parked
        store = self.stage.feeder.store
        size = GaugeMetricFamily("eventbus_lookup_store_bytes", "Size of the lookup store on disk.")
        size.add_metric([], store.size_bytes())
        yield size
        rows = GaugeMetricFamily(
            "eventbus_lookup_store_versions_written", "Row versions written to the store."
        )
        rows.add_metric([], store.rows_written)
        yield rows
        skipped = CounterMetricFamily(
            "eventbus_lookup_records_skipped",
            "Records of looked-up tables not stored: undecodable, or holding a value the store cannot "
            "hold (an integer beyond 64 bits); each is logged with its topic.",
        )
        skipped.add_metric([], self.stage.feeder.records_skipped)
        yield skipped


def open_store(path: Any) -> VersionStore:
    """The lookup store at `path`; an unreadable or incompatible file is set aside and rebuilt."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"cannot keep the lookup store in {path.parent} ({error.strerror or error}): set state_dir "
            "(EVENTBUS_STATE_DIR) to a folder this process may write"
        ) from None
    try:
        return VersionStore(path)
    except (StoreFormatError, sqlite3.DatabaseError) as error:
        log.warning("lookup store unusable, rebuilding it from the staging topics",
                    extra={"path": str(path), "error": str(error)})  # fmt: skip
        for suffix in ("", "-wal", "-shm"):
            stale = path.with_name(path.name + suffix)
            if stale.exists():
                stale.unlink()
        return VersionStore(path)


def ensure_parked_topic(admin_config: dict[str, Any], topic: str) -> None:
    """Create the parked-changes topic (compacted: only unresolved entries stay) when it is missing.

    On the bus topics are provisioned; then this finds it and changes nothing."""
    admin = AdminClient(admin_config)
    metadata = admin.list_topics(topic, timeout=30)
    info = metadata.topics.get(topic)
    if info is not None and info.error is None:
        return
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=-1, config=dict(PARKED_TOPIC_CONFIG))]
    )
    try:
        futures[topic].result(30)
        log.info("parked-changes topic created", extra={"topic": topic})
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise ServiceError(f"cannot create the parked-changes topic {topic}: {error.args[0].str()} "
                               "(create it, compacted, or set parked_topic)") from None  # fmt: skip
