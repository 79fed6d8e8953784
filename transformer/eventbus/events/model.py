"""The curated event a mapping produces, before it is serialized."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True, frozen=True)
class CuratedEvent:
    """A business event ready to be encoded and published.

    `event_id` is deterministic (see `eventbus.events.ids`): the same source change processed by the
    same mapping version always yields the same id, so replays and at-least-once duplicates can be
    recognised downstream.
    """

    mapping: str
    mapping_version: int
    topic: str
    key: dict[str, Any]
    value: dict[str, Any]
    event_id: str
    event_type: str
    event_source: str
    subject: str
    time_ms: int | None
