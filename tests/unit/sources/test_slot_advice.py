"""`source status`'s advice beyond the slot's state: an idle source's retained WAL and the heartbeat
that cures it, a dropped slot on a Kafka Connect without the offsets API, and orphaned slots seen by
several sources of one database (reported once)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import eventbus.sources.connect_client as connect_client_module
import eventbus.sources.last_change as last_change_module
import eventbus.sources.source_status as source_status_module
from eventbus.cli.main import app
from eventbus.sources.connect_client import ConnectClient, ConnectorState, TaskState
from eventbus.sources.definition_files import parse_definition
from eventbus.sources.slot_health import SourceSlot, classify_slots, offsets_tombstone
from eventbus.sources.source_status import SourceStatus, report_orphans_once
from tests.unit.sources.test_slot_health import GIB, SOURCE, _connector, _Postgres, _row

REGISTER = "eventbus source register claims"


def _source(**changes: Any) -> SourceSlot:
    base: dict[str, Any] = {
        "publication": "eventbus_claims",
        "user": "claims_cdc",
        "heartbeat_where": "connectors/claims.yaml:9",
        "server_version_num": 160004,
        "bootstrap_servers": "kafka:9092",
    }
    return SourceSlot(*(getattr(SOURCE, f) for f in ("source", "slot", "database", "snapshot_mode",
                                                     "max_retained_wal_bytes", "connect_url")),
                      **(base | changes))  # fmt: skip


# --- an idle source: the slot is read, yet its confirmed position does not move -------------------


def test_a_read_slot_holding_wal_beyond_the_limit_gets_the_heartbeat_query_in_definition_terms() -> None:
    (finding,) = classify_slots(_source(), _connector(), False, [_row(active=True, retained=3 * GIB)], ())
    assert (finding.kind, finding.severity, finding.retained_bytes) == ("wal_retained", "warn", 3 * GIB)
    assert "retains 3.0 GiB of WAL, above max_retained_wal (1.0 GiB)" in finding.message
    # PostgreSQL 14+: a transactional logical decoding message, no table to create.
    assert (
        'set in the definition (connectors/claims.yaml:9) `heartbeat: {action_query: "SELECT '
        "pg_logical_emit_message(true, 'eventbus_heartbeat', now()::text)\"}`"
    ) in finding.message
    assert finding.fix == (REGISTER,)


def test_before_postgresql_14_the_heartbeat_writes_a_table_in_the_publication() -> None:
    source = _source(server_version_num=130011, user="Claims CDC")
    (finding,) = classify_slots(source, _connector(), False, [_row(active=True, retained=3 * GIB)], ())
    assert 'action_query: "UPDATE public.eventbus_heartbeat SET at = now() WHERE id = 1"' in finding.message
    assert finding.fix == (
        "CREATE TABLE IF NOT EXISTS public.eventbus_heartbeat (id int PRIMARY KEY, at timestamptz NOT NULL);",
        "INSERT INTO public.eventbus_heartbeat VALUES (1, now()) ON CONFLICT (id) DO NOTHING;",
        'GRANT SELECT, UPDATE ON public.eventbus_heartbeat TO "Claims CDC";',
        "ALTER PUBLICATION eventbus_claims ADD TABLE public.eventbus_heartbeat;",
        REGISTER,
    )


def test_heartbeats_turned_off_are_turned_on_with_the_query() -> None:
    source = _source(heartbeat_interval_ms=0)
    (finding,) = classify_slots(source, _connector(), False, [_row(active=True, retained=3 * GIB)], ())
    assert "`heartbeat: {interval: 10s, action_query: " in finding.message


def test_a_query_already_set_is_checked_not_suggested_again() -> None:
    source = _source(heartbeat_action_query="UPDATE hb SET at = now()")
    (finding,) = classify_slots(source, _connector(), False, [_row(active=True, retained=3 * GIB)], ())
    assert "heartbeat.action_query are set (connectors/claims.yaml:9)" in finding.message
    assert "in publication eventbus_claims" in finding.message and finding.fix == ()


def test_a_read_slot_within_the_limit_is_no_finding() -> None:
    assert classify_slots(_source(), _connector(), False, [_row(active=True, retained=GIB)], ()) == []


_IDLE_SLOT = {
    "name": "eventbus_claims", "plugin": "pgoutput", "slot_type": "logical", "database": "claimsdb",
    "active": True, "wal_status": "reserved", "retained": 2 * GIB, "lag": 2 * GIB,
}  # fmt: skip


def test_status_points_at_the_heartbeat_key_of_the_definition_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", "secret")
    definition = parse_definition(
        "database: {host: h, dbname: claimsdb, user: u, password: {env: PW}}\n"
        "tables: [public.claims]\nsnapshot_mode: initial\nheartbeat:\n  interval: 30s\n",
        "claims",
        "connectors/claims.yaml",
    )

    @contextmanager
    def connect(*_: Any, **__: Any) -> Iterator[Any]:
        yield _Postgres(150000, [_IDLE_SLOT])

    monkeypatch.setattr(source_status_module, "connect", connect)
    monkeypatch.setattr(last_change_module, "last_change", lambda *_: None)
    client: Any = _FakeConnect("http://c", running={"claims"})
    status = source_status_module.source_status(definition, client, "kafka:9092")
    (finding,) = status.slot_findings
    assert finding.kind == "wal_retained" and not status.slot_failing
    assert '(connectors/claims.yaml:5) `heartbeat: {action_query: "SELECT pg_logical_emit' in finding.message


# --- Kafka Connect before 3.5: no offsets API ------------------------------------------------------


def test_connect_without_the_offsets_api_cannot_say_so_it_is_not_no_offsets() -> None:
    def answer(request: httpx.Request) -> httpx.Response:  # Kafka 3.4 knows no such path
        return httpx.Response(404, json={"error_code": 404, "message": "HTTP 404 Not Found"})

    with ConnectClient("http://connect", transport=httpx.MockTransport(answer)) as client:
        assert client.offsets("eventbus-source-claims") is None


def test_a_missing_slot_on_connect_before_3_5_warns_with_the_whole_way_back() -> None:
    (finding,) = classify_slots(_source(), _connector(), None, [], ())
    assert (finding.kind, finding.severity) == ("missing", "warn")
    assert "before 3.5: no offsets API" in finding.message and "check again in a minute" in finding.message
    tombstone = (
        """echo '["eventbus-source-claims",{"server":"staging.claims"}]|' | kcat -P -b kafka:9092 """
        "-t <offset.storage.topic of the Connect workers, e.g. _connect-offsets> -K '|' -Z "
        "-X partitioner=murmur2_random"
    )
    assert offsets_tombstone("claims", "kafka:9092") == tombstone
    assert finding.fix == ("eventbus source remove claims --drop-slot --yes", tombstone, REGISTER)
    assert "Upgrading Kafka Connect to 3.5 or later" in finding.message


# --- several sources of one database --------------------------------------------------------------


def _orphan_status(source: str, database: str) -> SourceStatus:
    status = SourceStatus(source, f"eventbus-source-{source}", None, None, database=database)
    status.slot_findings = classify_slots(
        _source(), None, False, [_row(active=True), _row("eventbus_old")], ()
    )
    return status


def test_an_orphan_seen_by_two_sources_of_one_database_is_reported_once() -> None:
    first, second = _orphan_status("claims", "h:5432/claimsdb"), _orphan_status("audit", "h:5432/claimsdb")
    elsewhere = _orphan_status("other", "h2:5432/claimsdb")  # another server's slot of that name
    report_orphans_once([first, second, elsewhere])
    assert [f.slot for f in first.slot_findings] == ["eventbus_old"]
    assert second.slot_findings == []
    assert [f.slot for f in elsewhere.slot_findings] == ["eventbus_old"]


class _FakeConnect:
    """Kafka Connect with these eventbus connectors RUNNING (and `paused` ones PAUSED)."""

    def __init__(self, url: str, *, running: set[str], paused: frozenset[str] = frozenset(), **_: Any):
        self.url, self.running, self.paused = url, running, paused

    def __enter__(self) -> _FakeConnect:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def status(self, name: str) -> ConnectorState | None:
        source = name.removeprefix("eventbus-source-")
        state = "RUNNING" if source in self.running else "PAUSED" if source in self.paused else None
        if state is None:
            return None
        return ConnectorState(name, state, "w1", None, [TaskState(0, state, "w1", None)])

    def offsets(self, _: str) -> list[dict[str, Any]]:
        return []

    def slot_names(self) -> set[str]:
        return {f"eventbus_{source}" for source in self.running | self.paused}


def _slot(name: str, *, active: bool) -> dict[str, Any]:
    return {
        "name": name, "plugin": "pgoutput", "slot_type": "logical", "database": "claimsdb",
        "active": active, "wal_status": "reserved", "retained": 4096, "lag": 0,
    }  # fmt: skip


def test_status_of_sources_sharing_a_database_reports_its_orphan_once_and_spares_registered_slots(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """claims and audit read one database; billing's connector is registered (paused) though its
    definition lives elsewhere, so its unread slot is someone's; eventbus_old is nobody's."""
    monkeypatch.setenv("PW", "secret")
    for source in ("claims", "audit"):
        (tmp_path / f"{source}.yaml").write_text(
            "database: {host: h, dbname: claimsdb, user: u, password: {env: PW}}\n"
            f"tables: [public.{source}]\nsnapshot_mode: initial\n"
        )
    slots = [
        _slot("eventbus_audit", active=True),
        _slot("eventbus_billing", active=False),
        _slot("eventbus_claims", active=True),
        _slot("eventbus_old", active=False),
    ]

    @contextmanager
    def connect(*_: Any, **__: Any) -> Iterator[Any]:
        yield _Postgres(160000, slots)

    def connect_client(url: str, **_: Any) -> _FakeConnect:
        return _FakeConnect(url, running={"claims", "audit"}, paused=frozenset({"billing"}))

    monkeypatch.setattr(source_status_module, "connect", connect)
    monkeypatch.setattr(last_change_module, "last_change", lambda *_: None)
    monkeypatch.setattr(connect_client_module, "ConnectClient", connect_client)
    result = CliRunner().invoke(app, ["source", "status", "--json", "--connectors-dir", str(tmp_path)])
    statuses = json.loads(result.stdout)
    findings = [(s["source"], f["kind"], f["slot"]) for s in statuses for f in s["slot_findings"]]
    assert findings == [("audit", "orphaned", "eventbus_old")]
    assert result.exit_code == 1  # the orphan retains WAL: a failure


class _OldConnect:
    """Kafka Connect 3.4: the connector exists, but PUT .../stop is a path it does not know (404)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def stop(self, name: str) -> bool:
        self.calls.append("stop")
        return False  # what ConnectClient.stop makes of that 404

    def reset_offsets(self, name: str) -> None:
        self.calls.append("reset_offsets")

    def delete(self, name: str) -> bool:
        self.calls.append("delete")
        return True


class _NoSlot:
    """A database where the slot and publication are gone already."""

    def execute(self, statement: Any, parameters: dict[str, Any] | None = None) -> Any:
        return SimpleNamespace(scalar_one=lambda: "160000", one_or_none=lambda: None, scalar=lambda: None)


def test_removing_with_drop_slot_on_connect_before_3_5_says_how_to_clear_the_kept_offsets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import eventbus.sources.removal as removal_module

    monkeypatch.setenv("PW", "secret")
    definition = parse_definition(
        "database: {host: h, dbname: claimsdb, user: u, password: {env: PW}}\n"
        "tables: [public.claims]\nsnapshot_mode: initial\n",
        "claims",
    )

    @contextmanager
    def connect(*_: Any, **__: Any) -> Iterator[Any]:
        yield _NoSlot()

    monkeypatch.setattr(removal_module, "connect", connect)
    client: Any = _OldConnect()
    result = removal_module.remove(definition, client, drop_slot=True, bootstrap_servers="kafka:9092")
    assert client.calls == ["stop", "delete"]
    (note,) = result.notes
    assert "Kafka Connect before 3.5 cannot reset the source offsets" in note
    assert note.endswith(offsets_tombstone("claims", "kafka:9092"))
