"""End to end on the real stack: the three steps of a producing team with the sample claims domain.

A scripted story of changes in PostgreSQL must yield exactly the expected curated events on each
curated topic (field by field, with keys, headers and per-key order), read by a plain consumer with
`AvroDeserializer` and `read_committed`. Rows that existed before registration (snapshot reads)
yield nothing; an update touching only `updated_at` yields nothing; a delete yields what the mapping
says. Event ids equal those `eventbus mapping run` computes offline from the same staging records.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from confluent_kafka import Consumer

from eventbus.mapping.compiler import compile_mapping
from eventbus.mapping.spec import load_mapping
from eventbus.mapping.testing import run_records
from eventbus_dev.demo.traffic import create_schema, make_engine, seed
from eventbus_dev.demo.watch import CuratedEventReader, ReceivedEvent
from eventbus_dev.stack.process import ManagedProcess
from tests.support.stack import REPO, StackEndpoints, drop_database

pytestmark = pytest.mark.stack

MAPPINGS = (
    "claim_milestone_reached",
    "decision_letter_available",
    "contention_classified",
    "claim_withdrawn",
)


@dataclass(frozen=True)
class Pipeline:
    source: str
    database: str
    mappings_dir: Path
    topics: dict[str, str]  # mapping name → its curated topic in this test
    staging_claims: str
    staging_contentions: str
    staging_lifecycle: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _eventbus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventbus.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )


@pytest.fixture
def pipeline(stack: StackEndpoints, tmp_path: Path) -> Iterator[Pipeline]:
    suffix = uuid.uuid4().hex[:8]
    source, database = f"e2e{suffix}", f"e2e_{suffix}"

    # The database, with rows that predate the connector.
    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        admin.execute(f'create database "{database}"')
    engine = make_engine(stack.postgres_dsn(database))
    create_schema(engine)
    seed(engine, claims=5)
    engine.dispose()

    # Step 1: the source definition (the sample's, pointed at this database).
    definition = (REPO / "connectors" / "claims.yaml").read_text()
    definition = definition.replace("dbname: claims", f"dbname: {database}")
    definition = definition.replace("port: 15432", f"port: {stack.postgres_port}")
    definition = definition.replace("partitions: 3", "partitions: 2")
    connectors = tmp_path / "connectors"
    connectors.mkdir()
    (connectors / f"{source}.yaml").write_text(definition)

    # Step 2: the sample mappings, reading this source and writing test-private curated topics.
    mappings = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings" / "claims", mappings, ignore=shutil.ignore_patterns("tests"))
    topics = {}
    for name in MAPPINGS:
        path = mappings / f"{name}.yaml"
        text = path.read_text().replace("connector: claims", f"connector: {source}")
        topics[name] = f"{name}_{suffix}"
        text = re.sub(rf"^  topic: {name}$", f"  topic: {topics[name]}", text, flags=re.M)
        path.write_text(text)

    env = {
        **dict(__import__("os").environ),
        "CLAIMS_DB_PASSWORD": stack.postgres_password,
        "EVENTBUS_CONNECT_URL": stack.connect_url,
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap_servers,
    }
    registered = _eventbus(
        "source", "register", str(connectors / f"{source}.yaml"), "--mappings-dir", str(mappings), env=env
    )
    assert registered.returncode == 0, registered.stdout + registered.stderr
    try:
        yield Pipeline(
            source=source,
            database=database,
            mappings_dir=mappings,
            topics=topics,
            staging_claims=f"staging.{source}.public.claims",
            staging_contentions=f"staging.{source}.public.contentions",
            staging_lifecycle=f"staging.{source}.public.claim_lifecycle_status",
        )
    finally:
        _eventbus("source", "remove", str(connectors / f"{source}.yaml"), "--drop-slot", "--yes", env=env)
        drop_database(stack, database)


@pytest.fixture
def transformer(stack: StackEndpoints, pipeline: Pipeline, tmp_path: Path) -> Iterator[ManagedProcess]:
    """Step 3: deploy the transformer (a real process, as in production)."""
    home = tmp_path / "transformer"
    home.mkdir()
    port = _free_port()
    config = home / "config.yaml"
    config.write_text(
        f"group_id: e2e-{pipeline.source}\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        f"kafka: {{bootstrap_servers: '{stack.bootstrap_servers}'}}\n"
        f"registry: {{url: '{stack.registry_url}'}}\n"
    )
    # The curated and dead-letter topics first: the broker, like the bus, creates none by itself.
    applied = _eventbus("topics", "apply", "--mappings", str(pipeline.mappings_dir), "--config", str(config))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    process = ManagedProcess("transformer", home / "pid", home / "log", marker=str(home))
    process.start(
        [sys.executable, "-m", "eventbus.cli", "transformer", "run", "--mappings", str(pipeline.mappings_dir),
         "--config", str(config)],
        cwd=home,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        assert process.is_running(), f"transformer exited:\n{process.tail(40)}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"transformer not ready:\n{process.tail(40)}"
        time.sleep(0.3)
    yield process
    process.stop(timeout=30)


LIFECYCLE_ROW = (
    "insert into public.claim_lifecycle_status (claim_id, status, changed_at, station_code) "
    "values ({claim}, '{status}', '{at}', {station})"
)
STORY: list[str | tuple[str, ...]] = [
    # Each entry is one transaction (a tuple: several statements), like the claims application. A
    # claim's status rows are written in the orders that make lookups hard: with the claim, after it,
    # and with the claim updated right after.
    (
        "insert into public.claims (claim_id, claim_type_code, benefit_type, status, status_changed_at, "
        "claimant_participant_id, veteran_participant_id, station_code, amount_claimed, date_filed) "
        "overriding system value values (9001, '010', 'compensation', 'RECEIVED', '2026-03-02 08:00:00.5', "
        "600100200, 600100200, '317', 2500.00, '2026-03-02')",
        LIFECYCLE_ROW.format(claim=9001, status="RECEIVED", at="2026-03-02 08:00:00.5", station="'317'"),
    ),
    # Only the bookkeeping column moves: nobody's business.
    "update public.claims set updated_at = now() where claim_id = 9001",
    "update public.claims set status = 'UNDER_REVIEW', status_changed_at = '2026-03-03 09:00:00' "
    "where claim_id = 9001",
    "insert into public.contentions (contention_id, claim_id, description, medical, created_at) "
    "overriding system value values (901, 9001, 'ringing in ears', true, '2026-03-03 09:05:00')",
    "update public.contentions set classification_code = 8935, classification_name = 'Tinnitus', "
    "updated_at = '2026-03-04 10:00:00+00' where contention_id = 901",
    "update public.claims set status = 'GATHERING_EVIDENCE', status_changed_at = '2026-03-05 11:00:00' "
    "where claim_id = 9001",
    "update public.claims set status = 'DECISION_MADE', status_changed_at = '2026-04-01 12:00:00' "
    "where claim_id = 9001",
    (
        "update public.claims set status = 'AUTHORIZED', status_changed_at = '2026-04-02 13:30:00.25' "
        "where claim_id = 9001",
        LIFECYCLE_ROW.format(claim=9001, status="AUTHORIZED", at="2026-04-02 13:30:00.25", station="null"),
    ),
    # The claim moves station right after: the letter names the station as of the status row.
    "update public.claims set station_code = '999' where claim_id = 9001",
    "update public.claims set status = 'CLOSED', status_changed_at = '2026-04-03 00:00:00', "
    "date_closed = '2026-04-03' where claim_id = 9001",
    # A dependant's claim, withdrawn before review.
    "insert into public.claims (claim_id, claim_type_code, benefit_type, status, status_changed_at, "
    "claimant_participant_id, veteran_participant_id, station_code, amount_claimed, date_filed) "
    "overriding system value values (9002, '400', 'dependency', 'RECEIVED', '2026-03-10 10:00:00', "
    "700000009, 600100200, '301', -12.75, '2026-03-10')",
    "delete from public.claims where claim_id = 9002",
    # A Veteran's supplemental claim continued at authorization; its status row comes in a later
    # transaction than the claim's update.
    "insert into public.claims (claim_id, claim_type_code, benefit_type, status, status_changed_at, "
    "claimant_participant_id, veteran_participant_id, station_code, amount_claimed, date_filed) "
    "overriding system value values (9003, '020', 'pension', 'DECISION_MADE', '2026-05-01 09:00:00', "
    "600100200, 600100200, '343', 10.00, '2026-05-01')",
    "update public.claims set status = 'CONTINUED_AT_AUTHORIZATION', "
    "status_changed_at = '2026-05-02 10:00:00' where claim_id = 9003",
    LIFECYCLE_ROW.format(
        claim=9003, status="CONTINUED_AT_AUTHORIZATION", at="2026-05-02 10:00:00", station="'301'"
    ),
    # A claim's key corrected: Debezium sends a delete of the old key and a create of the new one, at
    # one position; both are changes with events (neither may be taken for a copy of the other).
    "insert into public.claims (claim_id, claim_type_code, benefit_type, status, status_changed_at, "
    "claimant_participant_id, veteran_participant_id, station_code, amount_claimed, date_filed) "
    "overriding system value values (9004, '010', 'compensation', 'RECEIVED', '2026-06-01 08:00:00', "
    "600100200, 600100200, '317', 1.00, '2026-06-01')",
    "update public.claims set claim_id = 9005 where claim_id = 9004",
]


def _millis(iso: str) -> int:
    from datetime import UTC, datetime

    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def _milestone(claim_id: int, code: str, milestone: str, previous: str | None, at: str, station: str) -> dict:
    return {
        "claim_id": claim_id,
        "claim_type_code": code,
        "milestone": milestone,
        "previous_milestone": previous,
        "milestone_at": _millis(at),
        "veteran_participant_id": 600100200,
        "station_code": station,
    }


EXPECTED_VALUES = {
    "claim_milestone_reached": [
        _milestone(9001, "010", "RECEIVED", None, "2026-03-02T08:00:00.500", "317"),
        _milestone(9001, "010", "UNDER_REVIEW", "RECEIVED", "2026-03-03T09:00:00", "317"),
        _milestone(9001, "010", "GATHERING_EVIDENCE", "UNDER_REVIEW", "2026-03-05T11:00:00", "317"),
        _milestone(9001, "010", "DECISION_MADE", "GATHERING_EVIDENCE", "2026-04-01T12:00:00", "317"),
        # (the claim moved to station 999 after its authorization)
        _milestone(9001, "010", "CLOSED", "AUTHORIZED", "2026-04-03T00:00:00", "999"),
        _milestone(9002, "400", "RECEIVED", None, "2026-03-10T10:00:00", "301"),
        _milestone(9003, "020", "DECISION_MADE", None, "2026-05-01T09:00:00", "343"),
        _milestone(9004, "010", "RECEIVED", None, "2026-06-01T08:00:00", "317"),
        _milestone(9005, "010", "RECEIVED", None, "2026-06-01T08:00:00", "317"),  # the new key's create
    ],
    "decision_letter_available": [
        {
            "claim_id": 9001,
            "claim_type_code": "010",
            "claim_lifecycle_status": "AUTHORIZED",
            "veteran_participant_id": 600100200,
            "program_type_code": "COMPENSATION",
            "actor_station": "317",  # the claim's station when the status row committed, not '999'
            "date_updated": _millis("2026-04-02T13:30:00.250"),
        },
        {
            "claim_id": 9003,
            "claim_type_code": "020",
            "claim_lifecycle_status": "CONTINUED_AT_AUTHORIZATION",
            "veteran_participant_id": 600100200,
            "program_type_code": "PENSION",
            "actor_station": "301",
            "date_updated": _millis("2026-05-02T10:00:00"),
        },
    ],
    "contention_classified": [
        {
            "claim_id": 9001,
            "contention_id": 901,
            "classification_code": 8935,
            "classification_name": "Tinnitus",
            "classified_at": _millis("2026-03-04T10:00:00"),
            "veteran_participant_id": 600100200,  # looked up from the claim
        }
    ],
    "claim_withdrawn": [  # + withdrawn_at_ms, checked below
        {"claim_id": 9002, "last_status": "RECEIVED"},
        {"claim_id": 9004, "last_status": "RECEIVED"},  # the old key's delete
    ],
}


def _normalise(value: dict) -> dict:
    # The deserializer returns datetimes for timestamp-millis; compare in epoch millis.
    from datetime import datetime

    return {k: int(v.timestamp() * 1000) if isinstance(v, datetime) else v for k, v in value.items()}


def _staging_records(stack: StackEndpoints, topics: list[str], minimum: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(topics)
    lines: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(lines) < minimum and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            lines.append(
                orjson.dumps(
                    {
                        "topic": message.topic(),
                        "key": orjson.loads(message.key()) if message.key() else None,
                        "value": orjson.loads(message.value()) if message.value() else None,
                    }
                )
            )
    finally:
        consumer.close()
    return lines


def test_story_becomes_exactly_the_expected_curated_events(
    stack: StackEndpoints, pipeline: Pipeline, transformer: ManagedProcess
) -> None:
    with psycopg.connect(stack.libpq_dsn(pipeline.database)) as conn:
        for entry in STORY:
            for statement in (entry,) if isinstance(entry, str) else entry:
                conn.execute(statement)
            conn.commit()

    expected_total = sum(len(v) for v in EXPECTED_VALUES.values())
    with CuratedEventReader(stack.bootstrap_servers, stack.registry_url, pipeline.topics.values()) as reader:
        received = reader.read(until=lambda events: len(events) >= expected_total, timeout=90)
        # Anything beyond the expected (a duplicate, an event for a snapshot row) would arrive soon after.
        received += reader.read(until=lambda _events: False, timeout=3)

    by_mapping: dict[str, list[ReceivedEvent]] = {name: [] for name in MAPPINGS}
    topic_to_mapping = {topic: name for name, topic in pipeline.topics.items()}
    for event in sorted(received, key=lambda e: (e.topic, e.partition, e.offset)):
        by_mapping[topic_to_mapping[event.topic]].append(event)

    # Field by field, in per-key order (one claim's events share a key, hence a partition).
    for name, expected in EXPECTED_VALUES.items():
        events = by_mapping[name]
        actual = [_normalise(e.value) for e in events]
        if name == "claim_withdrawn":  # one event per claim: per-key order says nothing across them
            without_time = [{k: v for k, v in a.items() if k != "withdrawn_at_ms"} for a in actual]
            assert sorted(without_time, key=lambda v: v["claim_id"]) == expected
            assert all(a["withdrawn_at_ms"] > 1_700_000_000_000 for a in actual)
        else:
            per_key: dict[int, list[dict]] = {}
            for value in actual:
                per_key.setdefault(value["claim_id"], []).append(value)
            expected_per_key: dict[int, list[dict]] = {}
            for value in expected:
                expected_per_key.setdefault(value["claim_id"], []).append(value)
            assert per_key == expected_per_key, name
        version = load_mapping(pipeline.mappings_dir / f"{name}.yaml").version
        for event in events:
            assert event.key == {"claim_id": event.value["claim_id"]}
            assert event.headers["ce_type"] == f"{name}.v{version}"
            assert event.headers["ce_source"].startswith(f"/{pipeline.source}/public.")
            assert event.headers["ce_subject"] == str(event.value["claim_id"])
            assert event.headers["ce_specversion"] == "1.0"
            assert event.headers["eventbus_mapping"] == name
            assert event.headers["eventbus_mapping_version"] == str(version)

    # No snapshot row became an event: the five seeded claims have ids below 9000... and none appear.
    assert all(e.value["claim_id"] >= 9001 for e in received)
    # No duplicates: every event id is unique.
    ids = [e.headers["ce_id"] for e in received]
    assert len(ids) == len(set(ids)) == expected_total

    # The ids are the ones the offline runner computes from the same staging records.
    staging = _staging_records(
        stack,
        [pipeline.staging_claims, pipeline.staging_contentions, pipeline.staging_lifecycle],
        # a record per statement, the primary-key update three (delete, tombstone, create)
        minimum=2 * 5 + sum(1 if isinstance(e, str) else len(e) for e in STORY) + 2,
    )
    offline_ids = set()
    for name in MAPPINGS:
        compiled = compile_mapping(load_mapping(pipeline.mappings_dir / f"{name}.yaml"))
        outcome = run_records(compiled, staging)
        assert not outcome.dead_letters, outcome.dead_letters
        offline_ids |= {event["headers"]["ce_id"] for event in outcome.events}
    assert offline_ids == set(ids)
