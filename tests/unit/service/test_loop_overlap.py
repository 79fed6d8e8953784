"""A transaction commits while the next batch is processed (service/commit_overlap.py), with fakes.

The fake producer's commit takes a while here, as a real one does (round trips to the coordinators),
so that the loop has the time to consume and process a batch meanwhile; what the broker ends up with
must be what the serial loop gives, with and without a failing commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from eventbus.service.commit_overlap import CommitInFlight, DeferredProduce
from tests.unit.service.fakes import FakeConsumer, FakeProducer, Stray
from tests.unit.service.test_loop_errors import (
    Harness,
    Outcome,
    _rewound_to_committed,
    _same_as_clean,
    _stopped,
    abortable,
    fatal,
    logged_harness,
)

COMMIT_S = 0.02


class Timeline:
    """When each commit ran, and when each consume() returned records."""

    def __init__(self) -> None:
        self.commits: list[tuple[float, float]] = []
        self.consumed_at: list[float] = []
        self.producer_threads: set[str] = set()

    def consumed_during_a_commit(self) -> int:
        return sum(1 for t in self.consumed_at if any(start < t < end for start, end in self.commits))


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    yield from logged_harness(tmp_path_factory.mktemp("loop-overlap"))


@pytest.fixture
def timeline(monkeypatch: pytest.MonkeyPatch) -> Timeline:
    """Slow commits, and a record of what happened when."""
    line = Timeline()
    commit, consume = FakeProducer.commit_transaction, FakeConsumer.consume

    def slow_commit(self: FakeProducer, timeout: float) -> None:
        start = time.monotonic()
        line.producer_threads.add(threading.current_thread().name)
        time.sleep(COMMIT_S)
        try:
            commit(self, timeout)
        finally:
            line.commits.append((start, time.monotonic()))

    def timed_consume(self: FakeConsumer, num_messages: int, timeout: float) -> Any:
        records = consume(self, num_messages, timeout)
        if records:
            line.consumed_at.append(time.monotonic())
        return records

    monkeypatch.setattr(FakeProducer, "commit_transaction", slow_commit)
    monkeypatch.setattr(FakeConsumer, "consume", timed_consume)
    return line


@pytest.fixture
def serial(harness: Harness, timeline: Timeline) -> Outcome:
    outcome = harness.run(overlap_commits=False)
    assert outcome.code == 0 and not outcome.errors
    assert timeline.consumed_during_a_commit() == 0  # the commit runs on the loop's own thread
    timeline.commits.clear()
    timeline.consumed_at.clear()
    timeline.producer_threads.clear()
    return outcome


def test_the_next_batch_is_processed_while_a_transaction_commits(
    harness: Harness, serial: Outcome, timeline: Timeline
) -> None:
    outcome = harness.run()
    _same_as_clean(outcome, serial)
    assert timeline.consumed_during_a_commit() >= 2
    assert timeline.producer_threads == {"commit"}
    # Every transaction began after the one before it committed (the fake asserts it), and the
    # batches processed meanwhile were produced into the next: as many events, no more transactions.
    assert outcome.calls("produce") == serial.calls("produce")


@pytest.mark.parametrize("step", ["send_offsets_to_transaction", "commit_transaction"])
def test_a_failed_commit_drops_the_batch_processed_meanwhile_too(
    harness: Harness, serial: Outcome, timeline: Timeline, step: str
) -> None:
    outcome = harness.run({step: [None, abortable()]})
    _same_as_clean(outcome, serial)
    _rewound_to_committed(outcome)
    assert outcome.calls("abort_transaction") == 1
    assert timeline.consumed_during_a_commit() >= 1
    assert len(outcome.producers) == 2  # the transactions after the abort: a new producer instance


def test_late_requests_of_a_commit_that_failed_are_fenced_with_the_overlap_too(
    harness: Harness, serial: Outcome, timeline: Timeline
) -> None:
    outcome = harness.run({"commit_transaction": [None, abortable()], "abort_transaction": [Stray()]})
    _same_as_clean(outcome, serial)
    assert timeline.consumed_during_a_commit() >= 1 and not outcome.broker.late


def test_a_fatal_commit_error_stops_after_the_commit_thread_is_done(
    harness: Harness, serial: Outcome, timeline: Timeline
) -> None:
    outcome = harness.run({"commit_transaction": [None, fatal()]})
    _stopped(outcome, says="test: fatal")
    assert outcome.calls("abort_transaction") == 0
    # Only the first transaction is on the broker: nothing of the batch processed meanwhile.
    assert 0 < len(outcome.broker.events) < len(serial.broker.events)


def test_deferred_produce_keeps_calls_in_order_and_replays_them_once() -> None:
    deferred = DeferredProduce()
    deferred("a", b"1", b"k1")
    deferred("b", b"2", None, headers=[("h", b"v")])
    sent: list[tuple[Any, ...]] = []
    deferred.replay(lambda topic, value, key, headers=None: sent.append((topic, value, key, headers)))
    assert sent == [("a", b"1", b"k1", None), ("b", b"2", None, [("h", b"v")])]
    deferred.replay(lambda *call, **named: sent.append(call))
    assert len(sent) == 2


def test_a_commit_in_flight_hands_its_error_to_the_waiting_thread() -> None:
    error = KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "test", txn_requires_abort=True))

    def calls() -> None:
        time.sleep(0.01)
        raise error

    flight = CommitInFlight(calls, background=True)
    with pytest.raises(KafkaException) as raised:
        flight.wait()
    assert raised.value is error
    done = CommitInFlight(lambda: None, background=False)
    done.wait()  # ran at once, nothing to raise
