"""The consume-transform-produce loop, exactly-once (default) or at-least-once.

Exactly-once protocol (the same numbered steps are in docs/transformer.md):

  1. `init_transactions()` once: fences any earlier producer with our `transactional.id` and aborts
     the transaction it left open (a restarted instance does not wait for the transaction timeout).
  2. Subscribe to the staging topics; on assignment read each partition's committed offset *and its
     metadata*, the dedup watermark (`service/partitions.py`, `service/dedup.py`).
  3. `consume(num_messages=batch_size)`.
  4. `begin_transaction()` when the first record of a batch arrives.
  5. Per batch, in two passes. Per record: decode, run the mappings; a record with an outcome
     (events, a dead letter, a wait) is skipped if at/below the watermark, else it moves the
     watermark; move the partition's next offset. Then, in record order, the kept records' curated
     events are encoded and produced into the transaction (and their dead-letter records).
  6. When `commit_interval_ms` has passed since step 4 or `max_records_per_transaction` records are
     in: `send_offsets_to_transaction(next offsets + watermark metadata, group metadata)`.
  7. `commit_transaction()`: curated events, dead letters, offsets and watermarks become visible
     together (consumers use `read_committed`). Then the batch's counts go to the metrics.
  Overlap (`overlap_commits`, not with lookups): 6-7 run on a thread of their own while 3 and 5 go
  on for one more batch, whose produce calls are kept; once 7 is through, 4 for that batch and its
  calls are produced. If 6-7 fail, that batch is rewound with the rest (`service/commit_overlap.py`).
  Errors (`service/kafka_errors.py`), in 3-7 and in the client's background (`poll`, `error_cb`):
  *retriable* → the same call again until the operation timeout (a full local queue in 5: wait for
  room as long); *abortable* → `abort_transaction()`, then step 1 again with a new producer instance
  (its epoch fences whatever the aborted transaction still had on its way,
  `service/producer_renewal.py`), rewind every partition to its committed offset, restore the
  watermarks, drop the batch's counts, continue at 3; *fatal* (fenced, or anything else) → one log
  line and exit code 2; the orchestrator restarts us. Still retriable at the timeout: in 4-6 the
  batch is aborted, in 7 it is fatal (whether it committed is unknown until a restart's step 1
  settles it).
  Rebalance: on revoke, steps 6-7 for the open transaction (abort if that fails: the new owner
  redoes the batch); on lost partitions, abort. SIGTERM: stop consuming, steps 6-7, leave the group.

At-least-once (when transactions/idempotence are not permitted): steps 3 and 5 alike; instead of
6-7, `flush()` the producer, and only if every record was delivered commit the offsets (with the
watermark) synchronously; on a delivery failure rewind to the committed offsets and redo the batch.
A crash between delivery and commit re-publishes the batch, with the same deterministic event ids.
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
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from eventbus.errors import EventBusError
from eventbus.service.bounds import RunBounds
from eventbus.service.errors import FatalKafkaError
from eventbus.service.http import Health
from eventbus.service.kafka_errors import (
    CallbackErrors,
    Handling,
    fatal_error,
    handling,
    retrying_or_fatal,
    without_error_events,
)
from eventbus.service.lookup_stage import LookupStage
from eventbus.service.metrics import Metrics, Tally
from eventbus.service.partitions import Partitions
from eventbus.service.processor import Processor
from eventbus.service.producer_renewal import RenewableProducer
from eventbus.service.progress import Progress
from eventbus.service.transactions import BatchTransaction

log = logging.getLogger("eventbus.service.loop")
_INIT_SLICE_S = 1.0
# What the stop keeps of its budget for closing the clients and exiting (`TransformerLoop.stop`).
_CLOSE_RESERVE_S = 2.0
_BROKER_PROBE_EVERY_S = 5.0
_CONSUME_BACKOFF_S = 0.1


@dataclass(frozen=True, slots=True)
class LoopOptions:
    exactly_once: bool = True
    batch_size: int = 1000
    commit_interval_s: float = 0.1
    max_records_per_transaction: int = 20_000
    operation_timeout_s: float = 60.0
    shutdown_timeout_s: float = 8.0
    progress_every_s: float = 60.0  # a "progress" log line: an idle service told from a stuck one
    # Exactly-once: process the next batch while a transaction commits (service/commit_overlap.py).
    overlap_commits: bool = True


class TransformerLoop:
    """Owns the consumer/producer pair for its lifetime; `run()` returns the exit code when stopped."""

    def __init__(
        self,
        consumer: Consumer,
        producers: RenewableProducer,
        processor: Processor,
        tally: Tally,
        metrics: Metrics,
        health: Health,
        options: LoopOptions,
        lookups: LookupStage | None = None,
    ) -> None:
        self.consumer = consumer
        self.lookups = lookups  # mappings with `lookup:` (service/lookup_stage.py, steps L1-L5)
        # What is wrong with the topics written, when a fatal error is a timeout (`run_service`).
        self.diagnose_timeout: Callable[[], str | None] | None = None
        self._delivery_failed = False  # a record was not delivered since the start
        self._assigned_once = False  # the group answered this member's join (readiness)
        self.producers = producers  # a new instance after every aborted transaction
        self.processor = processor
        self.tally = tally
        self.metrics = metrics
        self.health = health
        self.options = options
        self.partitions = Partitions()
        self.progress = Progress(consumer, self.partitions, metrics, options.progress_every_s)
        self.batch = BatchTransaction(
            consumer=consumer, producers=producers, processor=processor, partitions=self.partitions,
            tally=tally, metrics=metrics, progress=self.progress, lookups=lookups,
            exactly_once=options.exactly_once, timeout=self._timeout,
            init_transactions=self._init_transactions,
        )  # fmt: skip
        self._stop = threading.Event()
        self._callback_errors = CallbackErrors()  # raised by the loop after consume() and poll()
        self._consume_failing_since: float | None = None
        self._stop_by: float | None = None  # when stopping: the end of the shutdown budget
        self._broker_probe_at = 0.0

    # --- public ---------------------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish its batch and leave within `shutdown_timeout_s` (signal-safe).

        The waits of the stop (commit or abort, flush) end a quarter of the budget (at most 2 s)
        before it: closing the consumer (leaving the group) and the process's own exit are not
        bounded by any timeout of ours, and with the broker gone they took ≈2 s in a container, which
        put an 8 s budget past Docker's 10 s grace period."""
        if self._stop_by is None:
            budget = self.options.shutdown_timeout_s
            self._stop_by = time.monotonic() + budget - min(_CLOSE_RESERVE_S, budget / 4)
        self._stop.set()
        self.health.stopping = True

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def subscribe(self, topics: list[str]) -> None:
        # Step 2
        guard = self._callback_errors.guard
        self.consumer.subscribe(
            topics, on_assign=guard(self._on_assign), on_revoke=guard(self._on_revoke),
            on_lost=guard(self._on_lost),
        )  # fmt: skip

    @property
    def stop_requested(self) -> bool:
        """SIGTERM/SIGINT (or `stop()`) was received: start-up steps still to come are skipped."""
        return self._stop.is_set()

    def init_transactions(self) -> None:
        # Step 1
        if self.options.exactly_once:
            self._init_transactions()

    def open_lookups(self) -> None:
        # Apart from step 1 so that the start-up checks between them come before a possibly long read.
        if self.lookups is not None and not self._stop.is_set():
            self.lookups.open()  # L0: the lookup store read up to now (rebuilt when the disk is empty)

    def run(self, bounds: RunBounds | None = None) -> int:
        """Consume until stopped, or until `bounds` are reached; returns the exit code.

        0 after a clean stop; 2 after a fatal error, which is logged once, as one line.
        """
        # Ready once the group has given this member its partitions (none is an answer too): a
        # restarted member may wait out its predecessor's session first, consuming nothing.
        self.health.ready = bounds is not None or self._assigned_once
        self.health.reason = "ok" if self.health.ready else "waiting for the consumer group's assignment"
        fatal = True  # until the loop ends cleanly: an unexpected exception must not commit either
        try:
            if bounds is not None:
                bounds.start(self.consumer, self.partitions)
            self._turn_until_stopped(bounds)
            if self.batch.open or self.batch.committing is not None:
                self.batch.commit()
            fatal = False
            return 0
        except EventBusError as error:  # ServiceError, or the lookup store's CatchUpError
            log.error("stopping: fatal error", extra={"error": self._fatal_line(error)})
            return error.exit_code
        finally:
            self.health.stopping = True
            self._close(fatal)

    def _fatal_line(self, error: EventBusError) -> str:
        """What stopped the service, in one line. Records to a topic deleted while we ran are never
        delivered, and time out like records to a broker that does not answer: the line says which
        topic when that is it, instead of guessing at the network."""
        if not isinstance(error, FatalKafkaError) or self.diagnose_timeout is None:
            return str(error)
        if not (error.timed_out or self._delivery_failed):
            return str(error)
        found = self.diagnose_timeout()
        return str(error) if found is None else f"{error.detail}; {found}"

    def _turn_until_stopped(self, bounds: RunBounds | None) -> None:
        options = self.options
        processor = self.processor
        lookups = self.lookups
        # Bounded runs stop between batches and lookups keep one batch at a time: no overlap there.
        overlap = options.exactly_once and options.overlap_commits and lookups is None and bounds is None
        while not self._stop.is_set():
            self.health.beat()
            timeout = options.commit_interval_s
            if self.batch.committing is not None:
                timeout = 0.0  # what is prefetched already, then back to the commit
            elif self.batch.open:
                timeout = max(0.0, self.batch.opened_at + options.commit_interval_s - time.monotonic())
            messages = self._consume(timeout)  # step 3
            if self.health.broker_lost_since is not None:
                self._probe_broker(bool(messages))
            if messages:
                good = without_error_events(messages)
                if bounds is not None:
                    good = bounds.admit(good)
                if good:
                    self.metrics.freshness.saw(good)
                    step = "begin_transaction"
                    try:
                        if self.batch.committing is not None:
                            self.batch.defer(good)  # step 5 while 6-7 are under way
                        else:
                            self.batch.begin()  # step 4
                            if lookups is not None:
                                step = "lookup barrier"
                                lookups.before_batch()  # L1
                            step = "produce"
                            processor.process(good, self.partitions)  # step 5 (L2: parking)
                            if lookups is not None:
                                lookups.retry_parked()  # L3
                            self.batch.records += len(good)
                    except KafkaException as exc:
                        self.batch.failed(step, good, exc.args[0])
            elif lookups is not None and lookups.idle_due():
                step = "begin_transaction"
                try:
                    self.batch.begin()
                    step = "lookup barrier"
                    lookups.before_batch()
                    step = "produce"
                    lookups.retry_parked(force=True)  # L3 while no new records come
                except KafkaException as exc:
                    self.batch.failed(step, [], exc.args[0])
            if self.batch.committing is not None:
                self.batch.settle()
            self._poll()
            if self.batch.open and (
                self.batch.records >= options.max_records_per_transaction
                or time.monotonic() - self.batch.opened_at >= options.commit_interval_s
            ):
                if overlap:
                    self.batch.start_commit(background=True)  # steps 6-7, waited for next turn
                else:
                    self.batch.commit()  # steps 6-7
            self.progress.update_lag()
            self.progress.report()
            if bounds is not None and not self.batch.open and bounds.reached(self.consumer, self.partitions):
                return

    # --- transactions ----------------------------------------------------------------------------

    def _init_transactions(self) -> None:
        """In slices of a second, so SIGTERM while the broker is unreachable ends the wait at once;
        still unreachable after the operation timeout: one line and exit 2 (the orchestrator retries)."""
        deadline = time.monotonic() + self.options.operation_timeout_s
        reason = self.health.reason  # "starting", or "ok" when a renewed producer is initialised
        self.health.broker_lost()  # until the coordinator answers
        while not self._stop.is_set():
            self.health.beat()
            left = deadline - time.monotonic()
            try:
                self.producers.current.init_transactions(max(0.1, min(_INIT_SLICE_S, left)))
            except KafkaException as exc:
                error = exc.args[0]
                if handling(error) is not Handling.RETRY or left <= _INIT_SLICE_S:
                    raise fatal_error("init_transactions", error) from None
                if not self.health.reason.startswith("waiting for Kafka"):
                    log.info("waiting for the transaction coordinator", extra={"error": error.str()})
                self.health.reason = f"waiting for Kafka: {error.str()}"
                continue
            self.health.broker_back()
            self.health.reason = reason
            return

    def _timeout(self) -> float:
        """The operation timeout, cut to what is left of the shutdown budget once stopping."""
        if self._stop_by is None:
            return self.options.operation_timeout_s
        return max(0.1, min(self.options.operation_timeout_s, self._stop_by - time.monotonic()))

    # --- rebalance callbacks (run inside consume()) ------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not self._assigned_once:
            self._assigned_once = True
            self.health.ready, self.health.reason = True, "ok"
        if not partitions:
            return
        committed = retrying_or_fatal(
            "committed",
            lambda left: consumer.committed(partitions, timeout=left),
            self.options.operation_timeout_s,
        )
        self.partitions.assign(committed)
        if self.lookups is not None:
            self.lookups.assigned(committed)  # L5
        log.info(
            "partitions assigned",
            extra={"partitions": [f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in committed]},
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The group generation is still ours here, so the open transaction (or the one under way,
        # and the batch processed meanwhile) can still commit the offsets of the partitions we are
        # giving up.
        if self.batch.open or self.batch.committing is not None:
            self.batch.commit()
        self._forget(partitions, "revoked")

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost (session timed out): our generation is stale, offsets would be refused. Abort; the
        # new owner processes the batch again.
        self._forget(partitions, "lost")
        if self.batch.committing is not None and not self.batch.finish_commit():
            return  # aborted and rewound, the batch processed meanwhile with it
        if self.batch.open or self.batch.deferred.since is not None:
            self.batch.abort("partitions lost", transaction=self.batch.open)

    def _forget(self, partitions: list[TopicPartition], why: str) -> None:
        self.partitions.forget(partitions)
        if self.lookups is not None:
            self.lookups.revoked(partitions)
        self.progress.forget(partitions)
        if partitions:
            log.info(
                f"partitions {why}",
                extra={"partitions": [f"{tp.topic}[{tp.partition}]" for tp in partitions]},
            )

    # --- the clients' callbacks ----------------------------------------------------------------------

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """The producer's `on_delivery`; with `delivery.report.only.error` it runs for failures only."""
        if error is None:
            return
        self.batch.delivery_failures += 1
        self._delivery_failed = True
        if self.batch.delivery_failures == 1:  # the rest of the batch's failures are counted, not logged
            where = {"topic": message.topic(), "error": error.str(), "code": error.name()}
            log.error("delivery failed", extra=where)

    def on_error(self, error: KafkaError) -> None:
        """The clients' `error_cb`: errors that belong to no call (connections, the idempotent
        producer's state). librdkafka recovers from all but fatal ones by itself."""
        if error.fatal() or error.code() == KafkaError._FATAL:
            self._callback_errors.keep(fatal_error("kafka client", error))
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.health.broker_lost()  # /healthz fails if it lasts (`http.broker_gone_after_s`)
            log.warning("no Kafka broker reachable; the client reconnects", extra={"error": error.str()})
        else:
            log.info("kafka client error; it retries", extra={"error": error.str(), "code": error.name()})

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        self.stop()

    # --- helpers -----------------------------------------------------------------------------------

    def _consume(self, timeout: float) -> list[Message]:
        try:
            messages = self.consumer.consume(num_messages=self.options.batch_size, timeout=timeout)
        except KafkaException as exc:
            error = exc.args[0]
            now = time.monotonic()
            if self._consume_failing_since is None:
                self._consume_failing_since = now
            if handling(error) is not Handling.RETRY or (
                now - self._consume_failing_since > self.options.operation_timeout_s
            ):
                raise fatal_error("consume", error) from None
            log.info("retrying", extra={"call": "consume", "error": error.str(), "code": error.name()})
            time.sleep(_CONSUME_BACKOFF_S)  # a failing consume() returns at once: do not spin on it
            messages = []
        else:
            self._consume_failing_since = None
        self._callback_errors.raise_kept()
        return messages

    def _probe_broker(self, consumed: bool) -> None:
        """After "all brokers down": records arriving, or a metadata answer, say one is back."""
        now = time.monotonic()
        if not consumed:
            if now - self._broker_probe_at < _BROKER_PROBE_EVERY_S:
                return
            self._broker_probe_at = now
            try:
                self.consumer.list_topics(timeout=_INIT_SLICE_S)
            except KafkaException:
                return
        self.health.broker_back()
        log.info("a Kafka broker answers again")

    def _poll(self) -> None:
        # Serves delivery reports and error_cb; an exception from a callback surfaces here.
        try:
            self.producers.current.poll(0)
        except KafkaException as exc:
            if handling(exc.args[0]) is Handling.FATAL:
                raise fatal_error("poll", exc.args[0]) from None
            log.info("poll failed; the client retries", extra={"error": exc.args[0].str()})
        self._callback_errors.raise_kept()

    def _close(self, fatal: bool) -> None:
        if self.batch.committing is not None:  # stopping on a fatal error while a commit was under way
            self.batch.committing.flight.wait_quietly(self.options.shutdown_timeout_s)
            self.batch.committing = None
        if fatal:
            # The open batch stopped part way (a record in it may not have been produced): nothing of
            # it may commit, not even from the revoke that closing the consumer triggers. Its
            # transaction is left to the broker (aborted by timeout, or fenced by the next instance),
            # and the next owner of its partitions reads them from the last committed offsets.
            self.batch.drop()
        try:
            # Leaves the group now, so partitions move without a session timeout; a static member
            # (static_membership) keeps them until then, for its restart to take them back.
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the consumer failed", extra={"error": str(exc)})
        if self.lookups is not None:
            self.lookups.close()
        if fatal:
            # Nothing queued can commit any more: drop it rather than wait for deliveries that fail.
            with contextlib.suppress(KafkaException, RuntimeError):
                self.producers.current.purge(in_queue=True, in_flight=False)
            return
        budget = self._timeout() if self._stop_by else self.options.shutdown_timeout_s
        remaining = self.producers.current.flush(budget)
        if remaining:
            log.error("records not delivered at shutdown", extra={"count": remaining})
