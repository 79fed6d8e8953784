"""The loop's producer is replaced after an aborted transaction (service/producer_renewal.py): the
retired instance is purged and its callbacks no longer reach the loop."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError

from eventbus.service.metrics import Metrics, Tally
from eventbus.service.partitions import Partitions
from eventbus.service.producer_renewal import RenewableProducer
from eventbus.service.transactions import BatchTransaction
from tests.unit.service.fakes import Broker, FakeProducer


def test_a_retired_instance_is_purged_and_its_callbacks_are_cut_off() -> None:
    broker = Broker("t", {0: []})
    made: list[FakeProducer] = []
    errors: list[str] = []
    deliveries: list[KafkaError | None] = []

    def client(config: dict[str, Any]) -> Any:
        made.append(FakeProducer(broker, config=config))
        return made[-1]

    producers = RenewableProducer(
        {"error_cb": lambda error: errors.append(error.str()),
         "on_delivery": lambda error, _message: deliveries.append(error),
         "bootstrap.servers": "127.0.0.1:1"},
        1.0,
        client=client,
    )  # fmt: skip
    first = producers.current
    first_produce = producers.produce

    second = producers.renew()

    assert made == [first, second] and producers.current is second and producers.instances == 2
    assert first.purged and not second.purged
    assert producers.produce is not first_produce
    fenced = KafkaError(KafkaError._FENCED, "fenced by the instance that replaced it", fatal=True)
    assert first.on_error is not None and first.on_delivery is not None
    first.on_error(fenced)  # the retired instance learns it is fenced: not the loop's business
    first.on_delivery(KafkaError(KafkaError._PURGE_INFLIGHT), None)
    assert errors == [] and deliveries == []
    assert second.on_error is not None and second.on_delivery is not None
    second.on_error(KafkaError(KafkaError._TRANSPORT, "disconnected"))
    second.on_delivery(None, None)
    assert errors == ["disconnected"] and deliveries == [None]


def test_the_produce_function_sends_through_the_instance_in_use() -> None:
    broker = Broker("t", {0: []})
    made: list[FakeProducer] = []

    def client(config: dict[str, Any]) -> Any:
        made.append(FakeProducer(broker, transactional=False, config=config))
        return made[-1]

    producers = RenewableProducer({}, 1.0, client=client)
    producers.produce("a", b"1", None)
    producers.renew()
    producers.produce("a", b"2", None)
    assert made[0].pending == [] and made[0].purged  # purged on retirement
    assert made[1].pending == [("a", None, b"2")]


def test_after_an_aborted_transaction_every_producing_part_sends_through_the_new_instance() -> None:
    broker = Broker("t", {0: []})
    producers = RenewableProducer({}, 1.0, client=lambda config: FakeProducer(broker, config=config))  # type: ignore[arg-type,return-value]
    sent_to: dict[str, Any] = {}
    initialised: list[Any] = []

    class Processor:
        def produce_into(self, produce: Any) -> Any:
            sent_to["processor"] = produce

    class Lookups:
        def produce_with(self, produce: Any) -> None:
            sent_to["lookups"] = produce

        def rolled_back(self) -> None:
            pass

    batch = BatchTransaction(
        consumer=None, producers=producers, processor=Processor(), partitions=Partitions(),  # type: ignore[arg-type]
        tally=Tally([]), metrics=Metrics([]), progress=None, lookups=Lookups(), exactly_once=True,  # type: ignore[arg-type]
        timeout=lambda: 1.0, init_transactions=lambda: initialised.append(producers.current),
    )  # fmt: skip
    first = producers.current
    first.init_transactions(1.0)
    first.begin_transaction()

    batch.abort("test: an abortable error")

    assert first.calls[-1] == "abort_transaction" and first.purged
    assert producers.current is not first and initialised == [producers.current]
    assert sent_to == {"processor": producers.produce, "lookups": producers.produce}


def test_a_renewed_instance_serves_its_first_oauth_token_request_before_it_is_initialised() -> None:
    broker = Broker("t", {0: []})
    made: list[FakeProducer] = []

    def client(config: dict[str, Any]) -> Any:
        made.append(FakeProducer(broker, config=config))
        return made[-1]

    producers = RenewableProducer({"oauth_cb": lambda _config: ("token", 0.0)}, 1.0, client=client)
    producers.renew()
    assert made[1].polls == [1.0]
