"""`source status`'s slot findings: pg_replication_slots rows → what is wrong and what to do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

import eventbus.sources.last_change as last_change_module
import eventbus.sources.source_status as source_status_module
from eventbus.sources.connect_client import ConnectClient, ConnectorState, TaskState
from eventbus.sources.definition_files import parse_definition
from eventbus.sources.inspection import read_slot
from eventbus.sources.naming import slot_name, source_of_slot
from eventbus.sources.slot_health import (
    SlotFinding,
    SlotRow,
    SourceSlot,
    classify_slots,
    drop_statement,
)
from eventbus.sources.source_status import SourceStatus

GIB = 1 << 30
REMOVE = "eventbus source remove claims --drop-slot --yes"
SOURCE = SourceSlot("claims", "eventbus_claims", "claimsdb", "initial", GIB, "http://connect:8083/")


def _row(
    name: str = "eventbus_claims",
    *,
    active: bool = False,
    wal_status: str | None = "reserved",
    retained: int | None = 3 * 1024 * 1024,
    database: str | None = "claimsdb",
    slot_type: str = "logical",
) -> SlotRow:
    return SlotRow(name, "pgoutput", slot_type, database, active, wal_status, retained)


def _connector(state: str = "RUNNING", task: str = "RUNNING") -> ConnectorState:
    return ConnectorState("eventbus-source-claims", state, "w1", None, [TaskState(0, task, "w1", None)])


def _classify(
    rows: list[SlotRow],
    connector: ConnectorState | None = None,
    *,
    has_offsets: bool = False,
    source: SourceSlot = SOURCE,
    known: frozenset[str] = frozenset(),
) -> list[SlotFinding]:
    return classify_slots(source, connector, has_offsets, rows, known)


def test_a_healthy_active_slot_has_no_finding() -> None:
    assert _classify([_row(active=True)], _connector()) == []


def test_no_connector_and_no_slot_is_not_a_slot_problem() -> None:
    # Never registered (or removed with --drop-slot): status already says NOT REGISTERED.
    assert _classify([]) == []


def test_a_dropped_slot_of_a_connector_that_streamed_is_a_loss_with_the_way_back() -> None:
    (finding,) = _classify([], _connector("FAILED", "FAILED"), has_offsets=True)
    assert (finding.kind, finding.severity, finding.slot) == ("missing", "fail", "eventbus_claims")
    assert "changes made since are lost" in finding.message
    assert finding.fix == (REMOVE, "eventbus source register claims")
    assert "snapshot_mode initial: the new connector snapshots the tables again" in finding.message


def test_starting_anew_without_a_snapshot_mode_says_the_rows_stay_missing() -> None:
    no_data = SourceSlot("claims", "eventbus_claims", "claimsdb", "no_data", GIB, "http://connect:8083")
    (finding,) = _classify([], _connector(), has_offsets=True, source=no_data)
    assert "set snapshot_mode: initial in the definition first" in finding.message


def test_a_slot_not_created_yet_is_only_a_warning() -> None:
    (finding,) = _classify([], _connector("RUNNING", "UNASSIGNED"), has_offsets=False)
    assert (finding.kind, finding.severity) == ("missing", "warn")
    assert "creates it when its task starts" in finding.message


def test_a_slot_without_its_connector_retains_wal_and_says_how_to_resume_or_drop() -> None:
    (finding,) = _classify([_row(retained=3 * GIB // 2)], None)
    assert (finding.kind, finding.severity, finding.retained_bytes) == ("inactive", "fail", 3 * GIB // 2)
    assert "retains 1.5 GiB of WAL" in finding.message and "not registered" in finding.message
    assert finding.fix == ("eventbus source register claims", REMOVE)


def test_a_paused_or_stopped_connector_is_resumed_through_connect() -> None:
    for state in ("PAUSED", "STOPPED"):
        (finding,) = _classify([_row()], _connector(state, state))
        assert finding.severity == "fail" and f"connector {state}" in finding.message
        assert finding.fix[0] == "curl -X PUT http://connect:8083/connectors/eventbus-source-claims/resume"
        assert "retains 3.0 MiB of WAL" in finding.message


def test_a_failed_task_leaves_the_slot_unread_and_is_restarted() -> None:
    (finding,) = _classify([_row()], _connector("RUNNING", "FAILED"))
    assert finding.severity == "fail" and "connector FAILED" in finding.message
    assert finding.fix[0] == "eventbus source restart claims"


def test_a_running_connector_not_streaming_yet_warns_until_the_wal_exceeds_the_limit() -> None:
    (snapshotting,) = _classify([_row(retained=5 * 1024 * 1024)], _connector())
    assert (snapshotting.kind, snapshotting.severity) == ("inactive", "warn")
    assert "initial snapshot" in snapshotting.message
    (too_much,) = _classify([_row(retained=2 * GIB)], _connector())
    assert too_much.severity == "fail" and "above max_retained_wal, 1.0 GiB" in too_much.message


def test_lost_wal_needs_a_new_start_and_nothing_else_is_said_about_the_slot() -> None:
    (finding,) = _classify([_row(wal_status="lost", retained=None)], _connector("RUNNING", "FAILED"))
    assert (finding.kind, finding.severity) == ("wal_lost", "fail")
    assert "changes in it are lost" in finding.message
    assert finding.fix[0] == REMOVE


def test_unreserved_wal_is_about_to_be_lost() -> None:
    (reading,) = _classify([_row(active=True, wal_status="unreserved", retained=9 * GIB)], _connector())
    assert (reading.kind, reading.severity) == ("wal_unreserved", "fail")
    assert "next checkpoint removes WAL" in reading.message and "may still catch up" in reading.message
    unread = _classify([_row(wal_status="unreserved", retained=9 * GIB)], _connector("PAUSED", "PAUSED"))
    assert [f.kind for f in unread] == ["wal_unreserved", "inactive"]
    assert "get its connector streaming now" in unread[0].message
    assert unread[1].fix[0].endswith("/connectors/eventbus-source-claims/resume")


def test_an_unread_slot_of_a_removed_source_is_orphaned_with_its_drop_statement() -> None:
    rows = [_row(active=True), _row("eventbus_old_claims", retained=700 * 1024 * 1024)]
    (finding,) = _classify(rows, _connector())
    assert (finding.kind, finding.severity, finding.slot) == ("orphaned", "fail", "eventbus_old_claims")
    assert "eventbus source old_claims" in finding.message and "retains 700.0 MiB" in finding.message
    assert finding.fix == ("SELECT pg_drop_replication_slot('eventbus_old_claims');",)


def test_slots_that_are_someones_are_never_orphaned() -> None:
    rows = [
        _row(active=True),
        _row("eventbus_other", active=True),  # read by someone
        _row("eventbus_defined"),  # a definition or connector names it
        _row("eventbus_elsewhere", database="otherdb"),  # another database's business
        _row("debezium"),  # not our naming
        _row("eventbus_Upper"),  # not a name a source can have
        _row("eventbus_physical", database=None, slot_type="physical"),
    ]
    assert _classify(rows, _connector(), known=frozenset({"eventbus_defined"})) == []


def test_an_orphan_whose_wal_is_lost_only_takes_a_slot() -> None:
    (finding,) = _classify([_row(active=True), _row("eventbus_gone", wal_status="lost", retained=None)])
    assert finding.severity == "warn" and "takes one of max_replication_slots" in finding.message


def test_drop_statement_quotes_the_name_as_a_literal() -> None:
    assert drop_statement("eventbus_x") == "SELECT pg_drop_replication_slot('eventbus_x');"
    assert drop_statement("o'hara") == "SELECT pg_drop_replication_slot('o''hara');"


def test_the_slot_naming_convention_is_shared_with_definitions() -> None:
    definition = parse_definition(
        "database: {host: h, dbname: d, user: u, password: {env: PW}}\n"
        "tables: [public.claims]\nsnapshot_mode: initial\n",
        "claims",
    )
    assert definition.slot_name == slot_name("claims") == "eventbus_claims"
    assert source_of_slot("eventbus_claims") == "claims"
    assert source_of_slot("eventbus_") is None and source_of_slot("debezium") is None


def test_status_json_carries_the_findings_and_a_failing_one_fails_the_source() -> None:
    status = SourceStatus("claims", "eventbus-source-claims", _connector(), None)
    assert status.to_json()["slot_findings"] == [] and not status.slot_failing
    status.slot_findings = _classify([_row(active=True), _row("eventbus_old")], _connector())
    (payload,) = status.to_json()["slot_findings"]
    assert payload["kind"] == "orphaned" and payload["fix"] == [drop_statement("eventbus_old")]
    assert payload["retained_bytes"] == 3 * 1024 * 1024 and status.slot_failing
    status.slot_findings = _classify([_row(retained=10)], _connector())
    assert status.slot_findings[0].severity == "warn" and not status.slot_failing


def test_connect_lists_the_slots_of_every_connector_in_one_request() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/connectors" and request.url.params["expand"] == "info"
        return httpx.Response(
            200,
            json={
                "a": {"info": {"name": "a", "config": {"slot.name": "eventbus_a"}}},
                "b": {"info": {"name": "b", "config": {"connector.class": "other"}}},
            },
        )

    with ConnectClient("http://connect", transport=httpx.MockTransport(answer)) as client:
        assert client.slot_names() == {"eventbus_a"}


class _Result:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def scalar_one(self) -> Any:
        return self.rows[0][0]

    def one_or_none(self) -> Any:
        return self.rows[0] if self.rows else None

    def all(self) -> list[Any]:
        return self.rows


class _Postgres:
    """A connection to a server of `version` whose pg_replication_slots holds `slots`; PostgreSQL 12
    has no wal_status column, and a standby refuses pg_current_wal_lsn()."""

    def __init__(self, version: int, slots: list[dict[str, Any]], *, standby: bool = False) -> None:
        self.version, self.slots, self.standby = version, slots, standby

    def execute(self, statement: Any, parameters: dict[str, Any] | None = None) -> _Result:
        sql = str(statement)
        if "server_version_num" in sql:
            return _Result([(str(self.version),)])
        selected = sql.split(" from ")[0]
        if self.version < 130000 and re.search(r"(?<!as )\bwal_status\b", selected):
            raise ProgrammingError(sql, parameters, Exception('column "wal_status" does not exist'))
        if self.standby and "pg_current_wal_lsn()" in sql:
            raise OperationalError(sql, parameters, Exception("recovery is in progress"))
        name = (parameters or {}).get("name")
        return _Result(
            [
                SimpleNamespace(slot_name=s["name"], **{k: v for k, v in s.items() if k != "name"})
                for s in self.slots
                if s["name"] == name or " or database" in sql
            ]
        )


_PG12_SLOT = {
    "name": "eventbus_claims", "plugin": "pgoutput", "slot_type": "logical", "database": "claimsdb",
    "active": True, "wal_status": None, "retained": 4096, "lag": 0,
}  # fmt: skip


def test_the_slot_is_read_on_postgresql_12_which_has_no_wal_status() -> None:
    connection: Any = _Postgres(120000, [_PG12_SLOT])
    slot = read_slot(connection, "eventbus_claims")
    assert slot is not None and slot.active and slot.wal_status is None and slot.retained_bytes == 4096
    assert read_slot(_Postgres(150000, [_PG12_SLOT | {"wal_status": "reserved"}]), "eventbus_claims")


def test_a_database_that_refuses_the_slot_query_is_the_slot_error_of_the_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A standby refuses pg_current_wal_lsn(): the status says so in its slot column, and still
    reports the rest, rather than ending in a traceback."""
    monkeypatch.setenv("PW", "secret")
    definition = parse_definition(
        "database: {host: h, dbname: claimsdb, user: u, password: {env: PW}}\n"
        "tables: [public.claims]\nsnapshot_mode: initial\n",
        "claims",
    )

    @contextmanager
    def connect(*_: Any, **__: Any) -> Iterator[Any]:
        yield _Postgres(150000, [_PG12_SLOT], standby=True)

    monkeypatch.setattr(source_status_module, "connect", connect)
    monkeypatch.setattr(last_change_module, "last_change", lambda *_: None)
    client: Any = SimpleNamespace(status=lambda _: _connector(), offsets=lambda _: [], url="http://c")
    status = source_status_module.source_status(definition, client, "kafka:9092")
    assert status.slot is None and status.slot_error is not None
    assert "recovery is in progress" in status.slot_error and "claimsdb" in status.slot_error
