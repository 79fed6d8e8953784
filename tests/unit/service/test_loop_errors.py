"""Every error class at every step of the loop, with fake clients (tests/unit/service/fakes.py).

Each case runs the real `TransformerLoop` and `Processor` over real Debezium sample records until the
fake broker has every staging offset committed, and compares with a run without faults: what was
committed (curated events, offsets, watermark metadata), what was rewound (seeks) and how it ended.
The errors are real `confluent_kafka.KafkaError`s inside `KafkaException`s, flagged as librdkafka
flags them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from eventbus.events.avro import AvroEventSerializer, RegistryMode, connect_registry
from eventbus.service.bounds import RunBounds
from eventbus.service.http import Health
from eventbus.service.loading import load_mapping_set
from eventbus.service.loop import LoopOptions, TransformerLoop
from eventbus.service.metrics import Metrics, Tally
from eventbus.service.processor import Processor
from eventbus.service.producer_renewal import RenewableProducer
from eventbus.service.transactions import BatchTransaction
from tests.integration.transformer.support import Scenario
from tests.unit.service.fakes import Broker, FakeConsumer, FakeMessage, FakeProducer, FullFor, Plan, Stray

RECORDS = 120
PARTITIONS = 2
OPTIONS = LoopOptions(batch_size=25, commit_interval_s=0.0, operation_timeout_s=0.3, shutdown_timeout_s=1)


def retriable(code: int = KafkaError._TIMED_OUT) -> KafkaException:
    return KafkaException(KafkaError(code, "test: retriable", retriable=True))


def abortable() -> KafkaException:
    # What commit_transaction raises after a record of the transaction failed delivery.
    return KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "test: abortable", txn_requires_abort=True))


def fatal() -> KafkaException:
    return KafkaException(
        KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "test: fatal", fatal=True)
    )


def fenced() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._FENCED, "test: fenced by a newer instance", fatal=True))


@dataclass
class Outcome:
    code: int
    broker: Broker
    consumer: FakeConsumer
    producers: list[FakeProducer]  # every instance the loop used, the last one in use at the end
    errors: list[logging.LogRecord]

    @property
    def producer(self) -> FakeProducer:
        return self.producers[-1]

    def calls(self, name: str) -> int:
        return sum(producer.calls.count(name) for producer in self.producers)


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        scenario = Scenario(tmp_path, source="loopsrc")
        self.mappings = load_mapping_set(scenario.write_mappings())
        self.serializer = AvroEventSerializer.from_registry(
            connect_registry("mock://loop-errors"),
            self.mappings.topic_schemas,
            mode=RegistryMode.AUTO_REGISTER,
        )
        self.topic = scenario.staging_topic
        self.records = scenario.records(RECORDS, seed=9)
        self.log = _Collect()

    def broker(self) -> Broker:
        # Round-robin over the partitions keeps each partition's changes in source order.
        logs: dict[int, list[FakeMessage]] = {p: [] for p in range(PARTITIONS)}
        for i, record in enumerate(self.records):
            p = i % PARTITIONS
            logs[p].append(FakeMessage(self.topic, p, len(logs[p]), record.key, record.value))
        return Broker(self.topic, logs)

    def run(
        self,
        producer_plan: Plan | None = None,
        consumer_plan: Plan | None = None,
        *,
        exactly_once: bool = True,
        bounds: Callable[[Broker], RunBounds] | None = None,
        diagnose: Callable[[], str | None] | None = None,
        **option_changes: Any,
    ) -> Outcome:
        broker = self.broker()
        consumer = FakeConsumer(broker, consumer_plan)
        plan = producer_plan or {}
        made: list[FakeProducer] = []

        def client(config: dict[str, Any]) -> Any:
            made.append(FakeProducer(broker, plan, transactional=exactly_once, config=config))
            return made[-1]

        options = LoopOptions(**{**_fields(OPTIONS), "exactly_once": exactly_once, **option_changes})
        loop_ref: list[TransformerLoop] = []
        callbacks = {
            "error_cb": lambda error: loop_ref[0].on_error(error),
            "on_delivery": lambda error, message: loop_ref[0].on_delivery(error, message),
        }
        producers = RenewableProducer(callbacks, options.operation_timeout_s, client=client)
        names = [m.spec.name for m in self.mappings.mappings]
        tally = Tally(names)
        processor = Processor(
            self.mappings, self.serializer, producers.produce, dead_letter_topic="dlq", group="g", tally=tally
        )
        loop = TransformerLoop(consumer, producers, processor, tally, Metrics(names), Health(), options)  # type: ignore[arg-type]
        loop_ref.append(loop)
        loop.diagnose_timeout = diagnose
        consumer.on_stop = loop.stop
        self.log.records.clear()
        loop.init_transactions()
        if bounds is None:
            loop.subscribe([self.topic])
            code = loop.run()
        else:
            consumer.on_stop = lambda: None  # the bounds end the run, not the fake
            code = loop.run(bounds(broker))
        errors = [r for r in self.log.records if r.levelno >= logging.ERROR]
        self.last_log = list(self.log.records)
        return Outcome(code, broker, consumer, made, errors)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _fields(options: LoopOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__slots__}


def logged_harness(folder: Path) -> Iterator[Harness]:
    """A harness whose `log` collects the service's log records while it is in use."""
    harness = Harness(folder)
    logger = logging.getLogger("eventbus")
    level = logger.level
    logger.addHandler(harness.log)
    logger.setLevel(logging.INFO)
    try:
        yield harness
    finally:
        logger.removeHandler(harness.log)
        logger.setLevel(level)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    yield from logged_harness(tmp_path_factory.mktemp("loop-errors"))


@pytest.fixture(scope="module")
def clean(harness: Harness) -> Outcome:
    outcome = harness.run()
    assert outcome.code == 0 and not outcome.errors
    assert outcome.calls("abort_transaction") == 0 and not outcome.consumer.seeks
    assert outcome.calls("commit_transaction") >= 4  # several transactions, so faults hit mid-flow
    return outcome


def _same_as_clean(outcome: Outcome, clean: Outcome) -> None:
    """Nothing lost, nothing twice: the committed events and offsets (with watermarks) are those of a
    run without faults."""
    assert outcome.code == 0, outcome.errors
    assert sorted(outcome.broker.events, key=repr) == sorted(clean.broker.events, key=repr)
    assert len(set(outcome.broker.events)) == len(outcome.broker.events)
    assert outcome.broker.committed == clean.broker.committed
    assert all(metadata.startswith("ebw2:") for _, metadata in outcome.broker.committed.values())


def _rewound_to_committed(outcome: Outcome) -> None:
    """Every partition was sought back to the offset committed at the time (0 before any commit)."""
    sought = {partition for partition, _, _ in outcome.consumer.seeks}
    assert sought == set(range(PARTITIONS))
    for _partition, offset, committed in outcome.consumer.seeks:
        assert offset == (committed if committed is not None else 0)


def _stopped(outcome: Outcome, *, says: str) -> None:
    """Exit code 2, one log line that names the error, nothing aborted or flushed afterwards."""
    assert outcome.code == 2
    assert len(outcome.errors) == 1, [r.getMessage() for r in outcome.errors]
    assert says in outcome.errors[0].__dict__["error"]
    assert outcome.consumer.closed and outcome.producer.purged
    assert outcome.calls("flush") == 0


# --- the transactional steps: begin, produce, send_offsets, commit -----------------------------------

SECOND = [None]  # the fault hits the second call of the step: one transaction is committed before
STEPS = ["begin_transaction", "send_offsets_to_transaction", "commit_transaction"]


@pytest.mark.parametrize("step", [*STEPS, "produce"])
def test_a_retriable_error_is_retried_and_nothing_changes(
    harness: Harness, clean: Outcome, step: str
) -> None:
    skip = [None] * 30 if step == "produce" else SECOND
    outcome = harness.run({step: [*skip, retriable()]})
    _same_as_clean(outcome, clean)
    assert outcome.calls(step) == clean.calls(step) + 1
    assert outcome.calls("abort_transaction") == 0 and not outcome.consumer.seeks


@pytest.mark.parametrize("step", [*STEPS, "produce"])
def test_an_abortable_error_aborts_rewinds_and_redoes_the_batch(
    harness: Harness, clean: Outcome, step: str
) -> None:
    skip = [None] * 30 if step == "produce" else SECOND
    outcome = harness.run({step: [*skip, abortable()]})
    _same_as_clean(outcome, clean)
    assert outcome.calls("abort_transaction") == 1
    _rewound_to_committed(outcome)
    # The next transactions come from a new producer instance, initialised (a new epoch).
    assert len(outcome.producers) == 2 and outcome.producers[0].purged
    assert outcome.producer.calls[0] == "init_transactions"
    assert outcome.producer.epoch == outcome.broker.epoch == 2


def test_produce_requests_of_an_aborted_transaction_that_arrive_late_are_fenced(
    harness: Harness, clean: Outcome
) -> None:
    late = {"commit_transaction": [None, abortable()], "abort_transaction": [Stray()]}
    outcome = harness.run({name: list(steps) for name, steps in late.items()})
    _same_as_clean(outcome, clean)
    assert outcome.calls("abort_transaction") == 1 and not outcome.broker.late


def test_without_a_new_producer_late_requests_would_publish_twice(
    harness: Harness, clean: Outcome, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hazard the renewal is for, shown on the same fake: the aborted batch's events land in the
    # next transaction and are produced again when the batch is redone.
    monkeypatch.setattr(BatchTransaction, "_renew_producer", lambda self: None)
    outcome = harness.run({"commit_transaction": [None, abortable()], "abort_transaction": [Stray()]})
    assert outcome.code == 0 and len(outcome.producers) == 1
    assert len(set(outcome.broker.events)) < len(outcome.broker.events)
    assert set(outcome.broker.events) == set(clean.broker.events)


def test_an_abortable_error_in_the_first_transaction_rewinds_to_the_first_records(
    harness: Harness, clean: Outcome
) -> None:
    outcome = harness.run({"commit_transaction": [abortable()]})
    _same_as_clean(outcome, clean)
    assert sorted(outcome.consumer.seeks) == [(p, 0, None) for p in range(PARTITIONS)]


@pytest.mark.parametrize("step", [*STEPS, "produce"])
@pytest.mark.parametrize(("error", "says"), [(fatal, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"),
                                             (fenced, "EVENTBUS_INSTANCE_ID")])  # fmt: skip
def test_a_fatal_error_stops_with_exit_code_2_and_one_line(
    harness: Harness, step: str, error: Any, says: str
) -> None:
    skip = [None] * 30 if step == "produce" else SECOND
    outcome = harness.run({step: [*skip, error()]})
    _stopped(outcome, says=says)
    assert outcome.errors[0].__dict__["error"].startswith(f"{step}: ")
    assert outcome.calls("abort_transaction") == 0 and not outcome.consumer.seeks
    # The first transaction stays committed; nothing of the failed one is visible.
    offsets = [offset for offset, _ in outcome.broker.committed.values()]
    assert 0 < sum(offsets) < RECORDS
    assert outcome.calls("commit_transaction") == 1 + (step == "commit_transaction")


def test_produce_says_fatal_with_a_bare_code_when_the_producer_failed(harness: Harness) -> None:
    # produce() returns librdkafka's error code without flags: a fenced producer answers _FATAL.
    outcome = harness.run({"produce": [*[None] * 30, KafkaException(KafkaError(KafkaError._FATAL))]})
    _stopped(outcome, says="_FATAL")


def test_produce_refused_in_an_error_state_aborts(harness: Harness, clean: Outcome) -> None:
    # produce() in a transaction that already failed: _STATE, unflagged; abort_transaction decides.
    outcome = harness.run({"produce": [*[None] * 30, KafkaException(KafkaError(KafkaError._STATE))]})
    _same_as_clean(outcome, clean)
    assert outcome.calls("abort_transaction") == 1
    _rewound_to_committed(outcome)


def test_commit_still_retriable_at_the_timeout_is_fatal(harness: Harness) -> None:
    # The commit may still complete in the background: aborting and redoing could publish twice.
    outcome = harness.run({"commit_transaction": [None, *[retriable()] * 50]})
    _stopped(outcome, says="is the Kafka cluster at kafka.bootstrap_servers reachable")
    assert outcome.calls("abort_transaction") == 0


def test_a_timeout_that_is_a_deleted_topic_says_so(harness: Harness) -> None:
    """A topic deleted while the service runs times out like a broker that does not answer; the
    loop asks what is wrong with the topics it writes and the line says that instead."""
    asked: list[int] = []

    def diagnose() -> str:
        asked.append(1)
        return "curated topic t does not exist: run `eventbus topics apply`"

    outcome = harness.run({"commit_transaction": [None, *[retriable()] * 50]}, diagnose=diagnose)
    _stopped(outcome, says="[_TIMED_OUT]; curated topic t does not exist: run `eventbus topics apply`")
    assert "reachable" not in outcome.errors[0].__dict__["error"] and asked == [1]

    # The topics are fine: the guess at the network stays. Not a timeout: nothing is asked.
    outcome = harness.run({"commit_transaction": [None, *[retriable()] * 50]}, diagnose=lambda: None)
    _stopped(outcome, says="[_TIMED_OUT] (no answer in time: is the Kafka cluster at kafka.bootstrap_servers")
    outcome = harness.run({"commit_transaction": [None, fenced()]}, diagnose=diagnose)
    _stopped(outcome, says="_FENCED")
    assert asked == [1]


def test_send_offsets_still_retriable_at_the_timeout_aborts(harness: Harness, clean: Outcome) -> None:
    outcome = harness.run({"send_offsets_to_transaction": [None, *[retriable()] * 4]})
    _same_as_clean(outcome, clean)
    assert outcome.calls("abort_transaction") == 1
    _rewound_to_committed(outcome)


def test_a_failing_abort_is_fatal(harness: Harness) -> None:
    outcome = harness.run({"commit_transaction": [None, abortable()], "abort_transaction": [fenced()]})
    _stopped(outcome, says="EVENTBUS_INSTANCE_ID")


# --- a full local queue -------------------------------------------------------------------------------


def test_a_full_queue_is_waited_for_then_produce_goes_on(harness: Harness, clean: Outcome) -> None:
    outcome = harness.run({"produce": [*[None] * 30, FullFor(0.12)]})
    _same_as_clean(outcome, clean)
    assert outcome.calls("abort_transaction") == 0
    assert 0.05 in outcome.producer.polls  # it served the queue while waiting


def test_a_queue_full_past_the_timeout_aborts_and_redoes_the_batch(harness: Harness, clean: Outcome) -> None:
    outcome = harness.run({"produce": [*[None] * 30, FullFor(OPTIONS.operation_timeout_s + 0.1)]})
    _same_as_clean(outcome, clean)
    assert outcome.calls("abort_transaction") == 1
    _rewound_to_committed(outcome)


# --- poll / consume ------------------------------------------------------------------------------------


def test_a_retriable_consume_error_is_retried(harness: Harness, clean: Outcome) -> None:
    outcome = harness.run(consumer_plan={"consume": [None, retriable(KafkaError._TRANSPORT)]})
    _same_as_clean(outcome, clean)


def test_a_consumer_error_message_that_is_not_fatal_is_logged_and_skipped(
    harness: Harness, clean: Outcome
) -> None:
    error = KafkaError(KafkaError._TRANSPORT, "test: broker connection lost")
    outcome = harness.run(consumer_plan={"consume": [None, error]})
    _same_as_clean(outcome, clean)


@pytest.mark.parametrize(
    "fault",
    [
        KafkaError(KafkaError._FATAL, "test: consumer fenced (static membership)", fatal=True),
        fatal(),
    ],
    ids=["error message", "exception"],
)
def test_a_fatal_consume_error_stops(harness: Harness, fault: Any) -> None:
    outcome = harness.run(consumer_plan={"consume": [None, fault]})
    assert outcome.code == 2 and len(outcome.errors) == 1


def test_a_consume_error_retriable_for_too_long_is_fatal(harness: Harness) -> None:
    outcome = harness.run(consumer_plan={"consume": [None, *[retriable()] * 200]})
    _stopped(outcome, says="consume")


def test_a_fatal_error_from_the_clients_background_stops(harness: Harness) -> None:
    error = KafkaError(KafkaError._FENCED, "test: fenced, seen by a background request", fatal=True)
    outcome = harness.run({"poll": [None, None], "error_cb": [None, error]})
    _stopped(outcome, says="EVENTBUS_INSTANCE_ID")


def test_background_errors_the_client_recovers_from_change_nothing(harness: Harness, clean: Outcome) -> None:
    down = KafkaError(KafkaError._ALL_BROKERS_DOWN, "test: 1/1 brokers are down")
    outcome = harness.run({"error_cb": [down, KafkaError(KafkaError._TRANSPORT, "test: disconnected")]})
    _same_as_clean(outcome, clean)


def test_a_fatal_error_at_assignment_stops(harness: Harness) -> None:
    outcome = harness.run(
        consumer_plan={"committed": [KafkaException(KafkaError(KafkaError._TIMED_OUT))] * 50}
    )
    _stopped(outcome, says="committed")


# --- at-least-once ----------------------------------------------------------------------------------------


def test_at_least_once_rewinds_after_a_failed_delivery(harness: Harness, clean: Outcome) -> None:
    failure = KafkaError(KafkaError._MSG_TIMED_OUT, "test: message timed out")
    outcome = harness.run({"delivery": [None, failure]}, exactly_once=False)
    assert outcome.code == 0
    assert outcome.broker.committed == clean.broker.committed
    assert set(outcome.broker.events) == set(clean.broker.events)  # copies allowed, nothing lost
    assert outcome.producer.purged
    _rewound_to_committed(outcome)


def test_a_progress_line_says_what_was_done_how_far_behind_and_when_it_last_committed(
    harness: Harness,
) -> None:
    outcome = harness.run(progress_every_s=0.0)
    assert outcome.code == 0
    lines = [r.__dict__ for r in harness.last_log if r.getMessage() == "progress"]
    assert lines, "no progress line"
    last = lines[-1]
    assert last["consumed"] > 0 and last["events_out"] > 0 and last["transactions_committed"] >= 1
    assert last["lag_records"] >= 0 and last["last_commit_s_ago"] is not None
