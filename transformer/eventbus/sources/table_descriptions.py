"""Table descriptions (`<mapping dir>/tables/<schema>.<table>.json`) from where the truth is.

- `live_description`: the live table through SQLAlchemy (`sources.reflection`), turned into the
  Connect schema Debezium writes for it (`debezium.pg_types`);
- `description_from_topic`: the latest record of a staging topic, for teams without database
  access: its value's `schema` half is the description, its key's the key description;
- `drift`: how a saved description differs from the live table, for `eventbus source check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from eventbus.debezium.pg_types import SOURCE_TYPE, PgColumn, key_description, table_description
from eventbus.mapping.tables import captured_key_path
from eventbus.sources.errors import SourceError
from eventbus.sources.naming import topic_prefix
from eventbus.sources.spec import SourceDefinition

_PARTITION_EOF = -191  # librdkafka's _PARTITION_EOF: a partition read to its end


class NoStagingRecordError(SourceError):
    """The staging topic holds no record to take a table description from."""


class GeneratedKeyColumnError(SourceError):
    """A declared key column is a generated column, whose values Debezium never receives."""


class UnknownKeyColumnError(SourceError):
    """A declared key column is not a column of the table."""


@dataclass(frozen=True, slots=True)
class Description:
    """A table's description and key description, as written to `tables/`."""

    table: str
    value: dict[str, Any]
    key: dict[str, Any] | None
    skipped: tuple[tuple[PgColumn, str], ...] = ()  # columns Debezium does not capture, and why
    # The columns of its Kafka key: the primary key, or a keyless table's declared key columns
    key_columns: tuple[str, ...] = ()

    def files(self) -> dict[str, str]:
        """The files `write` writes: path relative to the mapping folder -> text."""
        path = Path("tables") / f"{self.table}.json"
        files = {str(path): _text(self.value)}
        if self.key is not None:
            files[str(captured_key_path(path))] = _text(self.key)
        return files

    def write(self, folder: Path) -> list[Path]:
        """Write into `folder/tables/`; returns the files whose content changed."""
        files = self.files().items()
        return [folder / relative for relative, text in files if _write(folder / relative, text)]


def _text(document: Mapping[str, Any]) -> str:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def _write(path: Path, text: str) -> bool:
    if path.exists() and path.read_text("utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return True


def capture_note(table: str, ancestors: tuple[str, ...], definition: SourceDefinition) -> str | None:
    """What `mapping new` says when the source does not capture `table`'s changes under its name."""
    captured = [ancestor for ancestor in ancestors if ancestor in definition.tables]
    if captured:
        # publish_via_partition_root: the partition's changes reach the partitioned table's topic only
        return (
            f"{table} is a partition of {captured[-1]}, which source {definition.name} captures: its "
            f"changes arrive as {captured[-1]}'s, so a mapping of {table} never sees one; map "
            f"{captured[-1]} instead (`--table {captured[-1]}`)"
        )
    if table not in definition.tables:
        return (
            f"{table} is not in the tables of source {definition.name}: add it to "
            f"{definition.file or 'the definition'} and run `eventbus source register {definition.name}`"
        )
    return None


def live_description(
    connection: Any, source: str, table: str, declared_key: tuple[str, ...] = ()
) -> Description:
    """Reflect `table` on `connection` (a SQLAlchemy connection to the source database).

    `declared_key`: the source's `key_columns` of the table, which Debezium keys its records by
    (`message.key.columns`) in place of the primary key."""
    from eventbus.sources.reflection import reflect_table

    reflected = reflect_table(connection, table)
    prefix = topic_prefix(source)
    value, skipped = table_description(prefix, reflected.name, reflected.columns)
    generated = [column.name for column in reflected.generated if column.name in declared_key]
    if generated:
        # left out of the key description, it would silently give a key other than Debezium's
        raise GeneratedKeyColumnError(
            f"key_columns of {reflected.name}: {', '.join(generated)} "
            f"{'is a generated column' if len(generated) == 1 else 'are generated columns'}, whose values "
            "logical decoding does not send: the records' key would miss them; key the table by other "
            "columns (`eventbus source check` says the same)"
        )
    unknown = [name for name in declared_key if reflected.column(name) is None]
    if unknown:
        # left out, the key description would be a subset of the declared key (or none at all, and
        # `mapping new` would ask for key_columns that are declared)
        raise UnknownKeyColumnError(
            f"key_columns of {reflected.name}: no column {', '.join(unknown)} in {reflected.name} "
            f"(its columns: {', '.join(column.name for column in reflected.columns)}); correct "
            "key_columns in the source's definition (`eventbus source check` says the same)"
        )
    names = declared_key or reflected.primary_key
    key_columns = [column for name in names if (column := reflected.column(name))]
    key = key_description(prefix, reflected.name, key_columns) if key_columns else None
    skipped += [
        (column, "a generated column, whose values logical decoding does not send")
        for column in reflected.generated
    ]
    return Description(reflected.name, value, key, tuple(skipped), tuple(c.name for c in key_columns))


def description_from_topic(bootstrap_servers: str, topic: str, timeout_s: float = 15.0) -> Description:
    """The table description in the latest record of a staging topic (read_committed)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers, "group.id": "eventbus-table-description",
        "enable.auto.commit": False, "isolation.level": "read_committed", "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    })  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        if not partitions or metadata.topics[topic].error is not None:
            raise NoStagingRecordError(f"topic {topic} not found on {bootstrap_servers}")
        assignment = []
        ends: dict[int, int] = {}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            if high > low:
                # The last records, with room for transaction markers (exactly-once Connect writes them)
                assignment.append(TopicPartition(topic, partition, max(low, high - 20)))
                ends[partition] = high
        latest: tuple[int, Any, Any] | None = None
        if assignment:
            consumer.assign(assignment)
            latest = _read_latest(consumer, ends, timeout_s)
    finally:
        consumer.close()
    if latest is None:
        raise NoStagingRecordError(
            f"topic {topic} holds no change record yet: change a row of the table, or use "
            "`eventbus mapping tables --source` with database access"
        )
    _, key_bytes, value_bytes = latest
    value_document = orjson.loads(value_bytes)
    value = value_document.get("schema") if isinstance(value_document, dict) else None
    if not isinstance(value, dict):
        raise NoStagingRecordError(
            f"the latest record of {topic} carries no schema (value.converter.schemas.enable=false?)"
        )
    key = None
    if key_bytes:
        key_document = orjson.loads(key_bytes)
        key = key_document.get("schema") if isinstance(key_document, dict) else None
    table = _table_of(value, topic)
    return Description(table, value, key if isinstance(key, dict) else None)


def _read_latest(consumer: Any, ends: dict[int, int], timeout_s: float) -> tuple[int, Any, Any] | None:
    """The latest (by timestamp) record with a value up to each partition's end, or None."""
    import time

    latest: tuple[int, Any, Any] | None = None
    done: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(done) < len(ends) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error() is not None:
            if message.error().code() == _PARTITION_EOF:
                done.add(message.partition())
            continue
        if message.value() is not None:
            stamp = message.timestamp()[1]
            if latest is None or stamp >= latest[0]:
                latest = (stamp, message.key(), message.value())
        if message.offset() + 1 >= ends[message.partition()]:
            done.add(message.partition())
    return latest


def _table_of(schema: Mapping[str, Any], topic: str) -> str:
    """`<schema>.<table>` from the envelope name `<prefix>.<schema>.<table>.Envelope`, else the topic."""
    name = schema.get("name")
    parts = (name if isinstance(name, str) and name.endswith(".Envelope") else topic + ".x").split(".")
    return ".".join(parts[-3:-1])


# --- drift ----------------------------------------------------------------------------------------


def _columns(description: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    fields = {f.get("field"): f for f in description.get("fields", []) if isinstance(f, Mapping)}
    row = fields.get("after") or fields.get("before") or description
    return {f["field"]: dict(f) for f in row.get("fields", []) if isinstance(f, Mapping) and "field" in f}


def _shown(column: Mapping[str, Any]) -> str:
    parameters = column.get("parameters") or {}
    pg_type = parameters.get(SOURCE_TYPE) if isinstance(parameters, Mapping) else None
    connect = f"{column.get('type')}{' ' + column['name'] if column.get('name') else ''}"
    shown = f"{pg_type} ({connect})" if pg_type else connect
    return shown + ("" if column.get("optional") else " not null")


def _comparable(column: Mapping[str, Any], with_source_type: bool) -> tuple[Any, ...]:
    parameters = dict(column.get("parameters") or {})
    if not with_source_type:  # a description copied from a staging record has no PostgreSQL types
        parameters = {k: v for k, v in parameters.items() if not k.startswith("__debezium.source.column")}
    return (column.get("type"), column.get("name"), bool(column.get("optional")), orjson.dumps(
        {"parameters": parameters, "items": column.get("items"), "fields": column.get("fields")},
        option=orjson.OPT_SORT_KEYS,
    ))  # fmt: skip


def drift(saved: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """One line per column added, removed or changed in the live table since `saved` was written."""
    before, now = _columns(saved), _columns(live)
    # A description copied from a staging record has no PostgreSQL types: compare Connect types then
    with_types = all(
        any(SOURCE_TYPE in (c.get("parameters") or {}) for c in side.values()) for side in (before, now)
    )
    lines = [f"column {name} added: {_shown(now[name])}" for name in now if name not in before]
    lines += [f"column {name} removed (was {_shown(before[name])})" for name in before if name not in now]
    lines += [
        f"column {name}: {_changed(before[name], now[name])}"
        for name in now
        if name in before and _comparable(before[name], with_types) != _comparable(now[name], with_types)
    ]
    return lines


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """`int4 (int32) -> int8 (int64)`; when the types read the same, what else changed (an enum's
    labels, a numeric's scale, an array's element), which the types alone would hide."""
    if _shown(old) != _shown(new):
        return f"{_shown(old)} -> {_shown(new)}"
    before, after = dict(old.get("parameters") or {}), dict(new.get("parameters") or {})
    parts = []
    differing = [key for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
    # Debezium's own copies of the source column's facts repeat what Connect's parameters say
    own = [key for key in differing if not key.startswith("__debezium.source.column")]
    for key in own or differing:
        if key == "allowed":  # an enum's labels (ALTER TYPE ... ADD VALUE)
            was, now = str(before.get(key, "")).split(","), str(after.get(key, "")).split(",")
            added, removed = [x for x in now if x not in was], [x for x in was if x not in now]
            parts.append(
                "enum labels"
                + (f" added: {', '.join(added)}" if added else "")
                + (f" removed: {', '.join(removed)}" if removed else "")
                + ("" if added or removed else " reordered")
            )
        else:
            parts.append(f"{key} {before.get(key)} -> {after.get(key)}")
    if old.get("items") != new.get("items"):
        old_items, new_items = old.get("items") or {}, new.get("items") or {}
        parts.append(f"elements {_changed(old_items, new_items)}")
    if old.get("fields") != new.get("fields"):
        parts.append("its fields")
    return f"{_shown(new)}: {'; '.join(parts) or 'changed'}"


def saved_description_drift(
    connection: Any, source: str, table: str, paths: list[str]
) -> dict[str, list[str]]:
    """Each saved description of `table` → its drift from the live table (empty: none)."""
    live = live_description(connection, source, table).value
    out = {}
    for path in paths:
        try:
            saved = orjson.loads(Path(path).read_bytes())
        except (OSError, orjson.JSONDecodeError) as error:
            out[path] = [f"unreadable: {error}"]
            continue
        if isinstance(saved, dict) and "schema" in saved and "fields" not in saved:
            saved = saved["schema"]  # a whole staging record was saved
        out[path] = drift(saved, live) if isinstance(saved, dict) else ["not a JSON object"]
    return out
