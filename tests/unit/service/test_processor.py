"""The per-record path without Kafka: routing to several mappings, dead letters, dedup, accounting."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest

from eventbus.errors import ConfigError
from eventbus.events.avro import AvroEventSerializer, RegistryMode, connect_registry
from eventbus.mapping.compiler import compile_mapping
from eventbus.mapping.errors import MappingErrors
from eventbus.mapping.spec import load_mapping
from eventbus.mapping.testing import run_records
from eventbus.service import dead_letter as dl
from eventbus.service.loading import MappingSet, load_mapping_set
from eventbus.service.metrics import Metrics, Tally
from eventbus.service.partitions import Partitions
from eventbus.service.processor import Processor
from tests.integration.transformer.support import POISONOUS, Scenario


class FakeMessage:
    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self._t, self._p, self._o, self._k, self._v, self._h = topic, partition, offset, key, value, headers

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes | None:
        return self._k

    def value(self) -> bytes | None:
        return self._v

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._h


class Produced(list[dict[str, Any]]):
    def __call__(self, topic: str, value: bytes | None, key: bytes | None, headers: Any = None) -> None:
        self.append({"topic": topic, "value": value, "key": key, "headers": dict(headers or [])})


def _processor(mappings: MappingSet) -> tuple[Processor, Produced, Tally]:
    serializer = AvroEventSerializer.from_registry(
        connect_registry("mock://processor-tests"), mappings.topic_schemas, mode=RegistryMode.AUTO_REGISTER
    )
    produced = Produced()
    tally = Tally(m.spec.name for m in mappings.mappings)
    processor = Processor(mappings, serializer, produced, dead_letter_topic="dlq", group="g", tally=tally)
    return processor, produced, tally


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path)


def test_several_mappings_per_table_and_offline_equivalence(scenario: Scenario) -> None:
    folder = scenario.write_mappings()
    mappings = load_mapping_set(folder)
    assert mappings.staging_topics == [scenario.staging_topic]
    assert len(mappings.by_topic[scenario.staging_topic]) == 2
    processor, produced, tally = _processor(mappings)
    records = scenario.records(400)
    messages = [FakeMessage(r.topic, 0, i, r.key, r.value) for i, r in enumerate(records)]
    states = Partitions()
    processor.process(messages, states)

    offline_ids = []
    for name in ("status.yaml", "closed.yaml"):
        outcome = run_records(compile_mapping(load_mapping(folder / name)), [r.value for r in records])
        offline_ids += [e["headers"]["ce_id"] for e in outcome.events]
    # Offline lines here carry no Kafka key, so ids use the key fields: compare counts and topics.
    assert len(produced) == len(offline_ids)
    assert {p["topic"] for p in produced} == {scenario.status_topic, scenario.closed_topic}
    sample = produced[0]
    assert sample["key"][0] == 0 and sample["value"][0] == 0  # Confluent wire format
    assert sample["headers"]["ce_type"] in (b"claim_status_changed.v1", b"claim_closed.v1")
    state = states.get(scenario.staging_topic, 0)
    assert state is not None
    assert (state.first_offset, state.next_offset) == (0, 400)
    assert tally.consumed == 400 == tally.emitted_from + tally.filtered + tally.dead_lettered
    for counts in tally.mappings.values():
        assert counts.changes_in == counts.emitted_from + counts.filtered + counts.dead_lettered


def test_poison_records_become_dead_letters_and_the_rest_continues(scenario: Scenario) -> None:
    mappings = load_mapping_set(scenario.write_mappings(claimant_name=POISONOUS))
    processor, produced, tally = _processor(mappings)
    records = scenario.records(300, seed=2)
    null_names = [
        i for i, r in enumerate(records) if r.op in "cu" and r.after and r.after["claimant_name"] is None
    ]
    assert null_names, "the sample should contain claims without a claimant name"
    topic = scenario.staging_topic
    messages = [FakeMessage(topic, 1, i, r.key, r.value, [("trace", b"t1")]) for i, r in enumerate(records)]
    messages.insert(10, FakeMessage(topic, 1, 1000, b"k", b"{corrupt", [("trace", b"t2")]))
    messages.append(FakeMessage(topic, 1, 1001, b"k", None))  # a tombstone
    processor.process(messages, Partitions())

    dead = [p for p in produced if p["topic"] == "dlq"]
    decode = [d for d in dead if d["headers"][dl.KIND] == b"decode"]
    assert len(decode) == 1
    assert decode[0]["value"] == b"{corrupt" and decode[0]["key"] == b"k"
    assert decode[0]["headers"]["trace"] == b"t2"  # original headers are kept
    assert decode[0]["headers"][dl.SOURCE_OFFSET] == b"1000"
    assert decode[0]["headers"][dl.MAPPING] == b""
    failed = [d for d in dead if d["headers"][dl.KIND] == b"mapping"]
    assert len(failed) == len(null_names)
    for record in failed:
        info = dl.parse_dead_letter(list(record["headers"].items()))
        assert info.mapping == "claim_status_changed" and info.mapping_version == 1
        assert "claimant_name" in info.reason
        assert info.origin.topic == topic and info.origin.partition == 1
        assert record["value"] == records[info.origin.offset].value  # the original bytes
    assert tally.consumed == 302
    assert tally.dead_lettered == 1 + len(null_names)
    assert tally.unreadable == 1  # the corrupt one only: it is in no mapping's count
    assert tally.tombstones == 1
    assert tally.consumed == tally.emitted_from + tally.filtered + tally.dead_lettered
    status = tally.mappings["claim_status_changed"]
    assert status.dead_lettered == len(null_names)
    assert status.changes_in == status.emitted_from + status.filtered + status.dead_lettered


def test_duplicates_below_the_watermark_are_filtered(scenario: Scenario) -> None:
    processor, produced, tally = _processor(load_mapping_set(scenario.write_mappings()))
    records = scenario.records(50, seed=4)
    messages = [FakeMessage(r.topic, 0, i, r.key, r.value) for i, r in enumerate(records)]
    states = Partitions()
    processor.process(messages, states)
    first = len(produced)
    replay = [FakeMessage(r.topic, 0, 50 + i, r.key, r.value) for i, r in enumerate(records[10:40])]
    no_match = tally.no_match
    processor.process(replay, states)
    assert len(produced) == first
    # A re-delivered change that some mapping emits from is a duplicate; one that every mapping
    # filters out is just filtered again (its position is not even read).
    emitting = sum(1 for r in records[10:40] if r.op in "cu")  # claim_status_changed: insert, update
    assert 0 < emitting < 30
    assert tally.duplicates == emitting
    assert tally.no_match - no_match == 30 - emitting
    assert states.dirty_offsets()[0].offset == 80


def test_dead_letter_headers_round_trip_and_replace_earlier_ones() -> None:
    origin = dl.Origin("staging.x.public.t", 2, 99)
    first = dl.dead_letter_headers(
        [("a", b"1")], kind="mapping", reason="boom", origin=origin, group="g", mapping="m", mapping_version=3
    )
    again = dl.dead_letter_headers(
        first, kind="decode", reason="x" * 10_000, origin=origin, group="g", attempt=2
    )
    info = dl.parse_dead_letter(again)
    assert info.original_headers == [("a", b"1")]
    assert (info.kind, info.mapping, info.attempt, info.origin) == ("decode", None, 2, origin)
    assert len(info.reason) == dl.MAX_REASON_BYTES
    with pytest.raises(dl.NotADeadLetterError):
        dl.parse_dead_letter([("a", b"1")])
    with pytest.raises(ValueError, match="unknown dead-letter kind"):
        dl.dead_letter_headers(None, kind="other", reason="", origin=origin, group="g")


def test_a_header_without_a_value_stays_one_through_the_dead_letter() -> None:
    # Kafka headers may have a null value; the consumer hands it out as None (`dl.Headers`).
    origin = dl.Origin("staging.x.public.t", 0, 7)
    headers = dl.dead_letter_headers([("trace", None), ("a", b"1")], kind="decode", reason="", origin=origin,
                                     group="g")  # fmt: skip
    assert headers[:2] == [("trace", None), ("a", b"1")]
    nulled = [(k, None) if k == dl.MAPPING else (k, v) for k, v in headers]  # e.g. written by another tool
    info = dl.parse_dead_letter(nulled)
    assert info.original_headers == [("trace", None), ("a", b"1")]
    assert (info.mapping, info.origin) == (None, origin)


def test_metrics_flush_only_committed_counts_and_keep_the_identity() -> None:
    tally = Tally(["m"])
    metrics = Metrics(["m"])
    tally.consumed, tally.emitted_from, tally.duplicates, tally.dead_lettered = 10, 6, 3, 1
    tally.mappings["m"].changes_in, tally.mappings["m"].emitted_from = 7, 6
    tally.mappings["m"].dead_lettered, tally.mappings["m"].events_out = 1, 9
    tally.source_ts_ms = [1_000, 1_500, 61_000]
    metrics.flush(tally, now_ms=62_000)
    metrics.transaction(True)
    tally.reset()
    tally.consumed = 5  # an aborted batch: never flushed
    metrics.transaction(False)
    totals = metrics.totals
    assert (totals.consumed, totals.emitted_from, totals.filtered, totals.dead_lettered) == (10, 6, 3, 1)
    assert totals.balanced and totals.events_out == 9
    assert metrics.latency.count == 3
    text = _exposition(metrics)
    assert 'eventbus_records_total{outcome="consumed"} 10.0' in text
    assert 'eventbus_records_filtered_total{reason="duplicate"} 3.0' in text
    assert 'eventbus_source_to_publish_seconds_bucket{le="1.0"} 1.0' in text
    assert 'eventbus_source_to_publish_seconds_bucket{le="+Inf"} 3.0' in text
    assert 'eventbus_transactions_total{result="aborted"} 1.0' in text
    assert "eventbus_accounting_balanced 1.0" in text
    broken = Tally(["m"])
    broken.consumed = 2
    metrics.flush(broken)
    assert not metrics.totals.balanced
    assert "eventbus_accounting_balanced 0.0" in _exposition(metrics)


def test_latency_per_mapping_and_process_metrics_are_exposed() -> None:
    tally = Tally(["slow", "fast", "idle"])
    metrics = Metrics(["slow", "fast", "idle"])
    tally.mappings["slow"].source_ts_ms = [1_000, 2_000]  # 61 s and 60 s before the commit
    tally.mappings["fast"].source_ts_ms = [61_990]  # 10 ms before it
    tally.source_ts_ms = [1_000, 2_000, 61_990]
    metrics.flush(tally, now_ms=62_000)
    text = _exposition(metrics)
    name = "eventbus_mapping_source_to_publish_seconds"
    assert f'{name}_bucket{{le="60.0",mapping="slow"}} 1.0' in text
    assert f'{name}_bucket{{le="300.0",mapping="slow"}} 2.0' in text
    assert f'{name}_bucket{{le="0.025",mapping="fast"}} 1.0' in text
    assert f'{name}_count{{mapping="idle"}} 0.0' in text  # every mapping's series from the start
    assert "process_resident_memory_bytes" in text and "process_cpu_seconds_total" in text


def _exposition(metrics: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def test_an_invalid_mapping_stops_loading_with_file_and_line(scenario: Scenario) -> None:
    folder = scenario.write_mappings()
    (folder / "broken.yaml").write_text("name: broken\nversion: 1\ndescription: x\nsource: {connector: a}\n")
    with pytest.raises(MappingErrors) as raised:
        load_mapping_set(folder)
    assert f"{folder / 'broken.yaml'}:4" in str(raised.value)


def test_duplicate_mapping_names_and_empty_folders_are_refused(scenario: Scenario, tmp_path: Path) -> None:
    folder = scenario.write_mappings()
    (folder / "copy.yaml").write_text((folder / "closed.yaml").read_text())
    with pytest.raises(MappingErrors, match="also used by"):
        load_mapping_set(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no mapping files"):
        load_mapping_set(tmp_path / "empty")


def test_avro_bytes_decode_with_the_registered_schema(scenario: Scenario) -> None:
    processor, produced, _ = _processor(load_mapping_set(scenario.write_mappings()))
    record = scenario.records(1, seed=9)[0]
    processor.process([FakeMessage(record.topic, 0, 0, record.key, record.value)], Partitions())
    event = next(p for p in produced if p["topic"] == scenario.status_topic)
    schema = fastavro.parse_schema(
        __import__("json").loads((scenario.root / "mappings/schemas/status.avsc").read_text())
    )
    value = fastavro.schemaless_reader(io.BytesIO(event["value"][5:]), schema)
    assert value["claim_id"] == record.after["id"] and value["status"] == record.after["status"]


def test_a_serialization_failure_is_that_mappings_dead_letter_and_the_other_mapping_still_emits(
    scenario: Scenario,
) -> None:
    from eventbus.events.errors import SerializationFailed

    mappings = load_mapping_set(scenario.write_mappings())
    processor, produced, tally = _processor(mappings)
    serialize = processor._serialize

    def refuse_status_events(event: Any) -> Any:
        if event.topic == scenario.status_topic:
            raise SerializationFailed(
                topic=event.topic, part="value", path="status", expected="enum", actual_type="str"
            )
        return serialize(event)

    processor._serialize = refuse_status_events
    records = scenario.records(200, seed=5)
    processor.process(
        [FakeMessage(r.topic, 0, i, r.key, r.value) for i, r in enumerate(records)], Partitions()
    )
    dead = [p for p in produced if p["topic"] == "dlq"]
    assert dead, "the sample should contain status changes"
    assert {d["headers"][dl.KIND] for d in dead} == {b"serialization"}
    assert {d["headers"][dl.MAPPING] for d in dead} == {b"claim_status_changed"}
    assert all(b"status" in d["headers"][dl.REASON] and b"enum" in d["headers"][dl.REASON] for d in dead)
    assert any(p["topic"] == scenario.closed_topic for p in produced)  # the other mapping emitted
    assert tally.mappings["claim_status_changed"].dead_lettered == len(dead)
    assert tally.consumed == 200 == tally.emitted_from + tally.no_match + tally.dead_lettered


def test_a_source_block_is_checked_when_a_mapping_reads_it(scenario: Scenario) -> None:
    """The payload parser keeps the source block raw, and it is decoded when read: by a mapping that
    emits (the event id reads it) and by the dedup watermark for a change with an outcome. So a
    defect in it is a dead letter for a change a mapping emits from and no concern of a change that
    every mapping filters out."""
    processor, produced, tally = _processor(load_mapping_set(scenario.write_mappings()))
    records = scenario.records(200, seed=5)
    first = records[0]
    # after the first: an earlier position would be skipped as a duplicate
    updates = [r for r in records[1:] if r.op == "u"]  # claim_status_changed emits from every update
    delete = next(r for r in records[1:] if r.op == "d")  # no mapping emits from a delete

    def broken(value: bytes, field: str, junk: Any) -> bytes:
        document = orjson.loads(value)
        document["payload"]["source"][field] = junk
        return orjson.dumps(document)

    topic = scenario.staging_topic
    cases = [
        (first.key, first.value),  # teaches the decoder the schema prefix: the rest take the fast path
        (updates[0].key, broken(updates[0].value, "txId", "7")),
        (delete.key, broken(delete.value, "txId", "7")),
        (delete.key, broken(delete.value, "lsn", "0/16B3748")),
        (updates[1].key, broken(updates[1].value, "lsn", "0/16B3748")),
    ]
    assert all(processor._decoder.decode_payload(value, topic) is not None for _, value in cases)
    processor.process([FakeMessage(topic, 0, i, k, v) for i, (k, v) in enumerate(cases)], Partitions())

    dead = {int(p["headers"][dl.SOURCE_OFFSET]): p["headers"] for p in produced if p["topic"] == "dlq"}
    assert sorted(dead) == [1, 4]
    assert all(headers[dl.KIND] == b"decode" for headers in dead.values())
    assert b"source.txId must be an integer" in dead[1][dl.REASON]
    assert b"source.lsn must be an integer" in dead[4][dl.REASON]
    assert tally.no_match == 2  # the deletes
    assert tally.consumed == tally.emitted_from + tally.filtered + tally.dead_lettered


def test_a_batch_in_two_passes_produces_what_record_by_record_does(scenario: Scenario) -> None:
    """`process` runs every record's mappings before it encodes and produces any event: the produce
    calls, their order included, dead letters of every kind, and the counts are those of handling
    the records one by one."""
    from eventbus.events.errors import SerializationFailed

    mappings = load_mapping_set(scenario.write_mappings(claimant_name=POISONOUS))
    records = scenario.records(300, seed=6)
    topic = scenario.staging_topic
    messages = [
        FakeMessage(topic, i % 2, i, r.key, r.value, [("n", b"%d" % i)]) for i, r in enumerate(records)
    ]
    messages.insert(7, FakeMessage(topic, 1, 1000, b"k", b"{corrupt"))
    refused = next(r.value for r in records[20:] if r.op == "u")

    def run(batched: bool) -> tuple[Produced, Tally]:
        processor, produced, tally = _processor(mappings)
        serialize = processor._serialize

        def refuse_one(event: Any) -> Any:  # one record's status event fails to encode
            if event.topic == scenario.status_topic and event.value["claim_id"] == orjson.loads(refused)[
                "payload"]["after"]["claim_id"]:  # fmt: skip
                raise SerializationFailed(topic=event.topic, part="value", path="status", expected="enum",
                                          actual_type="str")  # fmt: skip
            return serialize(event)

        processor._serialize = refuse_one
        partitions = Partitions()
        if batched:
            processor.process(messages, partitions)
        else:
            for message, topic_, partition, offset, state in partitions.record(messages):
                processor.handle(message.value(), message.key(), message.headers(), topic_, partition, offset,
                                 processor.routes[topic_], state)  # fmt: skip
        return produced, tally

    (batched, tally), (one_by_one, single) = run(True), run(False)
    kinds = [p["headers"].get(dl.KIND) for p in batched if p["topic"] == "dlq"]
    assert {b"decode", b"mapping", b"serialization"} <= set(kinds)
    assert len(batched) > 100
    assert batched == one_by_one
    for name in ("emitted_from", "no_match", "dead_lettered", "duplicates"):
        assert getattr(tally, name) == getattr(single, name), name


def test_a_wait_for_a_lookup_is_parked_as_of_its_own_change(scenario: Scenario) -> None:
    """The first pass parks a record whose lookup must wait while the lookups still stand at that
    change's position, not at the batch's last one; the records after it emit in the second pass."""
    from eventbus.debezium.record import StagingRecord
    from eventbus.mapping.errors import LookupPending
    from eventbus.service.processor import ParkedRecord

    mappings = load_mapping_set(scenario.write_mappings())
    processor, produced, tally = _processor(mappings)
    topic = scenario.staging_topic
    records = scenario.records(60, seed=7)
    waiting = next(r for r in records[30:] if r.op == "u")

    class WaitsOnOne:
        """A mapping whose lookup waits for one record's related row."""

        def __init__(self, inner: Any) -> None:
            self.inner, self.spec, self.lookups = inner, inner.spec, ()

        def events_of(self, record: Any, lookups: Any = None) -> Any:
            if record.value == waiting.value:
                raise LookupPending("claim", "public.claims")
            return self.inner.events_of(record, lookups)

    class Lookups:
        topics = frozenset({topic})

        def __init__(self) -> None:
            self.position: Any = None
            self.parked: list[tuple[ParkedRecord, Any]] = []

        def at(self, position: Any, ts_ms: int | None, lag_ms: int = 0) -> None:
            self.position = position

        def park(self, record: ParkedRecord) -> None:
            self.parked.append((record, self.position))

        def function(self, mapping: Any) -> Any:
            return None

    lookups = Lookups()
    processor.use_lookups(lookups)
    processor.routes[topic] = tuple((WaitsOnOne(m), counts, lk) for m, counts, lk in processor.routes[topic])
    processor.process([FakeMessage(topic, 0, i, r.key, r.value) for i, r in enumerate(records)], Partitions())

    ((parked, position),) = lookups.parked
    assert parked.value == waiting.value and set(parked.mappings) == {"claim_status_changed", "claim_closed"}
    own = StagingRecord(processor._decoder, waiting.value, waiting.key, topic).position
    assert position == own != lookups.position  # the batch's last change stands elsewhere
    assert tally.parked == 1
    later = [r for r in records[records.index(waiting) + 1 :] if r.op in "cu"]
    assert later and len(produced) >= len(later)  # claim_status_changed emits from each of them


REMOVED_MAPPING = """\
name: claim_removed
version: 1
description: A claim row went away (a delete, or the old key of a primary-key update).
source: {{connector: {source}, table: public.claims}}
on: delete
emit:
  topic: {source}_removed
  key_schema: schemas/key.avsc
  value_schema: schemas/closed.avsc
  key: {{claim_id: before.id}}
  fields:
    claim_id: before.id
    outcome: "'removed'"
"""


def test_an_update_of_the_primary_key_loses_neither_record(scenario: Scenario) -> None:
    """Debezium sends an update of a row's primary key as a delete of the old key and a create of
    the new key, both at the one log record's position. With a mapping on each, the create was taken
    for a re-delivery of the delete (same position) and dropped; a real re-delivery of both is
    still skipped."""
    folder = scenario.write_mappings()
    (folder / "claim_removed.yaml").write_text(REMOVED_MAPPING.format(source=scenario.source))
    processor, produced, tally = _processor(load_mapping_set(folder))
    update = next(r for r in scenario.records(50, seed=6) if r.op == "u")
    document, key = orjson.loads(update.value), orjson.loads(update.key)
    payload = document["payload"]
    old_id, new_id = payload["before"]["id"], payload["before"]["id"] + 10**6

    def record(op: str, before: Any, after: Any, claim_id: int) -> tuple[bytes, bytes]:
        value = {**document, "payload": {**payload, "op": op, "before": before, "after": after}}
        return orjson.dumps({**key, "payload": {"id": claim_id}}), orjson.dumps(value)

    delete = record("d", payload["before"], None, old_id)
    create = record("c", None, {**payload["after"], "id": new_id}, new_id)
    topic = scenario.staging_topic
    states = Partitions()
    first = [FakeMessage(topic, 0, i, k, v) for i, (k, v) in enumerate([delete, create])]
    processor.process(first, states)
    events = sorted((p["topic"], orjson.loads(p["headers"]["ce_subject"])) for p in produced)
    assert events == [(f"{scenario.source}_removed", old_id), (scenario.status_topic, new_id)]
    assert tally.duplicates == 0
    assert states.dirty_offsets()[0].metadata == f"ebw2:{_position(payload)}:1"

    again = [FakeMessage(topic, 0, 2 + i, k, v) for i, (k, v) in enumerate([delete, create])]
    processor.process(again, states)
    assert len(produced) == 2 and tally.duplicates == 2


def _position(payload: dict[str, Any]) -> str:
    source = payload["source"]
    commit = orjson.loads(source["sequence"])[0] if source.get("sequence") else source["lsn"]
    return f"{commit}:{source['lsn']}"


def test_records_larger_than_the_producer_takes_do_not_stop_the_partition(scenario: Scenario) -> None:
    """The producer refuses a record over its message.max.bytes, and a produce error stopped the
    service on every restart: an event that large is its mapping's dead letter, and a dead letter
    that large goes without its value, saying where the record is."""
    mappings = load_mapping_set(scenario.write_mappings())
    processor, produced, tally = _processor(mappings)
    processor.max_record_bytes = 7_000  # the sample's staging values are about 6.5 kB
    insert = next(r for r in scenario.records(50, seed=8) if r.op == "c")
    document = orjson.loads(insert.value)
    document["payload"]["after"]["claim_number"] = "x" * 8_000  # published by claim_status_changed
    big = orjson.dumps(document)
    topic = scenario.staging_topic
    processor.process([FakeMessage(topic, 3, 17, insert.key, big)], Partitions())
    assert [p["topic"] for p in produced] == ["dlq"]
    (dead,) = produced
    reason = dead["headers"][dl.REASON].decode()
    assert dead["headers"][dl.KIND] == b"serialization"
    assert "left out of this dead letter" in reason and f"read it at its origin, {topic}[3]@17" in reason
    assert "more than the producer's message.max.bytes (7000)" in reason
    assert dead["value"] == b"" and dead["key"] == insert.key
    assert tally.dead_lettered == 1 and tally.emitted_from == 0
