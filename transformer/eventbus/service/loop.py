"""The consume-transform-produce loop, exactly-once (default) or at-least-once.

Exactly-once protocol (the same numbered steps are in docs/transformer.md):

  1. `init_transactions()` once: fences any earlier producer with our `transactional.id` and aborts
     the transaction it left open (a restarted instance does not wait for the transaction timeout).
  2. Subscribe to the staging topics; on assignment read each partition's committed offset *and its
     metadata*, the dedup watermark (`dedup.py`).
  3. `consume(num_messages=batch_size)`.
  4. `begin_transaction()` when the first record of a batch arrives.
  5. Per record: skip it if at/below the watermark, else decode, run the mappings, produce curated
     events (or the dead-letter record) into the transaction; move the partition's next offset and
     watermark.
  6. When `commit_interval_ms` has passed since step 4 or `max_records_per_transaction` records are
     in: `send_offsets_to_transaction(next offsets + watermark metadata, group metadata)`.
  7. `commit_transaction()`: curated events, dead letters, offsets and watermarks become visible
     together (consumers use `read_committed`). Then the batch's counts go to the metrics.
  Errors in 4, 6, 7: *retriable* → retry the same call; *abortable* → `abort_transaction()`, seek
  every partition back to its batch's first offset, restore the watermarks, drop the batch's counts,
  continue at 3; *fatal* (e.g. fenced) → stop with exit code 2, the orchestrator restarts us.
  Rebalance: on revoke, steps 6-7 for the open transaction (abort if that fails: the new owner
  redoes the batch); on lost partitions, abort. SIGTERM: stop consuming, steps 6-7, leave the group.

At-least-once (when transactions/idempotence are not permitted): steps 3 and 5 alike; instead of
6-7, `flush()` the producer, and only if every record was delivered commit the offsets (with the
watermark) synchronously; on a delivery failure rewind to the batch start and redo it. A crash
between delivery and commit re-publishes the batch, with the same deterministic event ids.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from eventbus.service.dedup import PartitionState, decode_watermark
from eventbus.service.errors import FatalKafkaError, ServiceError
from eventbus.service.http import Health
from eventbus.service.metrics import Metrics, Tally
from eventbus.service.processor import Processor

log = logging.getLogger("eventbus.service.loop")
T = TypeVar("T")
_LAG_EVERY_S = 2.0
_FENCED = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


@dataclass(frozen=True, slots=True)
class LoopOptions:
    exactly_once: bool = True
    batch_size: int = 1000
    commit_interval_s: float = 0.1
    max_records_per_transaction: int = 20_000
    operation_timeout_s: float = 60.0
    shutdown_timeout_s: float = 30.0


class TransformerLoop:
    """Owns the consumer/producer pair for its lifetime; `run()` returns when stopped."""

    def __init__(
        self,
        consumer: Consumer,
        producer: Producer,
        processor: Processor,
        tally: Tally,
        metrics: Metrics,
        health: Health,
        options: LoopOptions,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.processor = processor
        self.tally = tally
        self.metrics = metrics
        self.health = health
        self.options = options
        self.states: dict[tuple[str, int], PartitionState] = {}
        self._open = False  # a batch (transaction in EOS) is open
        self._opened_at = 0.0
        self._batch_records = 0
        self._stop = threading.Event()
        self._callback_error: BaseException | None = None
        self.delivery_failures = 0
        self._end_offsets: dict[tuple[str, int], int] | None = None
        self._lag_at = 0.0

    # --- public ---------------------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch and leave (signal-safe: only sets a flag)."""
        self._stop.set()
        self.health.stopping = True

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def subscribe(self, topics: list[str]) -> None:
        # Step 2
        self.consumer.subscribe(
            topics, on_assign=self._guard(self._on_assign), on_revoke=self._guard(self._on_revoke),
            on_lost=self._guard(self._on_lost),
        )  # fmt: skip

    def assign_until(self, starts: list[TopicPartition], end_offsets: dict[tuple[str, int], int]) -> None:
        """Replay mode: read each partition from `starts` (offsets) up to `end_offsets`, then stop."""
        self._end_offsets = dict(end_offsets)
        for tp in starts:
            self.states[(tp.topic, tp.partition)] = PartitionState(tp.offset, None)
        self.consumer.assign(starts)

    def init_transactions(self) -> None:
        # Step 1
        if self.options.exactly_once:
            # Through _kafka_call: an unreachable broker is one line and exit 2, not a traceback.
            self._kafka_call(
                "init_transactions", lambda: self.producer.init_transactions(self.options.operation_timeout_s)
            )

    def run(self) -> int:
        """Consume until stopped (or, in replay mode, until the end offsets); returns the exit code."""
        self.health.ready = True
        self.health.reason = "ok"
        options = self.options
        consume = self.consumer.consume
        producer_poll = self.producer.poll
        try:
            while not self._stop.is_set():
                self.health.beat()
                timeout = options.commit_interval_s
                if self._open:
                    timeout = max(0.0, self._opened_at + options.commit_interval_s - time.monotonic())
                messages = consume(num_messages=options.batch_size, timeout=timeout)  # step 3
                self._raise_callback_error()
                if messages:
                    good = self._without_errors(messages)
                    if self._end_offsets is not None:
                        good = self._before_end(good)
                    if good:
                        self._begin()  # step 4
                        self.processor.process(good, self.states)  # step 5
                        self._batch_records += len(good)
                producer_poll(0)
                if self._open and (
                    self._batch_records >= options.max_records_per_transaction
                    or time.monotonic() - self._opened_at >= options.commit_interval_s
                ):
                    self.commit()  # steps 6-7
                self._update_lag()
                if self._end_offsets is not None and self._reached_end():
                    break
            if self._open:
                self.commit()
            return 0
        finally:
            self.health.stopping = True
            self._close()

    # --- transactions ----------------------------------------------------------------------------

    def _begin(self) -> None:
        if self._open:
            return
        if self.options.exactly_once:
            self._kafka_call("begin_transaction", self.producer.begin_transaction)
        self._open = True
        self._opened_at = time.monotonic()
        self._batch_records = 0

    def commit(self) -> bool:
        """Steps 6-7 for the open batch; True when committed, False when it was aborted and rewound."""
        if not self._open:
            return True
        dirty = [(key, state) for key, state in self.states.items() if state.dirty]
        offsets = [
            TopicPartition(topic, partition, state.next_offset, metadata=state.metadata())
            for (topic, partition), state in dirty
        ]
        timeout = self.options.operation_timeout_s
        if self.options.exactly_once:
            try:
                if offsets:
                    group = self.consumer.consumer_group_metadata()
                    self._retrying(
                        "send_offsets_to_transaction",
                        lambda: self.producer.send_offsets_to_transaction(offsets, group, timeout),
                    )  # step 6
                self._retrying("commit_transaction", lambda: self.producer.commit_transaction(timeout))  # 7
            except KafkaException as exc:
                error = exc.args[0]
                if error.txn_requires_abort():
                    self.abort(f"commit failed: {error.str()}")
                    return False
                raise self._fatal("commit", error) from None
        else:
            remaining = self.producer.flush(timeout)
            if remaining or self.delivery_failures:
                self.delivery_failures = 0
                self.abort(f"{remaining} record(s) undelivered after {timeout:.0f}s, or a delivery failed")
                return False
            if offsets:
                try:
                    self._retrying(
                        "commit", lambda: self.consumer.commit(offsets=offsets, asynchronous=False)
                    )
                except KafkaException as exc:
                    # Typically a rebalance took the partitions: the new owner redoes the batch and
                    # its events repeat with the same ids — the at-least-once contract.
                    log.warning("offset commit failed; the batch may be re-published",
                                extra={"error": exc.args[0].str()})  # fmt: skip
        for _, state in dirty:
            state.committed()
        self.metrics.flush(self.tally)
        self.metrics.transaction(True)
        self.tally.reset()
        self._open = False
        return True

    def abort(self, reason: str) -> None:
        """Abort the open batch and rewind every partition to the batch's first record."""
        log.warning("aborting the batch; it will be processed again", extra={"reason": reason})
        if self.options.exactly_once:
            try:
                timeout = self.options.operation_timeout_s
                self._retrying("abort_transaction", lambda: self.producer.abort_transaction(timeout))
            except KafkaException as exc:
                raise self._fatal("abort", exc.args[0]) from None
        else:
            self.producer.purge(in_queue=True, in_flight=False)
        for (topic, partition), state in self.states.items():
            rewind = state.rolled_back()
            if rewind is not None:
                self.consumer.seek(TopicPartition(topic, partition, rewind))
        self.tally.reset()
        self.metrics.transaction(False)
        self._open = False

    # --- rebalance callbacks (run inside consume()) ------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        committed = consumer.committed(partitions, timeout=self.options.operation_timeout_s)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else None
            self.states[(tp.topic, tp.partition)] = PartitionState(offset, decode_watermark(tp.metadata))
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in committed]},
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The group generation is still ours here, so the open transaction can still commit the
        # offsets of the partitions we are giving up.
        if self._open:
            self.commit()
        self._forget(partitions, "revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost (session timed out): our generation is stale, offsets would be refused. Abort; the
        # new owner processes the batch again.
        self._forget(partitions, "lost")
        if self._open:
            self.abort("partitions lost")

    def _forget(self, partitions: list[TopicPartition], why: str) -> None:
        for tp in partitions:
            self.states.pop((tp.topic, tp.partition), None)
            with contextlib.suppress(KeyError):  # no lag was reported for it yet
                self.metrics.lag.remove(tp.topic, str(tp.partition))
        if partitions:
            log.info(
                f"partitions {why}",
                extra={"partitions": [f"{tp.topic}[{tp.partition}]" for tp in partitions]},
            )

    def _guard(self, callback: Callable[[Consumer, list[TopicPartition]], None]) -> Callable[..., None]:
        # An exception inside a librdkafka callback would surface at an arbitrary point; keep it and
        # raise it from the loop right after consume() returns.
        def guarded(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            try:
                callback(consumer, partitions)
            except BaseException as error:  # re-raised by _raise_callback_error
                self._callback_error = error

        return guarded

    def _raise_callback_error(self) -> None:
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error

    # --- helpers -----------------------------------------------------------------------------------

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """The producer's `on_delivery`; with `delivery.report.only.error` it runs for failures only."""
        if error is None:
            return
        self.delivery_failures += 1
        log.error(
            "delivery failed", extra={"topic": message.topic(), "error": error.str(), "code": error.name()}
        )

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        self.stop()

    def _without_errors(self, messages: list[Message]) -> list[Message]:
        if all(m.error() is None for m in messages):
            return messages
        good = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.fatal():
                raise self._fatal("consume", error)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": error.str(), "code": error.name()})
        return good

    def _kafka_call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return self._retrying(what, call)
        except KafkaException as exc:
            raise self._fatal(what, exc.args[0]) from None

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """Retry `call` while it fails with a retriable error (up to the operation timeout)."""
        deadline = time.monotonic() + self.options.operation_timeout_s
        delay = 0.05
        while True:
            try:
                return call()
            except KafkaException as exc:
                error = exc.args[0]
                if not error.retriable() or time.monotonic() + delay > deadline:
                    raise
                log.info("retrying", extra={"call": what, "error": error.str()})
                time.sleep(delay)  # back-off before retrying the broker, not synchronisation
                delay = min(delay * 2, 1.0)

    def _fatal(self, what: str, error: KafkaError) -> ServiceError:
        hint = ""
        if error.code() in _FENCED:
            hint = " (another process took our transactional.id: give each one its own EVENTBUS_INSTANCE_ID)"
        elif error.code() == KafkaError._TIMED_OUT:
            hint = " (no answer in time: is the Kafka cluster reachable, with these credentials?)"
        cls = FatalKafkaError if error.fatal() or hint else ServiceError
        return cls(f"{what}: {error.str()} [{error.name()}]{hint}")

    def _update_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_at < _LAG_EVERY_S:
            return
        self._lag_at = now
        for (topic, partition), state in list(self.states.items()):
            position = state.next_offset if state.next_offset is not None else state.committed_offset
            if position is None:
                continue
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except KafkaException:
                continue
            if high >= 0:
                self.metrics.lag.labels(topic, str(partition)).set(max(0, high - position))

    def _before_end(self, messages: list[Message]) -> list[Message]:
        # Replay mode: records at or after the end snapshot were written after the replay began
        # (possibly by the replay itself, re-dead-lettering a record): they are for the next run.
        ends = self._end_offsets
        assert ends is not None
        return [m for m in messages if m.offset() < ends.get((m.topic(), m.partition()), 0)]

    def _reached_end(self) -> bool:
        assert self._end_offsets is not None
        if self._open:
            return False
        pending = []
        for (topic, partition), end in self._end_offsets.items():
            state = self.states.get((topic, partition))
            if state is None or state.committed_offset is None or state.committed_offset < end:
                pending.append(TopicPartition(topic, partition))
        if not pending:
            return True
        # The last offsets below the end may be transaction markers, which are never delivered:
        # the consumer's position moves past them, so it tells when everything was read.
        positions = self.consumer.position(pending)
        return all(tp.offset >= self._end_offsets[(tp.topic, tp.partition)] for tp in positions)

    def _close(self) -> None:
        try:
            self.consumer.close()  # leaves the group now, so partitions move without a session timeout
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the consumer failed", extra={"error": str(exc)})
        remaining = self.producer.flush(self.options.shutdown_timeout_s)
        if remaining:
            log.error("records not delivered at shutdown", extra={"count": remaining})
