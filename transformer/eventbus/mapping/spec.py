"""The mapping file format as pydantic models, and `load_mapping` that reports errors with positions.

`MappingSpec` is what the user wrote (validated shape only); `load_mapping` then runs the semantic
checks (expressions, Avro schemas, captured table columns, see `analysis.py`) so that a loaded spec
is known to compile. Every error is `file:line:col: key.path: message` (pydantic's own errors are
placed and worded by `spec_errors.py`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from eventbus.debezium.envelope import OP_CODES
from eventbus.mapping.durations import MAX_LOOKUP_WAIT_MS, parse_duration_ms, retention_ms
from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus.mapping.spec_errors import dotted, located_errors
from eventbus.mapping.yaml_loader import (
    KeyPath,
    Locations,
    describe_value,
    first_content_line,
    load_yaml_file,
    load_yaml_text,
)

Operation = Literal["insert", "update", "delete", "snapshot"]
FieldValue = str | bool | int | float | None  # a YAML string is an expression; other scalars are constants
# Backstage's lifecycle vocabulary plus `development`; `deprecated` needs a removal date so that
# consumers learn from the catalog when the event stops.
Lifecycle = Literal["experimental", "development", "production", "deprecated"]
# Data classification of a published field. `pii` and `phi` are personal data: publishing one needs
# `hash(...)`/`mask(...)` or an explicit `allow_pii` entry (see analysis.py).
Sensitivity = Literal["public", "internal", "confidential", "pii", "phi"]
PERSONAL: frozenset[str] = frozenset({"pii", "phi"})
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    # strict: `version: "1"` is an error, not silently an int; forbid: typos are errors, not ignored keys
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SourceSpec(_Strict):
    """Which table's changes this mapping reads."""

    connector: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Debezium connector (topic.prefix)")
    table: str = Field(
        pattern=r"^[^.\s]+\.[^.\s]+$",
        description="`<schema>.<table>` as Debezium names it, e.g. public.claims",
    )


CleanupPolicy = Literal["delete", "compact", "compact,delete"]
# The bus's defaults for a curated topic (its onboarding asks for partitions and retention; 7 days is
# its default retention). One partition keeps every key in one total order; a team that needs more
# throughput declares more before the topic is created: adding partitions later moves keys.
DEFAULT_TOPIC_PARTITIONS = 1
DEFAULT_TOPIC_RETENTION = "7d"
DEFAULT_CLEANUP_POLICY: CleanupPolicy = "delete"


class TopicSettingsSpec(_Strict):
    """How `eventbus topics apply` creates the emit block's topic. A key left out takes the value
    another emit block writing the same topic declares, else the default."""

    partitions: int = Field(
        DEFAULT_TOPIC_PARTITIONS, ge=1, le=10_000, description="partition count (default 1)"
    )
    replication_factor: int | None = Field(
        None, ge=1, le=32, description="replicas of each partition (default: the broker's default)"
    )
    retention: int | str = Field(
        DEFAULT_TOPIC_RETENTION,
        description="how long events stay: 7d, 36h, 90m, a number of seconds, or forever (default 7d)",
    )
    cleanup_policy: CleanupPolicy = Field(
        DEFAULT_CLEANUP_POLICY,
        description="delete (default) | compact (each key's latest event stays) | compact,delete",
    )

    @field_validator("retention")
    @classmethod
    def _valid_retention(cls, value: int | str) -> int | str:
        retention_ms(value)  # raises ValueError with the reason
        return value

    @property
    def retention_ms(self) -> int:
        """Kafka's `retention.ms`: -1 for `forever`."""
        return retention_ms(self.retention)


class EmitSpec(_Strict):
    """One curated event produced from a matching change."""

    topic: str | None = Field(
        None, pattern=r"^[A-Za-z0-9._-]{1,249}$", description="Kafka topic; defaults to the mapping name"
    )
    when: str | None = Field(None, description="extra condition for this event only (expression)")
    key_schema: str = Field(description="Avro record schema of the key (.avsc, relative to the mapping file)")
    value_schema: str = Field(
        description="Avro record schema of the value (.avsc, relative to the mapping file)"
    )
    key: dict[str, FieldValue] = Field(min_length=1, description="key field → expression")
    fields: dict[str, FieldValue] = Field(description="value field → expression")
    topic_settings: TopicSettingsSpec | None = Field(
        None, description="partitions, replication_factor, retention, cleanup_policy of the topic"
    )


LookupMissing = Literal["skip", "dead_letter", "null"]
LookupConsistency = Literal["commit", "latest"]
RESERVED_NAMES: frozenset[str] = frozenset(
    {"before", "after", "source", "op", "true", "false", "null", "none", "and", "or", "not", "in", "is",
     "if", "else"}
)  # fmt: skip


class LookupSpec(_Strict):
    """A related row read by primary key, as of the triggering change's source commit."""

    table: str = Field(
        pattern=r"^[^.\s]+\.[^.\s]+$", description="`<schema>.<table>` of the related row, e.g. public.claims"
    )
    key: dict[str, StrictStr | StrictInt] = Field(
        min_length=1,
        description="key column of the related table (its primary key, or declared key_columns) → "
        "expression (before/after/earlier lookups), or a constant integer",
    )
    connector: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="source of the related table; the mapping's own source when omitted",
    )
    wait: float | int | str = Field(
        "30s", description="how long (source time) a change waits for a row that does not exist yet"
    )
    on_missing: LookupMissing = Field(
        "dead_letter", description="no row after `wait`: skip | dead_letter | null (fields become null)"
    )
    consistency: LookupConsistency = Field(
        "commit",
        description="commit: the row as of the change's source commit; latest: whatever is known "
        "(only for a table of another source, where no common commit order exists)",
    )

    @field_validator("wait")
    @classmethod
    def _valid_wait(cls, value: float | int | str) -> float | int | str:
        # raises ValueError with the reason, placed at `wait` by the loader
        parse_duration_ms(value, at_most_ms=MAX_LOOKUP_WAIT_MS, what="a lookup wait")
        return value

    @property
    def wait_ms(self) -> int:
        """`wait` in milliseconds (`30s`, `2m`, `500ms`, or a number of seconds)."""
        return parse_duration_ms(self.wait, at_most_ms=MAX_LOOKUP_WAIT_MS, what="a lookup wait")


class ChangeSource(_Strict):
    """Source-info overrides for a test change (defaults: the mapping's connector and table)."""

    ts_ms: int | None = None
    lsn: int | None = None
    tx_id: int | None = None
    snapshot: str | None = None
    db: str | None = None
    sequence: str | None = None


class TestChange(_Strict):
    """A change written with decoded values (YAML numbers, text, dates, timestamps)."""

    op: Literal["c", "u", "d", "r", "insert", "update", "delete", "snapshot"]
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    source: ChangeSource | None = None
    key: dict[str, Any] | None = Field(None, description="Kafka record key (primary key); defaults to none")

    @property
    def op_code(self) -> str:
        return OP_CODES.get(self.op, self.op)


class ExpectedEvent(_Strict):
    """An expected event: `value` must equal exactly, `contains` only the listed fields."""

    topic: str | None = None
    key: dict[str, Any] | None = None
    value: dict[str, Any] | None = None
    contains: dict[str, Any] | None = None

    @field_validator("contains")
    @classmethod
    def _contains_something(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if not value:  # any event contains nothing: the test would pass whatever the mapping emits
            raise ValueError("an empty 'contains' checks nothing: list the fields the event must have")
        return value

    @model_validator(mode="after")
    def _one_value_assertion(self) -> ExpectedEvent:
        if self.value is not None and self.contains is not None:
            raise ValueError("use either 'value' (exact) or 'contains' (subset), not both")
        return self


class MappingTest(_Strict):
    """An inline test: one change in, the expected events out (`expect: []` for none), or the
    expected evaluation error (`expect_error: <text in the reason>`, the dead-letter case)."""

    name: str = Field(min_length=1)
    change: TestChange
    given: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description="rows of looked-up tables as of the change: `<schema>.<table>` → list of rows",
    )
    expect: list[ExpectedEvent] | None = None
    expect_error: str | None = None

    # Validators of a key written but left empty (they run only for a value given in the file).
    @field_validator("expect")
    @classmethod
    def _expect_written(cls, value: list[ExpectedEvent] | None) -> list[ExpectedEvent] | None:
        if value is None:
            raise ValueError("'expect' is empty: list the expected events, or write expect: [] for none")
        return value

    @field_validator("expect_error")
    @classmethod
    def _expect_error_written(cls, value: str | None) -> str | None:
        if value is None or not value.strip():  # "" is part of every reason: any error would pass
            raise ValueError("'expect_error' is empty: write (part of) the reason the change must fail with")
        return value

    @model_validator(mode="after")
    def _one_expectation(self) -> MappingTest:
        if (self.expect is None) == (self.expect_error is None):
            raise ValueError("a test needs exactly one of 'expect' (events) or 'expect_error'")
        return self


class MappingSpec(_Strict):
    """One mapping file: which changes matter and which curated event(s) each produces."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$", description="snake_case event name; event type is <name>.v<version>"
    )
    version: int = Field(ge=1, description="bump when the events change meaning; part of event ids")
    description: str = Field(min_length=1)
    owner: str | None = None
    lifecycle: Lifecycle | None = Field(
        None, description="experimental | development | production | deprecated"
    )
    removal_date: dt.date | None = Field(None, description="when a deprecated event stops (YYYY-MM-DD)")
    sensitivity: dict[str, Sensitivity] = Field(
        default_factory=dict,
        description="published key/value field → public | internal | confidential | pii | phi",
    )
    allow_pii: list[str] = Field(
        default_factory=list, description="pii/phi fields published as they are, on purpose (reviewed)"
    )
    source: SourceSpec
    on: list[Operation] = Field(min_length=1, description="insert | update | delete | snapshot")
    lookup: dict[str, LookupSpec] = Field(
        default_factory=dict,
        description="name → related row read by key (usable like `after` in when, key and fields)",
    )
    when: str | bool | None = Field(None, description="condition (expression); all changes when omitted")
    emit: list[EmitSpec] = Field(min_length=1, description="one event block or a list of them")
    tests: list[MappingTest] = Field(default_factory=list)

    _file: str | None = PrivateAttr(None)
    _locations: Locations | None = PrivateAttr(None)
    _emit_was_list: bool = PrivateAttr(True)
    _on_was_list: bool = PrivateAttr(True)
    _analysis: Any = PrivateAttr(None)

    @field_validator("on", mode="before")
    @classmethod
    def _single_on(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("emit", mode="before")
    @classmethod
    def _single_emit(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @property
    def file(self) -> str | None:
        return self._file

    @property
    def base_dir(self) -> Path:
        return Path(self._file).parent if self._file else Path.cwd()

    @property
    def op_codes(self) -> frozenset[str]:
        return frozenset(OP_CODES[op] for op in self.on)

    @property
    def event_type(self) -> str:
        return f"{self.name}.v{self.version}"

    @property
    def event_source(self) -> str:
        return f"/{self.source.connector}/{self.source.table}"

    # --- error locations ------------------------------------------------------------------------

    def yaml_path(self, path: KeyPath) -> KeyPath:
        """Model path → path in the YAML document (a single `emit:` block has no list index)."""
        if len(path) >= 2 and path[0] in ("emit", "on") and path[1] == 0:
            single = not (self._emit_was_list if path[0] == "emit" else self._on_was_list)
            if single:
                return (path[0], *path[2:])
        return path

    def error(
        self,
        path: KeyPath,
        message: str,
        *,
        hint: str | None = None,
        at_key: bool = False,
        offset: tuple[int, int] | None = None,
    ) -> MappingError:
        """A `MappingError` placed at `path` (its key, its value, or a character inside the value)."""
        line = column = None
        locations = self._locations
        yaml_path = self.yaml_path(path)
        if locations is not None:
            if offset is not None:
                position = locations.in_scalar(yaml_path, *offset)
            elif at_key:
                position = locations.of_key(yaml_path)
            else:
                position = locations.of_value(yaml_path)
            if position is not None:
                line, column = position.line, position.column
        return MappingError(
            message, file=self._file, line=line, column=column, key_path=dotted(path), hint=hint
        )


# --- loading ------------------------------------------------------------------------------------


def parse_mapping(text: str, file: str = "<mapping>") -> MappingSpec:
    """YAML text → `MappingSpec` (shape only, no semantic checks)."""
    data, locations = load_yaml_text(text, file)
    return _validate(data, locations, file)


def load_mapping(path: str | Path, *, check: bool = True) -> MappingSpec:
    """Read, validate and (with `check`) analyse one mapping file; raises `MappingError(s)`."""
    data, locations = load_yaml_file(path)
    spec = _validate(data, locations, str(path))
    if check:
        from eventbus.mapping.analysis import analyse  # analysis imports the spec models

        analyse(spec)
    return spec


def _validate(data: Any, locations: Locations, file: str) -> MappingSpec:
    if not isinstance(data, dict):
        raise _not_a_mapping(data, locations, file)
    try:
        spec = MappingSpec.model_validate(data)
    except ValidationError as error:
        raise located_errors(error, data, locations, file, MappingSpec) from None
    spec._file = file
    spec._locations = locations
    spec._emit_was_list = isinstance(data.get("emit"), list)
    spec._on_was_list = isinstance(data.get("on"), list)
    problems = [
        spec.error(
            ("tests", index, "name"), f"duplicate test name {test.name!r}", hint="test names must be unique"
        )
        for index, test in enumerate(spec.tests)
        if any(other.name == test.name for other in spec.tests[:index])
    ]
    problems += _lifecycle_problems(spec)
    problems += _topic_settings_problems(spec)
    seen: set[str] = set()
    for index, op in enumerate(spec.on):
        if op in seen:
            problems.append(spec.error(("on", index), f"{op!r} is listed twice"))
        seen.add(op)
    if problems:
        raise MappingErrors(problems)
    return spec


def _not_a_mapping(data: Any, locations: Locations, file: str) -> MappingError:
    # Placed at the document's first line (after comments); a tests file given as a mapping file,
    # or an empty one, is the common case and is said so.
    found = "the file is empty" if data is None else f"its YAML document is {describe_value(data)}"
    hint = "a mapping file is key: value lines: name, version, description, source, on, emit"
    if isinstance(data, list) or file.endswith(".tests.yaml"):
        hint += "; a list of tests goes in <mapping>.tests.yaml beside its mapping, run with it"
    return MappingError(
        f"not a mapping file: {found}",
        file=file,
        line=first_content_line(locations.text),
        column=1,
        hint=hint,
    )


def _lifecycle_problems(spec: MappingSpec) -> list[MappingError]:
    # Checked here rather than in a model validator so that the error points at the key's line.
    if spec.lifecycle == "deprecated" and spec.removal_date is None:
        return [
            spec.error(
                ("lifecycle",),
                "a deprecated event needs 'removal_date' (YYYY-MM-DD): consumers plan their move by it",
            )
        ]
    if spec.removal_date is not None and spec.lifecycle != "deprecated":
        return [spec.error(("removal_date",), "'removal_date' applies only to 'lifecycle: deprecated'")]
    return []


def _topic_settings_problems(spec: MappingSpec) -> list[MappingError]:
    # A compacted-only topic keeps each key's latest event whatever the age: a retention there would
    # be silently ignored by Kafka, so it is an error where it is written.
    return [
        spec.error(
            ("emit", index, "topic_settings", "retention"),
            "retention applies to cleanup_policy delete or compact,delete; a compact topic keeps "
            "each key's latest event however old",
            hint="remove 'retention', or use cleanup_policy: compact,delete",
        )
        for index, block in enumerate(spec.emit)
        if block.topic_settings is not None
        and block.topic_settings.cleanup_policy == "compact"
        and "retention" in block.topic_settings.model_fields_set
    ]
