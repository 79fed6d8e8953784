"""Column types that break Debezium 3.6's PostgreSQL connector, for `eventbus source check`.

- An enum-category type without labels of its own: a domain over an enum (or an enum created with
  no labels). The connector's task reads every type of the database when it starts
  (`TypeRegistry.prime`) and takes each enum's labels from `pg_enum`; for such a type there are
  none, and the task fails with `NullPointerException: Cannot invoke "java.sql.Array.getArray()"`,
  at every start, whichever tables it captures (observed with Debezium 3.6.1 on PostgreSQL 15). A
  failing item: registering would only start a task that fails.
- A `name` column in a captured table: Debezium's streaming reader has no case for the type, so a
  streamed change carries null for it ('' when the column is NOT NULL); only snapshot rows have the
  value. A warning: everything else is captured.

`hazard_facts` reads them (one query each); `hazard_items` judges them, testable without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import Connection, text

from eventbus.sources.check_items import CheckItem, Fix
from eventbus.sql_names import quote_ident, quote_table


@dataclass(frozen=True, slots=True)
class LabelLessEnum:
    """A type in the enum category without labels of its own, and the table columns of it."""

    type: str  # schema.name
    base: str | None  # the enum (schema.name) a domain is over; None: an enum without labels
    columns: tuple[tuple[str, str, bool], ...] = ()  # (schema.table, column, an array of it?)


@dataclass(frozen=True, slots=True)
class NameColumn:
    table: str  # schema.table
    column: str


_LABEL_LESS = text(
    "SELECT tn.nspname || '.' || t.typname, bn.nspname || '.' || b.typname, "
    "cn.nspname || '.' || c.relname, a.attname, a.atttypid = t.typarray "
    "FROM pg_catalog.pg_type t "
    "JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace "
    "LEFT JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd' "
    "LEFT JOIN pg_catalog.pg_namespace bn ON bn.oid = b.typnamespace "
    "LEFT JOIN pg_catalog.pg_attribute a ON a.atttypid IN (t.oid, t.typarray) AND a.attnum > 0 "
    "  AND NOT a.attisdropped "
    "  AND a.attrelid IN (SELECT oid FROM pg_catalog.pg_class WHERE relkind IN ('r', 'p')) "
    "LEFT JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    "LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace "
    # the rows Debezium's type query reads (all schemas but pg_toast), enum category, no labels
    "WHERE t.typcategory = 'E' AND tn.nspname <> 'pg_toast' "
    "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) "
    "ORDER BY 1, 3, 4"
)

_NAME_COLUMNS = text(
    "SELECT n.nspname || '.' || c.relname, a.attname FROM pg_catalog.pg_attribute a "
    "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE a.atttypid = 'pg_catalog.name'::regtype AND a.attnum > 0 AND NOT a.attisdropped "
    "AND n.nspname || '.' || c.relname = ANY(:tables) ORDER BY 1, a.attnum"
)


def hazard_facts(
    connection: Connection, tables: Sequence[str]
) -> tuple[list[LabelLessEnum], list[NameColumn]]:
    """Label-less enum types of the whole database, and `name` columns of `tables`."""
    found: dict[str, LabelLessEnum] = {}
    for type_name, base, table, column, is_array in connection.execute(_LABEL_LESS):
        known = found.get(type_name, LabelLessEnum(type_name, base))
        if table is not None and column is not None:
            known = LabelLessEnum(type_name, base, (*known.columns, (table, column, bool(is_array))))
        found[type_name] = known
    names = [NameColumn(t, c) for t, c in connection.execute(_NAME_COLUMNS, {"tables": list(tables)})]
    return list(found.values()), names


def _quoted_type(qualified: str) -> str:
    schema, name = qualified.split(".", 1)
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def _label_less_item(found: LabelLessEnum, dbname: str) -> CheckItem:
    why = (
        f"Debezium's task reads every type of database {dbname} when it starts and fails on this one "
        '(NullPointerException: Cannot invoke "java.sql.Array.getArray()"), whichever tables it '
        "captures, at every restart"
    )
    if found.base is None:
        return CheckItem(
            f"enum_labels:{found.type}", f"enum {found.type} has labels", "fail",
            f"enum {found.type} has no labels: {why}; add one or drop the type",
            Fix((f"ALTER TYPE {_quoted_type(found.type)} ADD VALUE '<label>';",), "manual",
                note=f"or DROP TYPE {_quoted_type(found.type)}; if nothing uses it"),
        )  # fmt: skip
    columns = [f"{table}.{column}{'[]' if array else ''}" for table, column, array in found.columns]
    used = f"used by {', '.join(columns)}" if columns else "used by no table column"
    sql = [
        f"ALTER TABLE {quote_table(table)} ALTER COLUMN {quote_ident(column)} TYPE "
        f"{_quoted_type(found.base)}{'[]' if array else ''} USING {quote_ident(column)}::"
        f"{_quoted_type(found.base)}{'[]' if array else ''};"
        for table, column, array in found.columns
    ]
    sql.append(f"DROP DOMAIN {_quoted_type(found.type)};")
    return CheckItem(
        f"enum_labels:{found.type}",
        f"no domain over an enum ({found.type})",
        "fail",
        f"domain {found.type} is over enum {found.base} ({used}): {why}. Make each column the enum "
        f"itself and drop the domain (SQL below)",
        Fix(
            tuple(sql), "manual", tuple(sorted({table for table, _, _ in found.columns})),
            note="as the tables' owner; the domain's own constraints (CHECK, NOT NULL, DEFAULT) go "
            "with it: add them to the columns first",
        ),
    )  # fmt: skip


def _through_domains(label_less: Sequence[LabelLessEnum]) -> list[LabelLessEnum]:
    """A domain over a domain over an enum is over that enum (its columns must become the enum, not
    the inner domain, which fails the task as well); outer domains first, as an inner one can be
    dropped only once no domain is over it."""
    by_type = {found.type: found for found in label_less}
    chained = []
    for found in label_less:
        base, depth = found.base, 0
        while base in by_type and by_type[base].base is not None and depth < len(by_type):
            base, depth = by_type[base].base, depth + 1
        chained.append((-depth, replace(found, base=base)))
    return [found for _, found in sorted(chained, key=lambda pair: pair[0])]


def hazard_items(
    label_less: Sequence[LabelLessEnum], names: Sequence[NameColumn], dbname: str
) -> list[CheckItem]:
    """One failing item per label-less enum type, one warning per `name` column (else one ok)."""
    items = [_label_less_item(found, dbname) for found in _through_domains(label_less)]
    for column in names:
        quoted = quote_ident(column.column)
        alter = f"ALTER TABLE {quote_table(column.table)} ALTER COLUMN {quoted} TYPE text;"
        items.append(
            CheckItem(
                f"name_column:{column.table}.{column.column}",
                f"column {column.table}.{column.column} is streamed",
                "warn",
                f"column {column.column} of {column.table} is of type name: Debezium streams it as null "
                "('' when NOT NULL), only snapshot rows carry its value; make it text (or varchar(63))",
                Fix((alter,), "manual", (column.table,)),
            )
        )
    if not items:
        items.append(
            CheckItem("column_types", "column types Debezium reads", "ok",
                      "no domain over an enum, no enum without labels, no name column captured")
        )  # fmt: skip
    return items


__all__ = ["LabelLessEnum", "NameColumn", "hazard_facts", "hazard_items"]
