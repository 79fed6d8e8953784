"""Removing what a stack test's source left: its connector, its replication slot, its database."""

from __future__ import annotations

import time

import httpx
import psycopg

from tests.support.stack import StackEndpoints


def remove_source(stack: StackEndpoints, name: str, database: str, *, role: str | None = None) -> None:
    """Delete source `name`'s connector, drop its slot once the task has let go of it (within 60 s),
    then drop `database` (and `role`, when given)."""
    with httpx.Client(base_url=stack.connect_url, timeout=30) as client:
        client.delete(f"/connectors/eventbus-source-{name}")
    slot = f"eventbus_{name}"
    with psycopg.connect(stack.libpq_dsn(), autocommit=True) as admin:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the deleted connector's task lets go of the slot
            row = admin.execute(
                "select active from pg_replication_slots where slot_name = %s", (slot,)
            ).fetchone()
            if row is None or not row[0]:
                break
            time.sleep(0.5)
        admin.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = %s",
            (slot,),
        )
        admin.execute(f'drop database if exists "{database}" with (force)')
        if role is not None:
            admin.execute(f'drop role if exists "{role}"')
