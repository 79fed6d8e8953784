"""Source-log watermarks: Debezium re-deliveries must not become duplicate curated events.

After a connector restart Debezium resumes from its last *flushed* offset and sends again the changes
it had already written; a replayed staging segment does the same. Kafka offsets cannot tell these
apart from new changes (the copies have new offsets), but their position in the database log can.

The position of a streamed change is its place in the source's commit order (`(last commit LSN,
change LSN)`, see `eventbus.debezium.positions`, which also says why the change LSN alone will not do).

Per staging partition the highest position of a change with an outcome (events, a dead letter, a
wait for a lookup) is kept (`partitions.py`, with the offsets) and committed with the partition's
offset, as the offset's metadata (`ebw1:<commit lsn>:<lsn>`), in the same transaction as the curated
events. Such a change at or below the watermark is skipped. A change every mapping filters out
needs no check: it produces nothing either way (`processor.Processor.handle`).
Snapshot reads share one LSN, and records without a position cannot be ordered, so those are never
skipped and never move the watermark (their event ids are still deterministic, so consumers can
drop copies).
"""

from __future__ import annotations

from typing import Final

from eventbus.debezium.positions import Position

__all__ = ["Position", "decode_watermark", "encode_watermark"]

METADATA_PREFIX: Final = "ebw1:"


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
