"""The open batch and its transaction: begin, commit (waited for, or overlapped with the next
batch), abort and rewind. Steps 4, 6 and 7 of the exactly-once protocol (`service/loop.py`, which
drives this once per turn and from the rebalance callbacks), and their at-least-once counterparts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException

from eventbus.service.commit_overlap import CommitFailed, CommitInFlight, DeferredProduce, PendingCommit
from eventbus.service.kafka_errors import Handling, fatal_error, handling, retrying
from eventbus.service.lookup_stage import LookupStage
from eventbus.service.metrics import Metrics, Tally
from eventbus.service.partitions import Partitions, Record, Snapshot
from eventbus.service.processor import Processor
from eventbus.service.producer_renewal import RenewableProducer
from eventbus.service.progress import Progress

log = logging.getLogger("eventbus.service.loop")


class BatchTransaction:
    """What the loop's open batch is: its transaction (exactly-once) or pending flush
    (at-least-once), a commit under way and the batch processed meanwhile (`commit_overlap.py`)."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        producers: RenewableProducer,
        processor: Processor,
        partitions: Partitions,
        tally: Tally,
        metrics: Metrics,
        progress: Progress,
        lookups: LookupStage | None,
        exactly_once: bool,
        timeout: Callable[[], float],
        init_transactions: Callable[[], None],
    ) -> None:
        self.consumer = consumer
        self.producers = producers
        self.processor = processor
        self.partitions = partitions
        self.tally = tally
        self.metrics = metrics
        self.progress = progress
        self.lookups = lookups
        self.exactly_once = exactly_once
        self._timeout = timeout  # the operation timeout, cut to the shutdown budget when stopping
        self._init_transactions = init_transactions  # step 1, for a renewed producer
        self.open = False  # a batch (transaction in EOS) is open
        self.opened_at = 0.0
        self.records = 0
        self.delivery_failures = 0  # in the open batch
        # A commit in flight, and the batch processed meanwhile (commit_overlap.py)
        self.committing: PendingCommit | None = None
        self.deferred = DeferredProduce()
        self.deferred_records = 0

    def begin(self) -> None:
        """Step 4 when no batch is open (a transaction begun in exactly-once)."""
        if self.open:
            return
        if self.exactly_once:
            begin = self.producers.current.begin_transaction
            retrying("begin_transaction", lambda _: begin(), self._timeout())
        self.open = True
        self.opened_at = time.monotonic()
        self.records = 0

    def failed(self, step: str, messages: list[Record], error: KafkaError) -> None:
        """Step 4 or 5 failed (the producer's retries and waits are already spent)."""
        # librdkafka's produce() answers _STATE, without flags, when the transaction is in an error
        # state: abort_transaction() tells whether it can be aborted or is fatal.
        if handling(error) is Handling.FATAL and error.code() != KafkaError._STATE:
            raise fatal_error(step, error)
        # The rest of the batch was consumed but not processed: the rewind must cover it too.
        self.partitions.record_all(messages)
        self.open = True
        self.abort(f"{step} failed: {error.str()}")

    def commit(self) -> bool:
        """Steps 6-7 for the open batch, waited for; True when committed, False when it was aborted
        and rewound. A commit still in flight is settled first, with the batch processed meanwhile."""
        if self.committing is not None and not self.settle():
            return False
        if not self.open:
            return True
        if not self.exactly_once:
            return self._commit_at_least_once()
        self.start_commit(background=False)
        return self.finish_commit()

    def start_commit(self, *, background: bool) -> None:
        """Steps 6-7 for the open batch (exactly-once), on a thread of their own when `background`:
        the loop then processes the next batch meanwhile and settles the commit after it."""
        offsets = self.partitions.dirty_offsets()
        snapshot = self.partitions.snapshot()
        timeout = self._timeout()
        producer = self.producers.current
        try:
            group = self.consumer.consumer_group_metadata() if offsets else None
        except KafkaException as exc:
            failed: CommitFailed | None = CommitFailed("send_offsets_to_transaction", exc.args[0])
        else:
            failed = None

        def calls() -> None:
            if failed is not None:
                raise failed
            if offsets:
                try:
                    retrying(
                        "send_offsets_to_transaction",
                        lambda left: producer.send_offsets_to_transaction(offsets, group, left),
                        timeout,
                    )  # step 6
                except KafkaException as exc:
                    raise CommitFailed("send_offsets_to_transaction", exc.args[0]) from None
            try:
                retrying("commit_transaction", producer.commit_transaction, timeout)  # step 7
            except KafkaException as exc:
                raise CommitFailed("commit_transaction", exc.args[0]) from None

        flight = CommitInFlight(calls, background=background)
        self.committing = PendingCommit(flight, snapshot, self.tally.take())
        self.open = False

    def finish_commit(self) -> bool:
        """Waits for the commit under way; True when it went through, else the batch is aborted and
        everything since the last commit rewound (what was processed meanwhile too)."""
        pending, self.committing = self.committing, None
        if pending is None:
            return True
        try:
            pending.flight.wait()
        except CommitFailed as failed:
            error = failed.error
            if failed.step == "send_offsets_to_transaction":
                if handling(error) is Handling.FATAL:
                    raise fatal_error(failed.step, error) from None
                # Abortable, or still retriable at the timeout: nothing is committed yet.
                self.abort(f"sending the offsets failed: {error.str()}")
                return False
            if handling(error) is Handling.ABORT:
                self.abort(f"commit failed: {error.str()}")
                return False
            # Fatal, or still retriable at the timeout: the commit may yet complete in the
            # background, so aborting and redoing could publish the batch twice.
            raise fatal_error(failed.step, error) from None
        self._committed(pending.snapshot, pending.tally)
        return True

    def settle(self) -> bool:
        """The commit under way settled, then the batch processed meanwhile sent in a transaction of
        its own (which stays open); False when either failed and was rewound."""
        if not self.finish_commit():
            return False
        since = self.deferred.since
        if since is None:
            return True
        step = "begin_transaction"
        try:
            self.begin()  # step 4 of the batch processed meanwhile
            step = "produce"
            self.deferred.replay(self.processor.produce)
        except KafkaException as exc:
            self.failed(step, [], exc.args[0])
            return False
        self.opened_at, self.records = since, self.deferred_records
        self.deferred.since, self.deferred_records = None, 0
        return True

    def defer(self, records: list[Record]) -> None:
        """Step 5 for `records` while the previous transaction commits: processed now, their produce
        calls kept for the next transaction (`settle`)."""
        if self.deferred.since is None:
            self.deferred.since = time.monotonic()
        self.processor.produce_into(self.deferred)
        try:
            self.processor.process(records, self.partitions)
        finally:
            self.processor.produce_into(self.producers.produce)  # the instance in use, renewed or not
        self.deferred_records += len(records)

    def _commit_at_least_once(self) -> bool:
        offsets = self.partitions.dirty_offsets()
        timeout = self._timeout()
        remaining = self.producers.current.flush(timeout)
        if remaining or self.delivery_failures:
            self.abort(f"{remaining} record(s) undelivered after {timeout:.0f}s, "
                       f"{self.delivery_failures} delivery failure(s)")  # fmt: skip
            return False
        if offsets:
            try:
                retrying(
                    "commit", lambda _: self.consumer.commit(offsets=offsets, asynchronous=False), timeout
                )
            except KafkaException as exc:
                # Typically a rebalance took the partitions: the new owner redoes the batch and
                # its events repeat with the same ids — the at-least-once contract.
                log.warning("offset commit failed; the batch may be re-published",
                            extra={"error": exc.args[0].str()})  # fmt: skip
        self._committed(self.partitions.snapshot(), self.tally.take())
        self.open = False
        return True

    def _renew_producer(self) -> None:
        """After an aborted transaction: the next transaction comes from a new producer instance, whose
        `init_transactions()` fences whatever the aborted one still has on its way
        (`service/producer_renewal.py`)."""
        started = time.monotonic()
        self.producers.renew()
        produce = self.producers.produce
        self.processor.produce_into(produce)
        if self.lookups is not None:
            self.lookups.produce_with(produce)
        self._init_transactions()
        seconds = round(time.monotonic() - started, 3)
        log.info("new producer instance after the abort",
                 extra={"instance": self.producers.instances, "seconds": seconds})  # fmt: skip

    def _committed(self, snapshot: Snapshot, tally: Tally) -> None:
        """A batch went through: its positions become the committed ones, its counts the metrics'."""
        self.partitions.committed(snapshot)
        if self.lookups is not None:
            self.lookups.committed()  # L4
        self.metrics.flush(tally)
        self.metrics.transaction(True)
        self.progress.committed()
        self.delivery_failures = 0

    def drop(self) -> None:
        """Forget the open batch without committing or aborting it: after a fatal error, when the
        clients can do neither. The offsets stay where the last commit put them."""
        self.open = False
        self.committing = None
        self.deferred.clear()
        self.deferred_records = 0

    def abort(self, reason: str, *, transaction: bool = True) -> None:
        """Abort the open batch and rewind every partition to its committed offset; a batch processed
        while a commit was under way goes too. `transaction=False`: no transaction to abort (only
        such a batch was there)."""
        log.warning("aborting the batch; it will be processed again", extra={"reason": reason})
        self.deferred.clear()
        self.deferred_records = 0
        if not self.exactly_once:
            self.producers.current.purge(in_queue=True, in_flight=False)
        elif transaction:
            try:
                retrying("abort_transaction", self.producers.current.abort_transaction, self._timeout())
            except KafkaException as exc:
                raise fatal_error("abort_transaction", exc.args[0]) from None
            self._renew_producer()
        for tp in self.partitions.rolled_back():
            try:
                self.consumer.seek(tp)
            except KafkaException as exc:
                # Only a partition no longer assigned (revoked meanwhile) refuses: its new owner
                # starts at the committed offset anyway.
                log.info("rewind skipped", extra={"partition": f"{tp.topic}[{tp.partition}]",
                                                  "error": exc.args[0].str()})  # fmt: skip
        if self.lookups is not None:
            self.lookups.rolled_back()  # L4
        self.tally.reset()
        self.metrics.transaction(False)
        self.delivery_failures = 0
        self.open = False
