"""Mapping compiler: one `MappingSpec` → Python source → compiled once, when the mapping loads.

The generated module defines `__factory(converters...)`, which returns the mapping's two entry
points. Binding to a table version calls the factory with that table's converters for exactly the
columns the mapping reads, so per change the work is: an op test, a few dict lookups and
conversions, the `when` test (columns used only by fields are converted after it), and the field
expressions inlined as Python code. The source is executed in a namespace holding only the runtime
helpers and constants, with empty builtins.

- `bind(table)` → `__apply(change)`: on a decoded `Change` (offline runs, tests, and the service's
  checked path);
- `bind_payload(table)` → `__apply_payload(payload, key_record, topic, decode_key)`: the same code on
  the envelope payload as parsed from the staging record (`ConnectJsonDecoder.decode_payload`), the
  service's hot path: a change no mapping emits from costs no `Change`/`SourceInfo` objects, and the
  key record is parsed only for an event's id.

Both bodies come from one generator (where op, rows, source and key are read is
`debezium.record.ENVELOPE_READS`: the envelope's names stay in `debezium/`), so they
cannot drift apart; tests run both over generated and captured records and compare the events.

The generated source, and how it is laid out: `codegen.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from eventbus.debezium.envelope import UNAVAILABLE, Change, SourceInfo
from eventbus.debezium.errors import DecodeError
from eventbus.debezium.logical_types import inline_form
from eventbus.debezium.record import RecordUnreadable, StagingRecord
from eventbus.events.model import CuratedEvent
from eventbus.mapping import avro
from eventbus.mapping.analysis import Analysis, analyse
from eventbus.mapping.codegen import CALL, CodeGenerator, InlineForm
from eventbus.mapping.errors import LookupPending, MappingBindError
from eventbus.mapping.expression_runtime import runtime_namespace
from eventbus.mapping.lookups import LookupPlan
from eventbus.mapping.spec import MappingSpec

PLACEHOLDER = "__debezium_unavailable_value"


class ChangeFunction(Protocol):
    """`function(change)`; a mapping with lookups takes what answers them as a second argument."""

    def __call__(self, change: Change, lookups: Any = ..., /) -> list[CuratedEvent]: ...


class PayloadFunction(Protocol):
    """`function(payload, key_record, topic, decode_key)`, see `CompiledMapping.bind_payload`; a
    mapping with lookups takes what answers them as a fifth argument."""

    def __call__(
        self,
        payload: dict[str, Any],
        key_record: Any,
        topic: Any,
        decode_key: Callable[[Any, Any], Any],
        lookups: Any = ...,
        /,
    ) -> list[CuratedEvent]: ...


Factory = Callable[..., tuple[ChangeFunction, PayloadFunction]]
Binding = tuple[Any, ChangeFunction, PayloadFunction]  # (table, Change function, payload function)
_NO_TABLE: Any = object()  # what `CompiledMapping._last` holds before the first binding


class DecodedRows:
    """A `TableSchema` for rows that already hold Python values (inline tests, the README).

    Its converter is the identity, except that Debezium's TOAST placeholder text becomes the
    `UNAVAILABLE` sentinel, so tests can exercise TOAST behaviour by writing the placeholder.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def columns(self) -> dict[str, Any]:
        return {}

    def converter(self, column: str) -> Callable[[Any], Any]:
        return _decoded_value


def _decoded_value(value: Any) -> Any:
    return UNAVAILABLE if value == PLACEHOLDER else value


@dataclass(slots=True)
class CompiledMapping:
    """A mapping ready to run: generated source, its factory, and bound functions per table version."""

    spec: MappingSpec
    analysis: Analysis
    source: str
    columns: tuple[str, ...]  # columns read (before or after), in converter-parameter order
    _factory: Factory
    _bound: dict[int, Binding] = field(default_factory=dict)
    _decoded: ChangeFunction | None = None
    # The last binding: consecutive changes nearly always come from the same table version, and
    # `bind` runs once per change, so this one identity test replaces the dict lookup.
    _last: Binding = (_NO_TABLE, None, None)  # type: ignore[assignment]  # a placeholder, never called
    # Factories whose generated code does trivial conversions inline (no converter call), one per
    # combination of converter kinds seen; built at bind time, i.e. once per table version.
    _specialise: Callable[[dict[str, InlineForm]], Factory] | None = None
    _variants: dict[tuple[InlineForm, ...], Factory] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    def bind(self, table: Any) -> ChangeFunction:
        """The function from a `Change` of one table version to its events (cached per table object)."""
        last = self._last
        if last[0] is table:
            return last[1]
        return self._binding(table)[1]

    def bind_payload(self, table: Any) -> PayloadFunction:
        """The same mapping as `bind(table)`, on a staging record's envelope payload (the hot path).

        `function(payload, key_record, topic, decode_key)`: `payload` is what
        `ConnectJsonDecoder.decode_payload` returned for a record of this table version; the key
        record is decoded by `decode_key(key_record, topic)` only when an event needs it (the event
        id). It returns the same events as the `Change` function on `decode(value, key, topic)`; an
        error is raised as `MappingEvaluationError`, or as whatever a malformed record trips on: then
        run the `Change` function, which names the problem.
        """
        last = self._last
        if last[0] is table:
            return last[2]
        return self._binding(table)[2]

    def row_columns(self, side: str) -> frozenset[str]:
        """The columns of the `before` or `after` row the generated code reads (what a payload
        parser must keep of that row)."""
        return frozenset(column for s, column in self.analysis.symbols.columns if s == side)

    def events_of(self, record: StagingRecord, lookups: Any = None) -> list[CuratedEvent]:
        """The events of one staging record: on its payload when it has one (the hot path); after a
        failure there, or for a record without one, on the checked `Change`, whose answer counts
        (the events, or the error that names the problem). Raises `RecordUnreadable` when the
        record cannot be decoded and `LookupPending` when a lookup must wait."""
        payload = record.payload
        if payload is not None:
            # The lookups' counts as they were: the checked path makes the same lookups again.
            counts = lookups.tally.copy() if lookups is not None else None
            try:
                # `bind_payload`, inlined: this runs for every change and mapping
                table, last = record.table, self._last
                function = last[2] if last[0] is table else self._binding(table)[2]
                return function(payload, record.key, record.topic, record.decode_key, lookups)
            except LookupPending:
                raise
            except Exception:
                if counts is not None:  # the checked path below gives the answer that counts
                    lookups.tally[:] = counts
        try:
            change = record.checked()
        except DecodeError as error:
            raise RecordUnreadable(str(error)) from error
        return self.events_of_change(change, lookups)

    def events_of_change(self, change: Change, lookups: Any = None) -> list[CuratedEvent]:
        """The events of a decoded change. A change of an operation the mapping does not handle
        has none, also when its table version lacks a column the mapping reads (a dropped or
        renamed column is an error only for the changes the mapping would publish)."""
        try:
            function = self.bind(change.table)
        except MappingBindError:
            if change.op not in self.spec.op_codes:
                return []
            raise
        return function(change, lookups)

    def _binding(self, table: Any) -> Binding:
        cached = self._bound.get(id(table))
        if cached is not None and cached[0] is table:
            self._last = cached
            return cached
        if table.name != self.spec.source.table:
            raise MappingBindError(
                f"mapping reads {self.spec.source.table} but was bound to table {table.name}",
                mapping=self.spec.name,
                mapping_version=self.spec.version,
            )
        known = table.columns
        if known:
            missing = [column for column in self.columns if column not in known]
            if missing:
                raise MappingBindError(
                    f"table {table.name} has no column(s) {', '.join(missing)} (did the table change?)",
                    mapping=self.spec.name,
                    mapping_version=self.spec.version,
                )
        converters = [table.converter(column) for column in self.columns]
        on_change, on_payload = self._factory_for(converters)(*converters)
        # The table object is kept alive in the cache so that its id cannot be reused by another
        binding: Binding = (table, on_change, on_payload)
        self._bound[id(table)] = self._last = binding
        return binding

    def _factory_for(self, converters: list[Callable[[Any], Any]]) -> Factory:
        forms = tuple(inline_form(converter) for converter in converters)
        if self._specialise is None or all(form == CALL for form in forms):
            return self._factory
        factory = self._variants.get(forms)
        if factory is None:
            factory = self._variants[forms] = self._specialise(dict(zip(self.columns, forms, strict=True)))
        return factory

    def apply_decoded(self, change: Change, lookups: Any = None) -> list[CuratedEvent]:
        """Run on a change whose rows hold decoded Python values (inline tests, examples);
        `lookups` answers the mapping's lookups (`eventbus.lookups`), if it has any."""
        if self._decoded is None:
            self._decoded = self.bind(DecodedRows(self.spec.source.table))
        if lookups is None:
            return self._decoded(change)
        return self._decoded(change, lookups)

    @property
    def lookups(self) -> list[LookupPlan]:
        """The mapping's lookups in run order (empty for most mappings)."""
        return self.analysis.lookups

    def value_schema(self, emit_index: int) -> avro.RecordSchema:
        return self.analysis.emits[emit_index].value_schema

    def key_schema(self, emit_index: int) -> avro.RecordSchema:
        return self.analysis.emits[emit_index].key_schema

    def schemas_for_topic(self, topic: str) -> tuple[avro.RecordSchema, avro.RecordSchema]:
        """(key schema, value schema) of the first emit block writing to `topic`."""
        for plan in self.analysis.emits:
            if plan.topic == topic:
                return plan.key_schema, plan.value_schema
        raise KeyError(topic)


def compile_mapping(spec: MappingSpec, *, hash_salt: bytes | str = b"") -> CompiledMapping:
    """Analyse (if not done at load) and compile `spec`; raises `MappingErrors` for invalid specs."""
    analysis = analyse(spec)
    salt = hash_salt.encode("utf-8") if isinstance(hash_salt, str) else hash_salt
    source, factory, columns = _compile(spec, analysis, salt, {})

    def specialise(inline: dict[str, InlineForm]) -> Factory:
        return _compile(spec, analysis, salt, inline)[1]

    return CompiledMapping(spec, analysis, source, columns, factory, _specialise=specialise)


def _compile(
    spec: MappingSpec, analysis: Analysis, salt: bytes, inline: dict[str, InlineForm]
) -> tuple[str, Factory, tuple[str, ...]]:
    generator = CodeGenerator(spec, analysis, inline)
    source = generator.module()
    namespace = runtime_namespace(salt) | analysis.symbols.constants | generator.constants
    namespace["__builtins__"] = {}  # generated code must not reach any builtin
    code = compile(source, f"<mapping {spec.name} v{spec.version}>", "exec")
    exec(code, namespace)  # the source was generated from whitelisted syntax trees only
    return source, namespace["__factory"], generator.column_order


def test_change(
    spec: MappingSpec,
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    source: dict[str, Any] | None = None,
    key: dict[str, Any] | None = None,
) -> Change:
    """A `Change` with decoded rows for `spec`'s table (for inline tests and examples)."""
    schema, _, table = spec.source.table.partition(".")
    info = SourceInfo(connector=spec.source.connector, db=spec.source.connector, schema=schema, table=table)
    for name, value in (source or {}).items():
        if value is not None:
            setattr(info, name, value)
    return Change(
        op=op, before=before, after=after, source=info, table=DecodedRows(spec.source.table), key=key
    )


test_change.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name
