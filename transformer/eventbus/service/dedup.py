"""Source-log watermarks: Debezium re-deliveries must not become duplicate curated events.

After a connector restart Debezium resumes from its last *flushed* offset and sends again the changes
it had already written; a replayed staging segment does the same. Kafka offsets cannot tell these
apart from new changes (the copies have new offsets), but their position in the database log can.

The position of a streamed change is its place in the source's commit order (`(last commit LSN,
change LSN)`, see `eventbus.debezium.positions`, which also says why the change LSN alone will not do).

Per staging partition the highest record position of a change with an outcome (events, a dead
letter, a wait for a lookup) is kept (`partitions.py`, with the offsets) and committed with the
partition's offset, as the offset's metadata (`ebw2:<commit lsn>:<lsn>:<step>`), in the same
transaction as the curated events. Such a change at or below the watermark is skipped. The step
(`positions.RecordPosition`) keeps apart the delete and the create Debezium sends for an update of a
primary key, which share the change's position: without it the create, when both land in one
partition, was taken for a copy of the delete and lost. A watermark committed before the step
existed (`ebw1:<commit lsn>:<lsn>`) reads as step 1, which skips exactly what it skipped then.
A change every mapping filters out needs no check: it produces nothing either way
(`processor.Processor.handle`).
Snapshot reads share one LSN, and records without a position cannot be ordered, so those are never
skipped and never move the watermark (their event ids are still deterministic, so consumers can
drop copies).
"""

from __future__ import annotations

from typing import Final

from eventbus.debezium.positions import RecordPosition

__all__ = ["RecordPosition", "decode_watermark", "encode_watermark"]

METADATA_PREFIX: Final = "ebw2:"
_FORMER_PREFIX: Final = "ebw1:"  # (commit lsn, lsn), before the step: read as step 1


def encode_watermark(position: RecordPosition | None) -> str:
    """Offset metadata for a watermark ("" when there is none: nothing ordered seen yet)."""
    if position is None:
        return ""
    return f"{METADATA_PREFIX}{position[0]}:{position[1]}:{position[2]}"


def decode_watermark(metadata: str | None) -> RecordPosition | None:
    """The watermark in committed offset metadata; None for empty or foreign metadata."""
    if not metadata:
        return None
    if metadata.startswith(METADATA_PREFIX):
        parts = metadata[len(METADATA_PREFIX) :].split(":")
    elif metadata.startswith(_FORMER_PREFIX):
        parts = [*metadata[len(_FORMER_PREFIX) :].split(":"), "1"]
    else:
        return None
    if len(parts) != 3:
        return None
    try:
        commit, lsn, step = (int(part) for part in parts)
    except ValueError:
        return None
    return (commit, lsn, step)
