"""Deterministic event ids: a replay of the same change by the same mapping yields the same id.

The id is a UUIDv5 over the change's position in the source log (connector, LSN, transaction id,
table, primary key) and the mapping's identity (name, version, which emit block). Nothing random or
time-dependent goes in, so at-least-once duplicates and replays carry the id of the first delivery.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import orjson

EVENT_ID_NAMESPACE: Final = uuid.UUID("5b0f8f0e-3c1d-5e7a-9a51-6a2d2c0e4b17")


def canonical_key(key: dict[str, Any] | None) -> str:
    """A stable text form of a primary key: sorted keys, no whitespace, values as JSON."""
    if not key:
        return ""
    return orjson.dumps(key, option=orjson.OPT_SORT_KEYS, default=str).decode()


def event_id(
    *,
    connector: str,
    lsn: int | None,
    tx_id: int | None,
    table: str,
    primary_key: dict[str, Any] | None,
    mapping: str,
    mapping_version: int,
    emit_index: int,
) -> str:
    """The deterministic id of the event that `mapping` emits (block `emit_index`) for one change."""
    name = "|".join(
        (
            connector,
            "" if lsn is None else str(lsn),
            "" if tx_id is None else str(tx_id),
            table,
            canonical_key(primary_key),
            mapping,
            str(mapping_version),
            str(emit_index),
        )
    )
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))
