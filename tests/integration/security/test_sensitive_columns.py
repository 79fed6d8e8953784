"""Curated events carry only mapped fields (issue #8): a sensitive column (`ssn`) added to the source table
travels through Debezium into staging, but its values reach no curated topic — scanned as raw bytes,
keys, values and headers. The dead-letter topic keeps the original staging record by design
(docs/security.md: it must be ACL'd like staging), so an SSN may be there only inside a record that is
byte for byte the staging record it came from, and never in the reason the transformer adds.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from eventbus.service import dead_letter as dl
from eventbus_dev.demo.traffic import create_schema, make_engine
from tests.integration.transformer.support import (
    TransformerProcess,
    apply_topics,
    committed_offsets,
    read_raw,
    wait_until,
)
from tests.support.stack import REPO, StackEndpoints, drop_database

pytestmark = pytest.mark.stack

SAMPLE_MAPPINGS = (
    "claim_milestone_reached",
    "decision_letter_available",
    "contention_classified",
    "claim_withdrawn",
)

# A mapping that fails on purpose for claims whose notes are not a number: the dead-letter path.
POISON = """\
name: claim_note_number
version: 1
description: The number in a claim's notes (fails, on purpose, when the notes are not a number).
owner: security-tests
lifecycle: experimental
sensitivity: {{claim_id: internal, note_number: internal}}
source: {{connector: {source}, table: public.claims}}
on: update
when: changed(after.notes)
emit:
  topic: {topic}
  key_schema: schemas/claim_key.avsc
  value_schema: schemas/note_number.avsc
  key: {{claim_id: after.claim_id}}
  fields:
    claim_id: after.claim_id
    note_number: int(after.notes)
"""
NOTE_SCHEMA = {
    "type": "record",
    "name": "ClaimNoteNumber",
    "namespace": "test.security",
    "fields": [{"name": "claim_id", "type": "long"}, {"name": "note_number", "type": "long"}],
}


INSERT = (
    "insert into public.claims (claim_id, claim_type_code, benefit_type, status, status_changed_at, "
    "claimant_participant_id, veteran_participant_id, station_code, amount_claimed, date_filed, ssn) "
    "overriding system value values (%s, '010', 'compensation', 'RECEIVED', now(), 600100200, 600100200, "
    "'317', 10.00, current_date, %s)"
)


@dataclass(frozen=True)
class Source:
    name: str
    database: str
    mappings: Path
    topics: list[str]  # curated

    @property
    def staging(self) -> list[str]:
        return [f"staging.{self.name}.public.claims", f"staging.{self.name}.public.contentions"]


def _eventbus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventbus.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, check=False)  # fmt: skip


@pytest.fixture
def source(stack: StackEndpoints, tmp_path: Path) -> Iterator[Source]:
    suffix = uuid.uuid4().hex[:8]
    name, database = f"pii{suffix}", f"pii_{suffix}"
    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        admin.execute(f'create database "{database}"')
    engine = make_engine(stack.postgres_dsn(database))
    create_schema(engine)
    engine.dispose()
    with psycopg.connect(stack.libpq_dsn(database), autocommit=True) as conn:
        # The column nobody maps: it is in every before/after image Debezium writes to staging.
        conn.execute("alter table public.claims add column ssn text")

    definition = (REPO / "connectors" / "claims.yaml").read_text()
    definition = definition.replace("dbname: claims", f"dbname: {database}")
    definition = definition.replace("port: 15432", f"port: {stack.postgres_port}")
    definition_file = tmp_path / f"{name}.yaml"
    definition_file.write_text(definition)

    mappings = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings" / "claims", mappings, ignore=shutil.ignore_patterns("tests"))
    topics = []
    for mapping in SAMPLE_MAPPINGS:
        path = mappings / f"{mapping}.yaml"
        topics.append(f"{mapping}_{suffix}")
        text = path.read_text().replace("connector: claims", f"connector: {name}")
        path.write_text(re.sub(rf"^  topic: {mapping}$", f"  topic: {topics[-1]}", text, flags=re.M))
    topics.append(f"note_number_{suffix}")
    (mappings / "claim_note_number.yaml").write_text(POISON.format(source=name, topic=topics[-1]))
    (mappings / "schemas" / "note_number.avsc").write_text(json.dumps(NOTE_SCHEMA))

    env = {
        **os.environ,
        "CLAIMS_DB_PASSWORD": stack.postgres_password,
        "EVENTBUS_CONNECT_URL": stack.connect_url,
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap_servers,
    }
    registered = _eventbus(
        "source", "register", str(definition_file), "--mappings-dir", str(mappings), env=env
    )
    assert registered.returncode == 0, registered.stdout + registered.stderr
    try:
        yield Source(name, database, mappings, topics)
    finally:
        _eventbus("source", "remove", str(definition_file), "--drop-slot", "--yes", env=env)
        drop_database(stack, database)


def _ssn(rng: random.Random) -> str:
    return f"{rng.randrange(100, 900):03d}-{rng.randrange(10, 100):02d}-{rng.randrange(1000, 10000):04d}"


def test_an_unmapped_sensitive_column_never_reaches_a_curated_topic(
    stack: StackEndpoints, source: Source, tmp_path: Path
) -> None:
    rng = random.Random(uuid.uuid4().int)
    ssns = [_ssn(rng) for _ in range(12)]
    group = f"grp-{source.name}"
    env = {
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "EVENTBUS_REGISTRY__URL": stack.registry_url,
        "EVENTBUS_GROUP_ID": group,
        "EVENTBUS_HTTP__PORT": "0",
    }
    apply_topics(source.mappings, env)
    service = TransformerProcess(source.mappings, tmp_path / "transformer.log", env).wait_ready(90)

    with psycopg.connect(stack.libpq_dsn(source.database), autocommit=True) as conn:
        for i, ssn in enumerate(ssns):
            claim = 5000 + i
            conn.execute(INSERT, (claim, ssn))
            conn.execute("update public.claims set status = 'UNDER_REVIEW' where claim_id = %s", (claim,))
            # Half the notes are numbers (an event), half are not (the poison mapping's dead letter).
            conn.execute(
                "update public.claims set notes = %s where claim_id = %s", (str(i) if i % 2 else "n/a", claim)
            )
            if i % 3 == 0:
                conn.execute("delete from public.claims where claim_id = %s", (claim,))

    # Every staging record of the story is in, and the transformer has committed past it.
    expected_changes = len(ssns) * 3 + len(range(0, len(ssns), 3))

    def staged() -> bool:
        return (
            sum(1 for m in read_raw(stack.bootstrap_servers, source.staging[0]) if m.value())
            >= expected_changes
        )

    wait_until(staged, 90, "the story's changes in staging", interval=1.0)
    staging = {
        (m.topic(), m.partition(), m.offset()): m
        for m in read_raw(stack.bootstrap_servers, source.staging[0])
    }
    last = {}
    for _topic, partition, offset in staging:
        last[partition] = max(last.get(partition, 0), offset + 1)

    def caught_up() -> bool:
        found = committed_offsets(stack.bootstrap_servers, group, source.staging[0], last)
        return all(found.get(p, -1) >= end for p, end in last.items())

    wait_until(caught_up, 90, "the transformer to commit the story", interval=1.0)
    assert service.terminate() == 0

    # The column is really in staging: the test would mean nothing otherwise.
    staged_bytes = b"".join(m.value() for m in staging.values() if m.value())
    assert all(ssn.encode() in staged_bytes for ssn in ssns)

    needles = [s.encode() for s in ssns] + [s.replace("-", "").encode() for s in ssns]
    curated = [m for topic in source.topics for m in read_raw(stack.bootstrap_servers, topic)]
    assert len(curated) >= len(ssns) * 2  # received + under review milestones at least
    for message in curated:
        raw = (
            (message.key() or b"")
            + (message.value() or b"")
            + b"".join(v for _, v in message.headers() or [])
        )
        assert not any(needle in raw for needle in needles), f"an SSN on {message.topic()}@{message.offset()}"

    dead = read_raw(stack.bootstrap_servers, f"staging.dlq.{group}")
    assert len(dead) == len(range(0, len(ssns), 2))  # one per "n/a" note
    for message in dead:
        headers = dict(message.headers() or [])
        origin = (
            headers[dl.SOURCE_TOPIC].decode(),
            int(headers[dl.SOURCE_PARTITION]),
            int(headers[dl.SOURCE_OFFSET]),
        )
        original = staging[origin]
        # By design the dead letter is the staging record itself (so it can be replayed)...
        assert (message.key(), message.value()) == (original.key(), original.value())
        # ...and what the transformer adds to it says nothing about the row: the reason names the
        # field, the function and the rule, not the notes it failed on (no field marks them public).
        added = b"".join(v for k, v in headers.items() if k.startswith(dl.PREFIX))
        assert not any(needle in added for needle in needles)
        assert headers[dl.REASON] == (
            b"mapping claim_note_number v1, emit[0], fields.note_number: "
            b"int() cannot convert text that is not an integer"
        )
