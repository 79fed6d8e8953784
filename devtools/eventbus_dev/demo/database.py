"""Create and seed the sample claims database on the local stack's PostgreSQL."""

from __future__ import annotations

import psycopg
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from eventbus_dev.demo.model import Claim
from eventbus_dev.demo.traffic import create_schema, make_engine, seed
from eventbus_dev.stack.settings import StackSettings

DEMO_DATABASE = "claims"


def _admin_dsn(settings: StackSettings) -> str:
    return (
        f"host={settings.host} port={settings.postgres_port} dbname=postgres "
        f"user={settings.postgres_user} password={settings.postgres_password.get_secret_value()}"
    )


def ensure_database(settings: StackSettings, name: str = DEMO_DATABASE, *, fresh: bool = False) -> Engine:
    """The claims database with its tables (REPLICA IDENTITY FULL); recreated when `fresh`."""
    with psycopg.connect(_admin_dsn(settings), autocommit=True) as admin:
        exists = admin.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if exists and fresh:
            # A replication slot pins the database; the caller removes the connector first.
            admin.execute(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                "where database = %s and not active",
                (name,),
            )
            admin.execute(f'drop database "{name}" with (force)')
            exists = None
        if not exists:
            admin.execute(f'create database "{name}"')
    engine = make_engine(settings.postgres_dsn(name))
    create_schema(engine)
    return engine


def seed_if_empty(engine: Engine, claims: int = 50) -> int:
    """Seed rows that predate the connector (snapshotted, never events). Returns rows added."""
    with Session(engine) as session:
        existing = session.scalar(select(func.count()).select_from(Claim)) or 0
    return 0 if existing else seed(engine, claims=claims)
