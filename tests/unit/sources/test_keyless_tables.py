"""Tables without a primary key: declared `key_columns` are parsed and validated, rendered into
Debezium's `message.key.columns`, checked by the preflight (columns exist and are NOT NULL, replica
identity FULL or USING INDEX), and key the table descriptions `mapping new` scaffolds from."""

from __future__ import annotations

import contextlib
import dataclasses
from types import SimpleNamespace

import orjson
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from eventbus.cli import mapping_commands
from eventbus.cli.main import app
from eventbus.debezium.pg_types import PgColumn
from eventbus.sources import database, reflection
from eventbus.sources import inspection as inspection_module
from eventbus.sources.before_images import BeforeImageNeeds
from eventbus.sources.check_items import CheckItem
from eventbus.sources.connector_config import render_connector_config
from eventbus.sources.definition_files import parse_definition
from eventbus.sources.errors import SourceDefinitionError
from eventbus.sources.inspection import Capabilities, Inspection, PublicationFacts, TableFacts
from eventbus.sources.preflight import PreflightReport, evaluate, fixes_to_apply
from eventbus.sources.reflection import ReflectedTable
from eventbus.sources.table_descriptions import (
    GeneratedKeyColumnError,
    UnknownKeyColumnError,
    live_description,
)

DEFINITION = """\
database:
  host: 127.0.0.1
  dbname: appdb
  user: app_cdc
  password: {env: UNUSED}
tables:
  - public.orders
  - public.audit_log
snapshot_mode: no_data
key_columns:
  public.audit_log: [logged_at, event_id]
"""
AUDIT_COLUMNS = (("logged_at", True), ("event_id", True), ("actor", False), ("detail", False))


@pytest.fixture
def definition():
    return parse_definition(DEFINITION, "app", "connectors/app.yaml")


def _without_key(definition_text: str) -> str:
    return definition_text.split("key_columns:")[0]


def inspection(**audit_changes) -> Inspection:
    """A healthy database whose public.audit_log has no primary key and REPLICA IDENTITY FULL."""
    orders = TableFacts(
        "public.orders", True, True, None, "d", True, True, "owner",
        columns=(("id", True), ("status", True)), primary_key=("id",),
    )  # fmt: skip
    audit = TableFacts("public.audit_log", True, False, None, "f", True, True, "owner", columns=AUDIT_COLUMNS)
    tables = {"public.orders": orders, "public.audit_log": dataclasses.replace(audit, **audit_changes)}
    return Inspection(
        server_version="16.4", server_version_num=160004, wal_level="logical", max_replication_slots=10,
        replication_slots_used=1, max_wal_senders=10, wal_senders_used=1, role="app_cdc",
        role_can_replicate=True, tables=tables,
        publication=PublicationFacts(
            False, frozenset(tables), frozenset({"insert", "update", "delete", "truncate"}), "owner"
        ),
        slot=None, capabilities=Capabilities(role="app_cdc", replication=True),
    )  # fmt: skip


def items_by_key(items: list[CheckItem]) -> dict[str, CheckItem]:
    return {item.key: item for item in items}


# --- the definition -------------------------------------------------------------------------------


def test_key_columns_are_read_per_table_in_their_order(definition) -> None:
    assert definition.key_columns_of("public.audit_log") == ("logged_at", "event_id")
    assert definition.key_columns_of("public.orders") == ()


@pytest.mark.parametrize(
    ("key_columns", "message"),
    [
        ("  public.audit_log: event_id\n", "key_columns.public.audit_log: input should be a valid list"),
        ("  public.audit_log: [event_id, event_id]\n", "key columns of public.audit_log list event_id twice"),
        ("  public.audit_log: [event id]\n", "key column 'event id': Debezium's message.key.columns cannot"),
        (
            "  Public.Audit_Log: [event_id]\n",
            "table Public.Audit_Log is not in 'tables' (did you mean public.audit_log?)",
        ),
    ],
)
def test_broken_key_columns_are_refused_at_their_line(key_columns: str, message: str) -> None:
    text = _without_key(DEFINITION) + "key_columns:\n" + key_columns
    with pytest.raises(SourceDefinitionError) as caught:
        parse_definition(text, "app", "connectors/app.yaml")
    assert str(caught.value).startswith("connectors/app.yaml:11:"), str(caught.value)
    assert message in str(caught.value)


# --- the connector config -------------------------------------------------------------------------


def test_key_columns_become_message_key_columns_escaped_in_their_order(definition) -> None:
    values = render_connector_config(definition, SecretStr("pw")).for_connect()
    assert values["message.key.columns"] == r"public\.audit_log:logged_at,event_id"


def test_several_tables_are_separated_by_semicolons() -> None:
    text = DEFINITION.replace("  - public.audit_log\n", "  - public.audit_log\n  - ops.job-log\n") + (
        "  ops.job-log: [run.id]\n"
    )
    definition = parse_definition(text, "app", "connectors/app.yaml")
    values = render_connector_config(definition, SecretStr("pw")).for_connect()
    # Debezium matches `<table>.<column>` as a regex: '.' and '-' are escaped to match only themselves
    assert values["message.key.columns"] == r"public\.audit_log:logged_at,event_id;ops\.job\-log:run\.id"


def test_without_key_columns_no_message_key_columns_is_rendered(definition) -> None:
    plain = parse_definition(_without_key(DEFINITION), "app", "connectors/app.yaml")
    assert "message.key.columns" not in render_connector_config(plain, SecretStr("pw")).for_connect()


# --- the preflight --------------------------------------------------------------------------------


def test_a_keyless_table_with_key_columns_and_full_identity_passes(definition) -> None:
    items = evaluate(inspection(), definition, BeforeImageNeeds())
    assert [item for item in items if item.status != "ok"] == []
    keyed = items_by_key(items)["primary_key:public.audit_log"]
    assert "keyed by key_columns (logged_at, event_id), REPLICA IDENTITY FULL" in keyed.detail


def test_replica_identity_using_index_passes_too(definition) -> None:
    items = items_by_key(evaluate(inspection(replica_identity="i"), definition, BeforeImageNeeds()))
    assert items["primary_key:public.audit_log"].status == "ok"


@pytest.mark.parametrize(("identity", "shown"), [("d", "DEFAULT"), ("n", "NOTHING")])
def test_default_identity_fails_with_the_replica_identity_fix(definition, identity: str, shown: str) -> None:
    """Published without a key or a FULL/USING INDEX identity, the application's own UPDATE and
    DELETE on the table would be rejected by PostgreSQL."""
    report = PreflightReport(
        "app", "t", evaluate(inspection(replica_identity=identity), definition, BeforeImageNeeds())
    )
    item = items_by_key(report.items)["primary_key:public.audit_log"]
    assert item.status == "fail"
    assert f"REPLICA IDENTITY is {shown}" in item.detail and "rejects every UPDATE and DELETE" in item.detail
    assert item.fix.sql == ("ALTER TABLE public.audit_log REPLICA IDENTITY FULL;",)
    assert item.fix.requires == "table_owner"
    owner = Capabilities(role="owner", owns_tables=frozenset({"public.audit_log"}))
    assert item in fixes_to_apply(report, owner)
    assert item not in fixes_to_apply(report, Capabilities(role="app_cdc"))


def test_a_keyless_table_without_key_columns_still_fails_naming_both_ways(definition) -> None:
    plain = parse_definition(_without_key(DEFINITION), "app", "connectors/app.yaml")
    item = items_by_key(evaluate(inspection(replica_identity="d"), plain, BeforeImageNeeds()))[
        "primary_key:public.audit_log"
    ]
    assert item.status == "fail"
    assert "Add a primary key or" in item.detail
    assert "key_columns in connectors/app.yaml" in item.detail
    assert "ALTER TABLE public.audit_log REPLICA IDENTITY FULL;" in item.detail
    assert item.fix.sql == ("ALTER TABLE public.audit_log ADD PRIMARY KEY (<columns that identify a row>);",)
    assert "or declare key_columns for public.audit_log" in item.fix.note
    # Already FULL: only the key columns are missing, so the identity fix is not repeated.
    full = items_by_key(evaluate(inspection(), plain, BeforeImageNeeds()))["primary_key:public.audit_log"]
    assert full.status == "fail" and "REPLICA IDENTITY FULL;" not in full.detail


def test_an_unknown_key_column_is_named_with_the_setting_and_a_suggestion() -> None:
    text = DEFINITION.replace("[logged_at, event_id]", "[logged_at, evnt_id]")
    definition = parse_definition(text, "app", "connectors/app.yaml")
    item = items_by_key(evaluate(inspection(), definition, BeforeImageNeeds()))[
        "key_columns:public.audit_log"
    ]
    assert item.status == "fail"
    assert item.detail.startswith(
        "connectors/app.yaml:11: key_columns of public.audit_log: no column evnt_id (did you mean event_id?) "
        "in public.audit_log"
    )


def test_a_nullable_key_column_is_a_warning_never_fixed_automatically(definition) -> None:
    columns = (("logged_at", True), ("event_id", False), ("actor", False))
    report = PreflightReport(
        "app", "t", evaluate(inspection(columns=columns), definition, BeforeImageNeeds())
    )
    item = items_by_key(report.items)["key_columns:public.audit_log"]
    assert item.status == "warn"
    assert "event_id may be null" in item.detail and "logged_at" not in item.detail.split(":")[-1]
    assert item.fix.sql == ("ALTER TABLE public.audit_log ALTER COLUMN event_id SET NOT NULL;",)
    # It changes what the application may insert: shown, never applied by --fix, even as superuser.
    assert fixes_to_apply(report, Capabilities(role="postgres", superuser=True)) == []
    assert report.passed


def test_key_columns_for_a_table_with_a_primary_key_are_refused() -> None:
    text = DEFINITION + "  public.orders: [status]\n"
    definition = parse_definition(text, "app", "connectors/app.yaml")
    items = items_by_key(evaluate(inspection(), definition, BeforeImageNeeds()))
    assert items["primary_key:public.orders"].status == "ok"
    refused = items["key_columns:public.orders"]
    assert refused.status == "fail"
    assert refused.detail.startswith(
        "connectors/app.yaml:12: key_columns of public.orders (status): public.orders has a primary key (id)"
    )
    assert "remove public.orders from key_columns" in refused.detail


# --- table descriptions (mapping new, mapping tables) ---------------------------------------------


def test_the_description_of_a_keyless_table_is_keyed_by_its_key_columns(monkeypatch) -> None:
    reflected = ReflectedTable(
        "public.audit_log",
        [PgColumn("event_id", "uuid", nullable=False), PgColumn("logged_at", "timestamptz", nullable=True),
         PgColumn("detail", "text")],
        primary_key=(),
    )  # fmt: skip
    monkeypatch.setattr(reflection, "reflect_table", lambda connection, table: reflected)
    assert live_description(None, "app", "public.audit_log").key is None  # no key declared: none
    description = live_description(None, "app", "public.audit_log", ("logged_at", "event_id"))
    assert description.key_columns == ("logged_at", "event_id")
    assert description.key is not None
    assert description.key["name"] == "staging.app.public.audit_log.Key"
    # In the declared order, optional where the column is nullable (as Debezium writes the key)
    assert [(f["field"], f["optional"]) for f in description.key["fields"]] == [
        ("logged_at", True),
        ("event_id", False),
    ]


def test_a_table_with_a_primary_key_is_keyed_by_it(monkeypatch) -> None:
    reflected = ReflectedTable(
        "public.orders",
        [PgColumn("status", "text"), PgColumn("id", "int8", nullable=False)],
        primary_key=("id",),
    )
    monkeypatch.setattr(reflection, "reflect_table", lambda connection, table: reflected)
    description = live_description(None, "app", "public.orders")
    assert description.key_columns == ("id",)
    assert [(f["field"], f["optional"]) for f in description.key["fields"]] == [("id", False)]


# --- key columns Debezium could not key by as declared ------------------------------------------


def test_a_generated_key_column_fails_naming_it_and_why(definition) -> None:
    """Logical decoding does not send a generated column's value: the key would miss it."""
    item = items_by_key(evaluate(inspection(generated=("event_id",)), definition, BeforeImageNeeds()))[
        "key_columns:public.audit_log"
    ]
    assert item.status == "fail"
    assert item.detail.startswith(
        "connectors/app.yaml:11: key_columns of public.audit_log: event_id is a generated column, "
        "whose values logical decoding does not send"
    )
    # another generated column of the table does not matter
    other = items_by_key(evaluate(inspection(generated=("detail",)), definition, BeforeImageNeeds()))
    assert other["key_columns:public.audit_log"].status == "ok"


def test_a_dropped_key_column_is_refused_as_unknown(definition) -> None:
    """A dropped column is not among the table's columns (the inspection skips attisdropped)."""
    columns = tuple(column for column in AUDIT_COLUMNS if column[0] != "event_id")
    item = items_by_key(evaluate(inspection(columns=columns), definition, BeforeImageNeeds()))[
        "key_columns:public.audit_log"
    ]
    assert item.status == "fail" and "no column event_id in public.audit_log" in item.detail


def test_a_key_column_with_a_twin_differing_only_in_case_fails_naming_both(definition) -> None:
    """Debezium matches message.key.columns case-insensitively: "Event_ID" would be in the key too."""
    columns = (*AUDIT_COLUMNS, ("Event_ID", True))
    item = items_by_key(evaluate(inspection(columns=columns), definition, BeforeImageNeeds()))[
        "key_columns:public.audit_log"
    ]
    assert item.status == "fail"
    assert 'event_id also matches "Event_ID"' in item.detail
    assert "regardless of case" in item.detail


def test_case_twins_are_as_java_folds_them_ascii_letters_only() -> None:
    """Pattern.CASE_INSENSITIVE without UNICODE_CASE: É and é are different letters to Debezium."""
    text = DEFINITION.replace("[logged_at, event_id]", "[logged_at, état]")
    definition = parse_definition(text, "app", "connectors/app.yaml")
    columns = (("logged_at", True), ("état", True), ("ÉTAT", True))
    item = items_by_key(evaluate(inspection(columns=columns), definition, BeforeImageNeeds()))[
        "key_columns:public.audit_log"
    ]
    assert item.status == "ok", item.detail


def test_key_columns_of_a_table_with_a_captured_twin_differing_in_case_are_refused() -> None:
    """Debezium matches the table part case-insensitively too: public.AUDIT_LOG would be keyed alike."""
    text = DEFINITION.replace("  - public.audit_log\n", "  - public.audit_log\n  - public.AUDIT_LOG\n")
    with pytest.raises(SourceDefinitionError) as caught:
        parse_definition(text, "app", "connectors/app.yaml")
    assert "table public.audit_log and public.AUDIT_LOG differ only in case" in str(caught.value)
    # without key columns the two are captured as ever
    parse_definition(_without_key(text), "app", "connectors/app.yaml")


def test_the_description_refuses_a_generated_declared_key_column(monkeypatch) -> None:
    """Left out of the key description, the key `mapping new` scaffolds would not be Debezium's."""
    reflected = ReflectedTable(
        "public.audit_log",
        [PgColumn("logged_at", "timestamptz", nullable=False), PgColumn("detail", "text")],
        primary_key=(),
        generated=(PgColumn("event_id", "text", nullable=False),),
    )
    monkeypatch.setattr(reflection, "reflect_table", lambda connection, table: reflected)
    with pytest.raises(GeneratedKeyColumnError, match="event_id is a generated column"):
        live_description(None, "app", "public.audit_log", ("logged_at", "event_id"))


def test_the_description_refuses_a_declared_key_column_the_table_lacks(monkeypatch) -> None:
    """A misspelt declared column was left out: the key description was the rest of the key (or none,
    and `mapping new` then asked for key_columns that were declared)."""
    reflected = ReflectedTable(
        "public.audit_log",
        [PgColumn("logged_at", "timestamptz", nullable=False), PgColumn("event_id", "uuid", nullable=False)],
        primary_key=(),
    )
    monkeypatch.setattr(reflection, "reflect_table", lambda connection, table: reflected)
    with pytest.raises(UnknownKeyColumnError) as caught:
        live_description(None, "app", "public.audit_log", ("logged_at", "evnt_id"))
    assert str(caught.value).startswith(
        "key_columns of public.audit_log: no column evnt_id in public.audit_log "
        "(its columns: logged_at, event_id)"
    )
    with pytest.raises(UnknownKeyColumnError, match="no column evnt_id, logd_at in"):
        live_description(None, "app", "public.audit_log", ("evnt_id", "logd_at"))


# --- mapping new ----------------------------------------------------------------------------------


def test_mapping_new_keys_a_keyless_table_by_its_declared_key_columns(tmp_path, monkeypatch) -> None:
    """`mapping new --source app --table public.audit_log`: the key description, the key schema and
    the mapping's key are the declared columns, in their order, and the mapping validates."""
    reflected = ReflectedTable(
        "public.audit_log",
        [PgColumn("event_id", "uuid", nullable=False), PgColumn("logged_at", "timestamptz", nullable=False),
         PgColumn("actor", "text"), PgColumn("detail", "text")],
        primary_key=(),
    )  # fmt: skip
    monkeypatch.setenv("UNUSED", "pw")
    settings = SimpleNamespace(mappings_dir=tmp_path)
    monkeypatch.setattr(database, "connect", lambda *args: contextlib.nullcontext())
    monkeypatch.setattr(inspection_module, "ancestors_of", lambda connection, table: ())
    monkeypatch.setattr(reflection, "reflect_table", lambda connection, table: reflected)
    arguments = ["mapping", "new", "audit_logged", "--source", "app", "--table", "public.audit_log"]

    plain = parse_definition(_without_key(DEFINITION), "app", "connectors/app.yaml")
    monkeypatch.setattr(mapping_commands, "_source_definition", lambda name: (plain, settings))
    refused = CliRunner().invoke(app, [*arguments, "--dir", str(tmp_path / "plain")])
    assert refused.exit_code == 2 and "public.audit_log has no primary key" in refused.output
    assert not (tmp_path / "plain").exists()

    keyed = parse_definition(DEFINITION, "app", "connectors/app.yaml")
    monkeypatch.setattr(mapping_commands, "_source_definition", lambda name: (keyed, settings))
    created = CliRunner().invoke(app, [*arguments, "--dir", str(tmp_path / "app")])
    assert created.exit_code == 0, created.output
    assert "audit_logged.yaml: valid, 1 test(s) pass" in created.output
    folder = tmp_path / "app"
    key_description = orjson.loads((folder / "tables/public.audit_log.key.json").read_bytes())
    assert [f["field"] for f in key_description["fields"]] == ["logged_at", "event_id"]
    key_schema = orjson.loads((folder / "schemas/audit_logged_key.avsc").read_bytes())
    assert [f["name"] for f in key_schema["fields"]] == ["logged_at", "event_id"]
    mapping = (folder / "audit_logged.yaml").read_text()
    assert "  key:\n    logged_at: after.logged_at\n    event_id: after.event_id\n  fields:" in mapping
