"""The lag metric on the real stack: staging written in transactions, as Kafka Connect's exactly-once
source writes it, leaves a commit marker after each transaction. Consumed to the end, the partitions'
high watermarks stay above the group's committed offsets, yet the lag reads 0; the source's
freshness is reported."""

from __future__ import annotations

import re

import pytest
from confluent_kafka import Producer

from tests.integration.transformer.support import (
    Scenario,
    TransformerProcess,
    committed_offsets,
    end_offsets,
    service_env,
    unique,
    wait_until,
)
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack


def _produce_in_transactions(stack: StackEndpoints, topic: str, records: list, per_transaction: int) -> None:
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "transactional.id": unique("tx"),
                         "partitioner": "murmur2_random"})  # fmt: skip
    producer.init_transactions(30)
    for start in range(0, len(records), per_transaction):
        producer.begin_transaction()
        for record in records[start : start + per_transaction]:
            producer.produce(topic, record.value, record.key)
        producer.commit_transaction(30)


def _series(metrics: str, name: str) -> dict[str, float]:
    return {
        labels: float(value)
        for labels, value in re.findall(rf"^{name}\{{(.*)\}} (\S+)$", metrics, flags=re.M)
    }


def test_an_idle_caught_up_transformer_reports_lag_zero_and_the_sources_freshness(
    stack: StackEndpoints, scenario: Scenario
) -> None:
    mappings = scenario.write_mappings()
    _produce_in_transactions(stack, scenario.staging_topic, scenario.records(300), per_transaction=7)
    service = TransformerProcess(mappings, scenario.root / "t.log", service_env(stack, scenario)).wait_ready()
    # Caught up: every record consumed and committed (the usual "committed offset >= end" wait
    # would never end here, which is the point of this test).
    wait_until(lambda: 'eventbus_records_total{outcome="consumed"} 300.0' in service.metrics(), 60,
               "300 records consumed and committed")  # fmt: skip

    ends = end_offsets(stack.bootstrap_servers, scenario.staging_topic)
    committed = committed_offsets(stack.bootstrap_servers, scenario.group, scenario.staging_topic, ends)
    # The commit markers: "high watermark - committed offset" would never be 0 here.
    assert all(ends[p] > committed[p] for p in ends), (ends, committed)

    def lag_is_zero() -> bool:
        lags = _series(service.metrics(), "eventbus_consumer_lag_records")
        return len(lags) == 3 and set(lags.values()) == {0.0}

    wait_until(lag_is_zero, 30, "every partition's lag to read 0")
    metrics = service.metrics()
    (age,) = _series(metrics, "eventbus_source_last_change_age_seconds").items()
    assert age[0] == f'source="{scenario.source}"' and 0 <= age[1] < 300
    assert f'eventbus_source_last_change_timestamp_seconds{{source="{scenario.source}"}}' in metrics
    assert service.terminate() == 0
