"""Feeding the version store from the looked-up tables' staging topics, up to a barrier.

The barrier: staging topics are written by Kafka Connect with exactly-once source support, one Kafka
transaction per batch of Debezium changes, in commit order. So once a `read_committed` consumer has
seen a triggering change, every change committed before it in the source — of any table — is in
the same or an earlier Kafka transaction, hence below its partition's *last stable offset* (LSO).
`catch_up()` asks the broker for the LSO of every related partition (once per batch of triggering
records, not per record) and reads up to it: then the store holds every version a lookup of that
batch may need. This is why lookups need exactly-once staging (`eventbus source check` says so).

The feeder also follows each source's Debezium heartbeat topic: heartbeats carry the source's time
while its tables are idle, which tells a change waiting for a related row when its wait is over.

The store remembers the offsets it has read up to, with the versions, so a restart resumes there
and an empty disk (a new container) reads the topics from their beginning — which is why the
looked-up tables' staging topics keep every row's latest version (compaction, see
`eventbus source register`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson
from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.errors import DecodeError
from eventbus.errors import EventBusError
from eventbus.lookups.store import UnstorableRowError, VersionStore
from eventbus.lookups.versions import Interest, add_change
from eventbus.sources.naming import heartbeat_topic, staging_topic

log = logging.getLogger("eventbus.lookups")
_COMMIT_EVERY = 5_000  # records per store commit while restoring: bounds memory (see _release_free_memory)
# Answers to a request sent by metadata that went stale: a broker restarted, a leader moved or is
# being elected. The admin client does not retry these; the same request again, which looks the
# leaders up afresh, gets through once the cluster has settled (seen after every broker restart in
# `make chaos`: FENCED_LEADER_EPOCH, which stopped the service with exit 2 before).
_STALE_METADATA = frozenset({
    KafkaError.FENCED_LEADER_EPOCH, KafkaError.UNKNOWN_LEADER_EPOCH, KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE, KafkaError.REPLICA_NOT_AVAILABLE, KafkaError.OFFSET_NOT_AVAILABLE,
    KafkaError._TRANSPORT,
    # a partition added since the admin client last looked the topic up
    KafkaError._UNKNOWN_PARTITION,
})  # fmt: skip
_FIRST_DELAY_S = 0.1
_MAX_DELAY_S = 1.0
# Behind the barrier with neither a record nor a position move for this long: the client's fetch of
# a partition is stuck. Seen once in `make chaos` after a broker restart (a manually assigned
# consumer that never fetched again, as in librdkafka issues 4492 and 5153); assigning the
# partitions again at the offsets read so far restarts the fetch.
_STALL_S = 5.0


class CatchUpError(EventBusError):
    """The related topics could not be read up to the barrier in time."""

    exit_code = 2


class RelatedTopicsFeeder:
    """Reads the looked-up tables' staging topics (and their sources' heartbeats) into the store."""

    def __init__(
        self,
        store: VersionStore,
        interest: Interest,
        consumer_config: dict[str, Any],
        admin_config: dict[str, Any],
        *,
        timeout_s: float = 60.0,
    ) -> None:
        self.store = store
        self.interest = interest
        self.timeout_s = timeout_s
        self.sources = sorted({connector for connector, _ in interest.tables})
        self.table_topics = sorted({staging_topic(c, t) for c, t in interest.tables})
        self._heartbeats = {heartbeat_topic(source): source for source in self.sources}
        self._source_of_topic = {staging_topic(c, t): c for c, t in interest.tables}
        self.progress_ts: dict[str, int] = {}  # source → newest commit time of a change read
        self.heartbeat_ts: dict[str, int] = {}  # source → newest heartbeat time read (the connector's clock)
        self.records_read = 0
        self.records_skipped = 0  # undecodable, or holding a value the store cannot (logged each)
        self.last_catch_up_s = 0.0
        self._decoder = ConnectJsonDecoder(schemas_enabled=True)
        self._consumer = Consumer(consumer_config)
        self._admin = AdminClient(admin_config)
        self._partitions: list[TopicPartition] = []
        self._next: dict[tuple[str, int], int] = {}
        self._stored: dict[tuple[str, int], int] = {}  # the store's offsets when it was opened

    # --- start-up ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Assign every partition of the related topics, from where the store stopped reading."""
        metadata = self._consumer.list_topics(timeout=self.timeout_s)
        stored = self.store.offsets()
        partitions = []
        for topic in [*self.table_topics, *self._heartbeats]:
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                if topic in self._heartbeats:
                    log.warning("no heartbeat topic: a change waiting for a row waits for new changes "
                                "of the source instead", extra={"topic": topic})  # fmt: skip
                    continue
                raise CatchUpError(
                    f"looked-up table topic {topic} does not exist: register its table in the source "
                    "(`eventbus source register`) before running mappings that look it up"
                )
            for partition in sorted(info.partitions):
                offset = stored.get((topic, partition), 0)
                self._next[(topic, partition)] = offset
                partitions.append(TopicPartition(topic, partition, offset))
        self._partitions = partitions
        self._stored = stored
        # How far the sources were when the store stopped reading: a replay, or a restart with
        # nothing new to read, would otherwise take every source for not started (lookups pending).
        saved = self.store.progress()
        self.progress_ts.update(saved.get("commit", {}))
        self.heartbeat_ts.update(saved.get("heartbeat", {}))
        self._consumer.assign(partitions)
        log.info(
            "lookup store opened",
            extra={"rows": self.store.row_count(), "topics": [*self.table_topics, *self._heartbeats],
                   "resumed_from": {f"{t}[{p}]": o for (t, p), o in self._next.items() if o}},
        )  # fmt: skip

    def close(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as error:
            log.warning("closing the lookup consumer failed", extra={"error": str(error)})
        self.store.close()

    # --- the barrier ------------------------------------------------------------------------------

    def last_stable_offsets(self) -> dict[tuple[str, int], int]:
        """The LSO of every related partition, as a `read_committed` consumer sees the topic end.

        Asked again, with back-off, while the cluster answers with a retriable error or one of stale
        metadata, up to `timeout_s`; then `CatchUpError`."""
        request = {TopicPartition(tp.topic, tp.partition): OffsetSpec.latest() for tp in self._partitions}
        if not request:
            return {}
        deadline = time.monotonic() + self.timeout_s
        delay = _FIRST_DELAY_S
        while True:
            left = max(1.0, deadline - time.monotonic())
            futures = self._admin.list_offsets(
                request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=left
            )
            try:
                return {(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}
            except KafkaException as exc:
                error = exc.args[0]
                passing = error.retriable() or error.code() in _STALE_METADATA
                if not passing or time.monotonic() + delay > deadline:
                    raise CatchUpError(
                        f"the end offsets of the related topics: {error.str()} [{error.name()}] "
                        "(is the Kafka cluster reachable?)"
                    ) from None
                where = {"call": "list_offsets", "error": error.str(), "code": error.name()}
                log.info("retrying", extra=where)
                time.sleep(delay)  # back-off while the cluster settles, not synchronisation
                delay = min(delay * 2, _MAX_DELAY_S)
                # The leaders and their epochs afresh: without this the admin client kept the stale
                # ones for 18 s after a broker restart in `make chaos`.
                with contextlib.suppress(KafkaException):
                    self._admin.list_topics(timeout=_MAX_DELAY_S)

    def committed_offsets(
        self, group: str, topics: list[str]
    ) -> dict[tuple[str, int], tuple[int, str | None]]:
        """What consumer group `group` has committed for every partition of `topics`: (offset,
        metadata), offset -1 when nothing is committed."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        metadata = self._consumer.list_topics(timeout=self.timeout_s)
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            if (info := metadata.topics.get(topic)) is not None and info.error is None
            for partition in sorted(info.partitions)
        ]
        if not partitions:
            return {}
        futures = self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, partitions)], request_timeout=self.timeout_s
        )
        result = futures[group].result()
        return {(tp.topic, tp.partition): (tp.offset, tp.metadata) for tp in result.topic_partitions}

    def _add_new_partitions(self) -> None:
        """Partitions added to a related topic since the last look (a staging topic given more
        partitions while we run): the barrier covers a partition only once it is assigned, and a
        row in one not read is a wrong answer (missing), not a late one. One metadata request per
        related topic and catch-up (≈ 0.3 ms on loopback)."""
        added = []
        for topic in {tp.topic for tp in self._partitions}:
            try:
                info = self._consumer.list_topics(topic, timeout=self.timeout_s).topics.get(topic)
            except KafkaException as exc:
                raise CatchUpError(f"the partitions of {topic}: {exc.args[0].str()}") from None
            if info is None or info.error is not None:
                continue  # deleted meanwhile: its known partitions' offsets say so at the barrier
            for partition in sorted(info.partitions):
                if (topic, partition) not in self._next:
                    offset = self._stored.get((topic, partition), 0)
                    self._next[(topic, partition)] = offset
                    added.append(TopicPartition(topic, partition, offset))
        if added:
            self._partitions = [*self._partitions, *added]
            self._consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in self._next.items()])
            log.info("new partitions of related topics assigned",
                     extra={"partitions": [f"{tp.topic}[{tp.partition}]" for tp in added]})  # fmt: skip

    def catch_up(self) -> int:
        """Read every related partition up to its current LSO; returns how many records were read."""
        started = time.monotonic()
        self._add_new_partitions()
        targets = {
            key: end for key, end in self.last_stable_offsets().items() if self._next.get(key, 0) < end
        }
        read = 0
        deadline = started + self.timeout_s
        consumer = self._consumer
        since_commit = 0
        moved_at = time.monotonic()  # not `started`: asking for the barrier may itself have taken long
        errors_seen: set[int] = set()
        while targets:
            now = time.monotonic()
            if now > deadline:
                raise CatchUpError(f"the related topics were not read up to their last stable offset "
                                   f"within {self.timeout_s:.0f} s: {self._behind(targets)}")  # fmt: skip
            if now - moved_at > _STALL_S:
                stalled = {"behind": self._behind(targets), "seconds": round(now - moved_at, 1)}
                log.warning(
                    "reading the related topics stalled; assigning their partitions again", extra=stalled
                )
                consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in self._next.items()])
                moved_at = now
            before = dict(self._next)
            messages = consumer.consume(num_messages=2000, timeout=0.2)
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise CatchUpError(f"reading related topics: {error.str()}")
                    if error.code() not in errors_seen:  # the client retries; said once per catch-up
                        errors_seen.add(error.code())
                        log.info("reading related topics: the client retries",
                                 extra={"error": error.str(), "code": error.name()})  # fmt: skip
                    continue
                topic, partition, offset = message.topic(), message.partition(), message.offset()
                # Unset only on error events (see `eventbus.service.partitions.Record`)
                assert topic is not None and partition is not None and offset is not None
                self._feed(topic, message.value(), message.key())
                self._next[(topic, partition)] = offset + 1
                read += 1
            since_commit += len(messages)
            if since_commit >= _COMMIT_EVERY:
                self.store.commit_offsets(dict(self._next), self._progress())
                since_commit = 0
                _release_free_memory()
            # Transaction markers below the LSO are never delivered: the position moves past them.
            for tp in consumer.position([TopicPartition(t, p) for t, p in targets]):
                if tp.offset >= 0:
                    key = (tp.topic, tp.partition)
                    self._next[key] = max(self._next.get(key, 0), tp.offset)
            if self._next != before:
                moved_at = time.monotonic()
            targets = {key: end for key, end in targets.items() if self._next.get(key, 0) < end}
        if read:
            self.store.commit_offsets(dict(self._next), self._progress())
            if read >= _COMMIT_EVERY:
                _release_free_memory()
        self.records_read += read
        self.last_catch_up_s = time.monotonic() - started
        return read

    def _progress(self) -> dict[str, dict[str, int]]:
        return {"commit": dict(self.progress_ts), "heartbeat": dict(self.heartbeat_ts)}

    def _behind(self, targets: dict[tuple[str, int], int]) -> dict[str, str]:
        """`{"topic[partition]": "next<barrier"}` of the partitions not read up to the barrier yet."""
        return {f"{t}[{p}]": f"{self._next.get((t, p))}<{end}" for (t, p), end in targets.items()}

    def _feed(self, topic: str, value: bytes | None, key: bytes | None) -> None:
        if value is None:
            return  # a tombstone: compaction's business; the delete record before it is the version
        source = self._heartbeats.get(topic)
        if source is not None:
            beat = _heartbeat_ts(value)
            if beat is not None and beat > self.heartbeat_ts.get(source, 0):
                self.heartbeat_ts[source] = beat
            return
        try:
            change = self._decoder.decode(value, key, topic)
        except DecodeError as error:
            # The transformer's own consumer dead-letters such a record if a mapping reads its table;
            # as a related row it cannot be looked up, which lookups then report as missing.
            self.records_skipped += 1
            log.warning(
                "undecodable record of a looked-up table", extra={"topic": topic, "error": str(error)}
            )
            return
        if change is None:
            return
        fingerprint = getattr(change.table, "fingerprint", None)
        if fingerprint is not None and not self.store.has_schema(fingerprint):
            self.store.add_schema(fingerprint, orjson.loads(value)["schema"])
        try:
            add_change(self.store, self.interest.of_change(change), change)
        except UnstorableRowError as error:
            # Skipped, not fatal: the staging topic is compacted and keeps the record, so raising
            # would stop every start of the service. Named by column, never by value.
            self.records_skipped += 1
            log.warning(
                "record of a looked-up table skipped: the lookup store cannot hold one of its values",
                extra={"topic": topic, "table": change.table.name, "columns": error.columns,
                       "error": str(error)},
            )  # fmt: skip
        self._advance(self._source_of_topic.get(topic, change.source.connector), change.source.ts_ms)

    def _advance(self, source: str, ts_ms: int | None) -> None:
        if ts_ms is not None and ts_ms > self.progress_ts.get(source, 0):
            self.progress_ts[source] = ts_ms

    def topics(self) -> Iterable[str]:
        return [*self.table_topics, *self._heartbeats]


def _release_free_memory() -> None:
    """Give freed heap pages back to the system after a large read (a restore).

    Hundreds of thousands of records pass through the client's buffers and Python's bytes objects
    in a restore; glibc keeps the freed memory in the process (measured: 200,000 records left RSS at
    ~380 MB, `malloc_trim` brought it to ~110 MB), which would make the first restore the service's
    lasting footprint. Elsewhere than glibc this is a no-op."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _load_malloc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_malloc_trim()


def _heartbeat_ts(value: bytes) -> int | None:
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    payload = document.get("payload", document) if isinstance(document, dict) else None
    ts = payload.get("ts_ms") if isinstance(payload, dict) else None
    return ts if isinstance(ts, int) else None
