"""Step 1 of the preflight: reading from PostgreSQL the facts that Debezium's needs are checked on.

`inspect()` reads, as the definition's role, the server settings, the role, each table, the
publication and the slot into an `Inspection`; `inspect_capabilities()` what the role may change.
Only reading happens here: the judgement (`preflight.evaluate`) works on these plain dataclasses, so
it is tested without a database. `read_slot()` also serves `eventbus source status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from eventbus.sources.check_items import Fix
from eventbus.sources.spec import SourceDefinition


@dataclass(frozen=True, slots=True)
class TableFacts:
    name: str  # schema.table as written in the definition
    exists: bool
    has_primary_key: bool = False
    unique_index: str | None = None  # a unique, full, NOT NULL b-tree index usable as primary key
    replica_identity: str = "d"  # pg_class.relreplident: d default, n nothing, f full, i index
    can_select: bool = False  # SELECT on the table and USAGE on its schema: it can be read
    schema_usage: bool = False
    owner: str | None = None
    partitioned: bool = False  # its rows live in partitions (relkind p)
    table_select: bool = False  # SELECT on the table itself (useless without USAGE on its schema)
    # schema.table of its partitioned ancestors, nearest first, when it is a partition
    ancestors: tuple[str, ...] = ()
    # when it does not exist: tables whose names differ from it only in case (`ops.order` for Ops.order)
    other_case: tuple[str, ...] = ()
    # (name, NOT NULL) of each column, in table order: declared key columns are checked against them
    columns: tuple[tuple[str, bool], ...] = ()
    primary_key: tuple[str, ...] = ()  # its primary-key columns, in key order
    # its generated columns (GENERATED ALWAYS AS): logical decoding does not send their values
    generated: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PublicationFacts:
    all_tables: bool
    tables: frozenset[str]  # schema.table: members, and the partitioned tables whose partitions are
    operations: frozenset[str]  # insert, update, delete, truncate
    owner: str
    # publish_via_partition_root (PostgreSQL 13+; None before): a partition's changes are published
    # under its partitioned table's name, the one the connector captures
    via_root: bool | None = None


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


def _table_facts(connection: Connection, table: str, version_num: int) -> TableFacts:
    schema, name = table.split(".", 1)
    row = connection.execute(
        text(
            "select c.oid, c.relreplident, c.relkind, c.relispartition, "
            "pg_get_userbyid(c.relowner) as owner, "
            "exists(select 1 from pg_constraint p where p.conrelid = c.oid and p.contype = 'p') as has_pk, "
            "has_schema_privilege(n.oid, 'USAGE') as schema_usage, "
            "has_table_privilege(c.oid, 'SELECT') as can_select "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = :schema and c.relname = :name and c.relkind in ('r', 'p')"
        ),
        {"schema": schema, "name": name},
    ).one_or_none()
    if row is None:
        return TableFacts(table, exists=False, other_case=tables_in_other_case(connection, table))
    ancestors = partition_ancestors(connection, row.oid) if row.relispartition else ()
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
    # attgenerated is PostgreSQL 12+ (no generated columns before)
    generated = "attgenerated <> ''" if version_num >= 120000 else "false"
    columns = connection.execute(
        text(
            f"select attname, attnotnull, {generated} as generated from pg_attribute "
            "where attrelid = :oid and attnum > 0 and not attisdropped order by attnum"
        ),
        {"oid": row.oid},
    ).all()
    primary_key = connection.execute(
        text(
            "select a.attname from pg_constraint p cross join unnest(p.conkey) with ordinality k(attnum, n) "
            "join pg_attribute a on a.attrelid = p.conrelid and a.attnum = k.attnum "
            "where p.conrelid = :oid and p.contype = 'p' order by k.n"
        ),
        {"oid": row.oid},
    ).scalars()
    return TableFacts(
        table,
        exists=True,
        has_primary_key=row.has_pk,
        unique_index=unique_index,
        replica_identity=row.relreplident,
        can_select=row.can_select and row.schema_usage,
        schema_usage=row.schema_usage,
        owner=row.owner,
        partitioned=row.relkind == "p",
        table_select=row.can_select,
        ancestors=ancestors,
        columns=tuple((name, bool(not_null)) for name, not_null, _ in columns),
        primary_key=tuple(primary_key),
        generated=tuple(name for name, _, is_generated in columns if is_generated),
    )


def partition_ancestors(connection: Connection, oid: int) -> tuple[str, ...]:
    """schema.table of the partitioned tables a partition belongs to, nearest first."""
    return tuple(
        connection.execute(
            text(
                "with recursive up(oid, depth) as ("
                "  select inhparent, 1 from pg_inherits where inhrelid = :oid"
                "  union all select i.inhparent, up.depth + 1 from pg_inherits i"
                "  join up on i.inhrelid = up.oid) "
                "select n.nspname || '.' || c.relname from up join pg_class c on c.oid = up.oid "
                "join pg_namespace n on n.oid = c.relnamespace order by up.depth"
            ),
            {"oid": oid},
        ).scalars()
    )


def ancestors_of(connection: Connection, table: str) -> tuple[str, ...]:
    """The partitioned tables `schema.table` is a partition of, nearest first (none if it is not one)."""
    schema, name = table.split(".", 1)
    oid = connection.execute(
        text(
            "select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = :schema and c.relname = :name and c.relispartition"
        ),
        {"schema": schema, "name": name},
    ).scalar()
    return partition_ancestors(connection, oid) if oid is not None else ()


def tables_in_other_case(connection: Connection, table: str) -> tuple[str, ...]:
    """Tables named as `table` but for case: PostgreSQL names are case-sensitive, and a name
    written unquoted in SQL is folded to lower case, so `Ops.Order` and `ops.order` are easy to mix up."""
    schema, name = table.split(".", 1)
    return tuple(
        connection.execute(
            text(
                "select n.nspname || '.' || c.relname from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace "
                "where lower(n.nspname) = lower(:schema) and lower(c.relname) = lower(:name) "
                "and c.relkind in ('r', 'p') order by 1"
            ),
            {"schema": schema, "name": name},
        ).scalars()
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
    tables = {table: _table_facts(connection, table, version_num) for table in definition.tables}

    publication = None
    via_root = "pubviaroot" if version_num >= 130000 else "null"
    pub = connection.execute(
        text(
            "select puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, "
            f"pg_get_userbyid(pubowner) as owner, {via_root} as via_root "
            "from pg_publication where pubname = :name"
        ),
        {"name": definition.publication_name},
    ).one_or_none()
    if pub is not None:
        # pg_publication_tables names a partitioned member's partitions unless published via its
        # root; the member itself is in pg_publication_rel.
        published = connection.execute(
            text(
                "select schemaname || '.' || tablename from pg_publication_tables where pubname = :name "
                "union select n.nspname || '.' || c.relname from pg_publication_rel r "
                "join pg_publication p on p.oid = r.prpubid join pg_class c on c.oid = r.prrelid "
                "join pg_namespace n on n.oid = c.relnamespace where p.pubname = :name"
            ),
            {"name": definition.publication_name},
        ).scalars()
        operations = {
            op for op, on in zip(("insert", "update", "delete", "truncate"), pub[1:5], strict=True) if on
        }
        publication = PublicationFacts(
            pub.puballtables, frozenset(published), frozenset(operations), pub.owner, pub.via_root
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


def server_version_num(connection: Connection) -> int:
    return int(connection.execute(text("select current_setting('server_version_num')")).scalar_one())


def wal_status_column(connection: Connection) -> str:
    """What to select as a slot's `wal_status`: the column, or null before PostgreSQL 13 (no such
    column: selecting it fails the query)."""
    return "wal_status" if server_version_num(connection) >= 130000 else "null::text"


def read_slot(connection: Connection, slot_name: str) -> SlotFacts | None:
    row = connection.execute(
        text(
            f"select plugin, database, active, {wal_status_column(connection)} as wal_status, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint as retained, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint as lag "
            "from pg_replication_slots where slot_name = :name"
        ),
        {"name": slot_name},
    ).one_or_none()
    if row is None:
        return None
    return SlotFacts(row.plugin, row.database, row.active, row.wal_status, row.retained, row.lag)
