"""The preflight checklist: everything Debezium needs from PostgreSQL, checked before anything runs.

Two steps, kept apart so the judgement can be tested without a database:
1. `inspection.inspect()` reads facts with SQLAlchemy (settings, the role, each table, the
   publication, the slot) into an `Inspection`;
2. `evaluate()` turns an `Inspection` into `CheckItem`s (`check_items.py`), each failing one carrying
   the exact SQL that fixes it and what a role needs to be allowed to run that SQL.
`apply_fixes()` runs the fixes a given role may apply (`check --fix`), one item after the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from eventbus.sources.before_images import BeforeImageNeeds
from eventbus.sources.check_items import AppliedFix, CheckItem, Fix
from eventbus.sources.database import (
    connect,
    describe_target,
    quote_literal,
    summarise_connection_error,
)
from eventbus.sources.errors import DatabaseUnavailableError
from eventbus.sources.inspection import Capabilities, Inspection, SlotFacts, TableFacts, inspect
from eventbus.sources.key_check import key_items
from eventbus.sources.publication_check import publication_item
from eventbus.sources.spec import SourceDefinition
from eventbus.sources.type_hazards import hazard_facts, hazard_items
from eventbus.sql_names import quote_ident, quote_table


@dataclass(slots=True)
class PreflightReport:
    source: str
    target: str
    items: list[CheckItem]
    capabilities: Capabilities | None = None
    slot: SlotFacts | None = None
    applied: list[AppliedFix] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckItem]:
        return [item for item in self.items if item.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failed

    def fixable(self, item: CheckItem) -> bool | None:
        if item.fix is None or self.capabilities is None:
            return None
        return self.capabilities.allows(item.fix)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "passed": self.passed,
            "items": [item.to_json(self.fixable(item)) for item in self.items],
            "applied": [asdict(applied) for applied in self.applied],
        }


# --- step 2: evaluation -----------------------------------------------------------------------


def format_bytes(count: int | None) -> str:
    if count is None:
        return "unknown"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def evaluate(
    inspection: Inspection, definition: SourceDefinition, needs: BeforeImageNeeds
) -> list[CheckItem]:
    """The checklist, in the order a DBA would fix it."""
    items = [*_server_items(inspection, definition), *_role_items(inspection, definition)]
    for table in definition.tables:
        items.extend(_table_items(inspection.tables[table], definition, needs))
    items.append(publication_item(inspection, definition))
    items.append(_slot_item(inspection, definition))
    items.extend(_mapping_items(definition, needs))
    return items


def _server_items(inspection: Inspection, definition: SourceDefinition) -> list[CheckItem]:
    items = []
    if inspection.wal_level == "logical":
        items.append(CheckItem("wal_level", "wal_level = logical", "ok", "logical decoding is enabled"))
    else:
        items.append(
            CheckItem(
                "wal_level",
                "wal_level = logical",
                "fail",
                f"wal_level is {inspection.wal_level!r}: PostgreSQL writes no logical decoding "
                "information, so no change can be streamed",
                Fix(
                    ("ALTER SYSTEM SET wal_level = logical;",),
                    "restart",
                    note="as a superuser, then restart PostgreSQL (on RDS/Aurora: set "
                    "rds.logical_replication = 1 in the parameter group)",
                ),
            )
        )
    slot_exists = inspection.slot is not None
    used, limit = inspection.replication_slots_used, inspection.max_replication_slots
    free_slots = limit - used
    slots_line = f"{used} of max_replication_slots={limit} used"
    if slot_exists or free_slots >= 1:
        detail = slots_line + (f"; slot {definition.slot_name} exists" if slot_exists else "")
        items.append(CheckItem("replication_slots", "a free replication slot", "ok", detail))
    else:
        items.append(
            CheckItem(
                "replication_slots",
                "a free replication slot",
                "fail",
                f"{slots_line}: the connector cannot create slot {definition.slot_name}",
                Fix(
                    (f"ALTER SYSTEM SET max_replication_slots = {inspection.max_replication_slots + 4};",),
                    "restart",
                    note="as a superuser, then restart PostgreSQL; or drop an unused slot",
                ),
            )
        )
    senders_line = f"{inspection.wal_senders_used} of max_wal_senders={inspection.max_wal_senders} in use"
    if inspection.max_wal_senders - inspection.wal_senders_used >= 1:
        items.append(CheckItem("wal_senders", "a free WAL sender", "ok", senders_line))
    else:
        items.append(
            CheckItem(
                "wal_senders",
                "a free WAL sender",
                "fail",
                f"{senders_line}: the connector's replication connection would be refused",
                Fix(
                    (f"ALTER SYSTEM SET max_wal_senders = {inspection.max_wal_senders + 4};",),
                    "restart",
                    note="as a superuser, then restart PostgreSQL",
                ),
            )
        )
    return items


def _role_items(inspection: Inspection, definition: SourceDefinition) -> list[CheckItem]:
    role = quote_ident(str(definition.database.user))
    if inspection.role_can_replicate:
        return [CheckItem("replication_role", f"role {inspection.role} can replicate", "ok", "REPLICATION")]
    return [
        CheckItem(
            "replication_role",
            f"role {inspection.role} can replicate",
            "fail",
            f"role {inspection.role} has no REPLICATION attribute: it cannot open a replication "
            "connection or create the slot",
            Fix(
                (f"ALTER ROLE {role} WITH REPLICATION;",),
                "grant_replication",
                note="on RDS/Aurora: GRANT rds_replication TO the role instead",
            ),
        )
    ]


def _not_found_hint(facts: TableFacts) -> str:
    if facts.other_case:
        spelled = " or ".join(facts.other_case)
        return (
            f"did you mean {spelled}? Names are case-sensitive: write them as PostgreSQL stores them, "
            "without quotes"
        )
    return "create it or remove it from 'tables'"


def _table_items(facts: TableFacts, definition: SourceDefinition, needs: BeforeImageNeeds) -> list[CheckItem]:
    table = facts.name
    quoted = quote_table(table)
    where = definition.table_location(table)
    if not facts.exists:
        return [
            CheckItem(
                f"exists:{table}",
                f"table {table} exists",
                "fail",
                f"{where}: table {table} does not exist in database {definition.database.dbname} "
                f"(or is not a table): {_not_found_hint(facts)}",
                Fix((), "manual"),
            )
        ]
    captured_ancestors = [ancestor for ancestor in facts.ancestors if ancestor in definition.tables]
    if captured_ancestors:
        # publish_via_partition_root publishes a partition's changes under its topmost ancestor in
        # the publication: the partition's own staging topic would never receive a change
        root = captured_ancestors[-1]
        return [
            CheckItem(
                f"exists:{table}",
                f"table {table} exists",
                "fail",
                f"{where}: {table} is a partition of {root}, which is captured too: its changes are "
                f"published as {root}'s, on {root}'s staging topic, never on its own: remove {table} "
                f"from 'tables' (mappings of its rows read {root})",
                Fix((), "manual"),
            )
        ]
    items = [CheckItem(f"exists:{table}", f"table {table} exists", "ok", f"owner {facts.owner}")]

    items.extend(key_items(facts, definition))

    role = quote_ident(str(definition.database.user))
    if facts.can_select:
        items.append(CheckItem(f"select:{table}", f"role can SELECT {table}", "ok", "SELECT granted"))
    else:
        schema = quote_ident(table.split(".", 1)[0])
        sql = ([] if facts.schema_usage else [f"GRANT USAGE ON SCHEMA {schema} TO {role};"]) + (
            [] if facts.table_select and not facts.schema_usage else [f"GRANT SELECT ON {quoted} TO {role};"]
        )
        lacking = ([] if facts.schema_usage else [f"USAGE on schema {schema}"]) + (
            [] if facts.table_select and not facts.schema_usage else ["SELECT"]
        )
        missing = " and ".join(lacking)
        items.append(
            CheckItem(
                f"select:{table}",
                f"role can SELECT {table}",
                "fail",
                f"role {definition.database.user} lacks {missing}: snapshots and the connector's "
                "table metadata queries need it",
                Fix(tuple(sql), "grant_select", (table,)),
            )
        )

    if needs.needs_full(table):
        readers = ", ".join(needs.tables[table])
        title = f"{table} REPLICA IDENTITY FULL"
        if facts.replica_identity == "f":
            items.append(CheckItem(f"replica_identity:{table}", title, "ok", f"FULL (read by {readers})"))
        else:
            current = {"d": "DEFAULT (key columns only)", "n": "NOTHING", "i": "USING INDEX"}.get(
                facts.replica_identity, facts.replica_identity
            )
            items.append(
                CheckItem(
                    f"replica_identity:{table}",
                    title,
                    "fail",
                    f"REPLICA IDENTITY is {current}, but {readers} read(s) before.*: the before "
                    "image would carry only the key columns",
                    Fix((f"ALTER TABLE {quoted} REPLICA IDENTITY FULL;",), "table_owner", (table,)),
                )
            )
    elif table in needs.update_readers and facts.replica_identity != "f" and table not in needs.looked_up:
        items.append(
            CheckItem(
                f"replica_identity:{table}",
                f"{table} REPLICA IDENTITY FULL",
                "warn",
                f"{', '.join(needs.update_readers[table])} publish(es) updates from after.*: without FULL an "
                "update that leaves a large (TOASTed: long text, jsonb, bytea, arrays) column unchanged "
                "does not send it, and a mapping reading it dead-letters that update",
                Fix((f"ALTER TABLE {quoted} REPLICA IDENTITY FULL;",), "table_owner", (table,)),
            )
        )
    elif table in needs.looked_up and facts.replica_identity != "f":
        # An update that leaves a TOASTed column unchanged sends a placeholder for it; the lookup
        # store fills it from the row's version before, which compaction of the staging topic
        # removes: a store rebuilt from the topic (a new disk) then has the column unavailable.
        items.append(
            CheckItem(
                f"replica_identity:{table}",
                f"{table} REPLICA IDENTITY FULL",
                "warn",
                f"looked up by {', '.join(needs.looked_up[table])}: without FULL an update that leaves a "
                "large (TOASTed) column unchanged does not send it, and a lookup store rebuilt after "
                "the staging topic was compacted cannot fill it in (the column is unavailable)",
                Fix((f"ALTER TABLE {quoted} REPLICA IDENTITY FULL;",), "table_owner", (table,)),
            )
        )
    return items


def _slot_item(inspection: Inspection, definition: SourceDefinition) -> CheckItem:
    name = definition.slot_name
    title = f"replication slot {name}"
    slot = inspection.slot
    if slot is None:
        return CheckItem("slot", title, "ok", "absent; the connector creates it on its first start")
    drop = Fix(
        (f"SELECT pg_drop_replication_slot({quote_literal(name)});",),
        "manual",
        note="dropping a slot loses the changes it holds: the connector starts from a new snapshot",
    )
    if slot.plugin != "pgoutput" or slot.database != definition.database.dbname:
        return CheckItem(
            "slot",
            title,
            "fail",
            f"exists for database {slot.database} with plugin {slot.plugin}: another consumer owns "
            f"this name; set 'slot' in {definition.file} to another name",
            drop,
        )
    if slot.wal_status == "lost":
        return CheckItem("slot", title, "fail", "the WAL this slot needs was removed (wal_status lost)", drop)
    retained = (
        f"retains {format_bytes(slot.retained_bytes)} of WAL, {'active' if slot.active else 'inactive'}"
    )
    if slot.retained_bytes is not None and slot.retained_bytes > definition.max_retained_wal_bytes:
        return CheckItem(
            "slot",
            title,
            "warn",
            f"{retained}: above max_retained_wal ({format_bytes(definition.max_retained_wal_bytes)}); "
            "WAL grows until the connector consumes it (`eventbus source status`)",
            drop,
        )
    return CheckItem("slot", title, "ok", retained)


def _mapping_items(definition: SourceDefinition, needs: BeforeImageNeeds) -> list[CheckItem]:
    items = []
    uncaptured = sorted(needs.mapped_tables - set(definition.tables))
    if uncaptured:
        items.append(
            CheckItem(
                "mapped_tables",
                "every mapped table is captured",
                "warn",
                f"mappings of source {definition.name} read {', '.join(uncaptured)}, which 'tables' "
                "does not list: those mappings will never see a change",
            )
        )
    for table, files in sorted(needs.looked_up.items()):
        items.append(
            CheckItem(
                "looked_up_tables",
                f"lookups of {table}",
                "ok",
                f"looked up by {len(files)} mapping(s): its staging topic is compacted (every row's latest "
                "version stays, each version for the retention first), and lookups rely on this "
                "connector's exactly-once delivery (exactly.once.support=required, on a Connect cluster "
                "with exactly.once.source.support=enabled) for the as-of-commit barrier",
            )
        )
    for problem in needs.unreadable:
        items.append(
            CheckItem(
                "mappings_readable",
                "mappings readable",
                "warn",
                f"cannot tell whether this mapping reads before.*: {problem}",
            )
        )
    return items


# --- running it ---------------------------------------------------------------------------------


def unreachable_report(definition: SourceDefinition, error: DatabaseUnavailableError) -> PreflightReport:
    return PreflightReport(
        definition.name,
        describe_target(definition),
        [CheckItem("reachable", "server reachable", "fail", str(error))],
    )


def run_preflight(
    definition: SourceDefinition, password: SecretStr, needs: BeforeImageNeeds
) -> PreflightReport:
    """Connect as the definition's role and build the checklist (unreachable → one failing item)."""
    target = describe_target(definition)
    try:
        with connect(definition, password) as connection:
            inspection = inspect(connection, definition)
            label_less, names = hazard_facts(connection, definition.tables)
            drifted = _drift_items(connection, definition, needs)
    except DatabaseUnavailableError as error:
        return unreachable_report(definition, error)
    reachable = CheckItem(
        "reachable", "server reachable", "ok", f"PostgreSQL {inspection.server_version}, {target}"
    )
    return PreflightReport(
        definition.name,
        target,
        [
            reachable,
            *evaluate(inspection, definition, needs),
            *hazard_items(label_less, names, str(definition.database.dbname)),
            *drifted,
        ],
        inspection.capabilities,
        inspection.slot,
    )


def _drift_items(
    connection: Connection, definition: SourceDefinition, needs: BeforeImageNeeds
) -> list[CheckItem]:
    """A warning per table description that no longer matches its live table (the mappings were
    validated against columns or types that changed)."""
    from eventbus.sources.reflection import TableNotFoundError
    from eventbus.sources.table_descriptions import saved_description_drift

    items = []
    for table, paths in sorted(needs.descriptions.items()):
        try:
            drifted = saved_description_drift(connection, definition.name, table, sorted(paths))
        except TableNotFoundError:
            continue  # reported by the table items
        for path, lines in drifted.items():
            title = f"description of {table} is current"
            if not lines:
                items.append(CheckItem(f"drift:{path}", title, "ok", f"{path}: same columns and types"))
                continue
            detail = f"{path}: " + "; ".join(lines)
            detail += f"; refresh it: eventbus mapping tables --source {definition.name}"
            items.append(CheckItem(f"drift:{path}", title, "warn", detail))
    return items


def fixes_to_apply(report: PreflightReport, capabilities: Capabilities) -> list[CheckItem]:
    """Failing (or warned) items whose fix `capabilities` allows, in checklist order."""
    return [
        item
        for item in report.items
        if item.status != "ok" and item.fix is not None and item.fix.sql and capabilities.allows(item.fix)
    ]


def apply_fixes(connection: Connection, items: list[CheckItem]) -> list[AppliedFix]:
    """Run each item's SQL (the connection autocommits: DDL and GRANTs take effect one by one, and
    one failing item does not undo or stop the others)."""
    applied = []
    for item in items:
        assert item.fix is not None
        try:
            for statement in item.fix.sql:
                connection.exec_driver_sql(statement)
            applied.append(AppliedFix(item.key, list(item.fix.sql), True))
        except DBAPIError as error:
            applied.append(AppliedFix(item.key, list(item.fix.sql), False, summarise_connection_error(error)))
    return applied
