"""A `Change` whose key record is parsed on the first read of `Change.key` (`LazyKeyChange`).

The decoder (`connect_json`) builds one when a key record starts with its topic's known schema
prefix. A module of its own because it reaches past `Change.key` to the slot underneath, which
nothing else should do.
"""

from __future__ import annotations

from dataclasses import fields
from types import MemberDescriptorType
from typing import TYPE_CHECKING, Any, Final

from eventbus.debezium.envelope import Change, SourceInfo
from eventbus.debezium.payload_parser import JSON_ERRORS, loads

if TYPE_CHECKING:
    from eventbus.debezium.connect_json import ConnectJsonDecoder

# The slot's descriptor, reached past `LazyKeyChange.key` (the class dict, not `Change.key`, so
# that it is typed as the descriptor it is rather than as the field's value)
_KEY_SLOT: Final[MemberDescriptorType] = Change.__dict__["key"]
PendingKey = tuple[
    "ConnectJsonDecoder", bytes, "str | None", int
]  # decoder, key record, topic, prefix length


class LazyKeyChange(Change):
    """A `Change` whose key payload is parsed when first read.

    Only the event id reads the key, and only for changes a mapping turns into an event (a minority:
    mappings are conditions), while parsing it costs about as much as a mapping's whole filter. So
    when a key record starts with its topic's known schema prefix (the schema part is then one
    already parsed and checked), the decoder keeps the bytes and the first read of `key` parses the
    payload; a payload that is not a JSON object raises `DecodeError` there, as `decode_key` would.
    Equal to a `Change` with the same fields.
    """

    __slots__ = ("_pending_key",)

    def __init__(
        self,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        source: SourceInfo,
        table: Any,
        key: dict[str, Any] | None = None,
        ts_ms: int | None = None,
        transaction: dict[str, Any] | None = None,
        message: dict[str, Any] | None = None,
        pending_key: PendingKey | None = None,
    ) -> None:
        # Plain slot stores, not `Change.__init__`: that would set `key` through the property.
        self.op = op
        self.before = before
        self.after = after
        self.source = source
        self.table = table
        self.ts_ms = ts_ms
        self.transaction = transaction
        self.message = message
        self._pending_key: PendingKey | None = pending_key
        if pending_key is None:  # built with a key (`dataclasses.replace`, copies)
            _KEY_SLOT.__set__(self, key)

    @property
    def key(self) -> dict[str, Any] | None:
        pending = self._pending_key
        if pending is not None:
            self._pending_key = None
            decoder, data, topic, plen = pending
            try:
                payload = loads(memoryview(data)[plen:-1])
            except JSON_ERRORS:
                payload = None
            if payload.__class__ is not dict:  # let decode_key accept (null) or name the problem
                payload = decoder.decode_key(data, topic)
            _KEY_SLOT.__set__(self, payload)
        return _KEY_SLOT.__get__(self)

    @key.setter
    def key(self, value: dict[str, Any] | None) -> None:
        self._pending_key = None
        _KEY_SLOT.__set__(self, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Change):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Change))

    __hash__ = None  # type: ignore[assignment]  # mutable, like Change
