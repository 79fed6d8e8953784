"""Curated events → Kafka key bytes, value bytes and headers, in the Confluent wire format.

Wire format: magic byte 0, the schema id as 4 big-endian bytes, then the Avro binary body. Schema
ids are resolved once, when the serializer is built (`AvroEventSerializer.from_registry`), in one of
two modes the event bus requires:

* auto-register (development): register `<topic>-key` / `<topic>-value` if needed and keep the id;
* pinned (production, `auto.register.schemas=false`): take ids from the committed lock file, check
  the registry's schema under each id is ours (extended canonical form), never register.

Per event, only the encoder runs, with the 5-byte prefix precomputed: for flat records a function
generated from the schema (`fast_encoder`, byte-identical to fastavro), otherwise — and for any value
that function does not handle — fastavro's Cython `write_data`, called directly with the schema
parsed once. `schemaless_writer` would re-run
`parse_schema` and copy through a `BytesIO` on every call (≈0.8 µs more per key+value); we fall back
to it only if that internal entry point is missing or disagrees with it (checked at import).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientRegistryError

from eventbus.errors import EventBusError, ServiceUnavailableError
from eventbus.events.errors import IncompatibleSchemaError, SchemaRegistryError, SerializationFailed
from eventbus.events.fast_encoder import compile_record_encoder
from eventbus.events.headers import build_headers
from eventbus.events.mismatch import find_mismatch
from eventbus.events.model import CuratedEvent
from eventbus.events.schema_form import (
    AvroSchema,
    as_json,
    canonical_form,
    fingerprint,
)
from eventbus.events.schema_lock import SchemaLock

MAGIC_BYTE = 0
_WRITE_OPTIONS: dict[str, bool] = {
    # strict: a field the schema lacks, or a missing field without default, is an error rather
    # than silently dropped / nulled (a mapping bug must not reach consumers).
    "strict": True,
    "strict_allow_default": True,
    "disable_tuple_notation": True,
}


class RegistryMode(StrEnum):
    AUTO_REGISTER = "auto-register"
    PINNED = "pinned"


def subject_name(topic: str, part: str) -> str:
    """Topic name strategy, the only one the event bus uses."""
    return f"{topic}-{part}"


def wire_prefix(schema_id: int) -> bytes:
    return struct.pack(">bI", MAGIC_BYTE, schema_id)


@dataclass(frozen=True, slots=True)
class TopicSchemas:
    """The key and value schemas one curated topic is written with."""

    topic: str
    key_schema: AvroSchema
    value_schema: AvroSchema

    @property
    def key_subject(self) -> str:
        return subject_name(self.topic, "key")

    @property
    def value_subject(self) -> str:
        return subject_name(self.topic, "value")

    def subjects(self) -> tuple[tuple[str, AvroSchema], tuple[str, AvroSchema]]:
        return ((self.key_subject, self.key_schema), (self.value_subject, self.value_schema))


class SerializedEvent(NamedTuple):
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


_new_tuple = tuple.__new__


# --- the per-event encoder -------------------------------------------------------------------------


def _fastavro_write_data() -> Callable[..., None] | None:
    """fastavro's Cython `write_data(bytearray, datum, schema, named, fname, options)`, if usable."""
    try:
        from fastavro._write import write_data  # type: ignore[attr-defined]  # internal, see docstring
    except ImportError:
        return None
    probe_named: dict[str, Any] = {}
    probe = fastavro.parse_schema(
        {"type": "record", "name": "Probe", "fields": [{"name": "a", "type": ["null", "long"]}]},
        named_schemas=probe_named,
    )
    try:
        out = bytearray()
        write_data(out, {"a": 300}, probe, probe_named, "", dict(_WRITE_OPTIONS))
        reference = io.BytesIO()
        fastavro.schemaless_writer(reference, probe, {"a": 300}, **_WRITE_OPTIONS)
    except Exception:
        return None
    return write_data if bytes(out) == reference.getvalue() else None


_WRITE_DATA = _fastavro_write_data()


class AvroEncoder:
    """Encodes one schema's datums in the Confluent wire format under a fixed schema id."""

    __slots__ = (
        "_general",
        "_named",
        "_parsed",
        "part",
        "prefix",
        "raw",
        "schema",
        "schema_id",
        "topic",
        "use_fast_path",
    )

    def __init__(
        self, *, topic: str, part: str, schema: AvroSchema, schema_id: int, use_fast_path: bool = True
    ) -> None:
        self.topic = topic
        self.use_fast_path = use_fast_path
        self.part = part
        self.schema = schema
        self.schema_id = schema_id
        self.prefix = wire_prefix(schema_id)
        self._named: dict[str, Any] = {}
        self._parsed = fastavro.parse_schema(schema, named_schemas=self._named)
        self._general = self._build_general()
        fast = compile_record_encoder(schema, self.prefix) if use_fast_path else None
        # `raw` is the quickest encoder; it raises on values it does not handle, without saying why.
        self.raw: Callable[[Any], bytes] = fast or self._general

    def _build_general(self) -> Callable[[Any], bytes]:
        prefix, parsed, named, options = self.prefix, self._parsed, self._named, _WRITE_OPTIONS
        write_data = _WRITE_DATA
        if write_data is not None:

            def encode(datum: Any) -> bytes:
                out = bytearray(prefix)
                write_data(out, datum, parsed, named, "", options)
                return bytes(out)

            return encode

        writer = fastavro.schemaless_writer

        def encode_slow(datum: Any) -> bytes:
            out = io.BytesIO()
            out.write(prefix)
            writer(out, parsed, datum, **options)
            return out.getvalue()

        return encode_slow

    def encode(self, datum: Any) -> bytes:
        """Encode, or raise `SerializationFailed` naming the field that does not fit."""
        try:
            return self.raw(datum)
        except Exception:
            pass
        # Not a value the generated code handles (see fast_encoder): fastavro decides, once the
        # datum is known to fit (fastavro writes an int beyond 32 bits into an Avro int).
        if find_mismatch(self.schema, datum) is not None:
            raise self.explain(datum) from None
        try:
            return self._general(datum)
        except Exception:
            # fastavro's messages may quote the value (PII): say where and what type instead, and
            # drop the original exception from the chain so it cannot reach a log.
            raise self.explain(datum) from None

    def explain(self, datum: Any) -> SerializationFailed:
        path, expected, actual = find_mismatch(self.schema, datum) or (
            "",
            "a value the Avro encoder accepts",
            type(datum).__name__,
        )
        return SerializationFailed(
            topic=self.topic, part=self.part, path=path, expected=expected, actual_type=actual
        )


class AvroEventSerializer:
    """Turns `CuratedEvent`s into (key, value, headers); one encoder pair per curated topic."""

    def __init__(self, topics: Iterable[TopicSchemas], schema_ids: Mapping[str, int]) -> None:
        self._encoders: dict[str, tuple[AvroEncoder, AvroEncoder]] = {}
        # Per topic the two quickest encoders, so that `serialize` does one lookup per event.
        self._raw: dict[str, tuple[Callable[[Any], bytes], Callable[[Any], bytes]]] = {}
        for spec in topics:
            missing = [s for s, _ in spec.subjects() if s not in schema_ids]
            if missing:
                raise SchemaRegistryError(f"no schema id resolved for subject(s) {', '.join(missing)}")
            self._encoders[spec.topic] = (
                AvroEncoder(
                    topic=spec.topic,
                    part="key",
                    schema=spec.key_schema,
                    schema_id=schema_ids[spec.key_subject],
                ),
                AvroEncoder(
                    topic=spec.topic,
                    part="value",
                    schema=spec.value_schema,
                    schema_id=schema_ids[spec.value_subject],
                ),
            )
            key_encoder, value_encoder = self._encoders[spec.topic]
            self._raw[spec.topic] = (key_encoder.raw, value_encoder.raw)

    @classmethod
    def from_registry(
        cls,
        client: SchemaRegistryClient,
        topics: Iterable[TopicSchemas],
        *,
        mode: RegistryMode,
        lock: SchemaLock | None = None,
    ) -> AvroEventSerializer:
        topics = list(topics)
        return cls(topics, resolve_schema_ids(client, topics, mode=mode, lock=lock))

    def schema_id(self, topic: str, part: str) -> int:
        key, value = self._encoders[topic]
        return key.schema_id if part == "key" else value.schema_id

    def serialize(self, event: CuratedEvent) -> SerializedEvent:
        try:
            raw_key, raw_value = self._raw[event.topic]
        except KeyError:
            raise SchemaRegistryError(
                f"mapping {event.mapping!r} emits to topic {event.topic!r}, which has no schemas loaded"
            ) from None
        try:
            key, value = raw_key(event.key), raw_value(event.value)
        except Exception:
            # Rare path: retry through the general encoder, which also explains real mismatches.
            key_encoder, value_encoder = self._encoders[event.topic]
            key, value = key_encoder.encode(event.key), value_encoder.encode(event.value)
        # tuple.__new__ directly: the NamedTuple's own __new__ is a Python function (≈ 0.2 µs more)
        return _new_tuple(SerializedEvent, (key, value, build_headers(event)))


# --- start-up: schema ids ------------------------------------------------------------------------


def curated_deserializer(client: SchemaRegistryClient) -> AvroDeserializer:
    """confluent-kafka's `AvroDeserializer` for curated events (the `<topic>-key|value` subjects).

    The subject strategy is set on purpose: since confluent-kafka 2.13 the default one first asks the
    registry for the topic's subject *associations*, an API of Confluent's registry only. Apicurio's
    ccompat API answers that lookup with a 404 after which the client was seen to wait on the
    registry for minutes (the demo's reader froze, tests stalled); the topic strategy never asks.
    """
    return AvroDeserializer(client, conf={"subject.name.strategy": topic_subject_name_strategy})


def connect_registry(url: str, **conf: Any) -> SchemaRegistryClient:
    """A registry client; `mock://...` URLs give confluent-kafka's in-memory mock.

    `SchemaRegistryClient({"url": "mock://x"})` would build a real HTTP client; only `new_client`
    returns the mock, so every caller goes through here.
    """
    return SchemaRegistryClient.new_client({"url": url, **conf})


def resolve_schema_ids(
    client: SchemaRegistryClient,
    topics: Iterable[TopicSchemas],
    *,
    mode: RegistryMode,
    lock: SchemaLock | None = None,
) -> dict[str, int]:
    """`subject → schema id` for every key and value subject, resolved once at start-up."""
    ids: dict[str, int] = {}
    for spec in topics:
        for subject, schema in spec.subjects():
            if mode is RegistryMode.AUTO_REGISTER:
                ids[subject] = register_schema(client, subject, schema)
            else:
                if lock is None:
                    raise SchemaRegistryError("pinned mode needs the schema lock file (schemas.lock.yaml)")
                ids[subject] = verify_pinned(client, lock, subject, schema)
    return ids


def register_schema(client: SchemaRegistryClient, subject: str, schema: AvroSchema) -> int:
    """Register (idempotent: an identical schema returns its existing id)."""
    candidate = Schema(as_json(schema), "AVRO")
    try:
        return client.register_schema(subject, candidate)
    except ClientRegistryError as error:
        if error.http_status_code == 409:
            # Replicas start together: a concurrent one may have just created the subject or this
            # version, and Apicurio can answer that race with a 409 too. What counts is whether the
            # schema is now a version of the subject.
            concurrent = _registered_meanwhile(client, subject, candidate)
            if concurrent is not None:
                return concurrent
            raise IncompatibleSchemaError(
                f"{subject}: the registry refused the schema as incompatible ({error.error_message}); "
                f"run `eventbus schema check` for the field-level reasons"
            ) from None
        raise registry_failure(error, f"{subject}: registering failed") from None
    except Exception as error:
        raise registry_unreachable(error) from None


def _registered_meanwhile(client: SchemaRegistryClient, subject: str, candidate: Schema) -> int | None:
    try:
        return client.lookup_schema(subject, candidate).schema_id
    except ClientRegistryError as error:
        if error.http_status_code == 404:
            return None
        raise registry_failure(error, f"{subject}: lookup after a refused registration failed") from None
    except Exception as error:
        raise registry_unreachable(error) from None


def verify_pinned(client: SchemaRegistryClient, lock: SchemaLock, subject: str, schema: AvroSchema) -> int:
    """The pinned id for `subject`, after checking the pin is fresh and the registry agrees."""
    pin = lock.subjects.get(subject)
    if pin is None:
        raise SchemaRegistryError(
            f"{subject}: no schema id pinned in the lock file; ask the bus team for one and run "
            f"`eventbus schema pin`"
        )
    ours = fingerprint(schema)
    if pin.fingerprint != ours:
        raise SchemaRegistryError(
            f"{subject}: the schema changed since it was pinned to id {pin.schema_id} (lock file "
            f"fingerprint {pin.fingerprint}, schema now {ours}); register the new schema and re-pin it"
        )
    try:
        registered = client.get_schema(pin.schema_id)
    except ClientRegistryError as error:
        if error.http_status_code == 404:
            raise SchemaRegistryError(
                f"{subject}: pinned schema id {pin.schema_id} does not exist in the registry"
            ) from None
        raise registry_failure(error, f"{subject}: reading schema id {pin.schema_id} failed") from None
    except Exception as error:
        raise registry_unreachable(error) from None
    if registered.schema_type not in (None, "AVRO"):
        raise SchemaRegistryError(
            f"{subject}: pinned schema id {pin.schema_id} is a {registered.schema_type} schema, not Avro"
        )
    if registered.schema_str is None:  # the client reads an answer without a "schema" field as None
        raise SchemaRegistryError(
            f"{subject}: the registry returned pinned schema id {pin.schema_id} without its text"
        )
    theirs = canonical_form(registered.schema_str)
    if theirs != canonical_form(schema):
        raise SchemaRegistryError(
            f"{subject}: pinned schema id {pin.schema_id} holds a different schema than the mapping's "
            f"(registry {fingerprint(registered.schema_str)}, mapping {ours}); the pin is wrong"
        )
    if not _is_version_of(client, subject, pin.schema_id):
        raise SchemaRegistryError(
            f"{subject}: pinned schema id {pin.schema_id} is not a version of this subject (it belongs "
            f"to another subject, or this subject was deleted); register the schema under {subject} "
            f"and re-pin it (`eventbus schema pin`)"
        )
    return pin.schema_id


def _is_version_of(client: SchemaRegistryClient, subject: str, schema_id: int) -> bool:
    """Is `schema_id` one of the (not deleted) versions of `subject`? An id is global: the same
    schema text under another subject — or under a deleted one — also answers `GET /schemas/ids/<id>`."""
    what = f"{subject}: reading the versions of schema id {schema_id}"
    if type(client).__name__ != "MockSchemaRegistryClient":  # the mock lacks the by-id endpoint
        try:
            pairs = client.get_schema_versions(schema_id)
        except ClientRegistryError as error:
            if error.http_status_code >= 500:
                raise registry_failure(error, what) from None
            # A registry without this API (a 404/405): the subject's own versions say it too
        except Exception as error:
            raise registry_unreachable(error) from None
        else:
            return any(pair.subject == subject for pair in pairs)
    try:
        versions = client.get_versions(subject)
        return any(client.get_version(subject, v).schema_id == schema_id for v in versions)
    except ClientRegistryError as error:
        if error.http_status_code == 404:
            return False  # no such subject (deleted), or no such version
        raise registry_failure(error, what) from None
    except Exception as error:
        raise registry_unreachable(error) from None


def _describe(error: ClientRegistryError) -> str:
    if error.http_status_code in (404, 405) and error.error_code in (-1, None):
        # A registry answers its errors with a JSON body and its own code (40401: no such subject);
        # a bare 404 comes from a server that has no such API at that path.
        return (
            f"HTTP {error.http_status_code} without a registry error: the URL does not lead to a schema "
            "registry's Confluent-compatible API (registry.url, EVENTBUS_REGISTRY__URL; Apicurio's is "
            "http://<host>:<port>/apis/ccompat/v7)"
        )
    return f"HTTP {error.http_status_code}, code {error.error_code}: {error.error_message}"


def registry_failure(error: ClientRegistryError, what: str) -> EventBusError:
    """A registry error answer: a 5xx means it is not serving now (wait for it), others are final."""
    if error.http_status_code >= 500:
        return ServiceUnavailableError(f"schema registry unavailable: {what}: {_describe(error)}")
    return SchemaRegistryError(f"{what}: {_describe(error)}")


def registry_unreachable(error: Exception) -> ServiceUnavailableError:
    return ServiceUnavailableError(f"schema registry unreachable: {type(error).__name__}: {error}")
