"""The demo's closing numbers are what the curated topics hold: each event once."""

from __future__ import annotations

from eventbus_dev.demo.watch import ReceivedEvent, distinct_counts, start_offset


def _event(topic: str, offset: int, ce_id: str) -> ReceivedEvent:
    return ReceivedEvent(topic, 0, offset, {}, {}, {"ce_id": ce_id})


def test_an_event_read_twice_counts_once() -> None:
    events = [_event("a", 0, "x"), _event("a", 1, "y"), _event("b", 0, "z"), _event("a", 0, "x")]
    assert distinct_counts(events) == {"a": 2, "b": 1}


def test_a_partition_assigned_again_goes_on_after_what_was_read() -> None:
    recorded = {"a": {0: 10}}
    assert start_offset("a", 0, recorded, {}) == 10  # first assignment: the recorded start
    assert start_offset("a", 0, recorded, {("a", 0): 25}) == 25  # again: where reading got to
    assert start_offset("b", 0, recorded, {}) is None  # a new topic: from its beginning
    assert start_offset("b", 0, recorded, {("b", 0): 3}) == 3
