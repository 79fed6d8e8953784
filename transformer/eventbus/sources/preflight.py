"""The preflight checklist: everything Debezium needs from PostgreSQL, checked before anything runs.

Two steps, kept apart so the judgement can be tested without a database:
1. `inspect()` reads facts with SQLAlchemy (settings, the role, each table, the publication, the slot)
   into an `Inspection`;
2. `evaluate()` turns an `Inspection` into `CheckItem`s, each failing one carrying the exact SQL that
   fixes it and what a role needs to be allowed to run that SQL.
`apply_fixes()` runs the fixes a given role may apply (`check --fix`), one item after the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import SecretStr
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from eventbus.sources.before_images import BeforeImageNeeds
from eventbus.sources.database import (
    connect,
    describe_target,
    quote_ident,
    quote_literal,
    quote_table,
    summarise_connection_error,
)
from eventbus.sources.errors import DatabaseUnavailableError
from eventbus.sources.spec import SourceDefinition

Status = Literal["ok", "warn", "fail"]
# What the role applying a fix must be allowed to do. `restart` and `manual` are never applied
# automatically: one needs a server restart, the other a human decision (which key, which slot).
Requirement = Literal[
    "grant_replication",
    "grant_select",
    "table_owner",
    "create_publication",
    "alter_publication",
    "restart",
    "manual",
]


@dataclass(frozen=True, slots=True)
class Fix:
    sql: tuple[str, ...]
    requires: Requirement
    tables: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class CheckItem:
    key: str  # stable id, e.g. "replica_identity:public.claims"
    title: str
    status: Status
    detail: str
    fix: Fix | None = None

    def to_json(self, fixable: bool | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "title": self.title, "status": self.status}
        data["detail"] = self.detail
        if self.fix is not None:
            data["fix"] = {"sql": list(self.fix.sql), "requires": self.fix.requires, "note": self.fix.note}
            if fixable is not None:
                data["fix"]["applicable_by_role"] = fixable
        return data


@dataclass(frozen=True, slots=True)
class TableFacts:
    name: str  # schema.table as written in the definition
    exists: bool
    has_primary_key: bool = False
    unique_index: str | None = None  # a unique, full, NOT NULL b-tree index usable as primary key
    replica_identity: str = "d"  # pg_class.relreplident: d default, n nothing, f full, i index
    can_select: bool = False
    schema_usage: bool = False
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class PublicationFacts:
    all_tables: bool
    tables: frozenset[str]
    operations: frozenset[str]  # insert, update, delete, truncate
    owner: str


@dataclass(frozen=True, slots=True)
class SlotFacts:
    plugin: str | None
    database: str | None
    active: bool
    wal_status: str | None  # reserved | extended | unreserved | lost
    retained_bytes: int | None  # WAL kept for the slot (current LSN - restart_lsn)
    lag_bytes: int | None  # not yet confirmed by the consumer (current LSN - confirmed_flush_lsn)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a role may change; decides which fixes `--fix` applies as that role."""

    role: str
    superuser: bool = False
    replication: bool = False
    createrole: bool = False
    server_version_num: int = 150000
    owns_tables: frozenset[str] = frozenset()
    grantable_select: frozenset[str] = frozenset()
    can_create_in_database: bool = False
    owns_publication: bool = False

    def allows(self, fix: Fix) -> bool:
        if fix.requires in ("restart", "manual"):
            return False
        if self.superuser:
            return True
        tables = set(fix.tables)
        if fix.requires == "grant_replication":
            # Before PostgreSQL 16 only a superuser may grant REPLICATION; since 16 a CREATEROLE
            # role that has it itself may (given ADMIN on the target role, which we cannot see).
            return self.server_version_num >= 160000 and self.createrole and self.replication
        if fix.requires == "grant_select":
            return tables <= self.grantable_select
        if fix.requires == "table_owner":
            return tables <= self.owns_tables
        if fix.requires == "create_publication":
            return self.can_create_in_database and tables <= self.owns_tables
        if fix.requires == "alter_publication":
            return self.owns_publication and tables <= self.owns_tables
        return False


@dataclass(frozen=True, slots=True)
class Inspection:
    server_version: str
    server_version_num: int
    wal_level: str
    max_replication_slots: int
    replication_slots_used: int
    max_wal_senders: int
    wal_senders_used: int
    role: str
    role_can_replicate: bool
    tables: dict[str, TableFacts]
    publication: PublicationFacts | None
    slot: SlotFacts | None
    capabilities: Capabilities


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


@dataclass(frozen=True, slots=True)
class AppliedFix:
    key: str
    sql: list[str]
    ok: bool
    error: str | None = None


# --- step 1: inspection -----------------------------------------------------------------------


def _one(connection: Connection, sql: str, **params: Any) -> Any:
    return connection.execute(text(sql), params).one()


def inspect_capabilities(
    connection: Connection, tables: list[str], publication: str, server_version_num: int
) -> Capabilities:
    role = _one(
        connection,
        "select current_user as name, rolsuper, rolreplication, rolcreaterole "
        "from pg_roles where rolname = current_user",
    )
    owns: set[str] = set()
    grantable: set[str] = set()
    for table in tables:
        schema, name = table.split(".", 1)
        row = connection.execute(
            text(
                "select pg_has_role(c.relowner, 'USAGE') as owns, "
                "has_table_privilege(c.oid, 'SELECT WITH GRANT OPTION') as grantable "
                "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = :schema and c.relname = :name and c.relkind in ('r', 'p')"
            ),
            {"schema": schema, "name": name},
        ).one_or_none()
        if row is not None:
            if row.owns:
                owns.add(table)
            if row.grantable:
                grantable.add(table)
    can_create = _one(connection, "select has_database_privilege(current_database(), 'CREATE') as ok").ok
    owns_publication = connection.execute(
        text("select pg_has_role(pubowner, 'USAGE') from pg_publication where pubname = :name"),
        {"name": publication},
    ).scalar()
    return Capabilities(
        role=role.name,
        superuser=role.rolsuper,
        replication=role.rolreplication,
        createrole=role.rolcreaterole,
        server_version_num=server_version_num,
        owns_tables=frozenset(owns),
        grantable_select=frozenset(grantable),
        can_create_in_database=bool(can_create),
        owns_publication=bool(owns_publication),
    )


def _table_facts(connection: Connection, table: str) -> TableFacts:
    schema, name = table.split(".", 1)
    row = connection.execute(
        text(
            "select c.oid, c.relreplident, pg_get_userbyid(c.relowner) as owner, "
            "exists(select 1 from pg_constraint p where p.conrelid = c.oid and p.contype = 'p') as has_pk, "
            "has_schema_privilege(n.oid, 'USAGE') as schema_usage, "
            "has_table_privilege(c.oid, 'SELECT') as can_select "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = :schema and c.relname = :name and c.relkind in ('r', 'p')"
        ),
        {"schema": schema, "name": name},
    ).one_or_none()
    if row is None:
        return TableFacts(table, exists=False)
    unique_index = None
    if not row.has_pk:
        # ADD PRIMARY KEY USING INDEX takes a unique b-tree index without expressions or predicate;
        # we also want its columns NOT NULL already, so the fix cannot fail half-way on a NULL.
        unique_index = connection.execute(
            text(
                "select ci.relname from pg_index i join pg_class ci on ci.oid = i.indexrelid "
                "join pg_am am on am.oid = ci.relam "
                "where i.indrelid = :oid and i.indisunique and i.indisvalid and am.amname = 'btree' "
                "and i.indpred is null and i.indexprs is null and not exists ("
                "  select 1 from pg_attribute a where a.attrelid = i.indrelid "
                "  and a.attnum = any(i.indkey) and not a.attnotnull) "
                "order by i.indnatts, ci.relname limit 1"
            ),
            {"oid": row.oid},
        ).scalar()
    return TableFacts(
        table,
        exists=True,
        has_primary_key=row.has_pk,
        unique_index=unique_index,
        replica_identity=row.relreplident,
        can_select=row.can_select and row.schema_usage,
        schema_usage=row.schema_usage,
        owner=row.owner,
    )


def inspect(connection: Connection, definition: SourceDefinition) -> Inspection:
    """Read every fact the checklist needs, as the definition's role."""
    settings: dict[str, str] = dict(
        connection.execute(
            text(
                "select name, setting from pg_settings where name in "
                "('server_version', 'server_version_num', 'wal_level', 'max_replication_slots', "
                "'max_wal_senders')"
            )
        ).all()
    )
    version_num = int(settings["server_version_num"])
    slots_used = connection.execute(text("select count(*) from pg_replication_slots")).scalar_one()
    senders_used = connection.execute(text("select count(*) from pg_stat_replication")).scalar_one()
    role = _one(
        connection,
        "select current_user as name, rolreplication or rolsuper as replicate "
        "from pg_roles where rolname = current_user",
    )
    tables = {table: _table_facts(connection, table) for table in definition.tables}

    publication = None
    pub = connection.execute(
        text(
            "select puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, "
            "pg_get_userbyid(pubowner) as owner from pg_publication where pubname = :name"
        ),
        {"name": definition.publication_name},
    ).one_or_none()
    if pub is not None:
        published = connection.execute(
            text("select schemaname || '.' || tablename from pg_publication_tables where pubname = :name"),
            {"name": definition.publication_name},
        ).scalars()
        operations = {
            op for op, on in zip(("insert", "update", "delete", "truncate"), pub[1:5], strict=True) if on
        }
        publication = PublicationFacts(
            pub.puballtables, frozenset(published), frozenset(operations), pub.owner
        )

    slot = read_slot(connection, definition.slot_name)
    return Inspection(
        server_version=settings["server_version"],
        server_version_num=version_num,
        wal_level=settings["wal_level"],
        max_replication_slots=int(settings["max_replication_slots"]),
        replication_slots_used=int(slots_used),
        max_wal_senders=int(settings["max_wal_senders"]),
        wal_senders_used=int(senders_used),
        role=role.name,
        role_can_replicate=role.replicate,
        tables=tables,
        publication=publication,
        slot=slot,
        capabilities=inspect_capabilities(
            connection, definition.tables, definition.publication_name, version_num
        ),
    )


def read_slot(connection: Connection, slot_name: str) -> SlotFacts | None:
    row = connection.execute(
        text(
            "select plugin, database, active, wal_status, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint as retained, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint as lag "
            "from pg_replication_slots where slot_name = :name"
        ),
        {"name": slot_name},
    ).one_or_none()
    if row is None:
        return None
    return SlotFacts(row.plugin, row.database, row.active, row.wal_status, row.retained, row.lag)


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
    items.append(_publication_item(inspection, definition))
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
                "(or is not a table): create it or remove it from 'tables'",
                Fix((), "manual"),
            )
        ]
    items = [CheckItem(f"exists:{table}", f"table {table} exists", "ok", f"owner {facts.owner}")]

    if facts.has_primary_key:
        items.append(CheckItem(f"primary_key:{table}", f"{table} has a primary key", "ok", "primary key"))
    else:
        why = (
            "without a key Debezium writes records without a Kafka key (changes of one row are not "
            "ordered), and PostgreSQL rejects UPDATE/DELETE on it once it is published unless its "
            "REPLICA IDENTITY is FULL"
        )
        if facts.unique_index:
            fix = Fix(
                (f"ALTER TABLE {quoted} ADD PRIMARY KEY USING INDEX {quote_ident(facts.unique_index)};",),
                "table_owner",
                (table,),
                note=f"promotes the unique index {facts.unique_index}",
            )
        else:
            fix = Fix(
                (f"ALTER TABLE {quoted} ADD PRIMARY KEY (<columns that identify a row>);",),
                "manual",
                (table,),
                note="choose the key columns; no unique NOT NULL index exists to promote",
            )
        items.append(CheckItem(f"primary_key:{table}", f"{table} has a primary key", "fail", why, fix))

    role = quote_ident(str(definition.database.user))
    if facts.can_select:
        items.append(CheckItem(f"select:{table}", f"role can SELECT {table}", "ok", "SELECT granted"))
    else:
        schema = quote_ident(table.split(".", 1)[0])
        sql = ([] if facts.schema_usage else [f"GRANT USAGE ON SCHEMA {schema} TO {role};"]) + [
            f"GRANT SELECT ON {quoted} TO {role};"
        ]
        missing = "SELECT" if facts.schema_usage else f"USAGE on schema {schema} and SELECT"
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
    return items


def _publication_item(inspection: Inspection, definition: SourceDefinition) -> CheckItem:
    name = definition.publication_name
    quoted_name = quote_ident(name)
    title = f"publication {name}"
    existing = [t for t in definition.tables if inspection.tables[t].exists]
    publication = inspection.publication
    capabilities = inspection.capabilities
    if publication is None:
        fix = Fix(
            (f"CREATE PUBLICATION {quoted_name} FOR TABLE {', '.join(quote_table(t) for t in existing)};",)
            if existing
            else (),
            "create_publication" if existing else "manual",
            tuple(existing),
        )
        if existing and capabilities.allows(fix):
            detail = f"absent; role {capabilities.role} may create it (`register` and `--fix` do)"
            return CheckItem("publication", title, "warn", detail, fix)
        detail = (
            f"absent, and role {capabilities.role} may not create it (needs CREATE on the database "
            "and ownership of the tables, or superuser)"
        )
        return CheckItem("publication", title, "fail", detail, fix)

    missing_ops = {"insert", "update", "delete"} - publication.operations
    if missing_ops:
        return CheckItem(
            "publication",
            title,
            "fail",
            f"does not publish {', '.join(sorted(missing_ops))}",
            Fix(
                (f"ALTER PUBLICATION {quoted_name} SET (publish = 'insert, update, delete, truncate');",),
                "alter_publication",
            ),
        )
    if publication.all_tables:
        return CheckItem("publication", title, "ok", "FOR ALL TABLES")
    missing = [t for t in existing if t not in publication.tables]
    if missing:
        fix = Fix(
            (f"ALTER PUBLICATION {quoted_name} ADD TABLE {', '.join(quote_table(t) for t in missing)};",),
            "alter_publication",
            tuple(missing),
        )
        status: Status = "warn" if capabilities.allows(fix) else "fail"
        detail = f"does not include {', '.join(missing)}" + (
            f"; role {capabilities.role} may add them (`register` and `--fix` do)" if status == "warn" else ""
        )
        return CheckItem("publication", title, status, detail, fix)
    extra = sorted(publication.tables - set(definition.tables))
    detail = f"owner {publication.owner}, {len(publication.tables)} table(s)"
    if extra:
        detail += f"; also publishes {', '.join(extra)} (decoded, then filtered by the connector)"
    return CheckItem("publication", title, "ok", detail)


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
            drifted = _drift_items(connection, definition, needs)
    except DatabaseUnavailableError as error:
        return unreachable_report(definition, error)
    reachable = CheckItem(
        "reachable", "server reachable", "ok", f"PostgreSQL {inspection.server_version}, {target}"
    )
    return PreflightReport(
        definition.name,
        target,
        [reachable, *evaluate(inspection, definition, needs), *drifted],
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
