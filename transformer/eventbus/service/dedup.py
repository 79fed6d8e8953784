"""Source-log watermarks: Debezium re-deliveries must not become duplicate curated events.

After a connector restart Debezium resumes from its last *flushed* offset and sends again the changes
it had already written; a replayed staging segment does the same. Kafka offsets cannot tell these
apart from new changes (the copies have new offsets), but their position in the database log can.

The position of a streamed PostgreSQL change is the pair `(last commit LSN, change LSN)`, taken from
Debezium's `source.sequence` (`["<last commit lsn>", "<lsn>"]`) and `source.lsn`:
- the change LSN alone is not monotonic in a staging topic: transactions arrive in *commit* order,
  so a long transaction that began earlier carries lower LSNs than one that committed before it;
- the last commit LSN is constant within a transaction and grows from one transaction to the next,
  and within a transaction change LSNs grow, so the pair grows strictly along the stream;
- `txId` does not order anything (ids are assigned at first write, not at commit), it is only part
  of the event id.

Per staging partition the highest position processed is kept (`partitions.py`, with the offsets) and
committed with the partition's offset, as the offset's metadata (`ebw1:<commit lsn>:<lsn>`), in the
same transaction as the curated events. A change at or below the committed watermark is skipped.
Snapshot reads share one LSN, and records without a position cannot be ordered, so those are never
skipped and never move the watermark (their event ids are still deterministic, so consumers can
drop copies).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from eventbus.debezium.envelope import SourceInfo

Position = tuple[int, int]
"""(last commit LSN, change LSN); compared as a tuple."""

METADATA_PREFIX: Final = "ebw1:"
_STREAMING: Final = frozenset({None, "false"})


def position_of(source: SourceInfo) -> Position | None:
    """The change's position in the source log, or None when it cannot be ordered (snapshot, no LSN)."""
    return log_position(source.lsn, source.snapshot, source.sequence)


def position_of_block(source: dict[str, Any]) -> Position | None:
    """`position_of` for the envelope's raw `source` block (the service's hot path)."""
    return log_position(source.get("lsn"), source.get("snapshot"), source.get("sequence"))


def log_position(lsn: int | None, snapshot: str | None, sequence: str | None) -> Position | None:
    """The position from Debezium's `source.lsn`, `source.snapshot` and `source.sequence`."""
    if lsn is None or snapshot not in _STREAMING:
        return None
    commit = lsn
    if sequence:
        try:
            parsed = orjson.loads(sequence)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and len(parsed) == 2:
            first = parsed[0]
            # Until the connector has seen its first COMMIT the last commit LSN is null: 0 sorts it
            # before every later transaction, which is where it belongs.
            commit = 0 if first is None else _as_int(first, lsn)
    return (commit, lsn)


def _as_int(value: object, fallback: int) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return fallback


def encode_watermark(position: Position | None) -> str:
    """Offset metadata for a watermark ("" when there is none: nothing ordered seen yet)."""
    if position is None:
        return ""
    return f"{METADATA_PREFIX}{position[0]}:{position[1]}"


def decode_watermark(metadata: str | None) -> Position | None:
    """The watermark in committed offset metadata; None for empty or foreign metadata."""
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return None
    parts = metadata[len(METADATA_PREFIX) :].split(":")
    if len(parts) != 2:
        return None
    try:
        return (int(parts[0]), int(parts[1]))
    except ValueError:
        return None
