"""Rendering the Debezium connector config and diffing it against what Connect holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from eventbus.sources.connector_config import diff_configs, render_connector_config
from eventbus.sources.definition_files import load_definition, parse_definition
from eventbus.sources.errors import SourceDefinitionError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "connectors"
PASSWORD = SecretStr("pw-value-1")


@pytest.fixture
def full():
    return load_definition(FIXTURES / "valid" / "claims_full.yaml")


def test_rendered_config_makes_the_documented_choices(full) -> None:
    config = render_connector_config(full, PASSWORD)
    values = config.for_connect()
    assert config.name == "eventbus-source-claims_full"
    assert values["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert values["plugin.name"] == "pgoutput"
    assert values["publication.name"] == "claims_pub"
    assert values["publication.autocreate.mode"] == "disabled"
    assert values["slot.name"] == "claims_slot"
    assert values["topic.prefix"] == "staging.claims_full"
    assert values["table.include.list"] == r"public\.claims,public\.claim_status"
    assert values["exactly.once.support"] == "required"
    assert values["producer.override.compression.type"] == "zstd"  # staging records compressed
    assert values["message.prefix.exclude.list"] == ".*"  # no <prefix>.message topic to block on
    # An open transaction of a killed worker blocks the next worker's start for at most this long.
    assert values["producer.override.transaction.timeout.ms"] == "30000"
    assert values["decimal.handling.mode"] == "precise"
    assert values["time.precision.mode"] == "adaptive_time_microseconds"
    assert values["tombstones.on.delete"] == "true"
    assert values["snapshot.mode"] == "initial"
    assert values["heartbeat.interval.ms"] == "30000"
    assert values["heartbeat.action.query"] == "update public.cdc_heartbeat set at = now()"
    for side in ("key", "value"):
        assert values[f"{side}.converter"] == "org.apache.kafka.connect.json.JsonConverter"
        assert values[f"{side}.converter.schemas.enable"] == "true"
    # Connect reaches the database under another name than the CLI does.
    assert (values["database.hostname"], values["database.port"]) == ("claims-db", "6432")
    assert values["database.sslmode"] == "require"
    # Passthrough options, as Connect's strings.
    assert values["max.batch.size"] == "4096"
    assert values["provide.transaction.metadata"] == "false"
    assert all(isinstance(v, str) for v in values.values())


def test_table_include_list_is_an_exact_match() -> None:
    text = (FIXTURES / "valid" / "minimal.yaml").read_text().replace("[public.orders]", "[public.order_v2]")
    config = render_connector_config(parse_definition(text, "minimal"), PASSWORD).for_connect()
    assert config["table.include.list"] == r"public\.order_v2"


def test_secret_looking_passthrough_options_are_redacted() -> None:
    text = (FIXTURES / "valid" / "minimal.yaml").read_text() + "debezium:\n  database.x: 1\n"
    with pytest.raises(SourceDefinitionError, match=r"use the 'database' section"):
        parse_definition(text, "minimal")
    text = (FIXTURES / "valid" / "minimal.yaml").read_text() + "debezium:\n  ssl.truststore.password: tpw\n"
    config = render_connector_config(parse_definition(text, "minimal"), PASSWORD)
    assert config.redacted()["ssl.truststore.password"] == "********"
    assert "tpw" not in repr(config)


def test_unchanged_config_as_connect_returns_it_has_no_diff(full) -> None:
    config = render_connector_config(full, PASSWORD)
    stored = {**config.for_connect(), "name": config.name}  # Connect adds the name
    assert diff_configs(stored, config).empty


def test_changed_table_list_shows_only_that_key(full) -> None:
    config = render_connector_config(full, PASSWORD)
    stored = {**config.for_connect(), "table.include.list": r"public\.claims", "name": config.name}
    diff = diff_configs(stored, config)
    assert not diff.empty
    assert diff.changed == {"table.include.list": (r"public\.claims", r"public\.claims,public\.claim_status")}
    assert diff.lines() == [r"~ table.include.list: public\.claims -> public\.claims,public\.claim_status"]


def test_diff_lists_added_and_removed_keys_and_hides_secrets(full) -> None:
    config = render_connector_config(full, PASSWORD)
    stored = dict(config.for_connect())
    del stored["max.batch.size"]
    stored["snapshot.delay.ms"] = "5"
    stored["database.password"] = "old-password"
    diff = diff_configs(stored, config)
    assert diff.added == {"max.batch.size": "4096"}
    assert diff.removed == {"snapshot.delay.ms": "5"}
    assert diff.changed == {"database.password": ("********", "(changed)")}
    text = "\n".join(diff.lines()) + str(diff.to_json())
    assert "old-password" not in text and "pw-value-1" not in text


def test_new_connector_diff_adds_everything_redacted(full) -> None:
    config = render_connector_config(full, PASSWORD)
    diff = diff_configs(None, config)
    assert set(diff.added) == set(config.for_connect())
    assert diff.added["database.password"] == "********"


def test_a_config_provider_reference_replaces_the_password() -> None:
    reference = "${file:/etc/kafka-connect/secrets.properties:orders_password}"
    text = (
        (FIXTURES / "valid" / "minimal.yaml")
        .read_text()
        .replace("  password:", f'  connect_password: "{reference}"\n  password:')
    )
    config = render_connector_config(parse_definition(text, "minimal"), PASSWORD)
    assert config.for_connect()["database.password"] == reference
    assert "pw-value-1" not in str(config.for_connect())
    # A reference is not a secret: printed as it is, so a config diff shows which secret is meant.
    assert config.redacted()["database.password"] == reference


def test_tables_added_to_a_running_connector_are_named_for_the_snapshot_note() -> None:
    """Debezium snapshots a table once, at the connector's first start: register says which added
    tables will have only their changes from now on (their existing rows were silently not read)."""
    from eventbus.sources.connector_config import ConfigDiff, table_include_list
    from eventbus.sources.registration import added_tables

    before = table_include_list(["public.claims"])
    after = table_include_list(["public.claims", "public.claim_notes", "Intake.Req-1"])
    assert added_tables(ConfigDiff({}, {}, {"table.include.list": (before, after)})) == [
        "Intake.Req-1",
        "public.claim_notes",
    ]
    assert added_tables(ConfigDiff({}, {}, {"table.include.list": (after, before)})) == []
    assert added_tables(ConfigDiff({}, {}, {})) == []
