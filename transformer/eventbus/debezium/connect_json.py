"""Decoding Debezium records written by Kafka Connect's `JsonConverter`.

With `schemas.enable=true` (what the staging topics use) every record is
`{"schema":{...},"payload":{...}}`, and the `schema` part is about 80 % of the bytes. It is also
byte-identical for every record of one table version and comes first. So the decoder keeps, per topic,
the last seen prefix `{"schema":<schema>,"payload":` (`schema_prefix`) and, when a record starts with
it, parses only the payload (msgspec on a zero-copy `memoryview`). A prefix miss falls back to a full
parse and a dict of known schemas (keyed by the schema's exact bytes), so topics that alternate
between table versions still build each `ConnectTableSchema` (`connect_schema`) once.

Keys get the same prefix treatment. A key record that starts with its topic's known prefix is kept as
bytes in the `Change` and parsed on the first read of `Change.key` (`lazy_key`): only changes that
become events read it (for the event id), and parsing it costs about as much as a mapping's whole
condition.

`decode` returns a `Change`. The service's per-record path, `decode_payload`, stops earlier: the
parsed payload and its table schema, the envelope's shape checked but no objects built (most
changes are filtered out by every mapping); the mappings then read the payload directly
(`CompiledMapping.bind_payload`). The payload parser is typed (msgspec, `payload_parser`): it builds
only the row columns the topic's mappings read, and keeps the source block raw until it is read
(`source_block.payload_source`, `payload_order`), which is where a block that is not as Debezium
writes it is refused.

With `schemas.enable=false` the record *is* the payload. Column types are then unknown: values stay
raw (decimals as base64 text, timestamps as epoch numbers), and only the TOAST placeholder string is
recognised (`SchemalessTableSchema`). Both forms are detected automatically unless the decoder is told
which one to expect.

An envelope the fast reading cannot take is read again field by field (`envelope_check`).
Everything malformed raises `DecodeError` with a message naming what is wrong (which column, field or
rule), never quoting a key or value of the record: those may be personal data (`errors.parser_message`,
`errors.shown_keys`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, Final, overload

import orjson

from eventbus.debezium.connect_schema import ConnectTableSchema
from eventbus.debezium.envelope import NEEDS_AFTER, OPS, Change, SourceInfo
from eventbus.debezium.envelope_check import checked_change
from eventbus.debezium.errors import DecodeError, parser_message, record_name, shown_keys
from eventbus.debezium.lazy_key import LazyKeyChange, PendingKey
from eventbus.debezium.logical_types import PLACEHOLDER, ConverterOptions, Placeholder
from eventbus.debezium.payload_parser import JSON_ERRORS, loads, narrow_payload_loads, whole_payload_loads
from eventbus.debezium.schema_prefix import PAYLOAD_SEP, SCHEMA_HEAD, SchemaEntry, split_prefix
from eventbus.debezium.source_block import usual_source
from eventbus.debezium.table_schema import SchemalessTableSchema

# The names a JsonConverter record and a Debezium envelope have at their top level: what a message
# about a record that is neither may name (any other key is counted, not shown: it may be data).
_ENVELOPE_NAMES: Final = frozenset(
    {"schema", "payload", "before", "after", "op", "source", "ts_ms", "ts_us", "ts_ns", "transaction"}
)


# --------------------------------------------------------------------------------------------------
# Records


def _as_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")


class ConnectJsonDecoder:
    """Decodes JsonConverter output (schemas enabled or not) into `Change` objects.

    One instance per consumer: it caches schemas per topic. Not thread-safe (no locks on the hot path).
    `schemas_enabled=None` detects the form per record; `True`/`False` insist on one.
    """

    __slots__ = (
        "_key_by_schema",
        "_key_last",
        "_max",
        "_opts",
        "_payload_fast",
        "_payload_loads",
        "_schemaless",
        "_schemas_enabled",
        "_value_by_schema",
        "_value_last",
        "key_reader",
    )

    def __init__(
        self,
        *,
        placeholder: str = PLACEHOLDER,
        schemas_enabled: bool | None = None,
        max_cached_schemas: int = 1024,
    ) -> None:
        self._opts = ConverterOptions(binary=False, placeholder=Placeholder.from_config(placeholder))
        self._schemas_enabled = schemas_enabled
        self._max = max_cached_schemas
        self._value_last: dict[str | None, SchemaEntry] = {}
        self._value_by_schema: dict[bytes, SchemaEntry] = {}
        self._key_last: dict[str | None, SchemaEntry] = {}
        self._key_by_schema: dict[bytes, SchemaEntry] = {}
        self._schemaless: dict[str, SchemalessTableSchema] = {}
        self._payload_loads: dict[str | None, Callable[[Any], Any]] = {}
        # What `decode_payload` needs of a topic, in one lookup: its last schema prefix, the
        # prefix's length, the topic's payload parser, the table schema (kept with `_value_last`).
        self._payload_fast: dict[str | None, tuple[bytes, int, Callable[[Any], Any], Any]] = {}
        # `decode_key`, bound once: every record view hands it to generated mapping code.
        self.key_reader: Callable[[bytes | None, str | None], dict[str, Any] | None] = self.decode_key

    def read_only(self, topic: str, columns: Iterable[str], *, before: Iterable[str] | None = None) -> None:
        """`decode_payload` of `topic` keeps only these row columns (the union of what every reader
        of its payloads reads: the mappings of that table); of the `before` row only `before`, when
        given. `decode` is not affected."""
        self._payload_loads[topic] = narrow_payload_loads(
            sorted(set(columns)), None if before is None else sorted(set(before))
        )
        entry = self._value_last.get(topic)
        if entry is not None:
            self._remember_value(topic, entry)

    def _remember_value(self, topic: str | None, entry: SchemaEntry) -> None:
        """`entry` is the topic's last value schema (what the next record is checked against)."""
        self._value_last[topic] = entry
        parse = self._payload_loads.get(topic, whole_payload_loads)
        self._payload_fast[topic] = (entry.prefix, entry.plen, parse, entry.table)

    # -- public API ----------------------------------------------------------------------------

    @overload
    def decode(self, value: bytes, key: bytes | None = None, topic: str | None = None) -> Change: ...
    @overload
    def decode(self, value: None, key: bytes | None = None, topic: str | None = None) -> None: ...
    @overload
    def decode(
        self, value: bytes | None, key: bytes | None = None, topic: str | None = None
    ) -> Change | None: ...
    def decode(
        self, value: bytes | None, key: bytes | None = None, topic: str | None = None
    ) -> Change | None:
        """Decode one staging record; `None` for a tombstone (value `None`).

        `key`, when given, is decoded too and stored raw in `Change.key`. A key that starts with
        its topic's known schema prefix is parsed on the first read of `Change.key` (a payload
        that is not a JSON object then raises `DecodeError` there); any other key is decoded now.
        """
        if value is None:
            return None
        if value.__class__ is not bytes:
            value = _as_bytes(value, record_name("value", topic))
        entry, payload = self._parse(value, topic, self._value_last, key=False)
        table = entry.table if entry is not None else None
        if key is None:
            return self._change(payload, table, None, topic)
        key_entry = self._key_last.get(topic)
        if key_entry is None or key.__class__ is not bytes or not key.startswith(key_entry.prefix):
            return self._change(payload, table, self.decode_key(key, topic), topic)
        pending = (self, key, topic, key_entry.plen)
        return self._change(payload, table, None, topic, pending)

    def decode_payload(
        self, value: bytes | None, topic: str | None = None
    ) -> tuple[dict[str, Any], Any] | None:
        """The service's hot path: `(envelope payload, table schema)` of a usual record, else `None`.

        Usual: schemas enabled and a well-formed Debezium envelope, checked as `decode` checks it,
        but without building `Change`/`SourceInfo` objects: most changes are filtered out by every
        mapping and never need them (`CompiledMapping.bind_payload` reads the payload directly). Its
        source block is checked when it is read (`source_block.payload_source`/`payload_order`
        raise for one `decode` would refuse or treat as unusual). `None` means "call `decode`":
        it builds the `Change` of an unusual record or raises the `DecodeError` that names what is
        wrong. A value that is not JSON, or whose schema is unusable, raises that `DecodeError` here
        already.
        """
        # `_parse`, inlined (one call less per record), with the topic's typed parser
        fast = self._payload_fast.get(topic)
        if fast is not None and value.__class__ is bytes and value.startswith(fast[0]):
            try:
                payload = fast[2](memoryview(value)[fast[1] : -1])
            except JSON_ERRORS:  # whitespace after the payload, a row not an object, too deep
                pass
            else:
                # The parser checked that rows and op are there, and their types.
                if "source" in payload and (payload["after"] is not None or payload["op"] not in NEEDS_AFTER):
                    return payload, fast[3]
                return None
        if value.__class__ is not bytes:
            return None
        # Parsed whole: the source block gets the parser's check here
        entry, payload = self._slow(value, topic, key=False)
        if entry is None or payload.__class__ is not dict or not usual_source(payload.get("source")):
            return None
        # The envelope's shape, as `decode` checks it (a payload that is not an object raises
        # TypeError, a missing field KeyError: `decode` then names the problem).
        try:
            before = payload["before"]
            after = payload["after"]
            op = payload["op"]
            if (
                (before.__class__ is dict or before is None)
                and (after.__class__ is dict or (after is None and op not in NEEDS_AFTER))
                and op in OPS
                and "source" in payload  # its content is checked when it is read
            ):
                return payload, entry.table
        except (KeyError, TypeError):
            pass
        return None

    def decode_key(self, key: bytes | None, topic: str | None = None) -> dict[str, Any] | None:
        """The raw key payload (e.g. `{"id": 42}`), or `None` for a null key."""
        if key is None:
            return None
        if key.__class__ is not bytes:
            key = _as_bytes(key, record_name("key", topic))
        entry = self._key_last.get(topic)
        if entry is not None and key.startswith(entry.prefix):  # `_parse`, inlined: once per event
            try:
                payload = loads(memoryview(key)[entry.plen : -1])
            except JSON_ERRORS:
                payload = self._slow(key, topic, key=True)[1]
        else:
            payload = self._slow(key, topic, key=True)[1]
        if payload is not None and payload.__class__ is not dict:
            raise DecodeError(
                f"{record_name('key', topic)}: payload is a {type(payload).__name__}, expected an object"
            )
        return payload

    def table_schema(self, value: bytes, topic: str | None = None) -> ConnectTableSchema:
        """The `ConnectTableSchema` of a (schema-enabled) record, without building a `Change`."""
        entry, _ = self._slow(_as_bytes(value, record_name("value", topic)), topic, key=False)
        if entry is None:
            raise DecodeError(f"{record_name('value', topic)}: has no schema (schemas.enable=false)")
        return entry.table

    # -- internals -----------------------------------------------------------------------------

    def _parse(
        self, data: bytes, topic: str | None, last: dict[str | None, SchemaEntry], *, key: bool
    ) -> tuple[SchemaEntry | None, Any]:
        """The payload (after the topic's known schema prefix, or by a full parse) and its entry.

        `decode_payload` has this inline: it is the service's per-record path.
        """
        entry = last.get(topic)
        if entry is not None and data.startswith(entry.prefix):
            try:
                return entry, loads(memoryview(data)[entry.plen : -1])
            except JSON_ERRORS:  # e.g. whitespace after the payload: parse it whole
                pass
        return self._slow(data, topic, key=key)

    def _slow(self, data: bytes, topic: str | None, *, key: bool) -> tuple[SchemaEntry | None, Any]:
        """Full parse; finds (or builds) the schema entry and remembers the prefix for this topic."""
        what = record_name("key" if key else "value", topic)
        try:
            doc = loads(data)
        except JSON_ERRORS as exc:
            # The parser's message may quote a piece of the record: only its rule and position
            raise DecodeError(f"{what} is not valid JSON: {parser_message(exc)}") from None
        if doc.__class__ is not dict:
            raise DecodeError(f"{what} is a JSON {type(doc).__name__}, expected an object")
        enveloped = "payload" in doc and "schema" in doc and len(doc) == 2
        if not enveloped:
            if self._schemas_enabled or (self._schemas_enabled is None and "schema" in doc):
                absent = [name for name in ("payload", "schema") if name not in doc]
                raise DecodeError(
                    f"{what} is not a Connect JSON envelope: "
                    f"{f'missing {absent[0]!r}' if absent else 'other keys besides schema and payload'} "
                    f"(has {shown_keys(doc, _ENVELOPE_NAMES)}); is the converter's schemas.enable "
                    "setting what you expect?"
                )
            return None, doc  # schemas.enable=false: the document is the payload
        if self._schemas_enabled is False:
            raise DecodeError(f"{what} carries a schema but the decoder expects schemas.enable=false")
        schema, payload = doc["schema"], doc["payload"]
        if schema is None:
            if self._schemas_enabled and not key:
                # Without its schema a value's decimals and timestamps cannot be read exactly.
                raise DecodeError(f"{what} has a null schema; the decoder expects schemas.enable=true")
            return None, payload

        by_schema = self._key_by_schema if key else self._value_by_schema
        plen = split_prefix(data, schema)
        schema_bytes = data[len(SCHEMA_HEAD) : plen - len(PAYLOAD_SEP)] if plen else None
        cache_key = (
            schema_bytes if schema_bytes is not None else orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        )
        entry = by_schema.get(cache_key)
        if entry is None:
            table = None
            if not key:
                fingerprint = hashlib.sha256(cache_key).hexdigest()[:16]
                try:
                    table = ConnectTableSchema.from_connect_schema(
                        schema, options=self._opts, fingerprint=fingerprint
                    )
                except DecodeError as exc:
                    raise DecodeError(f"{what}: unusable schema: {exc}") from exc
            if len(by_schema) >= self._max:
                by_schema.clear()
            entry = SchemaEntry(bytes(data[:plen]) if plen else b"", plen or 0, table)
            by_schema[cache_key] = entry
        if entry.prefix:
            if key:
                self._key_last[topic] = entry
            else:
                self._remember_value(topic, entry)
        return entry, payload

    def _schemaless_table(self, source: dict[str, Any]) -> SchemalessTableSchema:
        name = f"{source.get('schema')}.{source.get('table')}"
        table = self._schemaless.get(name)
        if table is None:
            table = self._schemaless[name] = SchemalessTableSchema(name, self._opts)
        return table

    def _change(
        self,
        payload: Any,
        table: Any,
        key: dict[str, Any] | None,
        topic: str | None,
        pending_key: PendingKey | None = None,
    ) -> Change:
        # Fast path for well-formed envelopes, where Debezium always writes every envelope and source
        # field (null when empty): subscripts instead of `.get`, and only the checks that a wrong
        # shape would not trip anyway. Anything unusual (a missing field raises KeyError, a non-dict
        # TypeError) is re-done by `_checked_change`, which finds and names the problem.
        try:
            op = payload["op"]
            src = payload["source"]
            before = payload["before"]
            after = payload["after"]
            if (
                op in OPS
                and op.__class__ is str
                and (before.__class__ is dict or before is None)
                and (after.__class__ is dict or (after is None and op not in NEEDS_AFTER))
                and usual_source(src)
            ):
                source = SourceInfo.from_block(src)
                table = table if table is not None else self._schemaless_table(src)
                fields = (payload["ts_ms"], payload["transaction"], payload.get("message"))
                if pending_key is None:
                    return Change(op, before, after, source, table, key, *fields)
                return LazyKeyChange(op, before, after, source, table, None, *fields, pending_key)
        except (KeyError, TypeError):
            pass
        if pending_key is not None:  # unusual envelope: decode the key now, then check everything
            key = pending_key[0].decode_key(pending_key[1], topic)
        return checked_change(payload, table, key, topic, self._schemaless_table)


_DEFAULT: Final = ConnectJsonDecoder()


def decode_connect_json(
    value: bytes | None, key: bytes | None = None, topic: str | None = None
) -> Change | None:
    """Decode one record with a process-wide default decoder (default placeholder, auto-detected form)."""
    return _DEFAULT.decode(value, key, topic)


def decode_connect_key(key: bytes | None, topic: str | None = None) -> dict[str, Any] | None:
    """Decode one key record with the process-wide default decoder."""
    return _DEFAULT.decode_key(key, topic)
