"""Source definitions: `connectors/NAME.yaml` as pydantic models.

A definition says which database to capture, which tables, and how their staging topics and the
Debezium connector are set up. Secrets are *references* (`{env: VAR}` or `{file: /path}`) resolved
only when a command needs them, so a loaded definition never holds a password and its repr is safe
to log. Finding and reading the files, with validation errors placed at `file:line`:
`definition_files.py`.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from eventbus.mapping.yaml_loader import KeyPath, Locations
from eventbus.sources.errors import SecretUnavailableError
from eventbus.sources.naming import (
    connector_name,
    debezium_key_fold,
    debezium_topic_part,
    staging_topic,
    topic_prefix,
)
from eventbus.sources.naming import slot_name as default_slot_name

SOURCE_NAME = r"^[a-z][a-z0-9_]{0,47}$"  # becomes part of slot, publication and topic names
PG_IDENTIFIER = r"^[a-z_][a-z0-9_]{0,62}$"  # unquoted PostgreSQL identifier (slot names allow no more)
QUALIFIED_TABLE = r"^[^.\s\"]+\.[^.\s\"]+$"

SnapshotMode = Literal["initial", "initial_only", "no_data", "when_needed", "always", "recovery"]

# Debezium options the definition sets through its own keys or that the transformer depends on:
# a passthrough may not change them, or the staging format would silently stop matching the decoder.
MANAGED_OPTIONS: dict[str, str] = {
    "name": "the connector is named after the definition file",
    "connector.class": "always the Debezium PostgreSQL connector",
    "tasks.max": "the PostgreSQL connector runs exactly one task",
    "plugin.name": "always pgoutput (built into PostgreSQL 10+)",
    "topic.prefix": "staging topics are named staging.<source>.<schema>.<table>",
    "table.include.list": "use 'tables'",
    "message.key.columns": "use 'key_columns'",
    "publication.name": "use 'publication'",
    "publication.autocreate.mode": "the publication is checked and created by eventbus",
    "slot.name": "use 'slot'",
    "snapshot.mode": "use 'snapshot_mode'",
    "heartbeat.interval.ms": "use 'heartbeat.interval'",
    "heartbeat.action.query": "use 'heartbeat.action_query'",
    "topic.heartbeat.prefix": "eventbus creates the heartbeat topic under its default name",
    "tombstones.on.delete": "use 'tombstones_on_delete'",
    "exactly.once.support": "the transformer relies on exactly-once staging",
    "decimal.handling.mode": "the transformer decodes exact decimals (precise)",
    "time.precision.mode": "the transformer decodes adaptive_time_microseconds",
    "key.converter": "the transformer decodes Connect JSON with schemas",
    "value.converter": "the transformer decodes Connect JSON with schemas",
    "key.converter.schemas.enable": "the transformer decodes Connect JSON with schemas",
    "value.converter.schemas.enable": "the transformer decodes Connect JSON with schemas",
}
MANAGED_PREFIXES = ("database.",)  # use the 'database' section

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_DURATION_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$")
_SIZE_BYTES = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}


def parse_duration_ms(value: Any) -> int:
    """`500ms`, `10s`, `5m`, `12h`, `7d` or a bare number of milliseconds → milliseconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 5m, 7d")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return int(match.group(1)) * _DURATION_MS[match.group(2) or "ms"]
    raise ValueError(f"expected a duration such as 10s, 5m, 7d, got {value!r}")


def parse_size_bytes(value: Any) -> int:
    """`512MiB`, `2GB` or a bare number of bytes → bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512MiB or 2GB")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return int(match.group(1)) * _SIZE_BYTES[match.group(2) or "B"]
    raise ValueError(f"expected a size such as 512MiB or 2GB, got {value!r}")


def _qualified_table(table: str) -> str:
    # Validated per item, so that the error points at the line of the offending table.
    if not re.match(QUALIFIED_TABLE, table):
        unquoted = table.replace('"', "")
        if '"' in table and re.match(QUALIFIED_TABLE, unquoted):
            # SQL's quoting: the names are already taken as PostgreSQL stores them, case and all
            raise ValueError(f"{table!r} is not <schema>.<table>: write it without quotes: {unquoted}")
        raise ValueError(f"{table!r} is not <schema>.<table>")
    return table


# A key column name goes into `message.key.columns`, which Debezium splits at `;`, `:` and `,` and
# whose entries may hold no whitespace.
_KEY_COLUMN_SEPARATORS = re.compile(r"[\s;:,]")


def _key_column(column: str) -> str:
    if not column:
        raise ValueError("a key column name is empty")
    if _KEY_COLUMN_SEPARATORS.search(column):
        raise ValueError(
            f"key column {column!r}: Debezium's message.key.columns cannot name a column with "
            "whitespace, ';', ':' or ','"
        )
    return column


KeyColumns = Annotated[list[Annotated[str, AfterValidator(_key_column)]], Field(min_length=1)]


class _Strict(BaseModel):
    # forbid: a misspelt key is an error, not an ignored option; strict: `port: "5432"` is caught
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SecretRef(_Strict):
    """Where a secret comes from: `{env: VAR}` or `{file: /run/secrets/x}`. Never the secret itself."""

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: str | None = Field(None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _reject_literal(cls, value: Any) -> Any:
        if isinstance(value, str | int | float):
            raise ValueError(
                "secrets are never written in the file: use {env: VARIABLE} or {file: /run/secrets/name}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def resolve(self) -> SecretStr:
        """The secret's value; a missing variable or unreadable file is a `SecretUnavailableError`."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise SecretUnavailableError(f"environment variable {self.env} is not set")
            return SecretStr(value)
        assert self.file is not None
        try:
            # Secret files (Docker/Kubernetes) usually end with a newline that is not part of it.
            return SecretStr(Path(self.file).read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as error:
            raise SecretUnavailableError(f"cannot read secret file {self.file}: {error.strerror}") from None


# `${alias:key}` or `${alias:path:key}` as Kafka's ConfigTransformer reads variables.
_PROVIDER_REFERENCE = re.compile(r"\$\{[A-Za-z0-9_.-]+:[^{}]+\}")


class DatabaseSpec(_Strict):
    """How to reach the database: `url` (without password) or host/port/dbname/user."""

    url: str | None = Field(None, description="postgresql://user@host:port/dbname, no password")
    host: str | None = None
    port: int = Field(5432, ge=1, le=65535)
    dbname: str | None = None
    user: str | None = None
    password: SecretRef
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    connect_host: str | None = Field(None, description="host as Kafka Connect sees it, if different")
    connect_port: int | None = Field(None, ge=1, le=65535)
    connect_password: str | None = Field(
        None,
        description=(
            "what the connector config carries instead of the password: a Kafka Connect config "
            "provider reference the workers resolve, e.g. ${file:/etc/kafka-connect/secrets.properties:"
            "claims_password}; `password` is still what eventbus itself connects with"
        ),
    )

    @field_validator("connect_password")
    @classmethod
    def _provider_reference(cls, value: str | None) -> str | None:
        if value is not None and not _PROVIDER_REFERENCE.fullmatch(value):
            raise ValueError(
                "connect_password must be a Kafka Connect config provider reference, "
                "${provider:[path:]key} (e.g. ${file:/etc/kafka-connect/secrets.properties:claims_password} "
                "or ${env:CLAIMS_DB_PASSWORD}), never the password itself"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        parts = urlsplit(data["url"])
        if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError(f"url must start with postgresql://, got {parts.scheme or 'no scheme'}")
        if parts.password is not None:
            raise ValueError("the url must not contain a password: use 'password: {env: VARIABLE}'")
        merged = dict(data)
        for key, value in (
            ("host", parts.hostname),
            ("port", parts.port),
            ("dbname", unquote(parts.path.lstrip("/")) or None),
            ("user", unquote(parts.username) if parts.username else None),
        ):
            if value is None:
                continue
            if key in data:
                raise ValueError(f"'{key}' is given both in 'url' and as a key: keep one")
            merged[key] = value
        return merged

    @model_validator(mode="after")
    def _complete(self) -> DatabaseSpec:
        missing = [key for key in ("host", "dbname", "user") if getattr(self, key) is None]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (give them as keys or in 'url')")
        return self

    @property
    def host_for_connect(self) -> str:
        return self.connect_host or str(self.host)

    @property
    def port_for_connect(self) -> int:
        return self.connect_port or self.port


class StagingTopicsSpec(_Strict):
    """How the staging topics (one per table) are created."""

    partitions: int = Field(1, ge=1, le=10_000)
    replication_factor: int | None = Field(None, ge=1, description="default: the broker's default")
    # At most 100 years (else `forever`): Kafka refuses a value beyond a Java long, and a typo such as
    # a number of seconds in `retention_ms` would otherwise pass until the topic is created.
    retention_ms: int = Field(
        7 * 86_400_000, ge=-1, le=36_500 * 86_400_000, description="-1 keeps records forever"
    )

    @model_validator(mode="before")
    @classmethod
    def _retention(cls, data: Any) -> Any:
        # `retention: 7d` is what people write; the model keeps Kafka's unit.
        if isinstance(data, dict) and "retention" in data:
            if "retention_ms" in data:
                raise ValueError("give either 'retention' or 'retention_ms'")
            data = dict(data)
            value = data.pop("retention")
            data["retention_ms"] = -1 if value in ("forever", -1) else parse_duration_ms(value)
        return data


class HeartbeatSpec(_Strict):
    """Debezium heartbeats: keep the slot's confirmed position moving while captured tables are idle."""

    # Debezium reads heartbeat.interval.ms as a Java int (about 24.8 days at most).
    interval_ms: int = Field(10_000, ge=0, le=2_147_483_647, description="0 disables heartbeats")
    action_query: str | None = Field(None, description="SQL run on each heartbeat (write to a table)")

    @model_validator(mode="before")
    @classmethod
    def _interval(cls, data: Any) -> Any:
        if isinstance(data, dict) and "interval" in data:
            if "interval_ms" in data:
                raise ValueError("give either 'interval' or 'interval_ms'")
            data = dict(data)
            data["interval_ms"] = parse_duration_ms(data.pop("interval"))
        return data

    @model_validator(mode="after")
    def _query_needs_heartbeats(self) -> HeartbeatSpec:
        # Debezium runs the query when it sends a heartbeat: without heartbeats it never runs, and
        # the slot it was meant to move keeps holding WAL.
        if self.action_query is not None and self.interval_ms == 0:
            raise ValueError(
                "action_query runs on each heartbeat, and interval 0 disables them: give an interval "
                "(e.g. 10s) or leave action_query out"
            )
        if self.action_query is not None and not self.action_query.strip():
            raise ValueError("action_query is empty: give the SQL to run on each heartbeat, or leave it out")
        return self


class SourceDefinition(_Strict):
    """One `connectors/NAME.yaml`: a database, its captured tables, staging topics and connector."""

    description: str | None = None
    database: DatabaseSpec
    tables: list[Annotated[str, AfterValidator(_qualified_table)]] = Field(
        min_length=1, description="<schema>.<table>, e.g. public.claims"
    )
    # Tables without a primary key (insert-only audit, log and outbox tables): the columns that
    # identify a row, which Debezium keys their records by (`message.key.columns`).
    key_columns: dict[str, KeyColumns] = Field(
        default_factory=dict,
        description="<schema>.<table> → its key columns, for tables without a primary key",
    )
    snapshot_mode: SnapshotMode
    slot: str | None = Field(None, pattern=PG_IDENTIFIER, description="default eventbus_<name>")
    publication: str | None = Field(None, pattern=PG_IDENTIFIER, description="default eventbus_<name>")
    tombstones_on_delete: bool = False
    staging_topics: StagingTopicsSpec = StagingTopicsSpec()
    heartbeat: HeartbeatSpec = HeartbeatSpec()
    max_retained_wal_bytes: int = Field(1 << 30, ge=0, description="warn above this retained WAL")
    debezium: dict[str, str | int | bool | float] = Field(default_factory=dict)

    _name: str = PrivateAttr("")
    _file: str | None = PrivateAttr(None)
    _locations: Locations | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _sizes(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_retained_wal" in data:
            data = dict(data)
            data["max_retained_wal_bytes"] = parse_size_bytes(data.pop("max_retained_wal"))
        return data

    @field_validator("tables")
    @classmethod
    def _tables(cls, tables: list[str]) -> list[str]:
        duplicates = sorted({t for t in tables if tables.count(t) > 1})
        if duplicates:
            raise ValueError(f"listed twice: {', '.join(duplicates)}")
        by_topic: dict[str, list[str]] = {}
        for table in tables:
            by_topic.setdefault(debezium_topic_part(table), []).append(table)
        for part, shared in by_topic.items():
            if len(shared) > 1:
                raise ValueError(
                    f"{' and '.join(shared)} would share one staging topic (…{part}): Debezium replaces "
                    "the characters a topic name cannot have (outside A-Z a-z 0-9 . _ -) by _; capture "
                    "one of them per source"
                )
        return tables

    @field_validator("key_columns")
    @classmethod
    def _key_columns(cls, key_columns: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        tables = info.data.get("tables")
        for table, columns in key_columns.items():
            if tables is not None and table not in tables:
                close = difflib.get_close_matches(table, tables, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ValueError(
                    f"table {table} is not in 'tables'{hint}: key columns are given for captured tables only"
                )
            if re.search(r"[;:]", table):
                # Debezium splits message.key.columns at ';' and ':'
                raise ValueError(
                    f"table {table}: a table whose name holds ';' or ':' cannot be given key columns"
                )
            folded = debezium_key_fold(table)
            twins = [other for other in tables or () if other != table and debezium_key_fold(other) == folded]
            if twins:
                raise ValueError(
                    f"table {table} and {' and '.join(twins)} differ only in case: Debezium matches "
                    "message.key.columns regardless of case, so these key columns would key their "
                    "records too; capture one of them per source"
                )
            twice = sorted({column for column in columns if columns.count(column) > 1})
            if twice:
                raise ValueError(f"key columns of {table} list {', '.join(twice)} twice")
        return key_columns

    @field_validator("debezium")
    @classmethod
    def _passthrough(cls, options: dict[str, Any]) -> dict[str, Any]:
        for key in options:
            if key in MANAGED_OPTIONS:
                raise ValueError(f"'{key}' cannot be passed through: {MANAGED_OPTIONS[key]}")
            if key.startswith(MANAGED_PREFIXES):
                raise ValueError(f"'{key}' cannot be passed through: use the 'database' section")
        return options

    # --- derived names --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def file(self) -> str | None:
        return self._file

    @property
    def connector_name(self) -> str:
        """The connector's name in Kafka Connect: recognisably ours among other connectors."""
        return connector_name(self._name)

    @property
    def slot_name(self) -> str:
        return self.slot or default_slot_name(self._name)

    @property
    def publication_name(self) -> str:
        return self.publication or f"eventbus_{self._name}"

    @property
    def topic_prefix(self) -> str:
        return topic_prefix(self._name)

    @property
    def heartbeat_topic(self) -> str:
        return f"__debezium-heartbeat.{self.topic_prefix}"

    def key_columns_of(self, table: str) -> tuple[str, ...]:
        """The declared key columns of `table` (none: Debezium keys it by its primary key)."""
        return tuple(self.key_columns.get(table, ()))

    def staging_topics_by_table(self) -> dict[str, str]:
        return {table: staging_topic(self._name, table) for table in self.tables}

    # --- errors placed in the file --------------------------------------------------------------

    def place(self, name: str, file: str, locations: Locations) -> None:
        """Where the definition was read from (`definition_files`): its name, file and key lines."""
        self._name = name
        self._file = file
        self._locations = locations

    def where(self, path: KeyPath) -> str:
        """`file:line` of a key path (the nearest written ancestor when the key was left out)."""
        position = self._locations.of_value(path) if self._locations else None
        return f"{self._file or '<definition>'}:{position.line}" if position else self._file or "<definition>"

    def table_location(self, table: str) -> str:
        return self.where(("tables", self.tables.index(table)))

    def resolve_password(self) -> SecretStr:
        """The database password; a missing secret names the file and line that asks for it."""
        try:
            return self.database.password.resolve()
        except SecretUnavailableError as error:
            raise SecretUnavailableError(f"{self.where(('database', 'password'))}: {error}") from None
