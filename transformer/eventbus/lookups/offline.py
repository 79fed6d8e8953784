"""Lookups without Kafka: inline tests' `given:` rows, and `eventbus mapping run` over recorded changes.

Offline, every record is known before the first is run, so nothing waits: the store gets every
version first, then the triggering changes run in commit order, and a row that is not there within
`wait` is missing at once (`on_missing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventbus.debezium.connect_schema import ConnectTableSchema
from eventbus.debezium.envelope import Change
from eventbus.debezium.positions import commit_position
from eventbus.debezium.table_schema import SchemalessTableSchema
from eventbus.lookups.resolver import LookupFunctions, LookupResolver, key_text, table_id
from eventbus.lookups.store import TableVersion, Version, VersionStore
from eventbus.lookups.versions import Interest, add_change
from eventbus.mapping.compiler import CompiledMapping
from eventbus.mapping.lookups import lookup_tables


def given_lookups(
    compiled: CompiledMapping,
    given: dict[str, list[dict[str, Any]]],
    change: Change,
    tables: Mapping[str, TableVersion] | None = None,
) -> LookupFunctions:
    """The lookups of an inline test: the `given:` rows are the related rows as of the change.

    `tables` (table name → its version) converts the rows' values as they are read, as the
    service's decoder does for a recorded row (the rows are stored as written: as JSON)."""
    store = VersionStore(None)
    tables = tables or {}
    for table in tables.values():
        store.add_table_schema(table)
    for plan in compiled.lookups:
        name = table_id(plan.connector, plan.table, plan.key_columns)
        version = tables.get(plan.table)
        for row in given.get(plan.table, []):
            values = [row.get(column) for column in plan.key_columns]
            if version is not None:  # the key as the service would read it (a numeric key, a date)
                values = [value if value is None else version.converter(column)(value)
                          for column, value in zip(plan.key_columns, values, strict=True)]  # fmt: skip
            key = key_text(values)
            if key is not None:
                fingerprint = version.fingerprint if version is not None else None
                store.add(name, key, Version(0, 0, None, row, fingerprint))
    resolver = LookupResolver(store)
    resolver.at(1, change.source.ts_ms)  # after the given rows (which stand at the snapshot's place)
    return resolver.for_mapping(compiled.spec.name, compiled.lookups)


class RecordedLookups:
    """`mapping run` with lookups: the related tables' records in a store, then the triggers in order."""

    def __init__(self, compiled: CompiledMapping) -> None:
        self.compiled = compiled
        self.interest = Interest.of([compiled])
        self.store = VersionStore(None)
        self.resolver = LookupResolver(self.store)
        self.lookups = self.resolver.for_mapping(compiled.spec.name, compiled.lookups)
        # The looked-up tables' descriptions, for their schemaless records (schemas.enable=false)
        self._described: dict[str, ConnectTableSchema] = {}
        for table in lookup_tables(compiled.spec, []).values():
            if table is not None:
                self._described[table.name] = table.table_schema(fingerprint=f"described:{table.path}")

    def is_related(self, change: Change) -> bool:
        return bool(self.interest.of_change(change))

    def add(self, change: Change) -> None:
        """Store the versions a related table's change makes, with its table version, so that the
        looked-up columns are converted (decimals, times, ...) as the service converts them."""
        table = change.table
        if isinstance(table, SchemalessTableSchema) and table.name in self._described:
            table = change.table = self._described[table.name]
        if isinstance(table, ConnectTableSchema):
            self.store.add_table_schema(table)
        add_change(self.store, self.interest.of_change(change), change)

    def at(self, change: Change) -> LookupFunctions:
        source = change.source
        self.resolver.at(commit_position(source.lsn, source.snapshot, source.sequence)[0], source.ts_ms)
        return self.lookups


def commit_order(change: Change) -> tuple[int, int]:
    source = change.source
    return commit_position(source.lsn, source.snapshot, source.sequence)
