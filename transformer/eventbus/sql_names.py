"""PostgreSQL names as SQL text, for the statements `eventbus` prints or runs (`ALTER TABLE ...`).

A name is double-quoted when PostgreSQL would not read it back as written: a reserved word (`order`,
`user`), upper case (which it folds), or any other character (an embedded `"` is doubled).
SQLAlchemy's PostgreSQL dialect keeps that list of words (a few it lacks are added here); its
import is deferred because the transformer service names a table only in one dead-letter reason
and would otherwise load SQLAlchemy (≈0.2 s) for it.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final


@cache
def _preparer() -> Any:
    from sqlalchemy.dialects import postgresql

    return postgresql.dialect().identifier_preparer


# PostgreSQL keywords that cannot be a plain column or schema name and that SQLAlchemy's list
# (2.1) lacks: reserved ones (lateral, system_user since PostgreSQL 16) and type/function-name ones.
_ALSO_RESERVED: Final = frozenset({"lateral", "system_user", "collation", "concurrently", "tablesample"})


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted only when it needs to be (as PostgreSQL's `quote_ident()`)."""
    if name in _ALSO_RESERVED:
        return f'"{name}"'
    return str(_preparer().quote(name))


def quote_table(qualified: str) -> str:
    """`schema.table` (as the definition and mapping files name a table) as SQL names it."""
    schema, _, table = qualified.partition(".")
    return f"{quote_ident(schema)}.{quote_ident(table)}" if table else quote_ident(schema)
