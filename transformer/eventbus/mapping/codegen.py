"""The generator of a mapping's Python source: the text `compiler.compile_mapping` compiles and runs.

`CodeGenerator` writes the module around the compiled expressions: the factory that takes one
converter per column read, and its two entry points, on a `Change` and on an envelope payload
(where op, rows, source and key are read comes from `debezium.record.ENVELOPE_READS`). It decides
the order of the work per change: only the columns the condition reads are converted before it,
lookups are resolved only where needed, and trivial conversions are inlined (`InlineForm`). Apart
from the compiler, which only execs this text and caches what it built per table version.

Generated code layout (readable with `CompiledMapping.source`):

    def __factory(_cv_0, _cv_1, ...):
        def __apply(change):
            _p = 0                          # position, names the emit/field in error messages
            try:
                _op = change.op
                if _op not in _OPS: return []
                ... convert the columns `when` reads, test `when`, convert the rest ...
                ... (where `_b is None`: `if _op == 'u': raise _no_old_row()`, see old_row_reads)
                ... per emit block: key, fields (Avro-coerced), CuratedEvent(...) ...
            except _MappingEvaluationError: raise
            except _Exception as _e: raise _fail(_p, _e) from _e
        def __apply_payload(_pl, _kb, _kt, _rk):
            ... the same, reading _pl["op"], _pl["before"], ..., _pl["source"], _rk(_kb, _kt) ...
        return __apply, __apply_payload
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Final

from eventbus.debezium.record import ENVELOPE_READS
from eventbus.events.ids import EventIdFactory
from eventbus.events.model import CURATED_EVENT_TWIN, CuratedEvent
from eventbus.mapping import avro
from eventbus.mapping.analysis import Analysis, EmitPlan, FieldPlan
from eventbus.mapping.errors import LookupPending, MappingEvaluationError
from eventbus.mapping.expression_language import ROW_NAMES, CompiledExpression, lookup_row_local
from eventbus.mapping.functions import text_of
from eventbus.mapping.lookups import LOOKUP_SKIP, LookupPlan
from eventbus.mapping.reasons import failure_factory, no_old_row_factory
from eventbus.mapping.spec import MappingSpec

InlineForm = tuple[str, str | None]  # see eventbus.debezium.logical_types.inline_form
CALL: Final[InlineForm] = ("call", None)  # the converter is called: nothing inlined


class CodeGenerator:
    """Writes one mapping's module (`module()`); `constants` are the names its text refers to."""

    def __init__(self, spec: MappingSpec, analysis: Analysis, inline: dict[str, InlineForm]) -> None:
        self.spec = spec
        self.inline = inline
        self.analysis = analysis
        self.lines: list[str] = []
        self.positions: list[tuple[int | None, str]] = [(None, "reading columns")]
        self.constants: dict[str, Any] = {}
        symbols = analysis.symbols
        # One converter per column name, shared by before and after
        self.column_order: tuple[str, ...] = tuple(
            dict.fromkeys(column for side, column in symbols.columns if side in ROW_NAMES)
        )
        self.converter_of = {column: f"_cv_{index}" for index, column in enumerate(self.column_order)}
        self.old_row_unchecked = False  # set per entry point by `_function`

    def constant(self, prefix: str, value: Any) -> str:
        name = f"_{prefix}{len(self.constants)}"
        self.constants[name] = value
        return name

    def position(self, emit_index: int | None, label: str) -> int:
        self.positions.append((emit_index, label))
        return len(self.positions) - 1

    def emit(self, line: str, depth: int) -> None:
        self.lines.append("    " * depth + line)

    def module(self) -> str:
        spec = self.spec
        self.constants.update(
            {
                "_OPS": spec.op_codes,
                "_NAME": spec.name,
                "_VERSION": spec.version,
                "_TYPE": spec.event_type,
                "_SOURCE": spec.event_source,
                "_CONNECTOR": spec.source.connector,
                "_TABLE": spec.source.table,
                "_Event": CuratedEvent,
                "_EventTwin": CURATED_EVENT_TWIN,
                "_text": text_of,
                "_str": str,
                "_int": int,
                "_Exception": Exception,
                "_MappingEvaluationError": MappingEvaluationError,
                "_SKIP": LOOKUP_SKIP,
                "_LookupPending": LookupPending,
                "_NOLK": _no_lookups,
            }
        )
        params = ", ".join(self.converter_of.values())
        self.emit(f"def __factory({params}):", 0)
        self._function("change", "__apply(change, _lk=_NOLK)")
        self._function("payload", "__apply_payload(_pl, _kb, _kt, _rk, _lk=_NOLK)")
        self.emit("return __apply, __apply_payload", 1)
        self.constants["_fail"] = self._failure_factory()
        if self.analysis.old_row_reads:
            self.constants["_no_old_row"] = no_old_row_factory(self.spec, self.analysis)
        return "\n".join(self.lines) + "\n"

    def _function(self, form: str, signature: str) -> None:
        """One entry point; `form` is where op, rows, source and key come from (see `ENVELOPE_READS`)."""
        self.form = ENVELOPE_READS[form]
        self.constants.update(self.form.runtime)
        analysis = self.analysis
        # An update without the old row the mapping reads is refused where `_b is None` is first
        # tested (`old_row_reads`): a change that has its old row runs no extra test.
        self.old_row_unchecked = bool(analysis.old_row_reads)
        self.emit(f"def {signature}:", 1)
        self.emit("_p = 0", 2)
        self.emit("try:", 2)
        body = 3
        self.emit(f"_op = {self.form.op}", body)
        self.emit("if _op not in _OPS:", body)
        self.emit("return []", body + 1)
        self.emit(f"_b = {self.form.before}", body)
        self.emit(f"_a = {self.form.after}", body)
        # The source block is read before the condition only if the condition needs it: most
        # changes fail the condition, and then it is not read at all.
        source_first = analysis.when is None or bool(analysis.when.source_fields)
        if source_first:
            self._read_source(body)
        # Lookups the condition needs are resolved before it (with the lookups their keys use); the
        # others only for changes that pass it, so a filtered-out change never waits for a row.
        early = self._lookups_for([analysis.when])
        first = self._reads([analysis.when, *(e for plan in early for e in plan.key)])
        self._convert(first, body)
        if analysis.when is not None:
            resolved: list[LookupPlan] = []
            for part in analysis.when_parts or [analysis.when]:
                needed = [plan for plan in self._lookups_for([part]) if plan not in resolved]
                self._resolve(needed, body)
                resolved += needed
                self.emit(f"_p = {self.position(None, 'when')}", body)
                self.emit(f"if not {part.source}:", body)
                self.emit("return []", body + 1)
        if not source_first:
            self._read_source(body)
        rest = set(self.analysis.symbols.columns) - first
        self.emit("_p = 0", body)
        self._convert(rest, body)
        self._resolve([plan for plan in analysis.lookups if plan not in early], body)
        # One unconditional emit block (the usual mapping) returns a one-event list directly.
        single = len(analysis.emits) == 1 and analysis.emits[0].when is None
        if not single:
            self.emit("_out = []", body)
        for plan in analysis.emits:
            self._emit_block(plan, body, single=single)
        if not single:
            self.emit("return _out", body)
        self.emit("except (_MappingEvaluationError, _LookupPending):", 2)
        self.emit("raise", 3)
        self.emit("except _Exception as _e:", 2)
        self.emit("raise _fail(_p, _e) from _e", 3)

    def _lookups_for(self, expressions: Iterable[CompiledExpression | None]) -> list[LookupPlan]:
        """The lookups `expressions` read, with the lookups their keys use, in run order."""
        by_name = {plan.name: plan for plan in self.analysis.lookups}
        needed = {side for side, _ in self._reads(expressions) if side in by_name}
        pending = list(needed)
        while pending:
            for other in by_name[pending.pop()].depends:
                if other not in needed:
                    needed.add(other)
                    pending.append(other)
        return [plan for plan in self.analysis.lookups if plan.name in needed]

    def _resolve(self, plans: list[LookupPlan], depth: int) -> None:
        """Ask the resolver (`_lk`) for each related row; read the columns the mapping uses."""
        columns = self.analysis.symbols.columns
        for plan in plans:
            self.emit(f"_p = {self.position(None, f'lookup.{plan.name}')}", depth)
            if len(plan.key) == 1:  # a one-column key is passed as its value, a longer one as a tuple
                key = plan.key[0].source
            else:
                key = "(" + "".join(f"{expression.source}, " for expression in plan.key) + ")"
            row = lookup_row_local(plan.name)
            self.emit(f"{row} = _lk[{plan.index}]({key})", depth)
            self.emit(f"if {row} is _SKIP:", depth)
            self.emit("return []", depth + 1)
            for column in plan.columns:
                local = columns[(plan.name, column)]
                self.emit(f"{local} = None if {row} is None else {row}.get({column!r})", depth)

    def _read_source(self, depth: int) -> None:
        self.emit(f"_src = {self.form.source}", depth)
        for name in sorted(self._source_fields()):
            self.emit(f"_s_{name} = {self.form.source_field(name)}", depth)

    def _source_fields(self) -> set[str]:
        expressions = [self.analysis.when] + [
            e
            for plan in self.analysis.emits
            for e in [plan.when] + [f.expression for f in plan.key + plan.fields]
        ]
        return {name for e in expressions if e is not None for name in e.source_fields}

    @staticmethod
    def _reads(expressions: Iterable[CompiledExpression | None]) -> set[tuple[str, str]]:
        return {read for e in expressions if e is not None for read in e.reads}

    def _convert(self, reads: Iterable[tuple[str, str]], depth: int) -> None:
        # One None-test per row, then a lookup (and a conversion for non-null values) per column,
        # in the order of their locals. Reads of lookups (`is_null(lookup)` reads the whole related
        # row, as `(lookup, "")`) are resolved by `_resolve`, not here.
        locals_of = self.analysis.symbols.columns
        for side, row in (("before", "_b"), ("after", "_a")):
            columns = sorted(
                ((column, locals_of[(s, column)]) for s, column in reads if s == side),
                key=lambda item: item[1],
            )
            if not columns:
                continue
            self.emit(f"if {row} is None:", depth)
            if side == "before" and self.old_row_unchecked:
                self.old_row_unchecked = False
                self.emit("if _op == 'u':", depth + 1)
                self.emit("raise _no_old_row()", depth + 2)
            self.emit(" = ".join(local for _, local in columns) + " = None", depth + 1)
            self.emit("else:", depth)
            for column, local in columns:
                self.emit(f"{local} = {row}.get({column!r})", depth + 1)
                form, text = self.inline.get(column, CALL)
                if form == "identity":
                    continue
                if form == "placeholder":
                    self.emit(f"if {local} == {self.constant('PH', text)}:", depth + 1)
                    self.emit(f"{local} = _U", depth + 2)
                    continue
                self.emit(f"if {local} is not None:", depth + 1)
                self.emit(f"{local} = {self.converter_of[column]}({local})", depth + 2)

    def _field_value(self, plan: FieldPlan, local: str, emit_index: int, label: str, depth: int) -> None:
        if plan.expression is None:
            self.emit(f"{local} = {self.constant('D', plan.field.default)}", depth)
            return
        self.emit(f"_p = {self.position(emit_index, label)}", depth)
        self.emit(f"{local} = {plan.expression.source}", depth)
        fast, coerce = avro.coercer(plan.field.type)
        coerce_name = self.constant("C", coerce)
        quantum = avro.decimal_quantum(plan.field.type)
        # A null of a nullable field passes untouched (what `coerce` would return), without the call.
        unless_null = f"{local} is not None and " if plan.field.type.nullable else ""
        if quantum is not None:
            decimal_class, quantum_name = self.constant("T", Decimal), self.constant("Q", quantum)
            self.emit(
                f"if {unless_null}({local}.__class__ is not {decimal_class} "
                f"or not {local}.same_quantum({quantum_name})):",
                depth,
            )
            self.emit(f"{local} = {coerce_name}({local})", depth + 1)
        elif plan.field.type.kind == "int":
            # An Avro int is 32 bits; a wider Python int must be refused here, the encoders would
            # write it as a long (which a reader of the int decodes as another number).
            in_range = f"-0x80000000 <= {local} <= 0x7FFFFFFF"
            self.emit(f"if {unless_null}({local}.__class__ is not _int or not {in_range}):", depth)
            self.emit(f"{local} = {coerce_name}({local})", depth + 1)
        elif fast is None:
            self.emit(f"{local} = {coerce_name}({local})", depth)
        else:
            self.emit(f"if {unless_null}{local}.__class__ is not {self.constant('T', fast)}:", depth)
            self.emit(f"{local} = {coerce_name}({local})", depth + 1)

    def _emit_block(self, plan: EmitPlan, depth: int, *, single: bool = False) -> None:
        index = plan.index
        if plan.when is not None:
            self.emit(f"_p = {self.position(index, 'when')}", depth)
            self.emit(f"if {plan.when.source}:", depth)
            depth += 1
        key_locals = []
        for number, field_plan in enumerate(plan.key):
            local = f"_k{index}_{number}"
            self._field_value(field_plan, local, index, f"key.{field_plan.name}", depth)
            key_locals.append((field_plan.name, local))
        value_locals = []
        for number, field_plan in enumerate(plan.fields):
            local = f"_v{index}_{number}"
            self._field_value(field_plan, local, index, f"fields.{field_plan.name}", depth)
            value_locals.append((field_plan.name, local))
        self.emit(f"_p = {self.position(index, 'event')}", depth)
        key_dict = "{" + ", ".join(f"{name!r}: {local}" for name, local in key_locals) + "}"
        value_dict = "{" + ", ".join(f"{name!r}: {local}" for name, local in value_locals) + "}"
        self.emit(f"_key = {key_dict}", depth)
        if len(key_locals) == 1:
            only = key_locals[0][1]
            as_text = f"(_str({only}) if {only}.__class__ is _int else _text({only}))"
            subject = f"({only} if {only}.__class__ is _str else {as_text})"
        else:
            subject = " + ',' + ".join(f"{name!r} + '=' + _text({local})" for name, local in key_locals)
        # The id factory of this emit block hashes its fixed part once, at compile time.
        ids = self.constant(
            "_ids",
            EventIdFactory(
                connector=self.spec.source.connector,
                table=self.spec.source.table,
                mapping=self.spec.name,
                mapping_version=self.spec.version,
                emit_index=index,
            ),
        )
        self.emit(f"_ck = {self.form.key}", depth)
        lsn, tx_id, ts_ms = (self.form.source_field(name) for name in ("lsn", "tx_id", "ts_ms"))
        arguments = (
            f"_NAME, _VERSION, {plan.topic!r}, _key, {value_dict}, "
            f"{ids}({lsn}, {tx_id}, _key if _ck is None else _ck), "
            f"_TYPE, _SOURCE, {subject}, {ts_ms}"
        )
        if CURATED_EVENT_TWIN is None:
            self.emit(f"_e = _Event({arguments})", depth)
        else:
            # A mutable twin turned into a CuratedEvent: a fifth of the frozen constructor's cost
            self.emit(f"_e = _EventTwin({arguments})", depth)
            self.emit("_e.__class__ = _Event", depth)
        self.emit("return [_e]" if single else "_out.append(_e)", depth)

    def _failure_factory(self) -> Callable[[int, BaseException], MappingEvaluationError]:
        # Reasons name the position, types and rules; a value only when it is public (reasons.py)
        return failure_factory(self.spec, self.analysis, tuple(self.positions))


class _NoLookups:
    """`_lk` of a mapping run without its related rows: any lookup is an error that says why."""

    def __getitem__(self, index: int) -> Callable[[Any], Any]:
        return self._refuse

    @staticmethod
    def _refuse(key: Any) -> Any:
        raise MappingEvaluationError(
            "this mapping looks up related rows; run it with their rows "
            "(tests: `given:`, service: the store)",
            mapping="?",
        )


_no_lookups: Final = _NoLookups()
