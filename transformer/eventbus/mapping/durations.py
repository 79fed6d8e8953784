"""Durations in mapping files (a lookup's `wait`, a topic's `retention`): `30s`, `2m`, `7d`, `500ms` or
a number of seconds, to milliseconds; what cannot be one (endless, NaN, negative, beyond its limit)
is a ValueError whose message the loader places at the value."""

from __future__ import annotations

import math
import re

_DAY_MS = 86_400_000
# Upper bounds that catch a slip of unit or digits (`wait: 2000000`, milliseconds written as seconds,
# is 23 days): a change waits for its related row in the parked-changes topic for at most a week; a
# retention beyond a century is `forever` said another way.
MAX_LOOKUP_WAIT_MS = 7 * _DAY_MS
MAX_RETENTION_MS = 36_500 * _DAY_MS


def parse_duration_ms(
    value: float | int | str,
    *,
    at_most_ms: int | None = None,
    what: str = "a duration",
    longer: str | None = None,
) -> int:
    """`30s`, `2m`, `1h`, `7d`, `500ms` or a number of seconds → milliseconds; ValueError otherwise,
    also for an endless or NaN number, a negative one and one above `at_most_ms` (`longer` names
    what to write instead)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 2m, 500ms")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        milliseconds = value * 1000
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration (write e.g. 30s, 2m, 500ms, 7d)")
        unit = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": _DAY_MS}[match.group(2) or "s"]
        milliseconds = float(match.group(1)) * unit
    if isinstance(milliseconds, float) and not math.isfinite(milliseconds):  # .nan, .inf, 1e400
        raise ValueError("a duration is a finite number of seconds or text like 30s, 2m, 7d")
    if at_most_ms is not None and milliseconds > at_most_ms:
        instead = f" (write {longer!r} for no limit)" if longer else ""
        raise ValueError(f"{what} is at most {at_most_ms // _DAY_MS}d{instead}")
    return int(milliseconds)


def retention_ms(value: int | str) -> int:
    """`7d`, `36h`, a number of seconds or `forever` → Kafka's `retention.ms` (-1 forever)."""
    if value == "forever":
        return -1
    milliseconds = parse_duration_ms(value, at_most_ms=MAX_RETENTION_MS, what="a retention", longer="forever")
    if milliseconds <= 0:
        raise ValueError("retention must be positive (or 'forever')")
    return milliseconds
