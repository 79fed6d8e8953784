"""One staging record as the rest of the service sees it, and how generated mapping code reads one.

`StagingRecord` is the single view of a Debezium record the processor works with: its op, its
`source` position and time, and the curated events a compiled mapping makes of it. It decodes as far
as it is read. The usual record (Connect JSON with schemas, an envelope as Debezium writes it) is
kept as its parsed payload, and mappings run straight on it: their generated code reads only the
columns they use and converts only those. Anything else, and any record a mapping fails on, is
decoded in full into a `Change` (the checked path), which builds the same values or names what is
wrong with the record (`CompiledMapping.events_of` makes that choice; the processor does not see
it).

`ENVELOPE_READS` is the other half of that knowledge: the expressions the mapping compiler puts in
generated code to read op, rows, source block and key from a `Change` or from a payload, so that
the envelope's field names stay in this package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from msgspec import MsgspecError

from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.envelope import Change
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.positions import Position, RecordPosition, log_position, record_position
from eventbus.debezium.source_block import payload_order, payload_source


class RecordUnreadable(Exception):
    """The record itself cannot be decoded: every mapping would fail on it (`__cause__` says why)."""


class StagingRecord:
    """A staging record's value (not None: tombstones never get here), key and topic, read lazily.

    `payload` and `table`: the parsed envelope payload of a usual record and the table version its
    schema names, what a mapping's payload entry point reads; None once the record is decoded in
    full (`checked()`), or when it had to be."""

    __slots__ = ("_decoder", "change", "decode_key", "key", "payload", "table", "topic", "value")

    def __init__(self, decoder: ConnectJsonDecoder, value: bytes, key: bytes | None, topic: str) -> None:
        """Raises `DecodeError` when the record is not a change event at all."""
        self.value, self.key, self.topic = value, key, topic
        self._decoder = decoder
        # The key record decoded, when an event needs it (generated code calls it).
        self.decode_key: Callable[[bytes | None, str | None], dict[str, Any] | None] = decoder.key_reader
        self.change: Change | None = None
        usual = decoder.decode_payload(value, topic)
        if usual is None:
            self.payload: dict[str, Any] | None = None
            self.table: Any = None
            self.checked()
        else:
            self.payload, self.table = usual

    def checked(self) -> Change:
        """The record decoded in full (the checked path); raises `DecodeError` naming what is wrong."""
        change = self.change
        if change is None:
            change = self._decoder.decode(self.value, self.key, self.topic)
            if change is None:  # pragma: no cover - `decode` returns None only for a None value
                raise DecodeError("the record has no value")
            self.change = change
            self.payload = self.table = None
        return change

    @property
    def position(self) -> Position | None:
        """Its place in the source's commit order (debezium/positions.py); None for a snapshot read
        or a change without an LSN. Raises `DecodeError` when the record's source block is unusable."""
        lsn, snapshot, sequence, _ = self._order()
        return log_position(lsn, snapshot, sequence)

    @property
    def op(self) -> str:
        """Debezium's operation code: c, u, d, r, t or m. Raises `DecodeError` for an unreadable record."""
        payload = self.payload
        if payload is not None:
            op: str = payload["op"]
            return op
        return self.checked().op

    @property
    def record_position(self) -> RecordPosition | None:
        """Its place among the records of its table (`positions.RecordPosition`: the position, and
        which of the two records of a primary-key update it is), what the dedup watermark compares."""
        return record_position(self.position, self.op)

    @property
    def ts_ms(self) -> int | None:
        """The source's commit time of the change (ms since the epoch), when Debezium gave one."""
        return self._order()[3]

    @property
    def lag_ms(self) -> int:
        """How long after its commit the connector streamed the change (the envelope's `ts_ms` less
        `source.ts_ms`); 0 when either is unknown."""
        committed = self.ts_ms
        payload = self.payload
        streamed = payload.get("ts_ms") if payload is not None else self.checked().ts_ms
        if committed.__class__ is not int or streamed.__class__ is not int:
            return 0
        return max(0, streamed - committed)

    def _order(self) -> tuple[int | None, str | None, str | None, int | None]:
        payload = self.payload
        if payload is not None:
            try:
                return payload_order(payload)
            except MsgspecError:
                pass  # not a usual block: the checked path reads it, or names what is wrong
        source = self.checked().source
        return source.lsn, source.snapshot, source.sequence, source.ts_ms


@dataclass(frozen=True)
class EnvelopeReads:
    """Where a generated mapping entry point reads op, rows, source block and key from (Python
    expressions over its parameters), and how it names a `source.<field>`."""

    op: str
    before: str
    after: str
    source: str
    key: str
    source_field_template: str  # {name}: where a `source.<field>` is, by its Debezium name
    source_names: dict[str, str] = field(default_factory=dict)  # mapping name → Debezium name
    runtime: dict[str, Any] = field(default_factory=dict)  # the functions these expressions call

    def source_field(self, name: str) -> str:
        return self.source_field_template.format(name=self.source_names.get(name, name))


ENVELOPE_READS: Final[dict[str, EnvelopeReads]] = {
    # `__apply(change)`: a decoded `Change` (offline runs, tests, the checked path of the service).
    "change": EnvelopeReads(
        "change.op", "change.before", "change.after", "change.source", "change.key", "_src.{name}"
    ),
    # `__apply_payload(_pl, _kb, _kt, _rk)`: the envelope payload dict as
    # `ConnectJsonDecoder.decode_payload` parsed and checked it from the staging record; its source
    # block is decoded (and checked) when read, by `_sb(_pl)`; `_rk(_kb, _kt)` decodes the key record
    # (bytes, topic) when an event needs it: no `Change`/`SourceInfo` objects for changes that are
    # filtered out.
    "payload": EnvelopeReads(
        '_pl["op"]',
        '_pl["before"]',
        '_pl["after"]',
        "_sb(_pl)",
        "_rk(_kb, _kt)",
        '_src.get("{name}")',
        {"connector": "name", "tx_id": "txId"},
        {"_sb": payload_source},
    ),
}
