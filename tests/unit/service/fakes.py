"""A fake broker, consumer and producer for driving `TransformerLoop` without services.

The fakes keep what a broker would: per staging partition a log of records and the group's committed
offset with its metadata; per transaction the produced events and offsets, which become visible on
commit and vanish on abort. Faults are planned per call name: a list with one entry per call, `None`
for a call that succeeds, an exception for one that raises, `FullFor(s)` for a local queue that
stays full for s seconds, `Stray()` for an abort whose produce requests are still on their way.

The broker also keeps the transactional id's producer epoch, bumped by every `init_transactions()`,
as Kafka does; a request of an older epoch is refused. Without KIP-890 (librdkafka has not got it)
a produce request of an aborted transaction that arrives late lands in the next transaction of the
same epoch: `Stray()` makes the fake do exactly that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition


class FakeMessage:
    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        error: KafkaError | None = None,
        timestamp_ms: int = 1_700_000_000_000,
    ) -> None:
        self._t, self._p, self._o, self._k, self._v, self._e = topic, partition, offset, key, value, error
        self._ts = timestamp_ms

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes | None:
        return self._k

    def value(self) -> bytes | None:
        return self._v

    def headers(self) -> None:
        return None

    def error(self) -> KafkaError | None:
        return self._e

    def timestamp(self) -> tuple[int, int]:
        return 1, self._ts  # TIMESTAMP_CREATE_TIME, as Kafka Connect's producer writes them


@dataclass
class FullFor:
    """A produce fault: the local queue stays full (BufferError) for this many seconds."""

    seconds: float
    since: float | None = None

    def still_full(self) -> bool:
        if self.since is None:
            self.since = time.monotonic()
        return time.monotonic() - self.since < self.seconds


@dataclass
class Stray:
    """An abort fault: the aborted transaction's produce requests are still on their way to the broker
    and are appended after the abort, to whatever transaction their producer epoch has open next."""


Plan = dict[str, list[Any]]


def _fault(plan: Plan, name: str) -> None:
    steps = plan.get(name)
    if not steps:
        return
    step = steps[0]
    if isinstance(step, FullFor):
        if step.still_full():
            raise BufferError("Local: Queue full")
        steps.pop(0)
        return
    steps.pop(0)
    if step is not None and not isinstance(step, Stray):
        raise step


def _planned(plan: Plan, name: str) -> Any:
    """The next planned step of `name`, without taking it."""
    steps = plan.get(name)
    return steps[0] if steps else None


@dataclass
class Broker:
    """What the cluster holds: staging logs, the group's commits, committed curated events."""

    topic: str
    logs: dict[int, list[FakeMessage]]
    committed: dict[int, tuple[int, str]] = field(default_factory=dict)
    events: list[tuple[str, bytes | None, bytes | None]] = field(default_factory=list)
    epoch: int = 0  # the transactional id's producer epoch
    # Produce requests of aborted transactions still on their way: (epoch, records)
    late: list[tuple[int, list[tuple[str, bytes | None, bytes | None]]]] = field(default_factory=list)

    def caught_up(self) -> bool:
        return all(self.committed.get(p, (0, ""))[0] >= len(log) for p, log in self.logs.items())


class FakeConsumer:
    """Serves each partition's log from its position, round-robin, `num_messages` at a time."""

    def __init__(self, broker: Broker, plan: Plan | None = None) -> None:
        self.broker = broker
        self.plan = plan or {}
        self.positions: dict[int, int] = {}
        self.seeks: list[tuple[int, int, int | None]] = []  # (partition, offset, committed then)
        self.closed = False
        self.on_stop: Callable[[], None] = lambda: None
        self._on_assign: Callable[..., None] | None = None
        self._on_revoke: Callable[..., None] | None = None
        self._calls = 0
        self.metadata_requests = 0

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        assert topics == [self.broker.topic]
        self._on_assign = on_assign
        self._on_revoke = on_revoke

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        _fault(self.plan, "committed")
        out = []
        for tp in partitions:
            offset, metadata = self.broker.committed.get(tp.partition, (OFFSET_INVALID, ""))
            found = TopicPartition(tp.topic, tp.partition, offset)
            if metadata:
                found = TopicPartition(tp.topic, tp.partition, offset, metadata=metadata)
            out.append(found)
        return out

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self._calls += 1
        assert self._calls < 5_000, "the loop does not finish"
        if self._on_assign is not None:
            assign, self._on_assign = self._on_assign, None
            assign(self, [TopicPartition(self.broker.topic, p) for p in self.broker.logs])
            for p in self.broker.logs:
                self.positions[p] = max(0, self.broker.committed.get(p, (0, ""))[0])
        steps = self.plan.get("consume")
        if steps:
            step = steps.pop(0)
            if isinstance(step, KafkaException):
                raise step
            if isinstance(step, KafkaError):
                return [FakeMessage(self.broker.topic, 0, -1, None, None, error=step)]
        if self.broker.caught_up():
            self.on_stop()
            return []
        out: list[FakeMessage] = []
        while len(out) < num_messages:
            moved = False
            for p, log in self.broker.logs.items():
                if self.positions[p] < len(log) and len(out) < num_messages:
                    out.append(log[self.positions[p]])
                    self.positions[p] += 1
                    moved = True
            if not moved:
                break
        return out

    def seek(self, tp: TopicPartition) -> None:
        committed = self.broker.committed.get(tp.partition)
        self.seeks.append((tp.partition, tp.offset, None if committed is None else committed[0]))
        self.positions[tp.partition] = tp.offset

    def consumer_group_metadata(self) -> object:
        return object()

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> object:
        """A metadata request (the loop's probe after "all brokers down"); faults: "list_topics"."""
        self.metadata_requests += 1
        _fault(self.plan, "list_topics")
        return object()

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        for tp in offsets:
            self.broker.committed[tp.partition] = (tp.offset, tp.metadata or "")

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return 0, len(self.broker.logs[tp.partition])

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get(tp.partition, 0)) for tp in partitions
        ]

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions[tp.partition] = tp.offset

    def close(self) -> None:
        # As librdkafka's close() does for a subscribed consumer: the group is left, so the rebalance
        # callback gets the partitions revoked first (the loop must not commit there after a fatal error).
        if self._on_revoke is not None and self.positions:
            revoke, self._on_revoke = self._on_revoke, None
            revoke(self, [TopicPartition(self.broker.topic, p) for p in self.positions])
        self.closed = True


class FakeProducer:
    """A transactional producer: events and offsets of a transaction reach the broker on commit."""

    def __init__(
        self,
        broker: Broker,
        plan: Plan | None = None,
        *,
        transactional: bool = True,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.broker = broker
        self.plan = plan or {}
        self.transactional = transactional
        self.calls: list[str] = []
        self.in_transaction = False
        self.epoch: int | None = None
        self.pending: list[tuple[str, bytes | None, bytes | None]] = []
        self.pending_offsets: list[TopicPartition] = []
        config = config or {}
        self.on_error: Callable[[KafkaError], None] | None = config.get("error_cb")
        self.on_delivery: Callable[[KafkaError | None, Any], None] | None = config.get("on_delivery")
        self.polls: list[float] = []
        self.purged = False

    def _call(self, name: str) -> None:
        self.calls.append(name)
        _fault(self.plan, name)

    def init_transactions(self, timeout: float) -> None:
        self._call("init_transactions")
        # A new epoch: the broker refuses what older ones still send.
        self.broker.epoch += 1
        self.epoch = self.broker.epoch
        self.broker.late = [(epoch, records) for epoch, records in self.broker.late if epoch >= self.epoch]

    def begin_transaction(self) -> None:
        self._call("begin_transaction")
        assert not self.in_transaction, "begin_transaction inside a transaction"
        self.in_transaction = True

    def produce(self, topic: str, value: bytes | None, key: bytes | None, headers: Any = None) -> None:
        self._call("produce")
        assert self.in_transaction or not self.transactional, "produce outside a transaction"
        self.pending.append((topic, key, value))

    def poll(self, timeout: float = 0) -> int:
        self.polls.append(timeout)
        self._call("poll")
        errors = self.plan.get("error_cb")
        if errors and self.on_error is not None:
            error = errors.pop(0)
            if error is not None:
                self.on_error(error)
        return 0

    def send_offsets_to_transaction(
        self, offsets: list[TopicPartition], group: object, timeout: float
    ) -> None:
        self._call("send_offsets_to_transaction")
        assert self.in_transaction
        self.pending_offsets = list(offsets)

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit_transaction")
        assert self.in_transaction
        assert self.epoch == self.broker.epoch, "a fenced producer committed"
        # Late requests of an aborted transaction of this epoch were appended to this one.
        for epoch, records in self.broker.late:
            if epoch == self.epoch:
                self.broker.events += records
        self.broker.late = [(epoch, records) for epoch, records in self.broker.late if epoch != self.epoch]
        self.broker.events += self.pending
        for tp in self.pending_offsets:
            self.broker.committed[tp.partition] = (tp.offset, tp.metadata or "")
        self._end()

    def abort_transaction(self, timeout: float) -> None:
        stray = isinstance(_planned(self.plan, "abort_transaction"), Stray)
        self._call("abort_transaction")
        # What arrived late into this transaction goes with it; this one's own may arrive late now.
        self.broker.late = [(epoch, records) for epoch, records in self.broker.late if epoch != self.epoch]
        if stray and self.pending and self.epoch is not None:
            self.broker.late.append((self.epoch, list(self.pending)))
        self._end()

    def _end(self) -> None:
        self.in_transaction = False
        self.pending, self.pending_offsets = [], []

    def flush(self, timeout: float) -> int:
        self._call("flush")
        if not self.transactional:
            failures = self.plan.get("delivery")
            if failures and self.on_delivery is not None:
                self.on_delivery(failures.pop(0), FakeMessage(self.broker.topic, 0, 0, None, None))
            self.broker.events += self.pending  # at-least-once: delivered, whatever is committed
            self.pending = []
        return 0

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purged = True
        self.pending = []
