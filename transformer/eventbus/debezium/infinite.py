"""PostgreSQL's 'infinity' and '-infinity' of `date`, `timestamp` and `timestamptz` columns.

Python's dates stop at 9999, so the decoder gives these two sentinels instead (as `UNAVAILABLE`
stands for a TOAST placeholder). They order as their names say against every date and datetime
(naive or aware) and each other, equal only themselves, and have the text PostgreSQL prints for
them; anything else (numbers, text, times of day) cannot be compared with them (TypeError, which
the expression runtime reports as its own error). A mapping tests them with `is_infinite(x)`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final


class Infinite:
    """One of the two infinities: `INFINITY` (later than every date) or `NEG_INFINITY`."""

    __slots__ = ("sign", "text")

    sign: int
    text: str

    def __init__(self, sign: int, text: str) -> None:
        self.sign, self.text = sign, text

    def __repr__(self) -> str:
        return "INFINITY" if self.sign > 0 else "NEG_INFINITY"

    def __reduce__(self) -> str:
        return repr(self)  # pickled by name: the module's singleton comes back, identity kept

    def _order(self, other: Any) -> int | None:
        """-1, 0 or 1 as self is before, the same as or after `other`; None: no order."""
        if other.__class__ is Infinite:
            return (self.sign > other.sign) - (self.sign < other.sign)
        if isinstance(other, dt.date):  # a datetime is a date too
            return self.sign
        return None

    def __lt__(self, other: Any) -> bool:
        order = self._order(other)
        return NotImplemented if order is None else order < 0

    def __le__(self, other: Any) -> bool:
        order = self._order(other)
        return NotImplemented if order is None else order <= 0

    def __gt__(self, other: Any) -> bool:
        order = self._order(other)
        return NotImplemented if order is None else order > 0

    def __ge__(self, other: Any) -> bool:
        order = self._order(other)
        return NotImplemented if order is None else order >= 0

    # == and hash stay identity: there is one object of each, and it equals no date.


INFINITY: Final = Infinite(1, "infinity")
"""PostgreSQL 'infinity' of a date, timestamp or timestamptz column."""
NEG_INFINITY: Final = Infinite(-1, "-infinity")
"""PostgreSQL '-infinity' of a date, timestamp or timestamptz column."""

BY_TEXT: Final[dict[str, Infinite]] = {"infinity": INFINITY, "-infinity": NEG_INFINITY}
"""The sentinel of each text PostgreSQL (and Debezium's ZonedTimestamp) writes for one."""


def is_infinite(value: Any) -> bool:
    return value.__class__ is Infinite


def refusal(what: str) -> str:
    """Why an infinity cannot become `what` (an Avro field kind, a number), saying how to handle it."""
    return (
        f"PostgreSQL 'infinity'/'-infinity' (an infinite date or timestamp) has no {what}; say what to "
        "publish for it, e.g. `null if is_infinite(after.col) else after.col` into a nullable field, "
        "or str(after.col) into a string field (the text 'infinity' / '-infinity')"
    )
