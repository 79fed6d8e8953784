"""The preflight items of a table's key: what Debezium keys its records by, and whether the
application can still UPDATE and DELETE its rows once it is published.

A table with a primary key is keyed by it. A table without one (an insert-only audit, log or outbox
table) is captured only when the definition declares its `key_columns` (rendered into Debezium's
`message.key.columns`) and its REPLICA IDENTITY is FULL or USING INDEX: PostgreSQL rejects UPDATE
and DELETE on a table published with updates and deletes that has neither a primary key nor such an
identity. Declaring key columns for a table that has a primary key is refused: Debezium would key
it by them instead, moving each row's changes to other partitions than its primary key's, and
lookups expect a row's key to identify it as the primary key does.

Declared columns must be sent by logical decoding (not generated) and must not share their name, but
for case, with another column: Debezium matches `message.key.columns` case-insensitively
(`naming.debezium_key_fold`), so both columns would be in the key.
"""

from __future__ import annotations

import difflib

from eventbus.sources.check_items import CheckItem, Fix
from eventbus.sources.inspection import TableFacts
from eventbus.sources.naming import debezium_key_fold
from eventbus.sources.spec import SourceDefinition
from eventbus.sql_names import quote_ident, quote_table

_IDENTITIES = {"d": "DEFAULT", "n": "NOTHING", "f": "FULL", "i": "USING INDEX"}


def key_items(facts: TableFacts, definition: SourceDefinition) -> list[CheckItem]:
    """The `primary_key:<table>` item and, when key columns are declared, `key_columns:<table>`."""
    table = facts.name
    declared = definition.key_columns_of(table)
    if facts.has_primary_key:
        items = [CheckItem(f"primary_key:{table}", f"{table} has a primary key", "ok", "primary key")]
        if declared:
            items.append(_declared_beside_primary_key(facts, definition, declared))
        return items
    if not declared:
        return [_no_key(facts, definition)]
    return [_keyless_identity(facts, declared), _declared_columns(facts, definition, declared)]


def _setting(definition: SourceDefinition, table: str) -> str:
    """`connectors/x.yaml:12: key_columns of public.audit_log`, for messages."""
    return f"{definition.where(('key_columns', table))}: key_columns of {table}"


def _declared_beside_primary_key(
    facts: TableFacts, definition: SourceDefinition, declared: tuple[str, ...]
) -> CheckItem:
    table = facts.name
    primary = ", ".join(facts.primary_key) or "its primary key"
    return CheckItem(
        f"key_columns:{table}",
        f"{table} key columns",
        "fail",
        f"{_setting(definition, table)} ({', '.join(declared)}): {table} has a primary key ({primary}), "
        "which keys its records; key_columns is for tables without one (Debezium would key the records "
        "by the listed columns instead, moving each row's changes to other partitions and breaking "
        f"lookups by primary key): remove {table} from key_columns",
        Fix((), "manual", (table,), note=f"remove {table} from key_columns in {definition.file}"),
    )


def _no_key(facts: TableFacts, definition: SourceDefinition) -> CheckItem:
    table = facts.name
    quoted = quote_table(table)
    identity = (
        ""
        if facts.replica_identity in ("f", "i")
        else f" and run ALTER TABLE {quoted} REPLICA IDENTITY FULL;"
    )
    why = (
        "without a key Debezium writes records without a Kafka key (changes of one row are not "
        "ordered), and PostgreSQL rejects UPDATE/DELETE on it once it is published unless its "
        "REPLICA IDENTITY is FULL. Add a primary key or, for a table without one (an insert-only "
        "audit or log table), name the columns that identify a row under key_columns in "
        f"{definition.file or 'the definition'}{identity}"
    )
    alternative = f"or declare key_columns for {table}{identity}"
    if facts.unique_index:
        fix = Fix(
            (f"ALTER TABLE {quoted} ADD PRIMARY KEY USING INDEX {quote_ident(facts.unique_index)};",),
            "table_owner",
            (table,),
            note=f"promotes the unique index {facts.unique_index}; {alternative}",
        )
    else:
        fix = Fix(
            (f"ALTER TABLE {quoted} ADD PRIMARY KEY (<columns that identify a row>);",),
            "manual",
            (table,),
            note=f"choose the key columns; no unique NOT NULL index exists to promote; {alternative}",
        )
    return CheckItem(f"primary_key:{table}", f"{table} has a primary key", "fail", why, fix)


def _keyless_identity(facts: TableFacts, declared: tuple[str, ...]) -> CheckItem:
    table = facts.name
    title = f"{table} has a primary key or declared key columns"
    identity = _IDENTITIES.get(facts.replica_identity, facts.replica_identity)
    keyed = f"no primary key; keyed by key_columns ({', '.join(declared)})"
    if facts.replica_identity in ("f", "i"):
        return CheckItem(f"primary_key:{table}", title, "ok", f"{keyed}, REPLICA IDENTITY {identity}")
    return CheckItem(
        f"primary_key:{table}",
        title,
        "fail",
        f"{keyed}, but REPLICA IDENTITY is {identity}: once {table} is published, PostgreSQL rejects "
        "every UPDATE and DELETE on it (the application's own included) until its replica identity is "
        "FULL or USING INDEX",
        Fix((f"ALTER TABLE {quote_table(table)} REPLICA IDENTITY FULL;",), "table_owner", (table,)),
    )


def _declared_columns(
    facts: TableFacts, definition: SourceDefinition, declared: tuple[str, ...]
) -> CheckItem:
    table = facts.name
    title = f"{table} key columns"
    not_null = dict(facts.columns)
    unknown = [column for column in declared if column not in not_null]
    if unknown:
        hints = [
            f"{column} (did you mean {close[0]}?)"
            if (close := difflib.get_close_matches(column, list(not_null), n=1, cutoff=0.6))
            else column
            for column in unknown
        ]
        return CheckItem(
            f"key_columns:{table}",
            title,
            "fail",
            f"{_setting(definition, table)}: no column {', '.join(hints)} in {table} "
            f"(its columns: {', '.join(not_null)}); Debezium keys the records by the columns it finds only "
            "(by none: records without a key)",
            Fix((), "manual", (table,), note=f"correct key_columns of {table} in {definition.file}"),
        )
    if problem := _case_twins(facts, definition, declared) or _generated(facts, definition, declared):
        return problem
    nullable = [column for column in declared if not not_null[column]]
    if nullable:
        return CheckItem(
            f"key_columns:{table}",
            title,
            "warn",
            f"{_setting(definition, table)}: {', '.join(nullable)} may be null: a row with a null key "
            "column gets a key that does not identify it (and `mapping new` refuses a nullable key); "
            "make the columns NOT NULL or choose others",
            Fix(
                tuple(
                    f"ALTER TABLE {quote_table(table)} ALTER COLUMN {quote_ident(column)} SET NOT NULL;"
                    for column in nullable
                ),
                # never applied by --fix: it changes what the application may insert
                "manual",
                (table,),
                note="fails while a row holds a null in the column; the application may no longer insert one",
            ),
        )
    return CheckItem(f"key_columns:{table}", title, "ok", f"{', '.join(declared)}: present, NOT NULL")


def _case_twins(
    facts: TableFacts, definition: SourceDefinition, declared: tuple[str, ...]
) -> CheckItem | None:
    table = facts.name
    twins = [
        (column, other)
        for column in declared
        for other, _ in facts.columns
        if other != column and debezium_key_fold(other) == debezium_key_fold(column)
    ]
    if not twins:
        return None
    pairs = "; ".join(f"{quote_ident(column)} also matches {quote_ident(other)}" for column, other in twins)
    return CheckItem(
        f"key_columns:{table}",
        f"{table} key columns",
        "fail",
        f"{_setting(definition, table)}: {pairs}: Debezium matches message.key.columns regardless of "
        "case, so both columns would be in the key of each record (a key that differs from the one "
        "declared, and from the table description's); rename one of the columns or key by others",
        Fix((), "manual", (table,), note=f"correct key_columns of {table} in {definition.file}"),
    )


def _generated(
    facts: TableFacts, definition: SourceDefinition, declared: tuple[str, ...]
) -> CheckItem | None:
    table = facts.name
    generated = [column for column in declared if column in facts.generated]
    if not generated:
        return None
    return CheckItem(
        f"key_columns:{table}",
        f"{table} key columns",
        "fail",
        f"{_setting(definition, table)}: {', '.join(generated)} "
        f"{'is a generated column' if len(generated) == 1 else 'are generated columns'}, whose values "
        "logical decoding does not send (before PostgreSQL 18 never; 18 only for a publication with "
        "publish_generated_columns, which eventbus does not set): Debezium's key would miss them; "
        "key by columns the application writes",
        Fix((), "manual", (table,), note=f"correct key_columns of {table} in {definition.file}"),
    )
