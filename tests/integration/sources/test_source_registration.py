"""`eventbus source` against the real stack: a database with every mistake is diagnosed item by item,
`--fix` repairs what it can, `register` streams row changes idempotently, and each way of failing
(wrong password, unreachable host, missing table, Connect down) is one message and a non-zero exit."""

from __future__ import annotations

import json
import socket
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
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from eventbus.cli.main import app
from tests.integration.sources.teardown import remove_source
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack

MAPPING = """\
name: it_status_changed
version: 1
description: Reads the before image, so public.claims needs REPLICA IDENTITY FULL.
source: {{connector: {source}, table: public.claims}}
on: update
when: after.status != before.status
emit:
  key_schema: key.avsc
  value_schema: value.avsc
  key: {{claim_id: after.id}}
  fields: {{status: after.status}}
"""


@dataclass
class Source:
    name: str
    database: str
    role: str
    password_env: str
    root: Path
    stack: StackEndpoints

    @property
    def definition(self) -> Path:
        return self.root / "connectors" / f"{self.name}.yaml"

    def write(
        self, tables: list[str], *, port: int | None = None, connect_password: str | None = None
    ) -> None:
        self.definition.write_text(
            f"database:\n"
            f"  host: {self.stack.postgres_host}\n"
            f"  port: {port or self.stack.postgres_port}\n"
            f"  dbname: {self.database}\n"
            f"  user: {self.role}\n"
            f"  password: {{env: {self.password_env}}}\n"
            + (f"  connect_password: '{connect_password}'\n" if connect_password else "")
            + f"  connect_host: {self.stack.postgres_host_for_connect}\n"
            f"  connect_port: {self.stack.postgres_port_for_connect}\n"
            f"tables: [{', '.join(tables)}]\n"
            f"snapshot_mode: no_data\n"
            f"heartbeat: {{interval: 2s}}\n"
            f"staging_topics: {{partitions: 2, retention: 1d}}\n"
        )

    def run(self, *args: str, env: dict[str, str] | None = None):
        base = {
            self.password_env: "cdc-pw",
            "EVENTBUS_FIX_PASSWORD": self.stack.postgres_password,
            "EVENTBUS_CONNECT_URL": self.stack.connect_url,
            "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": self.stack.bootstrap_servers,
            "EVENTBUS_CONNECTORS_DIR": str(self.root / "connectors"),
            "EVENTBUS_MAPPINGS_DIR": str(self.root / "mappings"),
        }
        result = CliRunner().invoke(app, ["source", *args], env={**base, **(env or {})})
        # Never a traceback: either success or a handled exit.
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert "Traceback" not in result.output
        return result

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.stack.libpq_dsn(self.database), autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture
def source(stack: StackEndpoints, tmp_path: Path) -> Iterator[Source]:
    """A fresh database with every mistake: a CDC role without REPLICATION or SELECT, a table whose
    mapping reads before.* without REPLICA IDENTITY FULL, a table without primary key, no publication."""
    suffix = uuid.uuid4().hex[:8]
    src = Source(f"it_{suffix}", f"it_src_{suffix}", f"it_cdc_{suffix}", f"IT_PW_{suffix}", tmp_path, stack)
    (tmp_path / "connectors").mkdir()
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "status.yaml").write_text(MAPPING.format(source=src.name))
    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        admin.execute(f'create database "{src.database}"')
        admin.execute(f"create role \"{src.role}\" login password 'cdc-pw'")
    src.sql("create table public.claims (id bigint primary key, status text not null)")
    src.sql("create table public.notes (body text)")
    src.sql("create table public.extra (id bigint primary key, label text)")
    yield src
    _cleanup(src)


def _cleanup(src: Source) -> None:
    remove_source(src.stack, src.name, src.database, role=src.role)


def _statuses(payload: dict) -> dict[str, str]:
    return {item["key"]: item["status"] for item in payload["items"]}


def test_every_mistake_is_diagnosed_and_fix_repairs_what_it_can(source: Source) -> None:
    source.write(["public.claims", "public.notes"])

    result = source.run("check", source.name)
    assert result.exit_code == 1
    for line in (
        f"[FAIL] role {source.role} can replicate",
        "[FAIL] role can SELECT public.claims",
        "[FAIL] public.claims REPLICA IDENTITY FULL",
        "[FAIL] public.notes has a primary key",
        "[FAIL] role can SELECT public.notes",
        f"[FAIL] publication eventbus_{source.name}",
        f"ALTER ROLE {source.role} WITH REPLICATION;",
        f"GRANT SELECT ON public.claims TO {source.role};",
        "ALTER TABLE public.claims REPLICA IDENTITY FULL;",
        f"CREATE PUBLICATION eventbus_{source.name} FOR TABLE public.claims, public.notes;",
    ):
        assert line in result.output, result.output
    assert "[ok]   wal_level = logical" in result.output

    before = _statuses(json.loads(source.run("check", source.name, "--json").output))
    assert before["reachable"] == before["wal_level"] == before["primary_key:public.claims"] == "ok"
    assert before["replica_identity:public.claims"] == "fail"
    assert "replica_identity:public.notes" not in before  # no mapping reads its before image

    # The CDC role itself may fix nothing here: --fix says so and changes nothing.
    own = json.loads(source.run("check", source.name, "--fix", "--json").output)
    assert own["after"]["applied"] == []

    # As the owner (a superuser on the stack) every fix but the primary key is applied.
    fixed = source.run("check", source.name, "--fix", "--as", "postgres", "--json")
    assert fixed.exit_code == 1
    payload = json.loads(fixed.output)
    assert {a["key"] for a in payload["after"]["applied"] if a["ok"]} == {
        "replication_role",
        "select:public.claims",
        "replica_identity:public.claims",
        "select:public.notes",
        "publication",
    }
    after = _statuses(payload["after"])
    assert [key for key, status in after.items() if status == "fail"] == ["primary_key:public.notes"]
    assert source.sql("select relreplident from pg_class where relname = 'claims'") == [("f",)]


def test_a_keyless_table_is_captured_by_its_declared_key_columns(source: Source) -> None:
    """An insert-only table without a primary key: with key_columns declared, `--fix` sets its
    REPLICA IDENTITY FULL (the application's UPDATE/DELETE keep working once it is published) and
    Debezium keys its records by the declared columns (message.key.columns)."""
    source.sql(
        "create table public.audit_log "
        "(logged_at timestamptz not null, event_id bigint not null, detail text,"
        " detail_length int generated always as (length(detail)) stored)"
    )
    source.write(["public.claims", "public.audit_log"])
    text = source.definition.read_text()
    # A generated column's values never reach logical decoding: no key of one
    source.definition.write_text(text + "key_columns:\n  public.audit_log: [logged_at, detail_length]\n")
    generated = _statuses(json.loads(source.run("check", source.name, "--json").output))
    assert generated["key_columns:public.audit_log"] == "fail"
    assert "generated" in source.run("check", source.name).output
    source.definition.write_text(text + "key_columns:\n  public.audit_log: [logged_at, evnt_id]\n")
    misspelt = _statuses(json.loads(source.run("check", source.name, "--json").output))
    assert misspelt["key_columns:public.audit_log"] == "fail"
    assert "did you mean event_id?" in source.run("check", source.name).output

    source.definition.write_text(source.definition.read_text().replace("evnt_id", "event_id"))
    before = _statuses(json.loads(source.run("check", source.name, "--json").output))
    assert before["primary_key:public.audit_log"] == "fail"  # REPLICA IDENTITY DEFAULT
    assert before["key_columns:public.audit_log"] == "ok"
    fixed = json.loads(source.run("check", source.name, "--fix", "--as", "postgres", "--json").output)
    assert "primary_key:public.audit_log" in {a["key"] for a in fixed["after"]["applied"] if a["ok"]}
    assert [k for k, status in _statuses(fixed["after"]).items() if status == "fail"] == []
    assert source.sql("select relreplident from pg_class where relname = 'audit_log'") == [("f",)]

    registered = source.run("register", source.name)
    assert registered.exit_code == 0, registered.output
    source.sql("insert into public.audit_log values ('2026-01-02T03:04:05Z', 7, 'created')")
    source.sql("update public.audit_log set detail = 'amended' where event_id = 7")  # still allowed
    keys: list = []
    records = _consume(source.stack, f"staging.{source.name}.public.audit_log", 2, keys=keys)
    assert [r["payload"]["op"] for r in records] == ["c", "u"]
    assert [field["field"] for field in keys[0]["schema"]["fields"]] == ["logged_at", "event_id"]
    assert keys[0]["payload"]["event_id"] == keys[1]["payload"]["event_id"] == 7


def test_a_heartbeat_message_moves_an_idle_sources_slot(source: Source) -> None:
    """The cure `source status` gives for WAL an idle source retains (`slot_health` wal_retained):
    PostgreSQL 14+'s transactional logical decoding message as `heartbeat.action_query` moves the
    slot past WAL written in another database, though the message itself is not published. (Without
    the query the slot stays: 28 MB retained after the same writes, checked by hand on the stack's
    PostgreSQL 15 when this test was written.)"""
    source.write(["public.claims"])
    query = "SELECT pg_logical_emit_message(true, 'eventbus_heartbeat', now()::text)"
    text = source.definition.read_text().replace(
        "heartbeat: {interval: 2s}", f'heartbeat: {{interval: 1s, action_query: "{query}"}}'
    )
    source.definition.write_text(text)
    source.run("check", source.name, "--fix", "--as", "postgres")
    registered = source.run("register", source.name)
    assert registered.exit_code == 0, registered.output

    noise = f"noise_{source.name}"
    with psycopg.connect(source.stack.libpq_dsn(), autocommit=True) as admin:
        admin.execute(f'create table "{noise}" as select g, md5(g::text) from generate_series(1, 200000) g')
        admin.execute(f'drop table "{noise}"')
        (written,) = admin.execute("select pg_current_wal_lsn()::text").fetchone()
    slot = f"eventbus_{source.name}"
    deadline = time.monotonic() + 60
    moved: list[tuple] = []
    while time.monotonic() < deadline:
        moved = source.sql(
            "select confirmed_flush_lsn >= %s::pg_lsn from pg_replication_slots where slot_name = %s",
            (written, slot),
        )
        if moved == [(True,)]:
            break
        time.sleep(1)
    assert moved == [(True,)], f"slot {slot} did not pass {written} within 60 s"
    assert _topics(source.stack) >= {f"staging.{source.name}.public.claims"}
    assert not any("eventbus_heartbeat" in topic for topic in _topics(source.stack))


def test_register_streams_changes_idempotently_and_follows_the_table_list(source: Source) -> None:
    source.write(["public.claims"])
    source.run("check", source.name, "--fix", "--as", "postgres")

    first = source.run("register", source.name)
    assert first.exit_code == 0, first.output
    assert f"eventbus-source-{source.name}: created" in first.output
    assert "database.password = ********" in first.output
    assert "cdc-pw" not in first.output
    assert f"eventbus-source-{source.name}: RUNNING, streaming" in first.output

    source.sql("insert into public.claims values (1, 'RECEIVED')")
    source.sql("update public.claims set status = 'DECIDED' where id = 1")
    records = _consume(source.stack, f"staging.{source.name}.public.claims", 2)
    assert [r["payload"]["op"] for r in records] == ["c", "u"]
    assert records[1]["payload"]["before"]["status"] == "RECEIVED"  # FULL before image

    again = source.run("register", source.name, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["action"] == "unchanged"
    assert f"eventbus-source-{source.name}: no change" in source.run("register", source.name).output

    # A new table: preflight wants it in the publication first, register then updates the connector.
    source.sql(f'grant select on public.extra to "{source.role}"')
    source.write(["public.claims", "public.extra"])
    blocked = source.run("register", source.name)
    assert blocked.exit_code == 1
    assert "does not include public.extra" in blocked.output
    source.run("check", source.name, "--fix", "--as", "postgres")
    updated = source.run("register", source.name)
    assert updated.exit_code == 0, updated.output
    assert f"eventbus-source-{source.name}: updated" in updated.output
    assert r"~ table.include.list: public\.claims -> public\.claims,public\.extra" in updated.output
    source.sql("insert into public.extra values (5, 'new table')")
    extra = _consume(source.stack, f"staging.{source.name}.public.extra", 1)
    assert extra[0]["payload"]["after"] == {"id": 5, "label": "new table"}

    status = source.run("status", source.name, "--json")
    assert status.exit_code == 0, status.output
    (state,) = json.loads(status.output)
    assert state["state"]["state"] == "RUNNING"
    assert isinstance(state["slot"]["lag_bytes"], int)
    assert state["last_change"]["topic"].startswith(f"staging.{source.name}.public.")

    listed = json.loads(source.run("list", "--json").output)
    assert [(row["name"], row["state"]) for row in listed] == [(source.name, "RUNNING")]

    removed = source.run("remove", source.name, "--drop-slot", "--yes")
    assert removed.exit_code == 0, removed.output
    assert f"slot eventbus_{source.name}: dropped" in removed.output
    assert source.sql(
        "select count(*) from pg_replication_slots where slot_name = %s", (f"eventbus_{source.name}",)
    ) == [(0,)]
    assert f"eventbus-source-{source.name}: stopped, its source offsets reset" in removed.output
    assert "topics kept (--delete-topics removes them)" in removed.output

    # The round trip: registered again after that, the connector starts anew (new slot, its snapshot
    # mode) rather than failing on the position Connect had kept for the old slot.
    source.run("check", source.name, "--fix", "--as", "postgres")  # the publication, dropped above
    again = source.run("register", source.name)
    assert again.exit_code == 0, again.output
    assert f"eventbus-source-{source.name}: RUNNING, streaming" in again.output
    source.sql("insert into public.claims values (2, 'AFTER RE-REGISTER')")
    claims = _consume(source.stack, f"staging.{source.name}.public.claims", 3)  # kept c, u + the new c
    assert {"id": 2, "status": "AFTER RE-REGISTER"} in [r["payload"]["after"] for r in claims]

    gone = source.run("remove", source.name, "--drop-slot", "--delete-topics", "--yes")
    assert gone.exit_code == 0, gone.output
    assert "topics deleted:" in gone.output and f"staging.{source.name}.public.claims" in gone.output
    admin = AdminClient({"bootstrap.servers": source.stack.bootstrap_servers})
    staging = {f"staging.{source.name}.public.claims", f"staging.{source.name}.public.extra"}
    deadline = time.monotonic() + 30  # metadata follows the deletion within moments
    while staging & set(admin.list_topics(timeout=10).topics) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not staging & set(admin.list_topics(timeout=10).topics)


def test_a_config_provider_keeps_the_password_out_of_connect(source: Source, tmp_path: Path) -> None:
    """`connect_password: ${file:...}`: the worker resolves it (the connector streams), while
    Connect's REST API and its config topic — connector and task configs — hold only the reference."""
    password = f"pw-{uuid.uuid4().hex}"
    source.sql(f"alter role \"{source.role}\" password '{password}'")
    secrets = tmp_path / "connect-secrets.properties"
    secrets.write_text(f"cdc_password={password}\n")
    reference = f"${{file:{secrets}:cdc_password}}"
    source.write(["public.claims"], connect_password=reference)
    env = {source.password_env: password}
    source.run("check", source.name, "--fix", "--as", "postgres", env=env)

    registered = source.run("register", source.name, env=env)
    assert registered.exit_code == 0, registered.output
    assert f"eventbus-source-{source.name}: RUNNING, streaming" in registered.output
    assert password not in registered.output
    source.sql("insert into public.claims values (7, 'RECEIVED')")
    (record,) = _consume(source.stack, f"staging.{source.name}.public.claims", 1)
    assert record["payload"]["after"] == {"id": 7, "status": "RECEIVED"}

    connector = f"eventbus-source-{source.name}"
    with httpx.Client(base_url=source.stack.connect_url, timeout=30) as client:
        assert client.get(f"/connectors/{connector}/config").json()["database.password"] == reference
        tasks = client.get(f"/connectors/{connector}/tasks").json()
    assert tasks and all(task["config"].get("database.password") == reference for task in tasks)
    stored = _config_topic_records(source.stack, connector)
    assert any(reference.encode() in value for value in stored), "the connector's config is in the topic"
    assert not any(password.encode() in value for value in stored)
    again = source.run("register", source.name, env=env)
    assert f"{connector}: no change" in again.output  # Connect returns the reference as it was sent

    # References the workers cannot resolve: Connect's validation (run before the PUT) says why.
    source.write(["public.claims"], connect_password=f"${{file:{secrets}:no_such_key}}")
    broken = source.run("register", source.name, env=env)
    assert broken.exit_code != 0, broken.output
    error = _one_error(broken)
    assert "found the config" in error and "password authentication failed" in broken.output
    assert "the secret's file and key" in broken.output
    source.write(["public.claims"], connect_password=f"${{file:{tmp_path}/missing.properties:cdc_password}}")
    missing = source.run("register", source.name, env=env)
    assert missing.exit_code != 0, missing.output
    assert "Could not read properties from file" in missing.output and "config.providers" in missing.output
    assert password not in broken.output + missing.output


def _config_topic_records(stack: StackEndpoints, connector: str) -> list[bytes]:
    """Every value in Connect's config topic whose key names `connector` (connector and tasks)."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": f"it-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["_connect-configs"])
    values: list[bytes] = []
    idle_until = time.monotonic() + 10
    try:
        while time.monotonic() < idle_until:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            idle_until = time.monotonic() + 3  # read until the topic has been quiet for 3 s
            if connector.encode() in (message.key() or b"") and message.value():
                values.append(message.value())
    finally:
        consumer.close()
    return values


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _one_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_wrong_password_is_one_clear_message(source: Source) -> None:
    source.write(["public.claims"])
    for command in ("check", "register"):
        result = source.run(command, source.name, env={source.password_env: "not-the-password"})
        assert result.exit_code == 2, result.output
        assert f'password authentication failed for user "{source.role}"' in result.output
    assert "error: " in result.output
    _one_error(result)


def test_unreachable_host_is_one_clear_message(source: Source) -> None:
    source.write(["public.claims"], port=_closed_port())
    result = source.run("register", source.name)
    assert result.exit_code == 2
    assert "Connection refused" in _one_error(result)
    checked = source.run("check", source.name)
    assert checked.exit_code == 2
    assert "[FAIL] server reachable" in checked.output and "Connection refused" in checked.output


def test_missing_table_is_one_clear_message(source: Source) -> None:
    source.write(["public.claims", "public.nope"])
    source.run("check", source.name, "--fix", "--as", "postgres")
    result = source.run("register", source.name)
    assert result.exit_code == 1
    assert "table public.nope does not exist" in result.output
    assert f"{source.definition}:9:" in result.output  # the line that names it
    assert f"eventbus-source-{source.name}" not in httpx.get(f"{source.stack.connect_url}/connectors").json()


def test_connect_down_is_one_clear_message(source: Source) -> None:
    source.write(["public.claims"])
    source.run("check", source.name, "--fix", "--as", "postgres")
    url = f"http://127.0.0.1:{_closed_port()}"
    for command in (["register", source.name], ["status", source.name], ["remove", source.name]):
        result = source.run(*command, "--connect-url", url)
        assert result.exit_code == 2, result.output
        message = _one_error(result)
        assert f"Kafka Connect is not reachable at {url}" in message
    # Nothing was half-done: Connect is checked before topics are created.
    assert f"staging.{source.name}.public.claims" not in _topics(source.stack)


def _topics(stack: StackEndpoints) -> set[str]:
    from confluent_kafka.admin import AdminClient

    return set(AdminClient({"bootstrap.servers": stack.bootstrap_servers}).list_topics(timeout=10).topics)


def _consume(
    stack: StackEndpoints, topic: str, count: int, timeout: float = 60, keys: list | None = None
) -> list[dict]:
    """`count` record values of `topic`; their keys (decoded, None for none) appended to `keys`."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": f"it-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    records: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() or message.value() is None:
                continue
            records.append(orjson.loads(message.value()))
            if keys is not None:
                keys.append(orjson.loads(message.key()) if message.key() else None)
    finally:
        consumer.close()
    assert len(records) == count, records
    return records


def test_a_stopped_connector_goes_stale_beyond_the_threshold(source: Source) -> None:
    source.write(["public.claims"])
    source.run("check", source.name, "--fix", "--as", "postgres")
    assert source.run("register", source.name).exit_code == 0

    # Running: heartbeats every 2 s keep the idle source fresh.
    def fresh() -> dict:
        result = source.run("status", source.name, "--json", "--stale-after", "15")
        (state,) = json.loads(result.output)
        return state | {"exit_code": result.exit_code}

    deadline = time.monotonic() + 60
    state = fresh()
    while state["heartbeat"] is None and time.monotonic() < deadline:
        time.sleep(1)
        state = fresh()
    assert state["exit_code"] == 0 and state["stale"] is False, state
    assert (
        state["age_s"] < 15 and state["heartbeat"]["topic"] == f"__debezium-heartbeat.staging.{source.name}"
    )
    assert isinstance(state["slot"]["lag_bytes"], int)

    # Stopped: no heartbeat any more; past the threshold the source is stale, and says what to do.
    with httpx.Client(base_url=source.stack.connect_url, timeout=30) as client:
        assert client.put(f"/connectors/eventbus-source-{source.name}/stop").status_code in (202, 204)
    time.sleep(17)  # the threshold (15 s) plus the last heartbeat interval: the silence to detect
    result = source.run("status", source.name, "--stale-after", "15")
    assert result.exit_code == 1, result.output
    assert "STALE: silent for" in result.output and f"eventbus source restart {source.name}" in result.output
    (stale,) = json.loads(source.run("status", source.name, "--json", "--stale-after", "15").output)
    assert stale["stale"] is True and stale["age_s"] > 15
