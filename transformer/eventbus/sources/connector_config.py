"""The Debezium PostgreSQL connector config rendered from a source definition.

Every value is a string, as Kafka Connect stores and returns them, so a rendered config compares
equal to what `GET /connectors/<name>/config` gives back when nothing changed. The password is kept
as a `SecretStr`: `redacted()` and `repr()` never show it; only `for_connect()` (the PUT body) does.
Each choice below is explained where it is made and in connectors/README.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from eventbus.sources.spec import SourceDefinition

CONNECTOR_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"
TRANSACTION_TIMEOUT_MS = 30_000
REDACTED = "********"
SECRET_KEYS = frozenset({"database.password"})


def is_secret_key(key: str) -> bool:
    return key in SECRET_KEYS or bool(re.search(r"(password|secret|credential|token)", key, re.IGNORECASE))


@dataclass(frozen=True)
class ConnectorConfig:
    """A connector's name and its config; secret values are `SecretStr`."""

    name: str
    values: Mapping[str, str | SecretStr] = field(repr=False)

    def for_connect(self) -> dict[str, str]:
        """The PUT body: every value in clear, as Connect needs it."""
        return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in self.values.items()}

    def redacted(self) -> dict[str, str]:
        """For printing, logs and `--json`: secrets replaced by asterisks."""
        return {k: REDACTED if isinstance(v, SecretStr) else v for k, v in self.values.items()}

    def __repr__(self) -> str:
        return f"ConnectorConfig(name={self.name!r}, values={self.redacted()!r})"


def _text(value: Any) -> str:
    # Connect returns booleans as "true"/"false": render them that way so unchanged compares equal.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table_include_list(tables: list[str]) -> str:
    """Debezium matches `table.include.list` entries as regular expressions against the whole
    `schema.table`; escaping makes `public.claims` match exactly that table, not `publicXclaims`."""
    return ",".join(re.escape(table) for table in tables)


def message_key_columns(key_columns: Mapping[str, list[str]]) -> str:
    """Debezium's `message.key.columns`: `<table regex>:<col>,<col>;...`. Debezium matches each
    `<table regex>.<column>` as a regular expression against `schema.table.column`, so both parts are
    escaped to name exactly one table and column; the key's fields come in the order given."""
    return ";".join(
        f"{re.escape(table)}:{','.join(re.escape(column) for column in columns)}"
        for table, columns in key_columns.items()
    )


def render_connector_config(definition: SourceDefinition, password: SecretStr) -> ConnectorConfig:
    database = definition.database
    values: dict[str, str | SecretStr] = {
        "connector.class": CONNECTOR_CLASS,
        # The PostgreSQL connector reads one replication slot: it never runs more than one task.
        "tasks.max": "1",
        # pgoutput is built into PostgreSQL 10+ and available on managed services; no server plugin.
        "plugin.name": "pgoutput",
        "database.hostname": database.host_for_connect,
        "database.port": str(database.port_for_connect),
        "database.user": str(database.user),
        # A config provider reference when the definition gives one: the worker resolves it, so
        # the password stays out of Connect's REST API and config topic.
        "database.password": database.connect_password or password,
        "database.dbname": str(database.dbname),
        # staging.<source>: Debezium appends <schema>.<table>, which is the staging topic name
        # (eventbus.sources.naming), so no routing transform is needed.
        "topic.prefix": definition.topic_prefix,
        "table.include.list": table_include_list(definition.tables),
        # The publication is checked (and created) by `eventbus source check/register`, limited to
        # the captured tables. Debezium must not create one FOR ALL TABLES or alter ours.
        "publication.name": definition.publication_name,
        "publication.autocreate.mode": "disabled",
        "slot.name": definition.slot_name,
        # Keep the slot when the connector stops: dropping it would lose changes made meanwhile.
        # `eventbus source remove --drop-slot` drops it deliberately.
        "slot.drop.on.stop": "false",
        "snapshot.mode": definition.snapshot_mode,
        # Connect JSON with schemas: the transformer needs each column's logical type (decimal
        # scale, timestamp precision) and recognises the repeated schema by its bytes. Set here
        # too, so the connector does not depend on the worker's defaults.
        "key.converter": JSON_CONVERTER,
        "key.converter.schemas.enable": "true",
        "value.converter": JSON_CONVERTER,
        "value.converter.schemas.enable": "true",
        # Staging records are written in Connect transactions together with their source offsets,
        # so a restart neither loses nor duplicates a streamed change (the worker must run with
        # exactly.once.source.support=enabled; an interrupted initial snapshot is still redone).
        "exactly.once.support": "required",
        # Exact decimals (bytes + scale in the schema), never doubles that round amounts.
        "decimal.handling.mode": "precise",
        # Dates as days, times/timestamps in the column's own precision up to microseconds: no
        # precision is lost and the transformer's converters know each encoding.
        "time.precision.mode": "adaptive_time_microseconds",
        # Staging topics are deleted by retention, not compacted, so a tombstone after each delete
        # would only be one more record for consumers to skip. Opt in per source when compacting.
        "tombstones.on.delete": _text(definition.tombstones_on_delete),
        # Heartbeats move the slot's confirmed position even while the captured tables are idle and
        # other tables are busy, so the slot does not hold WAL back; the topic name stays known.
        "heartbeat.interval.ms": str(definition.heartbeat.interval_ms),
        "topic.heartbeat.prefix": HEARTBEAT_TOPIC_PREFIX,
        # Business events are read by people waiting on them: Debezium's default 500 ms wait for a
        # batch is most of the end-to-end latency (bench: p99 1.3 s vs 0.24 s at 20 ms, 1,000/s).
        # Overridable through the definition's `debezium:` options.
        "poll.interval.ms": "20",
        # Staging records are Connect JSON with the schema in every record: zstd keeps them about a
        # fifth of their size or less on the brokers' disks (measured on the sample table: 5.1 kB a
        # change raw, 1.1 kB compressed alone, 0.3 kB in batches of 5). Connect allows producer
        # overrides by default since Kafka 3.0 (connector.client.config.override.policy=All).
        "producer.override.compression.type": "zstd",
        # The task's transactions carry its source offsets onto Connect's offsets topic. A worker
        # killed mid-transaction leaves one open there, and every worker start reads that topic
        # (read_committed) before any task can fence the old producer: it waits until the
        # transaction times out. Kafka's default 60 s made a worker killed right after a broker
        # restart take 70+ s to stream again (docs/connect-after-broker-restart.md); 30 s still
        # outlasts a commit delayed by a broker restart.
        "producer.override.transaction.timeout.ms": str(TRANSACTION_TIMEOUT_MS),
        # A logical decoding message (pg_logical_emit_message, used by outbox tools and extensions)
        # would go to <prefix>.message, a topic nobody provisions on a bus without auto-creation:
        # the task then blocked, and with it every change of the source. No mapping reads them.
        "message.prefix.exclude.list": ".*",
    }
    if definition.key_columns:
        # Tables without a primary key: Debezium would write their records without a key (a row's
        # changes unordered across partitions); the declared columns key them instead.
        values["message.key.columns"] = message_key_columns(definition.key_columns)
    if database.sslmode:
        values["database.sslmode"] = database.sslmode
    if definition.heartbeat.action_query:
        values["heartbeat.action.query"] = definition.heartbeat.action_query
    for key, value in definition.debezium.items():  # validated not to touch the keys above
        values[key] = SecretStr(_text(value)) if is_secret_key(key) else _text(value)
    return ConnectorConfig(definition.connector_name, values)


# --- diffing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    added: dict[str, str]
    removed: dict[str, str]
    changed: dict[str, tuple[str, str]]  # key → (current, desired)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        out = [f"+ {k} = {v}" for k, v in sorted(self.added.items())]
        out += [f"- {k} = {v}" for k, v in sorted(self.removed.items())]
        out += [f"~ {k}: {old} -> {new}" for k, (old, new) in sorted(self.changed.items())]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": {k: {"from": old, "to": new} for k, (old, new) in self.changed.items()},
        }


def diff_configs(current: Mapping[str, str] | None, desired: ConnectorConfig) -> ConfigDiff:
    """What a PUT of `desired` changes in `current` (None: the connector does not exist yet).

    Connect adds `name` to the stored config; it is not ours to compare. Secret values are compared
    in clear but shown redacted, including whether they changed.
    """
    wanted = desired.for_connect()
    existing = {k: v for k, v in (current or {}).items() if k != "name"}

    def shown(key: str, value: str) -> str:
        return REDACTED if is_secret_key(key) else value

    added = {k: shown(k, v) for k, v in wanted.items() if k not in existing}
    removed = {k: shown(k, v) for k, v in existing.items() if k not in wanted}
    changed = {
        k: (shown(k, existing[k]), "(changed)" if is_secret_key(k) else wanted[k])
        for k in wanted
        if k in existing and existing[k] != wanted[k]
    }
    return ConfigDiff(added, removed, changed)
