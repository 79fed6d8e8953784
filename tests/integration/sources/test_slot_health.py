"""`eventbus source status` on the real PostgreSQL: a slot nobody reads is reported with the WAL it
retains, an orphaned slot of a removed source with a drop statement that works, both read as the
minimal role the docs ask for (LOGIN, REPLICATION; no superuser)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from eventbus.cli.main import app
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack


@dataclass
class Scratch:
    name: str  # the source's name; its slot is eventbus_<name>
    database: str
    role: str
    orphan: str  # the slot of a source that was removed without --drop-slot
    root: Path
    stack: StackEndpoints

    def sql(self, statement: str, *, as_role: bool = False) -> list[tuple]:
        dsn = self.stack.libpq_dsn(self.database)
        if as_role:
            dsn = dsn.replace(f"user={self.stack.postgres_user}", f"user={self.role}")
            dsn = dsn.replace(f"password={self.stack.postgres_password}", "password=slots-pw")
        with psycopg.connect(dsn, autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def status(self, *args: str):
        result = CliRunner().invoke(
            app,
            ["source", "status", self.name, *args],
            env={
                "SLOTS_PW": "slots-pw",
                "EVENTBUS_CONNECT_URL": self.stack.connect_url,
                "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": self.stack.bootstrap_servers,
                "EVENTBUS_CONNECTORS_DIR": str(self.root),
            },
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result


@pytest.fixture
def scratch(stack: StackEndpoints, tmp_path: Path) -> Iterator[Scratch]:
    suffix = uuid.uuid4().hex[:8]
    s = Scratch(
        f"slots_{suffix}", f"slots_db_{suffix}", f"slots_cdc_{suffix}", f"eventbus_slots_gone_{suffix}",
        tmp_path, stack,
    )  # fmt: skip
    (tmp_path / f"{s.name}.yaml").write_text(
        f"database:\n"
        f"  host: {stack.postgres_host}\n"
        f"  port: {stack.postgres_port}\n"
        f"  dbname: {s.database}\n"
        f"  user: {s.role}\n"
        f"  password: {{env: SLOTS_PW}}\n"
        f"tables: [public.claims]\n"
        f"snapshot_mode: initial\n"
    )
    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        admin.execute(f'create database "{s.database}"')
        admin.execute(f"create role \"{s.role}\" login replication password 'slots-pw'")
    try:
        yield s
    finally:
        with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
            # Nothing reads these slots, so they can go at once; left behind they would pin WAL
            # on the shared stack for good.
            admin.execute(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                "where database = %s or slot_name in (%s, %s)",
                (s.database, f"eventbus_{s.name}", s.orphan),
            )
            admin.execute(f'drop database if exists "{s.database}" with (force)')
            admin.execute(f'drop role if exists "{s.role}"')


def test_an_unread_slot_and_an_orphaned_one_are_reported_with_what_to_do(scratch: Scratch) -> None:
    slot = f"eventbus_{scratch.name}"
    scratch.sql("create table public.claims (id bigint primary key, status text not null)")
    for name in (slot, scratch.orphan):
        scratch.sql(f"select pg_create_logical_replication_slot('{name}', 'pgoutput')")
    # Writes after the slots were created: WAL they must retain, since nobody reads them.
    scratch.sql("insert into public.claims select g, repeat('x', 200) from generate_series(1, 2000) g")

    result = scratch.status("--json")
    assert result.exit_code == 1, result.output  # not registered, and slot failures
    (status,) = json.loads(result.output)
    findings = {finding["slot"]: finding for finding in status["slot_findings"]}
    assert set(findings) == {slot, scratch.orphan}, findings

    unread = findings[slot]
    assert (unread["kind"], unread["severity"]) == ("inactive", "fail")
    assert unread["retained_bytes"] > 2000 * 200
    assert f"eventbus source register {scratch.name}" in unread["message"]
    assert unread["fix"][1] == f"eventbus source remove {scratch.name} --drop-slot --yes"

    orphan = findings[scratch.orphan]
    assert (orphan["kind"], orphan["severity"]) == ("orphaned", "fail")
    assert orphan["retained_bytes"] > 2000 * 200
    assert orphan["fix"] == [f"SELECT pg_drop_replication_slot('{scratch.orphan}');"]

    human = scratch.status().output
    assert f"SLOT FAIL: slot {slot} is not read by any connector" in human
    assert f"SLOT FAIL: slot {scratch.orphan} follows the naming of eventbus source" in human

    # The statement status gives works, as the source's own role.
    scratch.sql(orphan["fix"][0], as_role=True)
    (after,) = json.loads(scratch.status("--json").output)
    assert [finding["slot"] for finding in after["slot_findings"]] == [slot]
