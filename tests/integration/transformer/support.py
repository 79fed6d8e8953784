"""Helpers for the transformer's integration tests: staging records, mappings, a real subprocess,
the expected output computed offline by `eventbus mapping run`, and a read_committed Avro reader.

Every test gets its own source name (so its own staging topic, curated topics, group and DLQ).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.serialization import MessageField, SerializationContext

from eventbus.events.avro import curated_deserializer
from eventbus.mapping.avro import load_record_schema, to_avro_json
from eventbus_dev.samples import SampleRecord, generate_records

EVENTBUS = Path(sys.executable).parent / "eventbus"

KEY_SCHEMA = {
    "type": "record",
    "name": "ClaimKey",
    "namespace": "test.claims",
    "fields": [{"name": "claim_id", "type": "long"}],
}
STATUS_SCHEMA = {
    "type": "record",
    "name": "ClaimStatusChanged",
    "namespace": "test.claims",
    "fields": [
        {"name": "claim_id", "type": "long"},
        {"name": "claim_number", "type": "string"},
        {"name": "status", "type": "string"},
        {"name": "previous_status", "type": ["null", "string"], "default": None},
        {
            "name": "amount",
            "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}],
            "default": None,
        },
        {"name": "claimant_name", "type": "string"},
        {"name": "changed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
CLOSED_SCHEMA = {
    "type": "record",
    "name": "ClaimClosed",
    "namespace": "test.claims",
    "fields": [
        {"name": "claim_id", "type": "long"},
        {"name": "outcome", "type": "string"},
        {"name": "date_closed", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
    ],
}

STATUS_MAPPING = """\
name: claim_status_changed
version: {version}
description: Every insert or update of a claim, with its status.
source: {{connector: {source}, table: public.claims}}
on: [insert, update]
emit:
  topic: {topic}
  topic_settings: {{partitions: {partitions}}}
  key_schema: schemas/key.avsc
  value_schema: schemas/status.avsc
  key: {{claim_id: after.id}}
  fields:
    claim_id: after.id
    claim_number: after.claim_number
    status: after.status
    previous_status: before.status
    amount: after.amount
    claimant_name: {claimant_name}
    changed_at: after.updated_at
"""

CLOSED_MAPPING = """\
name: claim_closed
version: 1
description: A claim reached a final status.
source: {{connector: {source}, table: public.claims}}
on: [update]
when: after.status in ['Complete', 'Cancelled'] and changed(after.status)
emit:
  topic: {topic}
  topic_settings: {{partitions: {partitions}}}
  key_schema: schemas/key.avsc
  value_schema: schemas/closed.avsc
  key: {{claim_id: after.id}}
  fields:
    claim_id: after.id
    outcome: after.status
    date_closed: after.date_closed
"""

# The sample table leaves claimant_name null in about 5 % of rows: with the raw column the
# non-null Avro field makes those changes fail (poison); coalesce() is the fix.
POISONOUS = "after.claimant_name"
FIXED = "coalesce(after.claimant_name, 'unknown')"


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass
class Scenario:
    """One test's names and files."""

    root: Path
    source: str = field(default_factory=lambda: unique("src"))

    @property
    def staging_topic(self) -> str:
        return f"staging.{self.source}.public.claims"

    @property
    def status_topic(self) -> str:
        return f"{self.source}_status"

    @property
    def closed_topic(self) -> str:
        return f"{self.source}_closed"

    @property
    def group(self) -> str:
        return f"grp-{self.source}"

    @property
    def dlq_topic(self) -> str:
        return f"staging.dlq.{self.group}"

    @property
    def curated_topics(self) -> list[str]:
        return [self.status_topic, self.closed_topic]

    def write_mappings(
        self, folder: str = "mappings", *, claimant_name: str = FIXED, version: int = 1, partitions: int = 3
    ) -> Path:
        """The two mappings; their curated topics declare `partitions` (the `scenario` fixture's 3)."""
        directory = self.root / folder
        (directory / "schemas").mkdir(parents=True, exist_ok=True)
        (directory / "schemas" / "key.avsc").write_text(json.dumps(KEY_SCHEMA))
        (directory / "schemas" / "status.avsc").write_text(json.dumps(STATUS_SCHEMA))
        (directory / "schemas" / "closed.avsc").write_text(json.dumps(CLOSED_SCHEMA))
        (directory / "status.yaml").write_text(
            STATUS_MAPPING.format(
                source=self.source,
                topic=self.status_topic,
                claimant_name=claimant_name,
                version=version,
                partitions=partitions,
            )
        )
        (directory / "closed.yaml").write_text(
            CLOSED_MAPPING.format(source=self.source, topic=self.closed_topic, partitions=partitions)
        )
        return directory

    def records(self, n: int, *, seed: int = 1) -> list[SampleRecord]:
        return list(generate_records(n, seed=seed, topic_prefix=f"staging.{self.source}", warm_rows=50))


# --- Kafka ---------------------------------------------------------------------------------------


def create_topics(bootstrap: str, topics: dict[str, int], **extra: Any) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **extra})
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()]
    )
    for future in futures.values():
        future.result(timeout=30)


def apply_topics(mappings: Path, env: dict[str, str]) -> str:
    """`eventbus topics apply` with the transformer's settings, as a team runs it before deploying
    (the brokers do not auto-create topics); returns its output."""
    result = subprocess.run(
        [str(EVENTBUS), "topics", "apply", "--mappings", str(mappings)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def produce_records(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]], **extra: Any
) -> None:
    # murmur2 as Kafka Connect's Java producer places keys; idempotence keeps each partition in
    # produce order across retries, as Connect's exactly-once producer does (without it, a retried
    # batch can land behind a later one, and the dedup watermark rightly drops the older changes).
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "enable.idempotence": True,
            **extra,
        }
    )
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(30) == 0


def end_offsets(bootstrap: str, topic: str, **extra: Any) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("probe"), **extra})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        }
    finally:
        consumer.close()


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: Iterable[int], **extra: Any
) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **extra})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)  # polling a condition, not a synchronisation sleep
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_caught_up(bootstrap: str, group: str, topic: str, timeout: float = 60, **extra: Any) -> None:
    """Until the group's committed offsets reach the end of every partition of `topic`."""
    ends = end_offsets(bootstrap, topic, **extra)

    # A freshly started broker answers "not coordinator" / "load in progress" for a while: not yet.
    transient = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                 KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT}  # fmt: skip

    def caught_up() -> bool:
        try:
            committed = committed_offsets(bootstrap, group, topic, ends, **extra)
        except KafkaException as error:
            if error.args[0].code() in transient:
                return False
            raise
        return all(committed.get(p, -1) >= end for p, end in ends.items())

    wait_until(caught_up, timeout, f"group {group} to commit {topic} up to {ends}")


@dataclass
class Curated:
    topic: str
    partition: int
    offset: int
    key: dict[str, Any]
    value: dict[str, Any]
    headers: dict[str, str]

    @property
    def event_id(self) -> str:
        return self.headers["ce_id"]


def read_curated(
    bootstrap: str,
    registry_url: str,
    topic: str,
    schemas_dir: Path,
    value_schema: str,
    timeout: float = 30,
    **extra: Any,
) -> list[Curated]:
    """Every committed record of `topic`, decoded by confluent-kafka's AvroDeserializer (read_committed)."""
    registry = SchemaRegistryClient({"url": registry_url, "timeout": 30})
    key_decoder, value_decoder = curated_deserializer(registry), curated_deserializer(registry)
    key_schema = load_record_schema(schemas_dir / "key.avsc")
    value_record = load_record_schema(schemas_dir / value_schema)
    ends = end_offsets(bootstrap, topic, **extra)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            **extra,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    out: list[Curated] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            positions = {
                tp.partition: tp.offset for tp in consumer.position([TopicPartition(topic, p) for p in ends])
            }
            # librdkafka moves the position past transaction markers, so "at the end" means read all.
            if all(positions.get(p, -1) >= end for p, end in ends.items() if end > 0):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {topic}: positions {positions}, ends {ends}")
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(message.error().str())
            key = key_decoder(message.key(), SerializationContext(topic, MessageField.KEY))
            value = value_decoder(message.value(), SerializationContext(topic, MessageField.VALUE))
            out.append(
                Curated(
                    topic,
                    message.partition(),
                    message.offset(),
                    to_avro_json(key, key_schema),
                    to_avro_json(value, value_record),
                    {k: v.decode() for k, v in message.headers() or []},
                )
            )
    finally:
        consumer.close()
    return out


def read_raw(bootstrap: str, topic: str, timeout: float = 30, **extra: Any) -> list[Any]:
    """Every record of `topic` (read_committed), as confluent-kafka Messages."""
    ends = end_offsets(bootstrap, topic, **extra)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("raw"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            **extra,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            positions = {
                tp.partition: tp.offset for tp in consumer.position([TopicPartition(topic, p) for p in ends])
            }
            if all(positions.get(p, -1) >= end for p, end in ends.items() if end > 0):
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {topic}: positions {positions}, ends {ends}")
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                out.append(message)
    finally:
        consumer.close()


# --- offline expectation -------------------------------------------------------------------------


def expected_offline(
    mapping: Path, records: Iterable[SampleRecord], work: Path
) -> tuple[list[dict], list[dict]]:
    """(events, dead letters) of `eventbus mapping run` over the records, as the acceptance asks."""
    lines = work / f"{mapping.stem}.input.jsonl"
    with lines.open("wb") as handle:
        for record in records:
            handle.write(
                orjson.dumps(
                    {
                        "topic": record.topic,
                        "key": orjson.loads(record.key),
                        "value": orjson.loads(record.value),
                    }
                )
                + b"\n"
            )
    output, dead = work / f"{mapping.stem}.out.jsonl", work / f"{mapping.stem}.dead.jsonl"
    result = subprocess.run(
        [
            str(EVENTBUS),
            "mapping",
            "run",
            "--mapping",
            str(mapping),
            "--input",
            str(lines),
            "--output",
            str(output),
            "--dead-letter",
            str(dead),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # 1: some change was dead-lettered (the test decides whether that is expected); 2: no run
    assert result.returncode in (0, 1), result.stderr
    events = [orjson.loads(line) for line in output.read_text().splitlines() if line.strip()]
    dead_letters = [orjson.loads(line) for line in dead.read_text().splitlines() if line.strip()]
    assert bool(dead_letters) == (result.returncode == 1), result.stderr
    return events, dead_letters


# --- the service as a real process ---------------------------------------------------------------


class TransformerProcess:
    """`eventbus transformer run` in a subprocess (so kill -9 is real), JSON logs to a file.

    Every instance is remembered until it has exited, so a test that fails half-way does not leave
    its transformer running into the next test (`kill_leftover_transformers`, an autouse fixture).
    """

    live: ClassVar[list[TransformerProcess]] = []

    def __init__(self, mappings: Path, log_file: Path, env: dict[str, str], command: str = "run") -> None:
        self.log_file = log_file
        self.handle = log_file.open("ab")
        self.process = subprocess.Popen(
            [str(EVENTBUS), "transformer", command, "--mappings", str(mappings)],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        self.http_port: int | None = None
        TransformerProcess.live.append(self)

    @classmethod
    def kill_leftovers(cls) -> int:
        """SIGKILL every instance still running; returns how many there were."""
        leftovers = [t for t in cls.live if t.process.poll() is None]
        for transformer in leftovers:
            transformer.kill9()
        cls.live.clear()
        return len(leftovers)

    def logs(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return entries

    def wait_ready(self, timeout: float = 60) -> TransformerProcess:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"transformer exited {self.process.returncode}:\n{self.log_file.read_text()}"
                )
            if self.http_port is None:
                starting = [e for e in self.logs() if e.get("msg") == "transformer starting"]
                if not starting:
                    return False
                self.http_port = starting[-1]["http_port"]
            try:
                return httpx.get(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, "the transformer to be ready")
        return self

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.handle.close()

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self.handle.close()
        return code

    def final_accounting(self) -> dict[str, Any]:
        stopped = [e for e in self.logs() if e.get("msg") == "transformer stopped"]
        assert stopped, f"no final log line in {self.log_file}"
        return stopped[-1]["accounting"]


def service_env(stack: Any, scenario: Scenario, **overrides: str) -> dict[str, str]:
    env = {
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "EVENTBUS_REGISTRY__URL": stack.registry_url,
        "EVENTBUS_GROUP_ID": scenario.group,
        "EVENTBUS_INSTANCE_ID": "a",
        "EVENTBUS_HTTP__PORT": "0",
        "EVENTBUS_HTTP__HOST": "127.0.0.1",
        # Short so a rebalance or a killed instance does not hold partitions for long in tests.
        "EVENTBUS_KAFKA__CONSUMER": json.dumps({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}),
    }
    env.update(overrides)
    return env


# --- comparing with the offline run ----------------------------------------------------------------


def assert_matches_offline(curated: list[Curated], expected: list[dict[str, Any]]) -> None:
    """Same events by id and by content, same headers, and per key the offline order."""
    ids = [event.event_id for event in curated]
    duplicates = {i for i in ids if ids.count(i) > 1} if len(set(ids)) != len(ids) else set()
    assert not duplicates, f"{len(duplicates)} event id(s) published more than once"
    want = {e["headers"]["ce_id"]: e for e in expected}
    missing = want.keys() - set(ids)
    extra = set(ids) - want.keys()
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} unexpected event(s)"
    content = sorted(orjson.dumps([e.topic, e.key, e.value], option=orjson.OPT_SORT_KEYS) for e in curated)
    wanted = sorted(
        orjson.dumps([e["topic"], e["key"], e["value"]], option=orjson.OPT_SORT_KEYS) for e in expected
    )
    assert content == wanted, "event contents differ from `eventbus mapping run`"
    for event in curated:
        reference = want[event.event_id]
        assert (event.topic, event.key, event.value) == (
            reference["topic"],
            reference["key"],
            reference["value"],
        )
        for name, value in reference["headers"].items():
            assert event.headers.get(name) == value, f"header {name}"
        assert event.headers["content-type"] == "application/avro"
    # Per key: the order of the curated topic's partition is the order of the source changes.
    order_expected: dict[str, list[str]] = {}
    for e in expected:
        order_expected.setdefault(orjson.dumps(e["key"]).decode(), []).append(e["headers"]["ce_id"])
    order_actual: dict[str, list[str]] = {}
    for event in sorted(curated, key=lambda c: (c.partition, c.offset)):
        order_actual.setdefault(orjson.dumps(event.key).decode(), []).append(event.event_id)
    assert order_actual == order_expected, "per-key order differs"
