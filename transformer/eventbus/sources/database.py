"""Connections to a source database (SQLAlchemy + psycopg 3) and readable connection errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr
from sqlalchemy import URL, Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from eventbus.sources.errors import DatabaseUnavailableError
from eventbus.sources.spec import SourceDefinition

CONNECT_TIMEOUT_S = 5  # an unreachable host must fail fast with a message, not hang the CLI


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def database_url(definition: SourceDefinition, password: SecretStr, *, user: str | None = None) -> URL:
    database = definition.database
    query = {"application_name": "eventbus-source", "connect_timeout": str(CONNECT_TIMEOUT_S)}
    if database.sslmode:
        query["sslmode"] = database.sslmode
    return URL.create(
        "postgresql+psycopg",
        username=user or database.user,
        password=password.get_secret_value(),
        host=database.host,
        port=database.port,
        database=database.dbname,
        query=query,
    )


def describe_target(definition: SourceDefinition, user: str | None = None) -> str:
    database = definition.database
    where = f"{database.host}:{database.port}"
    return f"PostgreSQL at {where} (database {database.dbname}, user {user or database.user})"


def make_engine(definition: SourceDefinition, password: SecretStr, *, user: str | None = None) -> Engine:
    # NullPool: the CLI opens a handful of short connections; a pool would only keep them alive.
    return create_engine(
        database_url(definition, password, user=user), poolclass=NullPool, hide_parameters=True
    )


def summarise_connection_error(error: BaseException) -> str:
    """psycopg's multi-line message → its essential clause ("password authentication failed ...")."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip()
    text = re.sub(r"^connection failed:\s*", "", text)
    text = re.sub(r'connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed:\s*', "", text)
    text = re.sub(r"\bFATAL:\s+", "", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # psycopg tries every address of a host name and repeats the reason; keep distinct lines
    unique = list(dict.fromkeys(lines))
    return "; ".join(unique[:2]) or type(original).__name__


@contextmanager
def connect(
    definition: SourceDefinition, password: SecretStr, *, user: str | None = None
) -> Iterator[Connection]:
    """A connection in autocommit mode, or `DatabaseUnavailableError` naming the server and why."""
    engine = make_engine(definition, password, user=user)
    try:
        try:
            connection = engine.connect()
        except (OperationalError, DBAPIError) as error:
            raise DatabaseUnavailableError(
                f"cannot connect to {describe_target(definition, user)}: {summarise_connection_error(error)}"
            ) from None
        with connection:
            yield connection.execution_options(isolation_level="AUTOCOMMIT")
    finally:
        engine.dispose()
