"""A change's place in its source's commit order, from Debezium's PostgreSQL `source` block.

The position of a streamed change is the pair `(last commit LSN, change LSN)`, from `source.sequence`
(`["<last commit lsn>", "<lsn>"]`) and `source.lsn`:
- the change LSN alone is not monotonic along a staging topic: transactions arrive in *commit*
  order, so a long transaction that began earlier carries lower LSNs than one that committed first;
- the first element is the same for every change of one transaction and grows from one transaction
  to the next, and within a transaction change LSNs grow, so the pair grows strictly along the
  stream, and the first element alone tells the transactions apart ("as of a commit");
- `txId` orders nothing (ids are assigned at first write, not at commit).

Snapshot reads share the snapshot's LSN and come before every streamed change.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from eventbus.debezium.envelope import SourceInfo

Position = tuple[int, int]
"""(transaction order, change LSN); compared as a tuple."""

BEFORE_STREAMING: Final[Position] = (0, 0)
"""Where snapshot reads stand in the commit order: before every streamed change."""

_STREAMING: Final = frozenset({None, "false"})
# `["<last commit LSN>","<change LSN>"]`: the commit LSN's digits, then whatever the array goes on with.
_USUAL_SEQUENCE: Final = re.compile(r'\["([0-9]+)",".*"\]', re.DOTALL).fullmatch


def log_position(lsn: int | None, snapshot: str | None, sequence: str | None) -> Position | None:
    """The position from `source.lsn`, `source.snapshot` and `source.sequence`; None for a snapshot
    read or a change without an LSN (they cannot be ordered among streamed changes)."""
    if lsn is None or snapshot not in _STREAMING:
        return None
    commit = lsn
    if sequence:
        # Debezium writes `["<digits>","<digits>"]` (or `[null,"<digits>"]`): the usual form is read
        # by one regular-expression match (every record's position is read on the hot path);
        # anything else is parsed.
        usual = _USUAL_SEQUENCE(sequence)
        if usual is not None:
            return (int(usual[1]), lsn)
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


RecordPosition = tuple[int, int, int]
"""(transaction order, change LSN, step): a staging record's place in its table's stream of records.

One log record can become two Debezium records: an update of a row's primary key is sent as a
delete of the old key, then a create of the new key, both at the change's position (same LSN and
sequence). `step` tells them apart: 0 for the delete, 1 for every other record (the create, and
every change that is the only record of its log record), so the create stands after the delete."""


def record_position(position: Position | None, op: str) -> RecordPosition | None:
    """The record's place (see `RecordPosition`) from its change's position and its `op`."""
    if position is None:
        return None
    return (position[0], position[1], 0 if op == "d" else 1)


def position_of(source: SourceInfo) -> Position | None:
    """`log_position` of a decoded change's source."""
    return log_position(source.lsn, source.snapshot, source.sequence)


def commit_position(lsn: int | None, snapshot: str | None, sequence: str | None) -> Position:
    """`log_position`, with snapshot reads (and changes without an LSN) before every streamed one."""
    return log_position(lsn, snapshot, sequence) or BEFORE_STREAMING


def _as_int(value: Any, fallback: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return fallback
