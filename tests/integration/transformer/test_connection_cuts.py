"""Network failures mid-transaction: every connection of the transformer is cut 20 times while
records flow, and the curated topics still equal the offline run (nothing lost, nothing twice).

The transformer talks to a private broker only through a TCP proxy (tests/support/proxied_broker.py);
the test's own producer and readers use the broker's direct listener, so only the service's
connections are cut. Each cut comes once the service has committed something since the previous
one (it recovered) and has written records of its next transaction that are not committed yet (a
curated partition's high watermark above its last stable offset): a cut mid-transaction.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from tests.integration.transformer.support import (
    Scenario,
    TransformerProcess,
    assert_matches_offline,
    committed_offsets,
    create_topics,
    expected_offline,
    produce_records,
    read_curated,
    service_env,
    unique,
    wait_caught_up,
    wait_until,
)
from tests.support.proxied_broker import ProxiedBroker, running_proxied_broker
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack

CUTS = 20
# One cut is an outage longer than the session timeout (6 s): the group drops the member, the open
# transaction can no longer commit its offsets, and the service must abort and rewind.
OUTAGE_AT, OUTAGE_S = 10, 8.0
CHUNK = 150  # records per chunk of the flow, one chunk every PACE_S
PACE_S = 0.05


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, stack: StackEndpoints) -> Iterator[ProxiedBroker]:
    with running_proxied_broker(tmp_path_factory.mktemp("proxied-kafka")) as broker:
        yield broker


class Flow:
    """Produces the records chunk by chunk (straight to the broker) until stopped; pacing shapes
    the load, nothing waits on it."""

    def __init__(self, bootstrap: str, topic: str, records: list) -> None:
        self.bootstrap, self.topic, self.records = bootstrap, topic, records
        self.produced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Flow:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set() and self.produced < len(self.records):
            chunk = self.records[self.produced : self.produced + CHUNK]
            produce_records(self.bootstrap, self.topic, [(r.key, r.value) for r in chunk])
            self.produced += len(chunk)
            time.sleep(PACE_S)

    def stop(self) -> list:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()
        return self.records[: self.produced]


class OpenTransaction:
    """Tells when the service has written records of a transaction it has not committed yet: a
    curated partition's high watermark is then above its last stable offset."""

    def __init__(self, bootstrap: str, topics: list[str], partitions: int) -> None:
        self.partitions = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        self.stable, self.written = (
            Consumer({"bootstrap.servers": bootstrap, "group.id": unique("probe"), "isolation.level": level})
            for level in ("read_committed", "read_uncommitted")
        )

    def __call__(self) -> bool:
        for tp in self.partitions:
            lso = self.stable.get_watermark_offsets(tp, timeout=5)[1]
            if self.written.get_watermark_offsets(tp, timeout=5)[1] > lso:
                return True
        return False

    def close(self) -> None:
        self.stable.close()
        self.written.close()


def test_connections_cut_mid_transaction_lose_and_duplicate_nothing(
    stack: StackEndpoints, proxied: ProxiedBroker, tmp_path: Path
) -> None:
    bootstrap, scenario = proxied.bootstrap, Scenario(tmp_path)
    create_topics(bootstrap, {scenario.staging_topic: 3, scenario.status_topic: 3, scenario.closed_topic: 3,
                              scenario.dlq_topic: 1})  # fmt: skip
    mappings = scenario.write_mappings()
    records = scenario.records(100_000, seed=23)
    env = {
        **service_env(stack, scenario),
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": proxied.proxied_bootstrap,
        # librdkafka doubles its reconnect back-off while connections keep dropping within 10 s of
        # each other (up to 10 s): capped lower so that 20 cuts take seconds, not minutes.
        "EVENTBUS_KAFKA__CONSUMER": json.dumps(
            {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "reconnect.backoff.max.ms": 500}
        ),
        "EVENTBUS_KAFKA__PRODUCER": json.dumps({"reconnect.backoff.max.ms": 500}),
    }
    service = TransformerProcess(mappings, tmp_path / "t.log", env).wait_ready()

    def committed_total() -> int:
        try:
            offsets = committed_offsets(bootstrap, scenario.group, scenario.staging_topic, range(3))
        except KafkaException:  # the group's coordinator is loading or moving: ask again
            return -1
        return sum(max(0, o) for o in offsets.values())

    flow = Flow(bootstrap, scenario.staging_topic, records).start()
    in_transaction = OpenTransaction(bootstrap, scenario.curated_topics, 3)
    dropped = []
    try:
        for cut in range(CUTS):
            at = max(0, committed_total())
            wait_until(
                lambda at=at: committed_total() > at, 60, f"progress before cut {cut + 1}", interval=0.05
            )
            wait_until(in_transaction, 30, f"an open transaction for cut {cut + 1}", interval=0.005)
            assert service.process.poll() is None, f"the transformer exited before cut {cut + 1}"
            if cut == OUTAGE_AT:
                dropped.append(proxied.proxy.outage(OUTAGE_S))
            else:
                dropped.append(proxied.proxy.cut())
    finally:
        produced = flow.stop()
        in_transaction.close()
    assert flow.produced < len(records), "the flow ran out before the cuts were done"
    assert all(n > 0 for n in dropped), f"a cut found no connection of the transformer: {dropped}"

    wait_caught_up(bootstrap, scenario.group, scenario.staging_topic, timeout=120)
    log = [entry.get("msg") for entry in service.logs()]
    assert service.terminate() == 0, "the transformer must survive the cuts and stop cleanly"
    assert "stopping: fatal error" not in log
    assert "partitions lost" in log or "aborting the batch; it will be processed again" in log
    # Every aborted transaction is followed by a new producer instance (service/producer_renewal.py);
    # an abort of only the batch processed while a commit was in flight has no transaction to abort.
    aborts, renewals = log.count("aborting the batch; it will be processed again"), log.count(
        "new producer instance after the abort"
    )
    assert renewals <= aborts and (renewals > 0 or aborts == 0), (aborts, renewals)

    want_status, dead = expected_offline(mappings / "status.yaml", produced, tmp_path)
    want_closed, dead_closed = expected_offline(mappings / "closed.yaml", produced, tmp_path)
    assert not dead and not dead_closed
    read = {"timeout": 60}
    status = read_curated(bootstrap, stack.registry_url, scenario.status_topic, mappings / "schemas",
                          "status.avsc", **read)  # fmt: skip
    closed = read_curated(bootstrap, stack.registry_url, scenario.closed_topic, mappings / "schemas",
                          "closed.avsc", **read)  # fmt: skip
    assert_matches_offline(status, want_status)
    assert_matches_offline(closed, want_closed)
    accounting = service.final_accounting()
    assert accounting["consumed"] == len(produced) and accounting["balanced"] is True
