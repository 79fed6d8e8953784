"""Source definitions: every broken fixture fails at its line; secrets come only from env or files."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus.sources.connector_config import render_connector_config
from eventbus.sources.definition_files import load_definition, parse_definition
from eventbus.sources.errors import SecretUnavailableError, SourceDefinitionError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "connectors"
BROKEN = sorted((FIXTURES / "broken").glob("*.yaml"))


def _expected(path: Path) -> tuple[int, str]:
    # Each broken fixture starts with "# error: <line>: <text the message contains>".
    header = path.read_text(encoding="utf-8").splitlines()[0]
    line, text = header.removeprefix("# error: ").split(": ", 1)
    return int(line), text


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_definition_reports_file_and_line(path: Path) -> None:
    line, text = _expected(path)
    with pytest.raises(SourceDefinitionError) as caught:
        load_definition(path)
    messages = str(caught.value).splitlines()
    assert any(m.startswith(f"{path}:{line}:") and text in m for m in messages), messages


def test_there_are_broken_fixtures() -> None:
    assert len(BROKEN) >= 10


def test_full_definition_loads_with_every_key() -> None:
    definition = load_definition(FIXTURES / "valid" / "claims_full.yaml")
    assert definition.name == "claims_full"
    assert definition.database.host == "db.internal"
    assert definition.database.port == 5432
    assert definition.database.dbname == "claims"
    assert definition.database.user == "claims_cdc"
    assert definition.database.host_for_connect == "claims-db"
    assert definition.database.port_for_connect == 6432
    assert definition.staging_topics.partitions == 6
    assert definition.staging_topics.retention_ms == 14 * 86_400_000
    assert definition.heartbeat.interval_ms == 30_000
    assert definition.max_retained_wal_bytes == 2 * 2**30
    assert definition.slot_name == "claims_slot"
    assert definition.publication_name == "claims_pub"
    assert definition.staging_topics_by_table() == {
        "public.claims": "staging.claims_full.public.claims",
        "public.claim_status": "staging.claims_full.public.claim_status",
    }


def test_defaults_of_a_minimal_definition() -> None:
    definition = load_definition(FIXTURES / "valid" / "minimal.yaml")
    assert definition.slot_name == "eventbus_minimal"
    assert definition.publication_name == "eventbus_minimal"
    assert definition.connector_name == "eventbus-source-minimal"
    assert definition.staging_topics.partitions == 1
    assert definition.staging_topics.retention_ms == 7 * 86_400_000
    assert definition.heartbeat.interval_ms == 10_000
    assert definition.tombstones_on_delete is False
    assert definition.heartbeat_topic == "__debezium-heartbeat.staging.minimal"


def test_file_name_must_be_a_valid_source_name(tmp_path: Path) -> None:
    path = tmp_path / "Bad-Name.yaml"
    path.write_text((FIXTURES / "valid" / "minimal.yaml").read_text())
    with pytest.raises(SourceDefinitionError, match=r"Bad-Name.yaml:1: source name 'Bad-Name'"):
        load_definition(path)


def test_missing_definition_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SourceDefinitionError, match=r"nope.yaml: no such source definition"):
        load_definition(tmp_path / "nope.yaml")


def test_password_from_environment_never_in_repr_or_rendered_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIT_CLAIMS_DB_PASSWORD", "s3cr3t-from-env")
    definition = load_definition(FIXTURES / "valid" / "claims_full.yaml")
    assert "s3cr3t" not in repr(definition)
    password = definition.resolve_password()
    assert password.get_secret_value() == "s3cr3t-from-env"
    config = render_connector_config(definition, password)
    assert "s3cr3t" not in repr(config)
    assert "s3cr3t" not in str(config.redacted())
    assert config.redacted()["database.password"] == "********"
    # Only the PUT body carries it, because Connect needs it to log in.
    assert config.for_connect()["database.password"] == "s3cr3t-from-env"


def test_password_from_file_strips_the_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    text = (FIXTURES / "valid" / "minimal.yaml").read_text().replace("/run/secrets/app_cdc", str(secret))
    definition = parse_definition(text, "minimal", "minimal.yaml")
    assert definition.resolve_password().get_secret_value() == "from-a-file"
    assert "from-a-file" not in repr(definition)


def test_unset_variable_names_file_line_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNIT_CLAIMS_DB_PASSWORD", raising=False)
    path = FIXTURES / "valid" / "claims_full.yaml"
    definition = load_definition(path)
    with pytest.raises(SecretUnavailableError) as caught:
        definition.resolve_password()
    assert str(caught.value) == f"{path}:5: environment variable UNIT_CLAIMS_DB_PASSWORD is not set"


def test_unreadable_secret_file_is_reported(tmp_path: Path) -> None:
    definition = load_definition(FIXTURES / "valid" / "minimal.yaml")
    with pytest.raises(
        SecretUnavailableError, match=r"minimal.yaml:5: cannot read secret file /run/secrets/app_cdc"
    ):
        definition.resolve_password()


@pytest.mark.parametrize(
    ("table", "topic"),
    [
        ("public.claims", "staging.s.public.claims"),
        ("Intake.Claim-Status_2", "staging.s.Intake.Claim-Status_2"),
        ("public.réclamations", "staging.s.public.r_clamations"),
        ("public.claim status", "staging.s.public.claim_status"),
        ("public.t\U0001f600", "staging.s.public.t__"),  # two UTF-16 units, as Java counts them
    ],
)
def test_staging_topics_are_named_as_debezium_names_them(table: str, topic: str) -> None:
    """Debezium replaces what a topic name cannot hold by `_`; registration created the raw name
    (which Kafka refused) and the transformer would have read a topic nobody writes."""
    from eventbus.sources.naming import staging_topic

    assert staging_topic("s", table) == topic


def test_a_table_written_with_sql_quotes_is_told_to_drop_them() -> None:
    """`"Ops"."order"` (as SQL writes a mixed-case name) was only "is not <schema>.<table>"."""
    text = (
        "database: {host: h, dbname: d, user: u, password: {env: UNUSED}}\n"
        'tables:\n  - public.ok\n  - \'"Ops"."order"\'\nsnapshot_mode: no_data\n'
    )
    with pytest.raises(SourceDefinitionError) as caught:
        parse_definition(text, "ops", "connectors/ops.yaml")
    assert "connectors/ops.yaml:4: tables[1]:" in str(caught.value)
    assert "write it without quotes: Ops.order" in str(caught.value)
