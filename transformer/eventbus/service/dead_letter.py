"""Dead-letter records: the original staging record, set aside with why and where it failed.

A record that cannot be decoded, on which a mapping's expression fails, or whose event does not fit
its Avro schema goes to the dead-letter topic *in the same transaction* as the batch's curated
events (so it is dead-lettered exactly once) and processing continues. The DLQ record keeps the
original key and value bytes and the original headers, plus `eventbus_dlq_*` headers:

| header | meaning |
| --- | --- |
| `eventbus_dlq_kind` | `decode`, `mapping` (an expression or the table binding failed) or `serialization` |
| `eventbus_dlq_reason` | the error: field, column, type, rule; a value only if public (mapping/reasons.py) |
| `eventbus_dlq_mapping`, `eventbus_dlq_mapping_version` | the mapping that failed (empty for `decode`) |
| `eventbus_dlq_source_topic`, `..._partition`, `..._offset` | where the staging record was |
| `eventbus_dlq_attempt` | 1, then one more each time a replay fails again |
| `eventbus_dlq_group` | the consumer group (transformer deployment) that set it aside |

When one of several mappings of a table fails, only that mapping's failure is dead-lettered (the
others' events are published), and a replay re-runs only that mapping, so a replay never duplicates
what the other mappings already published.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import PurePath
from typing import Final

from eventbus.errors import exception_name

PREFIX: Final = "eventbus_dlq_"
KIND: Final = PREFIX + "kind"
REASON: Final = PREFIX + "reason"
MAPPING: Final = PREFIX + "mapping"
MAPPING_VERSION: Final = PREFIX + "mapping_version"
SOURCE_TOPIC: Final = PREFIX + "source_topic"
SOURCE_PARTITION: Final = PREFIX + "source_partition"
SOURCE_OFFSET: Final = PREFIX + "source_offset"
ATTEMPT: Final = PREFIX + "attempt"
GROUP: Final = PREFIX + "group"

KINDS: Final = ("decode", "mapping", "serialization")
MAX_REASON_BYTES: Final = 4000  # a header is not a log file; keep DLQ records small

Headers = list[tuple[str, bytes | None]]  # None: a header sent without a value, as consumers read it


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a staging record came from (kept through replays)."""

    topic: str
    partition: int
    offset: int


def dead_letter_headers(
    original: Headers | None,
    *,
    kind: str,
    reason: str,
    origin: Origin,
    group: str,
    mapping: str | None = None,
    mapping_version: int | None = None,
    attempt: int = 1,
) -> Headers:
    """The DLQ record's headers: the original ones (without earlier DLQ headers) plus ours."""
    if kind not in KINDS:
        raise ValueError(f"unknown dead-letter kind {kind!r}")
    kept = [(k, v) for k, v in (original or []) if not k.startswith(PREFIX)]
    reason_bytes = reason.encode("utf-8", "replace")[:MAX_REASON_BYTES]
    return [
        *kept,
        (KIND, kind.encode()),
        (REASON, reason_bytes),
        (MAPPING, (mapping or "").encode()),
        (MAPPING_VERSION, b"" if mapping_version is None else str(mapping_version).encode()),
        (SOURCE_TOPIC, origin.topic.encode()),
        (SOURCE_PARTITION, str(origin.partition).encode()),
        (SOURCE_OFFSET, str(origin.offset).encode()),
        (ATTEMPT, str(attempt).encode()),
        (GROUP, group.encode()),
    ]


def unexpected_reason(error: BaseException) -> str:
    """The reason for an exception no stage expects: its type and where it was raised, not its message.

    Python's messages may quote a value of the record (`invalid literal for int() with base 10:
    '123-45-6789'`, a `KeyError` of a row value), and reasons must not carry personal data.
    """
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return f"unexpected {exception_name(error)}"
    last = frames[-1]
    return f"unexpected {exception_name(error)} at {PurePath(last.filename).name}:{last.lineno} ({last.name})"


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """What a DLQ record's headers say (for replay and tools)."""

    kind: str
    reason: str
    mapping: str | None
    mapping_version: int | None
    origin: Origin
    attempt: int
    original_headers: Headers


class NotADeadLetterError(ValueError):
    """A record on the DLQ topic without our headers (written by something else)."""


def parse_dead_letter(headers: Headers | None) -> DeadLetterInfo:
    found: dict[str, bytes] = {}
    original: Headers = []
    for key, value in headers or []:
        if key.startswith(PREFIX):
            found[key] = value or b""
        else:
            original.append((key, value))
    try:
        origin = Origin(found[SOURCE_TOPIC].decode(), int(found[SOURCE_PARTITION]), int(found[SOURCE_OFFSET]))
        kind = found[KIND].decode()
    except (KeyError, ValueError) as error:
        raise NotADeadLetterError(f"missing or malformed dead-letter header: {error}") from None
    mapping = found.get(MAPPING, b"").decode() or None
    version_text = found.get(MAPPING_VERSION, b"").decode()
    return DeadLetterInfo(
        kind=kind,
        reason=found.get(REASON, b"").decode("utf-8", "replace"),
        mapping=mapping,
        mapping_version=int(version_text) if version_text.isdigit() else None,
        origin=origin,
        attempt=int(found.get(ATTEMPT, b"1") or 1),
        original_headers=original,
    )
