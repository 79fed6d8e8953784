"""The curated event a mapping produces, before it is serialized."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, make_dataclass
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


def _unfrozen_twin() -> type | None:
    """A mutable class with `CuratedEvent`'s exact slot layout, if instances can change class.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__` (≈ 1 µs for these
    ten), a plain slots class's stores its fields directly (≈ 0.2 µs). Generated mapping code, which
    builds one event per emitted change, creates a twin and then sets its `__class__` to
    `CuratedEvent`: the result is an ordinary, frozen `CuratedEvent`. Checked here once; `None` (use
    the constructor) if this Python refuses the class change or the result differs.
    """
    names = [(f.name, f.type) for f in fields(CuratedEvent)]
    twin = make_dataclass("CuratedEventTwin", names, slots=True, eq=False, repr=False)
    probe_args = ("m", 1, "t", {"k": 1}, {"v": 2}, "id", "type", "/source", "subject", 0)
    try:
        probe = twin(*probe_args)
        probe.__class__ = CuratedEvent
    except TypeError:
        return None
    return twin if probe == CuratedEvent(*probe_args) else None


CURATED_EVENT_TWIN: type | None = _unfrozen_twin()


def curated_event_builder() -> Callable[..., CuratedEvent]:
    """`CuratedEvent(...)` with its fields positional, as fast as this Python allows."""
    twin = CURATED_EVENT_TWIN
    if twin is None:
        return CuratedEvent

    def build(*args: Any) -> CuratedEvent:
        event = twin(*args)
        event.__class__ = CuratedEvent
        return event

    return build
