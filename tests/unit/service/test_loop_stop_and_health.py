"""What a container orchestrator sees: SIGTERM honoured while waiting for the broker and within the
shutdown budget, and /healthz failing when no broker has answered for too long."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from eventbus.errors import EventBusError
from eventbus.service import http
from eventbus.service.http import Health
from eventbus.service.loop import LoopOptions, TransformerLoop
from eventbus.service.metrics import Metrics
from eventbus.service.producer_renewal import RenewableProducer
from tests.unit.service.fakes import Broker, FakeConsumer, FakeProducer


class UnreachableCoordinator(FakeProducer):
    """init_transactions times out, as it does while no broker answers; `after` calls, `then()`."""

    def __init__(self, after: int = 1_000_000, then: Any = None) -> None:
        super().__init__(Broker("t", {0: []}))
        self.timeouts: list[float] = []
        self.after, self.then = after, then

    def init_transactions(self, timeout: float) -> None:
        self.timeouts.append(timeout)
        if len(self.timeouts) >= self.after and self.then is not None:
            self.then()
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to initialize", retriable=True))


def _loop(producer: FakeProducer, health: Health | None = None, **options: Any) -> TransformerLoop:
    consumer = FakeConsumer(producer.broker)
    producers = RenewableProducer({}, 1.0, client=lambda _config: producer)  # type: ignore[arg-type,return-value]
    return TransformerLoop(
        consumer, producers, None, None, Metrics([]), health or Health(), LoopOptions(**options)  # type: ignore[arg-type]
    )


def test_sigterm_while_waiting_for_the_coordinator_ends_the_wait_within_a_second() -> None:
    health = Health()
    producer = UnreachableCoordinator(after=3)
    loop = _loop(producer, health, operation_timeout_s=60.0)
    producer.then = loop.stop

    loop.init_transactions()  # returns: no exit 2, no 60 s wait

    assert len(producer.timeouts) == 3
    assert max(producer.timeouts) <= 1.0, "one blocking call must not outlast a stop request by much"
    assert health.broker_lost_since is not None
    assert health.readiness() == (False, "stopping")


def test_a_coordinator_unreachable_for_the_operation_timeout_is_fatal() -> None:
    producer = UnreachableCoordinator()
    loop = _loop(producer, operation_timeout_s=0.3)
    with pytest.raises(EventBusError) as raised:
        loop.init_transactions()
    assert raised.value.exit_code == 2
    assert "init_transactions" in str(raised.value)


def test_waiting_for_the_coordinator_is_the_readiness_reason() -> None:
    health = Health()
    producer = UnreachableCoordinator(after=2)
    loop = _loop(producer, health, operation_timeout_s=60.0)
    reasons: list[str] = []
    producer.then = lambda: (reasons.append(health.reason), loop.stop())
    loop.init_transactions()
    assert reasons and reasons[0].startswith("waiting for Kafka: ")


def test_healthz_fails_once_no_broker_answered_for_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(http.time, "monotonic", lambda: now[0])
    health = Health(stall_after_s=60.0, broker_gone_after_s=120.0)
    health.broker_lost()
    now[0] += 60.0
    health.beat()
    assert health.alive() == (True, "ok")
    health.broker_lost()  # a second report does not restart the clock
    now[0] += 61.0
    health.beat()
    assert health.alive() == (False, "no Kafka broker reachable for 121s")
    health.broker_back()
    assert health.alive() == (True, "ok")


def test_all_brokers_down_is_remembered_and_records_clear_it() -> None:
    health = Health()
    loop = _loop(FakeProducer(Broker("t", {0: []})), health)
    loop.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert health.broker_lost_since is not None
    loop._probe_broker(consumed=True)
    assert health.broker_lost_since is None


def test_all_brokers_down_is_cleared_by_a_metadata_answer_when_no_records_come() -> None:
    health = Health()
    loop = _loop(FakeProducer(Broker("t", {0: []})), health)
    consumer = loop.consumer
    assert isinstance(consumer, FakeConsumer)
    consumer.plan["list_topics"] = [KafkaException(KafkaError(KafkaError._TRANSPORT, "still down"))]
    loop.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    loop._probe_broker(consumed=False)  # the metadata request fails: still down
    assert consumer.metadata_requests == 1 and health.broker_lost_since is not None
    loop._probe_broker(consumed=False)  # within seconds of the last probe: not asked again
    assert consumer.metadata_requests == 1 and health.broker_lost_since is not None
    loop._broker_probe_at = 0.0  # the probe interval has passed
    loop._probe_broker(consumed=False)  # a metadata answer: a broker is back
    assert consumer.metadata_requests == 2 and health.broker_lost_since is None


def test_once_stopping_every_wait_is_cut_to_the_shutdown_budget() -> None:
    loop = _loop(FakeProducer(Broker("t", {0: []})), operation_timeout_s=60.0, shutdown_timeout_s=2.0)
    assert loop._timeout() == 60.0
    loop.stop()
    assert 0.1 <= loop._timeout() <= 2.0
    loop.stop()  # a second SIGTERM does not extend the budget
    assert loop._timeout() <= 2.0


def test_the_stop_keeps_part_of_its_budget_for_closing_the_clients() -> None:
    """Closing the consumer and exiting are bounded by no timeout of ours (≈2 s with the broker gone,
    in a container): the stop's waits end a quarter of the budget, at most 2 s, before it."""
    loop = _loop(FakeProducer(Broker("t", {0: []})), operation_timeout_s=60.0, shutdown_timeout_s=8.0)
    loop.stop()
    assert 5.5 < loop._timeout() <= 6.0
    short = _loop(FakeProducer(Broker("t", {0: []})), operation_timeout_s=60.0, shutdown_timeout_s=2.0)
    short.stop()
    assert 1.0 < short._timeout() <= 1.5


def test_ready_only_once_the_group_has_assigned_this_member() -> None:
    """/readyz said ready ~40 s before a restarted member consumed anything: it waited out its
    predecessor's session. Ready now means the group answered (an empty assignment too)."""
    health = Health()
    producer = FakeProducer(Broker("t", {0: []}))
    loop = _loop(producer, health)
    consumer = loop.consumer
    seen: list[tuple[bool, str]] = []
    real_consume = consumer.consume

    def consume(num_messages: int, timeout: float) -> Any:
        seen.append(health.readiness())
        return real_consume(num_messages, timeout)

    consumer.consume = consume  # type: ignore[method-assign]
    consumer.on_stop = lambda: (seen.append(health.readiness()), loop.stop())
    loop.subscribe(["t"])
    assert loop.run() == 0
    assert seen[0] == (False, "waiting for the consumer group's assignment")
    assert seen[1] == (True, "ok")  # after the assignment, within the same consume()
