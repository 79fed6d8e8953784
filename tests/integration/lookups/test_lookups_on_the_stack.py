"""Lookups through the real PostgreSQL → Debezium → Kafka → transformer, in adversarial orders.

A `shipments` row looks up its `orders` row (no foreign key: the order may be committed after the
shipment). Each scenario is its own transaction or a deliberate interleaving; the expected event of
every shipment is worked out here from the scenario alone, not by running the mapping. Then:
- the transformer is killed (SIGKILL) while a shipment is parked, and its row arrives afterwards:
  the shipment's event appears exactly once;
- a second transformer (new group, empty disk) started after everything was written gives the same
  events as the first, and as `eventbus mapping run` over the recorded staging records.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from eventbus.mapping.compiler import compile_mapping
from eventbus.mapping.spec import load_mapping
from eventbus.mapping.testing import run_records
from eventbus_dev.demo.watch import CuratedEventReader, ReceivedEvent
from eventbus_dev.stack.process import ManagedProcess
from tests.support.dashboard import missing_from
from tests.support.stack import REPO, StackEndpoints, drop_database

pytestmark = pytest.mark.stack

WAIT_S = 6  # the mapping's wait, in source time

MAPPING = """\
name: shipment_sent
version: 1
description: A shipment left the warehouse, with its order's customer and tier as of the shipment.
source: {{connector: {source}, table: public.shipments}}
on: insert
lookup:
  order:
    table: public.orders
    key: {{order_id: after.order_id}}
    wait: {wait}s
    on_missing: dead_letter
emit:
  topic: {topic}
  key_schema: schemas/key.avsc
  value_schema: schemas/value.avsc
  key:
    shipment_id: after.shipment_id
  fields:
    shipment_id: after.shipment_id
    order_id: after.order_id
    customer: order.customer
    tier: order.tier
"""
KEY_SCHEMA = {"type": "record", "name": "ShipmentKey", "namespace": "test.lookups",
              "fields": [{"name": "shipment_id", "type": "long"}]}  # fmt: skip
VALUE_SCHEMA = {
    "type": "record", "name": "ShipmentSent", "namespace": "test.lookups",
    "fields": [{"name": "shipment_id", "type": "long"}, {"name": "order_id", "type": "long"},
               {"name": "customer", "type": "string"}, {"name": "tier", "type": "string"}],
}  # fmt: skip


@dataclass
class Pipeline:
    source: str
    database: str
    mappings: Path
    topic: str
    dlq: str
    env: dict[str, str]
    stack: StackEndpoints
    home: Path
    # Every transformer `_start` ran: killed when the pipeline closes, so a failed test leaves none
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def staging(self) -> list[str]:
        return [f"staging.{self.source}.public.orders", f"staging.{self.source}.public.shipments"]

    def sql(self, *statements: str) -> None:
        """One transaction."""
        with psycopg.connect(self.stack.libpq_dsn(self.database)) as conn:
            for statement in statements:
                conn.execute(statement)


def _eventbus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventbus.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, check=False)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _first_records(stack: StackEndpoints, topics: list[str]) -> dict[str, dict[str, object]]:
    """The first record of each topic as {"key": ..., "value": ...} documents."""
    consumer = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
    consumer.subscribe(topics)
    found: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + 60
    try:
        while len(found) < len(topics) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() or message.topic() in found:
                continue
            found[message.topic()] = {
                "key": orjson.loads(message.key()),
                "value": orjson.loads(message.value()),
            }
    finally:
        consumer.close()
    assert len(found) == len(topics), f"no record on {set(topics) - set(found)}"
    return found


@pytest.fixture
def pipeline(stack: StackEndpoints, tmp_path: Path) -> Iterator[Pipeline]:
    suffix = uuid.uuid4().hex[:8]
    source, database = f"lk{suffix}", f"lk_{suffix}"
    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        admin.execute(f'create database "{database}"')
    with psycopg.connect(stack.libpq_dsn(database), autocommit=True) as conn:
        conn.execute(
            "create table orders (order_id bigint primary key, customer text not null, tier text not null)"
        )
        conn.execute("create table shipments (shipment_id bigint primary key, order_id bigint not null)")
        # Written before registration: snapshot reads the lookups must see as "before everything".
        conn.execute("insert into orders values (1, 'ada', 'gold')")
    connectors = tmp_path / "connectors"
    connectors.mkdir()
    (connectors / f"{source}.yaml").write_text(
        f"description: lookup test\ndatabase: {{host: 127.0.0.1, port: {stack.postgres_port}, "
        f"dbname: {database}, user: {stack.postgres_user}, password: {{env: LOOKUP_DB_PASSWORD}}}}\n"
        "tables: [public.orders, public.shipments]\nsnapshot_mode: initial\n"
        "staging_topics: {partitions: 2, retention: 7d}\nheartbeat: {interval: 1s}\n"
    )
    mappings = tmp_path / "mappings"
    (mappings / "schemas").mkdir(parents=True)
    (mappings / "tables").mkdir()
    topic = f"shipment_sent_{suffix}"
    (mappings / "shipment_sent.yaml").write_text(MAPPING.format(source=source, topic=topic, wait=WAIT_S))
    (mappings / "schemas" / "key.avsc").write_text(json.dumps(KEY_SCHEMA))
    (mappings / "schemas" / "value.avsc").write_text(json.dumps(VALUE_SCHEMA))
    env = {
        **os.environ,
        "LOOKUP_DB_PASSWORD": stack.postgres_password,
        "EVENTBUS_CONNECT_URL": stack.connect_url,
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap_servers,
    }
    # Registration reads the mappings' shape only; `mapping validate` needs the tables' captured
    # schemas, taken from their first staging records below (what a mapping author does).
    registered = _eventbus("source", "register", str(connectors / f"{source}.yaml"), "--mappings-dir",
                           str(mappings), env=env)  # fmt: skip
    pipe: Pipeline | None = None
    try:
        assert registered.returncode == 0, registered.stdout + registered.stderr
        pipe = Pipeline(source, database, mappings, topic, f"staging.dlq.lk-{source}", env, stack, tmp_path)
        pipe.sql("insert into shipments values (0, 1)")  # a first shipment: its schema, and an event
        first = _first_records(stack, pipe.staging)
        for staging, table in zip(pipe.staging, ("public.orders", "public.shipments"), strict=True):
            (mappings / "tables" / f"{table}.json").write_text(json.dumps(first[staging]["value"]["schema"]))
            (mappings / "tables" / f"{table}.key.json").write_text(
                json.dumps(first[staging]["key"]["schema"])
            )
        checked = _eventbus("mapping", "validate", str(mappings), env=env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        yield pipe
    finally:
        for process in pipe.processes if pipe is not None else ():
            process.kill()
        _eventbus("source", "remove", str(connectors / f"{source}.yaml"), "--drop-slot", "--yes", env=env)
        drop_database(stack, database)


def _start(pipe: Pipeline, name: str, group: str) -> tuple[ManagedProcess, int]:
    home = pipe.home / name
    home.mkdir(exist_ok=True)
    port = _free_port()
    config = home / "config.yaml"
    config.write_text(
        f"group_id: {group}\ninstance_id: {name}\ndead_letter_topic: {pipe.dlq}\n"
        f"state_dir: {home / 'state'}\ncommit_interval_ms: 100\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        f"kafka: {{bootstrap_servers: '{pipe.stack.bootstrap_servers}'}}\n"
        f"registry: {{url: '{pipe.stack.registry_url}'}}\n"
    )
    # The curated, dead-letter and parked-changes topics first: the broker creates none by itself.
    applied = _eventbus("topics", "apply", "--mappings", str(pipe.mappings), "--config", str(config),
                        env=dict(os.environ))  # fmt: skip
    assert applied.returncode == 0, applied.stdout + applied.stderr
    process = ManagedProcess(name, home / "pid", home / f"log.{time.monotonic_ns()}", marker=str(home))
    pipe.processes.append(process)
    command = [sys.executable, "-m", "eventbus.cli", "transformer", "run"]
    process.start([*command, "--mappings", str(pipe.mappings), "--config", str(config)], cwd=home)
    deadline = time.monotonic() + 90
    while True:
        assert process.is_running(), f"transformer exited:\n{process.tail(40)}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"transformer not ready:\n{process.tail(40)}"
        time.sleep(0.3)


def _metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _until(condition: object, timeout: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what() if callable(what) else what}"
        time.sleep(0.2)


def _dead_letters(pipe: Pipeline) -> list[dict[str, str]]:
    consumer = Consumer({"bootstrap.servers": pipe.stack.bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
    found = []
    try:
        metadata = consumer.list_topics(pipe.dlq, timeout=10).topics.get(pipe.dlq)
        if metadata is None or metadata.error is not None:
            return []
        consumer.assign([TopicPartition(pipe.dlq, p, 0) for p in metadata.partitions])
        idle_until = time.monotonic() + 3
        while time.monotonic() < idle_until:
            for message in consumer.consume(100, timeout=0.5):
                if message.error() is None:
                    found.append({k: (v or b"").decode() for k, v in message.headers() or []}
                                 | {"value": message.value().decode()})  # fmt: skip
                    idle_until = time.monotonic() + 2
    finally:
        consumer.close()
    return found


def _by_shipment(events: list[ReceivedEvent]) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = {}
    for event in events:
        out.setdefault(event.value["shipment_id"], []).append((event.value["customer"], event.value["tier"]))
    return out


def test_lookups_are_as_of_the_commit_wait_survive_kill_and_restore_from_empty_disk(
    pipeline: Pipeline,
) -> None:
    pipe = pipeline
    group = f"lk-{pipe.source}"
    first, port = _start(pipe, "one", group)
    expected: dict[int, tuple[str, str]] = {0: ("ada", "gold")}  # shipment 0 of the snapshot-read order
    dead: set[int] = set()

    # An order committed in an earlier transaction; the shipment later.
    pipe.sql("insert into orders values (2, 'bo', 'silver')")
    pipe.sql("insert into shipments values (2, 2)")
    expected[2] = ("bo", "silver")
    # Order and shipment in the same transaction, the shipment first.
    pipe.sql("insert into shipments values (3, 3)", "insert into orders values (3, 'cy', 'bronze')")
    expected[3] = ("cy", "bronze")
    # The order is updated right after the shipment: the event keeps the old tier.
    pipe.sql("insert into shipments values (4, 2)")
    pipe.sql("update orders set tier = 'platinum' where order_id = 2")
    expected[4] = ("bo", "silver")
    pipe.sql("insert into shipments values (5, 2)")
    expected[5] = ("bo", "platinum")
    # Updated in the shipment's own transaction, after the shipment row: as the transaction left it.
    pipe.sql(
        "insert into shipments values (6, 1)",
        "update orders set customer = 'ada lovelace' where order_id = 1",
    )
    expected[6] = ("ada lovelace", "gold")
    # The order was deleted before the shipment: missing, dead-lettered (on_missing).
    pipe.sql("insert into orders values (7, 'dee', 'gold')")
    pipe.sql("delete from orders where order_id = 7")
    pipe.sql("insert into shipments values (7, 7)")
    dead.add(7)
    # Interleaved: the shipment's transaction begins first and commits after the order's.
    with psycopg.connect(pipe.stack.libpq_dsn(pipe.database)) as slow:
        slow.execute("insert into shipments values (8, 8)")
        pipe.sql("insert into orders values (8, 'eve', 'gold')")
        slow.commit()
    expected[8] = ("eve", "gold")
    # The shipment commits first; its order comes in a later transaction, within the wait.
    pipe.sql("insert into shipments values (9, 9)")
    _until(lambda: _metric(port, "eventbus_lookup_parked_changes") >= 1, 30, "shipment 9 to be parked")
    pipe.sql("insert into orders values (9, 'fay', 'silver')")
    expected[9] = ("fay", "silver")
    # The order never comes: the source (its heartbeats, the orders table idle) passes the wait.
    pipe.sql("insert into shipments values (10, 10)")
    dead.add(10)

    reader = CuratedEventReader(pipe.stack.bootstrap_servers, pipe.stack.registry_url, [pipe.topic])
    with reader:
        events = reader.read(until=lambda got: len(got) >= len(expected), timeout=90)
        _until(lambda: _metric(port, "eventbus_lookup_parked_changes") == 0, 60, "no parked change")

        # A shipment waits while the transformer is killed; its order arrives while it is down.
        pipe.sql("insert into shipments values (11, 11)")
        _until(lambda: _metric(port, "eventbus_lookup_parked_changes") >= 1, 30, "shipment 11 to be parked")
        # Per-source freshness has a series once a change of the source was consumed: this instance
        # consumed them all so far; the one started below may consume none (its work is parked).
        first_exposition = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        first.kill()
        pipe.sql("insert into orders values (11, 'gus', 'gold')")
        expected[11] = ("gus", "gold")
        again, port = _start(pipe, "one", group)
        events += reader.read(until=lambda got: len(got) >= 1, timeout=90)
        events += reader.read(until=lambda _got: False, timeout=3)  # anything extra would show now
        hits = _metric(port, "eventbus_lookup_waited") + _metric(port, "eventbus_lookup_hits")
        # Every metric the Grafana dashboard (deploy/grafana) queries is on a running /metrics.
        unexposed = missing_from(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        unexposed &= missing_from(first_exposition)
        again.stop(timeout=30)
    assert unexposed == set(), f"the dashboard queries metrics the transformer does not expose: {unexposed}"
    assert hits >= 1
    assert _by_shipment(events) == {shipment: [value] for shipment, value in expected.items()}
    ids = [e.headers["ce_id"] for e in events]
    assert len(ids) == len(set(ids))
    reasons = {int(json.loads(d["value"])["payload"]["after"]["shipment_id"]): d["eventbus_dlq_reason"]
               for d in _dead_letters(pipe)}  # fmt: skip
    assert set(reasons) == dead
    assert all("lookup order: no row of public.orders" in reason for reason in reasons.values())

    # The looked-up table's staging topic keeps every order's latest version.
    admin = AdminClient({"bootstrap.servers": pipe.stack.bootstrap_servers})
    resource = ConfigResource(ResourceType.TOPIC, pipe.staging[0])
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["cleanup.policy"].value == "compact"

    # A new deployment (new group, empty disk) long after the orders were written: same events.
    fresh, _ = _start(pipe, "fresh", f"{group}-fresh")
    try:
        with CuratedEventReader(
            pipe.stack.bootstrap_servers, pipe.stack.registry_url, [pipe.topic]
        ) as again_reader:
            replayed = again_reader.read(until=lambda got: len(got) >= 2 * len(expected), timeout=120)
            replayed += again_reader.read(until=lambda _got: False, timeout=3)
    finally:
        fresh.stop(timeout=30)
    doubled = _by_shipment(replayed)
    assert doubled == {shipment: [value, value] for shipment, value in expected.items()}
    assert {e.headers["ce_id"] for e in replayed} == set(ids)  # same ids: deterministic on replay

    # What the ordering rests on (debezium/positions.py), as Debezium really writes it: the first
    # element of source.sequence is shared by one transaction's changes and grows from one committed
    # transaction to the next, also when transactions interleave.
    records = _all_records(pipe)
    first_of = _sequence_heads(records)
    assert first_of[("shipments", 3)] == first_of[("orders", 3)]  # one transaction
    assert first_of[("shipments", 8)] > first_of[("orders", 8)]  # began first, committed last
    assert first_of[("orders", 9)] > first_of[("shipments", 9)]  # a later transaction
    print("sequence heads:", sorted(first_of.items(), key=lambda item: item[1]))

    # And the same as the offline run over the recorded staging records of both tables.
    compiled = compile_mapping(load_mapping(pipe.mappings / "shipment_sent.yaml"))
    outcome = run_records(compiled, records)
    offline = {
        e["value"]["shipment_id"]: (e["value"]["customer"], e["value"]["tier"]) for e in outcome.events
    }
    assert offline == expected
    assert {e["headers"]["ce_id"] for e in outcome.events} == set(ids)
    assert {
        orjson.loads(d["record"])["value"]["payload"]["after"]["shipment_id"] for d in outcome.dead_letters
    } == dead


def _sequence_heads(records: list[bytes]) -> dict[tuple[str, int], int]:
    """(table, row id) → the first element of source.sequence of its first streamed insert."""
    heads: dict[tuple[str, int], int] = {}
    for line in records:
        payload = orjson.loads(line)["value"]["payload"]
        source = payload["source"]
        if payload["op"] != "c" or source["snapshot"] not in (None, "false"):
            continue
        row = payload["after"]
        key = (source["table"], row.get("shipment_id", row.get("order_id")))
        heads.setdefault(key, int(json.loads(source["sequence"])[0] or 0))
    return heads


def _all_records(pipe: Pipeline) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": pipe.stack.bootstrap_servers, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
    consumer.subscribe(pipe.staging)
    lines: list[bytes] = []
    idle_until = time.monotonic() + 5
    try:
        while time.monotonic() < idle_until:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None and message.value() is not None:
                    lines.append(orjson.dumps({"topic": message.topic(), "key": orjson.loads(message.key()),
                                               "value": orjson.loads(message.value())}))  # fmt: skip
                    idle_until = time.monotonic() + 3
    finally:
        consumer.close()
    return lines


def test_two_instances_in_one_group_and_one_killed_with_parked_changes_give_the_offline_events(
    pipeline: Pipeline,
) -> None:
    pipe = pipeline
    group = f"lk-{pipe.source}-pair"
    a, port_a = _start(pipe, "a", group)
    b, port_b = _start(pipe, "b", group)
    # The group has rebalanced once `b` has its partition (and `a` the other).
    _until(
        lambda: "partitions assigned" in b.tail(50), 120, lambda: f"b's assignment; its log:\n{b.tail(30)}"
    )
    expected: dict[int, tuple[str, str]] = {0: ("ada", "gold")}
    for number in range(100, 120):  # orders first, then their shipments: plain hits on both instances
        pipe.sql(f"insert into orders values ({number}, 'c{number}', 'gold')")
        pipe.sql(f"insert into shipments values ({number}, {number})")
        expected[number] = (f"c{number}", "gold")
    # Both instances own a partition of the shipments once each has consumed a shipment.
    for port in (port_a, port_b):
        _until(lambda port=port: _metric(port, 'eventbus_records_total{outcome="consumed"}') > 0, 180,
               lambda: f"both instances to consume; b's log:\n{b.tail(30)}")  # fmt: skip
    waiting = list(range(200, 208))  # shipments whose orders come later: parked on both partitions
    for number in waiting:
        pipe.sql(f"insert into shipments values ({number}, {number})")
        expected[number] = (f"late{number}", "silver")

    def parked() -> float:
        return _metric(port_a, "eventbus_lookup_parked_changes") + _metric(
            port_b, "eventbus_lookup_parked_changes"
        )

    _until(lambda: parked() == len(waiting), 60, "every late shipment to be parked")
    assert (
        _metric(port_a, "eventbus_lookup_parked_changes")
        > 0
        < _metric(port_b, "eventbus_lookup_parked_changes")
    )
    b.kill()  # its parked changes must be taken over by `a` (after the group notices)
    for number in waiting:
        pipe.sql(f"insert into orders values ({number}, 'late{number}', 'silver')")
    with CuratedEventReader(pipe.stack.bootstrap_servers, pipe.stack.registry_url, [pipe.topic]) as reader:
        events = reader.read(until=lambda got: len(got) >= len(expected), timeout=120)
        events += reader.read(until=lambda _got: False, timeout=3)
    a.stop(timeout=30)
    assert _by_shipment(events) == {shipment: [value] for shipment, value in expected.items()}
    compiled = compile_mapping(load_mapping(pipe.mappings / "shipment_sent.yaml"))
    offline = run_records(compiled, _all_records(pipe))
    assert {e["headers"]["ce_id"] for e in offline.events} == {e.headers["ce_id"] for e in events}


def _order_versions(pipe: Pipeline, order_id: int) -> list[str]:
    """The tiers of one order's records still on the orders staging topic, oldest first."""
    tiers = []
    for line in _all_records(pipe):
        record = orjson.loads(line)
        if record["topic"] == pipe.staging[0] and record["key"]["payload"]["order_id"] == order_id:
            after = record["value"]["payload"]["after"]
            tiers.append(after["tier"] if after else "deleted")
    return tiers


def test_a_new_deployment_finds_rows_whose_earlier_records_were_compacted_away(pipeline: Pipeline) -> None:
    """Weeks later: an order's insert and most of its updates are gone from the staging topic (the
    log cleaner kept its latest version only); a transformer with an empty disk, started then, finds
    the order as it is."""
    pipe = pipeline
    for tier in ("bronze", "silver", "gold"):  # one order, three versions, three transactions
        verb = "insert into orders values (30, 'ivy', 'bronze')" if tier == "bronze" else (
            f"update orders set tier = '{tier}' where order_id = 30")  # fmt: skip
        pipe.sql(verb)
    _until(lambda: _order_versions(pipe, 30) == ["bronze", "silver", "gold"], 60, "the order's records")
    # Time travel for the log cleaner: `source register` keeps every record for the retention
    # (min.compaction.lag.ms); set as if that time had passed, with small segments to clean.
    admin = AdminClient({"bootstrap.servers": pipe.stack.bootstrap_servers})
    resource = ConfigResource(ResourceType.TOPIC, pipe.staging[0], incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in (("min.compaction.lag.ms", "0"), ("segment.ms", "500"),
                            ("min.cleanable.dirty.ratio", "0.01"))
    ])  # fmt: skip
    admin.incremental_alter_configs([resource])[resource].result(30)
    time.sleep(1.5)
    # New records roll the segments holding the order's versions (the active one is never cleaned).
    for number in range(40, 52):
        pipe.sql(f"insert into orders values ({number}, 'roll{number}', 'gold')")
    _until(lambda: _order_versions(pipe, 30) == ["gold"], 180, lambda: (
        f"the log cleaner to drop the order's old versions: {_order_versions(pipe, 30)}"))  # fmt: skip

    fresh, port = _start(pipe, "weeks-later", f"lk-{pipe.source}-weeks-later")
    try:
        pipe.sql("insert into shipments values (30, 30)")
        reader = CuratedEventReader(pipe.stack.bootstrap_servers, pipe.stack.registry_url, [pipe.topic])
        with reader:
            events = reader.read(until=lambda got: len(got) >= 2, timeout=120)
            events += reader.read(until=lambda _got: False, timeout=3)
        hits = _metric(port, "eventbus_lookup_hits")
    finally:
        fresh.stop(timeout=30)
    # Shipment 0 (the fixture's, of the snapshot-read order 1) and the new one, as the order is now.
    assert _by_shipment(events) == {0: [("ada", "gold")], 30: [("ivy", "gold")]}
    assert hits >= 2
    assert _dead_letters(pipe) == []
