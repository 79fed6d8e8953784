"""From a change of a looked-up table to the versions the store keeps, for the service and offline runs.

One change gives one version per way the table is looked up (its key columns): the row after the
change (`None` for a delete), at the change's commit position, keyed by the canonical text of its
key columns converted like any column (so `after.claim_id` of a child and `claim_id` of the parent
meet as the same text).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eventbus.debezium.envelope import Change
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.positions import commit_position
from eventbus.lookups.resolver import key_text, table_id
from eventbus.lookups.store import Version, VersionStore
from eventbus.mapping.compiler import CompiledMapping
from eventbus.sources.naming import STAGING_PREFIX


@dataclass(frozen=True, slots=True)
class KeyedTable:
    """One way a table is looked up: by these key columns, under this store name."""

    table_id: str
    key_columns: tuple[str, ...]


@dataclass(slots=True)
class Interest:
    """Which related tables the mappings look up: (connector, `schema.table`) → how."""

    tables: dict[tuple[str, str], list[KeyedTable]] = field(default_factory=dict)

    @classmethod
    def of(cls, mappings: Iterable[CompiledMapping]) -> Interest:
        interest = cls()
        for mapping in mappings:
            for plan in mapping.analysis.lookups:
                keyed = KeyedTable(table_id(plan.connector, plan.table, plan.key_columns), plan.key_columns)
                wanted = interest.tables.setdefault((plan.connector, plan.table), [])
                if keyed not in wanted:
                    wanted.append(keyed)
        return interest

    def __bool__(self) -> bool:
        return bool(self.tables)

    def of_change(self, change: Change) -> list[KeyedTable]:
        # Debezium's `source.name` is the topic prefix (`staging.<source>`, sources/naming.py); a
        # recorded change of another tool may carry the bare source name.
        name = change.source.connector
        table = change.table.name
        found = self.tables.get((name.removeprefix(STAGING_PREFIX + "."), table))
        return found if found is not None else self.tables.get((name, table), [])


def add_change(store: VersionStore, keyed: Iterable[KeyedTable], change: Change) -> int:
    """Store the versions one change of a looked-up table makes; returns how many."""
    if change.op not in ("c", "u", "r", "d"):
        return 0
    after = change.after if change.op != "d" else None
    identity = after if after is not None else change.before
    if identity is None:
        return 0
    source = change.source
    commit, lsn = commit_position(source.lsn, source.snapshot, source.sequence)
    fingerprint = getattr(change.table, "fingerprint", None)
    count = 0
    for table in keyed:
        key = key_text([_converted(change, identity, column) for column in table.key_columns])
        if key is None:
            continue
        store.add(table.table_id, key, Version(commit, lsn, source.ts_ms, after, fingerprint))
        count += 1
    return count


def _converted(change: Change, row: dict[str, Any], column: str) -> Any:
    value = row.get(column)
    if value is None:
        return None
    try:
        return change.table.converter(column)(value)
    except DecodeError:  # the table version has no such column: this row cannot be looked up by it
        return None
