"""A live table's columns, read through SQLAlchemy's inspector: the database is the source of truth
for column types.

`reflect_table` gives each column's PostgreSQL type with its modifiers (numeric precision and scale,
character length, fractional second digits), nullability, enum labels and comment, plus the primary
key in key order. `eventbus.debezium.pg_types` turns that into the Connect schema Debezium writes,
which is what a mapping's table description holds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any, Final

from sqlalchemy import Connection, inspect, text
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.exc import NoSuchTableError, SAWarning

from eventbus.debezium.pg_types import PgColumn
from eventbus.sources.errors import SourceError
from eventbus.sources.inspection import tables_in_other_case
from eventbus.sql_names import quote_ident


class TableNotFoundError(SourceError):
    """The table to reflect is not in the database (or the role cannot see it)."""


@dataclass(frozen=True, slots=True)
class ReflectedTable:
    name: str  # <schema>.<table>
    columns: list[PgColumn]
    primary_key: tuple[str, ...]
    comment: str | None = None
    # Generated columns: logical decoding does not send their values (before PostgreSQL 18's
    # publish_generated_columns), so a mapping reading one would dead-letter every change.
    generated: tuple[PgColumn, ...] = ()

    def column(self, name: str) -> PgColumn | None:
        return next((column for column in self.columns if column.name == name), None)


# SQLAlchemy's reflected type classes → pg_type names, most specific first (BIGINT is an INTEGER).
_NAMES: tuple[tuple[type, str], ...] = (
    (sqltypes.BigInteger, "int8"),
    (sqltypes.SmallInteger, "int2"),
    (sqltypes.Integer, "int4"),
    (sqltypes.Boolean, "bool"),
    (pg.DOUBLE_PRECISION, "float8"),
    (sqltypes.REAL, "float4"),
    (pg.MONEY, "money"),
    (sqltypes.Numeric, "numeric"),  # after the floats, which SQLAlchemy derives from Numeric
    (pg.CITEXT, "citext"),
    (sqltypes.CHAR, "bpchar"),
    (sqltypes.VARCHAR, "varchar"),
    (sqltypes.Text, "text"),
    (sqltypes.Uuid, "uuid"),
    (pg.JSONB, "jsonb"),
    (sqltypes.JSON, "json"),
    (pg.HSTORE, "hstore"),
    (sqltypes.DateTime, "timestamp"),
    (sqltypes.Date, "date"),
    (sqltypes.Time, "time"),
    (pg.INTERVAL, "interval"),
    (sqltypes.LargeBinary, "bytea"),
    (pg.INET, "inet"),
    (pg.CIDR, "cidr"),
    (pg.MACADDR8, "macaddr8"),
    (pg.MACADDR, "macaddr"),
    (pg.TSVECTOR, "tsvector"),
    (pg.OID, "oid"),
    (pg.INT4RANGE, "int4range"),
    (pg.INT8RANGE, "int8range"),
    (pg.NUMRANGE, "numrange"),
    (pg.TSRANGE, "tsrange"),
    (pg.TSTZRANGE, "tstzrange"),
    (pg.DATERANGE, "daterange"),
)


def pg_column(name: str, sql_type: Any, *, nullable: bool = True, comment: str | None = None) -> PgColumn:
    """One reflected column as a `PgColumn` (an unknown type keeps SQLAlchemy's name for it)."""
    if isinstance(sql_type, pg.DOMAIN):  # Debezium sends a domain's values as its base type's
        sql_type = sql_type.data_type
    if isinstance(sql_type, sqltypes.ARRAY):
        element = pg_column(name, sql_type.item_type)
        return PgColumn(name, f"_{element.type_name}", nullable, element=element, comment=comment)
    if isinstance(sql_type, pg.ENUM):
        return PgColumn(name, str(sql_type.name), nullable, labels=tuple(sql_type.enums), comment=comment)
    if isinstance(sql_type, pg.BIT):
        return PgColumn(
            name, "varbit" if sql_type.varying else "bit", nullable, length=sql_type.length, comment=comment
        )
    type_name = next((pg_name for cls, pg_name in _NAMES if isinstance(sql_type, cls)), None)
    if type_name is None:
        return PgColumn(name, str(getattr(sql_type, "__visit_name__", type(sql_type).__name__)), nullable,
                        comment=comment)  # fmt: skip
    length = scale = precision = None
    if type_name == "numeric":
        length, scale = sql_type.precision, sql_type.scale
    elif type_name in ("varchar", "bpchar"):
        length = sql_type.length
    elif type_name in ("timestamp", "time"):
        precision = getattr(sql_type, "precision", None)
        if getattr(sql_type, "timezone", False):
            type_name += "tz"
    elif type_name == "interval":
        precision = sql_type.precision
    return PgColumn(
        name, type_name, nullable, length=length, scale=scale, time_precision=precision, comment=comment
    )


def _unnamed(sql_type: Any) -> bool:
    """A reflected type that does not say which PostgreSQL type it is."""
    return isinstance(sql_type, sqltypes.NullType) or type(sql_type) is sqltypes.String


class _NamedType(sqltypes.TypeEngine[Any]):
    """A column type SQLAlchemy does not know, by PostgreSQL's name for it (`pg_type.typname`)."""

    def __init__(self, name: str) -> None:
        self.__visit_name__ = name


def _type_names(connection: Connection, schema: str, table: str, columns: list[str]) -> dict[str, Any]:
    rows = connection.execute(
        text(
            "SELECT a.attname, t.typname FROM pg_catalog.pg_attribute a "
            "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
            "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = :table AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        {"schema": schema, "table": table},
    )
    return {name: _NamedType(type_name) for name, type_name in rows if name in columns}


# Base types whose modifier (precision, scale, length) changes what Debezium sends for a column.
_MODIFIED_BASES: Final = frozenset(
    {"numeric", "varchar", "bpchar", "timestamp", "timestamptz", "time", "timetz"}
)


def _domain_columns(
    connection: Connection, schema: str, table: str, columns: list[str]
) -> dict[str, PgColumn]:
    """Columns of a domain over a type with a modifier, as their base type with it: SQLAlchemy gives
    a domain's base type without it (numeric(8,3) as numeric, timestamptz(3) as timestamp), and
    Debezium sends the values as the base type with its modifier would be."""
    rows = connection.execute(
        text(
            "SELECT column_name, udt_name, is_nullable = 'YES', numeric_precision, numeric_scale, "
            "character_maximum_length, datetime_precision FROM information_schema.columns "
            "WHERE table_schema = :schema AND table_name = :table AND domain_name IS NOT NULL"
        ),
        {"schema": schema, "table": table},
    )
    found = {}
    for name, base, nullable, precision, scale, length, time_precision in rows:
        if name not in columns or base not in _MODIFIED_BASES:
            continue
        if base == "numeric":
            found[name] = PgColumn(name, base, nullable, length=precision, scale=scale)
        elif base in ("varchar", "bpchar"):
            found[name] = PgColumn(name, base, nullable, length=length)
        else:
            found[name] = PgColumn(name, base, nullable, time_precision=time_precision)
    return found


def _not_found(connection: Connection, schema: str, table: str) -> str:
    message = f"table {schema}.{table} not found (or the role cannot see it)"
    other_case = tables_in_other_case(connection, f"{schema}.{table}")
    if other_case:
        # names are case-sensitive; psql's \dt folds an unquoted pattern to lower case
        return f"{message}; did you mean {' or '.join(other_case)}? Names are case-sensitive"
    return f"{message}; psql's \\dt {quote_ident(schema)}.* lists them"


def reflect_table(connection: Connection, qualified: str) -> ReflectedTable:
    """Columns, primary key and comment of `<schema>.<table>`, or `TableNotFoundError`."""
    schema, _, table = qualified.rpartition(".")
    schema = schema or "public"
    inspector = inspect(connection)
    try:
        with warnings.catch_warnings():  # "did not recognize type": named below instead
            warnings.filterwarnings("ignore", "Did not recognize type", SAWarning)
            reflected = inspector.get_columns(table, schema=schema)
        primary = inspector.get_pk_constraint(table, schema=schema)
        comment = inspector.get_table_comment(table, schema=schema).get("text")
    except NoSuchTableError:
        raise TableNotFoundError(_not_found(connection, schema, table)) from None
    unknown = [column["name"] for column in reflected if _unnamed(column["type"])]
    # Types SQLAlchemy does not know (xml, point, ...) come back as NullType, with a warning on stderr,
    # and "char" and name as a bare String: the database's own name for them, so the description
    # says what they are.
    type_names = _type_names(connection, schema, table, unknown) if unknown else {}
    domains = [column["name"] for column in reflected if isinstance(column["type"], pg.DOMAIN)]
    domain_columns = _domain_columns(connection, schema, table, domains) if domains else {}
    columns: list[PgColumn] = []
    generated: list[PgColumn] = []
    for column in reflected:
        described = pg_column(
            column["name"],
            type_names.get(column["name"], column["type"]),
            nullable=bool(column["nullable"]),
            comment=column.get("comment"),
        )
        base = domain_columns.get(column["name"])
        if base is not None:
            described = replace(base, nullable=described.nullable, comment=described.comment)
        (generated if column.get("computed") else columns).append(described)
    key = tuple(primary.get("constrained_columns") or ())
    return ReflectedTable(f"{schema}.{table}", columns, key, comment, tuple(generated))
