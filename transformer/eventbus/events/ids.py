"""Deterministic event ids: a replay of the same change by the same mapping yields the same id.

The id is a UUIDv5 over the mapping's identity (name, version, which emit block), the source table
(connector, `<schema>.<table>`) and the change's position in the source log (LSN, transaction id,
primary key). Nothing random or time-dependent goes in, so at-least-once duplicates and replays carry
the id of the first delivery.

The fixed part of the name comes first so that its SHA-1 state can be computed once per emit block
(`EventIdFactory`); per event only the position is hashed. That is the hot path of every event.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Final

import orjson

EVENT_ID_NAMESPACE: Final = uuid.UUID("5b0f8f0e-3c1d-5e7a-9a51-6a2d2c0e4b17")
_SORTED: Final = orjson.OPT_SORT_KEYS


def canonical_key(key: dict[str, Any] | None) -> str:
    """A stable text form of a primary key: sorted keys, no whitespace, values as JSON."""
    if not key:
        return ""
    return orjson.dumps(key, option=_SORTED, default=str).decode()


# The variant's hex digit (RFC 4122: the top two bits of byte 8 are 10) for each digit of the hash.
_VARIANT_DIGIT: Final = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


class EventIdFactory:
    """Event ids of one emit block of one mapping version for one source table."""

    __slots__ = ("_prefix",)

    def __init__(
        self, *, connector: str, table: str, mapping: str, mapping_version: int, emit_index: int
    ) -> None:
        fixed = f"{mapping}|{mapping_version}|{emit_index}|{connector}|{table}|"
        self._prefix = hashlib.sha1(EVENT_ID_NAMESPACE.bytes + fixed.encode(), usedforsecurity=False)

    def __call__(self, lsn: int | None, tx_id: int | None, primary_key: dict[str, Any] | None) -> str:
        h = self._prefix.copy()
        key = orjson.dumps(primary_key, option=_SORTED, default=str) if primary_key else b""
        h.update(b"%d|%d|%s" % (-1 if lsn is None else lsn, -1 if tx_id is None else tx_id, key))
        # RFC 4122 version 5: the first 16 bytes of the SHA-1, with version and variant bits set. In
        # hex text the version is the 13th digit and the variant bits are in the 17th: set them there.
        x = h.hexdigest()
        return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT_DIGIT[x[16]]}{x[17:20]}-{x[20:32]}"


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
    factory = EventIdFactory(
        connector=connector,
        table=table,
        mapping=mapping,
        mapping_version=mapping_version,
        emit_index=emit_index,
    )
    return factory(lsn, tx_id, primary_key)
