"""A looked-up table's staging topic given more partitions while the service runs: the feeder read
only the partitions it had assigned at start-up, so a row in a new one was never in the store and
the lookups of it were answered "missing" (published as null with on_missing: null). Found by a
probe on the stack. Now each catch-up assigns the partitions added since."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from bench.lookups import STATIONS, connect_envelope, lookup_mapping_dir
from eventbus.lookups.feeder import RelatedTopicsFeeder
from eventbus.lookups.resolver import key_text, table_id
from eventbus.lookups.store import VersionStore
from eventbus.lookups.versions import Interest
from eventbus.mapping import compile_mapping, load_mapping
from tests.integration.transformer.support import create_topics
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack


def _station(prefix: str, number: int, lsn: int) -> tuple[bytes, bytes]:
    """A Debezium insert of one `public.stations` row, as Connect's JsonConverter writes it."""
    source = {"version": "3.6.1.Final", "connector": "postgresql", "name": prefix, "ts_ms": 1_000 + lsn,
              "snapshot": "false", "db": "d", "sequence": None, "schema": "public", "table": "stations",
              "txId": lsn, "lsn": lsn}  # fmt: skip
    payload = {"before": None, "after": {"station_number": number, "region": f"R{number}", "open": True},
               "source": source, "op": "c", "ts_ms": 2_000 + lsn}  # fmt: skip
    key = {"schema": {"type": "struct", "fields": [{"type": "int32", "optional": False,
                                                     "field": "station_number"}]},
           "payload": {"station_number": number}}  # fmt: skip
    value = {"schema": connect_envelope("public.stations", STATIONS, prefix), "payload": payload}
    return orjson.dumps(key), orjson.dumps(value)


def test_a_partition_added_to_a_related_topic_is_read_at_the_next_catch_up(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    connector = f"fp{uuid.uuid4().hex[:8]}"
    _, mapping_file = lookup_mapping_dir(tmp_path)
    mapping_file.write_text(mapping_file.read_text().replace("connector: claims", f"connector: {connector}"))
    compiled = compile_mapping(load_mapping(mapping_file))
    prefix = f"staging.{connector}"
    topic = f"{prefix}.public.stations"
    create_topics(stack.bootstrap_servers, {topic: 1, f"{prefix}.public.veterans": 1})
    consumer_config = {"bootstrap.servers": stack.bootstrap_servers, "group.id": f"{connector}.lookups",
                       "isolation.level": "read_committed", "enable.auto.commit": False}  # fmt: skip
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers})

    def produce(number: int, lsn: int, partition: int) -> None:
        key, value = _station(prefix, number, lsn)
        producer.produce(topic, value, key, partition=partition)
        assert producer.flush(30) == 0

    def opened() -> RelatedTopicsFeeder:
        return RelatedTopicsFeeder(
            VersionStore(tmp_path / "store"), Interest.of([compiled]), consumer_config,
            {"bootstrap.servers": stack.bootstrap_servers}, timeout_s=30,
        )  # fmt: skip

    feeder = opened()
    stations = table_id(connector, "public.stations", ["station_number"])
    try:
        feeder.start()
        produce(317, 100, 0)
        assert feeder.catch_up() == 1
        admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
        admin.create_partitions([NewPartitions(topic, 3)])[topic].result(30)
        deadline = time.monotonic() + 30
        while len(producer.list_topics(topic, timeout=10).topics[topic].partitions) < 3:
            assert time.monotonic() < deadline, "the producer did not see the new partitions"
            time.sleep(0.2)
        produce(318, 200, 1)
        produce(319, 300, 2)
        produce(320, 400, 0)
        assert feeder.catch_up() == 3
        for number in (317, 318, 319, 320):
            (version,) = feeder.store.versions(stations, key_text((number,)) or "")
            assert version.row is not None and version.row["region"] == f"R{number}"
        assert feeder.progress_ts == {connector: 1_400}  # the newest commit time read
    finally:
        feeder.close()
    # Reopened with nothing new to read (a restart, or a dead-letter replay): the store says how far
    # the source was. Without it every lookup waiting for a row stayed pending: a replay parked its
    # dead letter and ended.
    again = opened()
    try:
        again.start()
        assert again.catch_up() == 0
        assert again.progress_ts == {connector: 1_400}
    finally:
        again.close()
