"""`source status`'s freshness verdict: the newest change or heartbeat against the threshold."""

from __future__ import annotations

from eventbus.sources.status import SourceStatus

NOW_MS = 1_800_000_000_000


def _status(
    change_ms: int | None, heartbeat_ms: int | None, stale_after_s: float | None = 60
) -> SourceStatus:
    status = SourceStatus("claims", "eventbus-source-claims", None, None, stale_after_s=stale_after_s)
    status.last_change = None if change_ms is None else {"timestamp_ms": change_ms}
    status.heartbeat = None if heartbeat_ms is None else {"timestamp_ms": heartbeat_ms}
    return status


def test_a_recent_heartbeat_keeps_an_idle_source_fresh() -> None:
    status = _status(NOW_MS - 3_600_000, NOW_MS - 5_000)
    assert status.age_s(NOW_MS) == 5.0
    assert not status.stale(NOW_MS)


def test_silence_beyond_the_threshold_is_stale() -> None:
    assert _status(NOW_MS - 61_000, NOW_MS - 90_000).stale(NOW_MS)
    assert not _status(NOW_MS - 59_000, None).stale(NOW_MS)


def test_nothing_ever_seen_is_stale_and_no_threshold_is_never_stale() -> None:
    assert _status(None, None).stale(NOW_MS)
    assert _status(None, None).age_s(NOW_MS) is None
    assert not _status(None, None, stale_after_s=None).stale(NOW_MS)
