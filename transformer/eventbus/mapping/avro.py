"""Avro side of a mapping: reading `.avsc` files, describing record fields, making values Avro-ready.

Values leave a compiled mapping "Avro-ready": `Decimal` for decimal logical types, `datetime` for
timestamps, `date` for dates, `str` for strings and uuids, so `fastavro.schemaless_writer` accepts
them unchanged. `to_avro_json` renders such a value dict the way Avro's JSON encoding writes logical
types (decimal as the exact number's text, timestamps as epoch millis/micros, dates as days) for
`eventbus mapping run` output and test comparisons. Unions are not wrapped in `{"type": value}`:
the output is for people and diff tools, not for an Avro JSON decoder.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import fastavro
import orjson

from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.debezium.infinite import Infinite, refusal
from eventbus.mapping.conversion_functions import to_date, to_datetime
from eventbus.mapping.functions import ExpressionRuntimeError, text_of
from eventbus.mapping.text_files import utf8_text

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY: Final = dt.date(1970, 1, 1)
_NO_DEFAULT: Final = object()


@dataclass(frozen=True, slots=True)
class FieldType:
    """What one record field accepts, reduced to what a mapping needs to know."""

    kind: str  # string int long float double boolean bytes fixed enum decimal date
    #            timestamp-millis timestamp-micros time-millis time-micros uuid record array map union null
    nullable: bool
    schema: Any  # the parsed Avro type, with named references resolved one level
    symbols: tuple[str, ...] = ()
    scale: int = 0
    precision: int = 0  # decimal: total digits

    @property
    def family(self) -> str:
        """Coarse kind comparable with column/expression kinds."""
        return {
            "long": "int", "int": "int", "double": "float", "float": "float", "boolean": "bool",
            "timestamp-millis": "datetime", "timestamp-micros": "datetime",
            "local-timestamp-millis": "datetime", "local-timestamp-micros": "datetime",
            "time-millis": "time", "time-micros": "time", "enum": "string",
        }.get(self.kind, self.kind)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RecordField:
    name: str
    type: FieldType
    default: Any = _NO_DEFAULT

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT


@dataclass(frozen=True, slots=True)
class RecordSchema:
    """A parsed `.avsc` record: fastavro's parsed form plus field descriptions."""

    name: str
    parsed: Any
    fields: dict[str, RecordField]
    path: str


def load_record_schema(path: Path) -> RecordSchema:
    """Raises OSError / ValueError (with fastavro's message) for the loader to locate."""
    raw = orjson.loads(utf8_text(path.read_bytes()))  # orjson misplaces a byte that is not UTF-8
    named: dict[str, Any] = {}
    try:
        parsed = fastavro.parse_schema(raw, named_schemas=named)
    except Exception as error:  # fastavro raises several unrelated exception types
        raise ValueError(f"invalid Avro schema: {type(error).__name__}: {error}") from None
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ValueError("the schema must be an Avro record")
    fields = {}
    for field in parsed["fields"]:
        default = field.get("default", _NO_DEFAULT)
        fields[field["name"]] = RecordField(field["name"], describe(field["type"], named), default)
    return RecordSchema(parsed["name"], parsed, fields, str(path))


def describe(avro_type: Any, named: Mapping[str, Any]) -> FieldType:
    if isinstance(avro_type, str) and avro_type in named:
        avro_type = named[avro_type]
    if isinstance(avro_type, list):
        members = [member for member in avro_type if member != "null"]
        nullable = len(members) < len(avro_type)
        if len(members) == 1:
            inner = describe(members[0], named)
            return FieldType(inner.kind, nullable, inner.schema, inner.symbols, inner.scale, inner.precision)
        return FieldType("union" if members else "null", nullable, avro_type)
    if isinstance(avro_type, str):
        return FieldType(avro_type, avro_type == "null", avro_type)
    logical = avro_type.get("logicalType")
    base = avro_type.get("type")
    if logical == "decimal" and base in ("bytes", "fixed"):
        return FieldType(
            "decimal",
            False,
            avro_type,
            scale=int(avro_type.get("scale", 0)),
            precision=int(avro_type.get("precision", 0)),
        )
    if logical in (
        "date", "timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros",
        "time-millis", "time-micros", "uuid",
    ):  # fmt: skip
        return FieldType(logical, False, avro_type)
    if base == "enum":
        return FieldType("enum", False, avro_type, symbols=tuple(avro_type["symbols"]))
    if isinstance(base, str):
        return FieldType(base, False, avro_type)
    return describe(base, named)


# --- which expression kinds can go into which field kinds (load-time check) ----------------------

_ACCEPTS: Final[dict[str, frozenset[str]]] = {
    # An exact decimal goes into int/long or float/double only through int(...) / float(...): said
    # explicitly, a dropped fraction fails loudly and a rounding is a choice; implicitly, a numeric
    # column would dead-letter every record with a fraction, or be published silently rounded.
    "int": frozenset({"int", "float"}),  # float: checked to be integral at runtime
    "float": frozenset({"int", "float"}),
    "decimal": frozenset({"int", "decimal", "float", "string"}),
    "bool": frozenset({"bool"}),
    "date": frozenset({"date", "datetime", "string", "int"}),
    "datetime": frozenset({"datetime", "date", "string", "int"}),
    "time": frozenset({"time"}),
    "uuid": frozenset({"uuid", "string"}),
    "bytes": frozenset({"bytes", "string"}),
}

_SUGGEST: Final = {
    ("int", "datetime"): "use timestamp_ms(...) for epoch milliseconds, or a timestamp-millis field",
    ("int", "string"): "convert with int(...)",
    ("int", "decimal"): "an exact decimal may have a fraction: use a decimal(p, s) field with the column's "
    "precision and scale, or int(...) (refuses to drop a fraction) or round(...) to say what to do",
    ("float", "decimal"): "a double cannot hold every decimal exactly (123456789.0123456789 would be "
    "published as 123456789.01234567): use a decimal(p, s) field with the column's precision and scale, "
    "or float(...) to accept the rounding",
    ("float", "string"): "convert with float(...)",
    ("decimal", "string"): "convert with decimal(...)",
    ("bool", "string"): "convert with bool(...)",
    ("bool", "int"): "compare it: x != 0, or bool(x)",
}


def incompatibility(value_kind: str | None, field: FieldType) -> str | None:
    """A message when a value of `value_kind` obviously cannot become this field, else None."""
    if value_kind is None or value_kind == "unknown":
        return None
    family = field.family
    if family == "string":
        if value_kind in ("struct", "array", "map"):
            return f"a {value_kind} value cannot go into a string field"
        return None  # anything scalar has a canonical text
    accepted = _ACCEPTS.get(family)
    if accepted is None or value_kind in accepted:
        return None
    hint = _SUGGEST.get((family, value_kind))
    message = f"a {value_kind} value cannot go into a {field.kind} field"
    return f"{message}; {hint}" if hint else message


# --- runtime coercion to Avro-ready values ------------------------------------------------------


class AvroValueError(ExpressionRuntimeError):
    """A value that does not fit its Avro field; the message (naming types, not the value) becomes the
    dead-letter reason."""


def _fail(field: FieldType, value: Any, why: str = "") -> AvroValueError:
    return AvroValueError(f"a {type(value).__name__} value does not fit Avro {field.kind}{why}", value)


def coercer(field: FieldType) -> tuple[type | None, Callable[[Any], Any]]:
    """(class that passes untouched, function converting anything else) for one field.

    Generated code does `v if v.__class__ is fast else convert(v)`, so the common case costs one
    identity test. `convert` handles None (allowed only when the field is nullable) and rejects the
    TOAST placeholder with a message naming the problem.
    """
    kind = field.kind
    convert = _CONVERTERS.get(kind, _passthrough)
    if kind == "array" and isinstance(field.schema, Mapping):
        convert = _array_converter(describe(field.schema.get("items"), {}))

    def coerce(value: Any) -> Any:
        if value is None:
            if field.nullable:
                return None
            raise AvroValueError(
                f"null does not fit non-nullable Avro {kind} (make the field ['null', ...] or coalesce())"
            )
        if value is UNAVAILABLE:
            raise AvroValueError("value unavailable (TOAST placeholder: Debezium did not send it); "
                                 "set REPLICA IDENTITY FULL or coalesce() it")  # fmt: skip
        return convert(field, value)

    return _FAST.get(kind), coerce


def _array_converter(items: FieldType) -> Callable[[FieldType, Any], Any]:
    """Each element made Avro-ready as a field of the items' type would be: a numeric[] element (a
    Decimal) goes into a string item as its exact text, as a numeric column into a string field."""
    fast, coerce_item = coercer(items)

    def convert(field: FieldType, value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise _fail(field, value)
        return [item if item.__class__ is fast else coerce_item(item) for item in value]

    return convert


def decimal_quantum(field: FieldType) -> Decimal | None:
    """For a decimal field, `Decimal` 1E-scale, else None.

    A `Decimal` with exactly the field's scale (`value.same_quantum(quantum)`, about 40 ns) needs no
    coercion: it is finite and has no decimal places to lose. That is what column converters give
    for a numeric column of the field's scale, so generated code tests it before calling `coerce`
    (whose general scale check builds the digit tuple, ≈ 0.4 µs).
    """
    if field.kind != "decimal":
        return None
    return Decimal(1).scaleb(-field.scale)


def _passthrough(field: FieldType, value: Any) -> Any:
    return value


def _to_string(field: FieldType, value: Any) -> str:
    if isinstance(value, dict | list | tuple):
        raise _fail(field, value)
    return text_of(value)


def _to_enum(field: FieldType, value: Any) -> str:
    if not isinstance(value, str) or value not in field.symbols:
        raise _fail(field, value, f" (symbols: {', '.join(field.symbols)})")
    return value


def _to_integer(field: FieldType, value: Any) -> int:
    if isinstance(value, bool):
        raise _fail(field, value)
    if isinstance(value, int):
        result = value
    elif isinstance(value, float | Decimal) and not math.isfinite(value):
        raise _fail(field, value, " (NaN or infinite: no integer)")
    elif isinstance(value, float | Decimal) and value == value.__floor__():
        result = int(value)
    else:
        raise _fail(field, value)
    limit = 2**31 if field.kind == "int" else 2**63
    if not -limit <= result < limit:
        raise _fail(field, value, " (out of range)")
    return result


def _to_floating(field: FieldType, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _fail(field, value)
    return float(value)


def _to_boolean(field: FieldType, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(field, value)
    return value


def _to_decimal(field: FieldType, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise _fail(field, value)
    try:
        if isinstance(value, Decimal):
            result = value
        elif isinstance(value, int | float | str):
            result = Decimal(str(value))
        else:
            raise _fail(field, value)
    except InvalidOperation:
        raise _fail(field, value) from None
    if not result.is_finite():
        raise _fail(field, value)
    _, digits, exponent = result.as_tuple()
    if isinstance(exponent, int) and -exponent > field.scale:
        # Rounding silently would change money amounts; make the mapping say round(x, n)
        raise _fail(field, value, f" (more than {field.scale} decimal places; round() it)")
    if isinstance(exponent, int) and len(digits) + exponent > field.precision - field.scale:
        raise _fail(field, value, f" (more than {field.precision - field.scale} digits before the point)")
    return result


def _to_timestamp(field: FieldType, value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # already epoch millis/micros, fastavro writes ints unchanged
    if isinstance(value, dt.datetime | dt.date | str):
        try:
            return to_datetime(value)
        except ExpressionRuntimeError:  # text that is no ISO-8601 datetime
            raise _fail(field, value) from None
    raise _no_infinity(field, value) or _fail(field, value)


def _no_infinity(field: FieldType, value: Any) -> AvroValueError | None:
    """A named reason for an infinite date or timestamp in a field that cannot hold one."""
    if value.__class__ is not Infinite:
        return None
    return AvroValueError(f"{refusal(f'Avro {field.kind} value')}", value)


def _to_date(field: FieldType, value: Any) -> Any:
    if value.__class__ is dt.datetime and (value.tzinfo is None or value.tzinfo is dt.UTC):
        # what the decoder gives (timestamptz in UTC, timestamp naive): its own date is date()'s, with
        # none of to_date's checks (per record; they tripled this field's cost)
        return value.date()
    if isinstance(value, dt.date | str):
        try:  # date()'s rule: an instant (a datetime or text with an offset) gives its UTC date
            return to_date(value)
        except ExpressionRuntimeError:
            if not isinstance(value, str) or _instant_text(value):
                raise _fail(field, value, " (its UTC date is before 0001 or after 9999)") from None
        try:  # other text starting with an ISO date, as before
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            raise _fail(field, value) from None
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # days since the epoch
    raise _no_infinity(field, value) or _fail(field, value)


def _instant_text(text: str) -> bool:
    """ISO text of a datetime with an offset (its date is the UTC one, never its first ten
    characters). Asked only of text `to_date` refused."""
    try:
        return dt.datetime.fromisoformat(text.strip()).tzinfo is not None
    except ValueError:
        return False


def _to_time(field: FieldType, value: Any) -> Any:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str):  # ISO text, as a test row writes a time of day
        try:
            return dt.time.fromisoformat(value)
        except ValueError:
            raise _fail(field, value) from None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _fail(field, value)


def _to_uuid(field: FieldType, value: Any) -> str:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(UUID(value))
        except ValueError:
            raise _fail(field, value) from None
    raise _fail(field, value)


def _to_bytes(field: FieldType, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise _fail(field, value)


_CONVERTERS: Final[dict[str, Callable[[FieldType, Any], Any]]] = {
    "string": _to_string, "enum": _to_enum, "int": _to_integer, "long": _to_integer,
    "float": _to_floating, "double": _to_floating, "boolean": _to_boolean, "decimal": _to_decimal,
    "timestamp-millis": _to_timestamp, "timestamp-micros": _to_timestamp,
    "local-timestamp-millis": _to_timestamp, "local-timestamp-micros": _to_timestamp,
    "date": _to_date, "time-millis": _to_time, "time-micros": _to_time, "uuid": _to_uuid,
    "bytes": _to_bytes,
}  # fmt: skip

# Decimal has no fast path: its scale must be checked against the schema's on every value
_FAST: Final[dict[str, type]] = {
    "string": str, "int": int, "long": int, "double": float, "float": float, "boolean": bool,
    "timestamp-millis": dt.datetime, "timestamp-micros": dt.datetime,
    "local-timestamp-millis": dt.datetime, "local-timestamp-micros": dt.datetime, "date": dt.date,
    "bytes": bytes,
}  # fmt: skip


# --- Avro JSON form -----------------------------------------------------------------------------


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def json_value(value: Any, field: FieldType) -> Any:
    """One Avro-ready value in its Avro JSON form."""
    if value is None:
        return None
    kind = field.kind
    if kind == "array" and isinstance(value, list) and isinstance(field.schema, dict):
        items = describe(field.schema.get("items"), {})
        return [json_value(item, items) for item in value]
    if kind == "decimal" and isinstance(value, Decimal):
        return format(value, "f")
    if kind in ("timestamp-millis", "local-timestamp-millis") and isinstance(value, dt.datetime):
        delta = _aware(value) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if kind in ("timestamp-micros", "local-timestamp-micros") and isinstance(value, dt.datetime):
        delta = _aware(value) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if kind == "date" and isinstance(value, dt.date):
        return (value - _EPOCH_DAY).days
    if kind in ("time-millis", "time-micros") and isinstance(value, dt.time):
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
        return micros // 1000 if kind == "time-millis" else micros
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or infinities (orjson would write null, as if the value were missing):
        # the strings Avro's own JSON encoder writes for them.
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes):
        return value.decode("latin-1")  # Avro JSON writes bytes as code points 0-255
    if isinstance(value, UUID | Decimal | dt.date | dt.time):
        return text_of(value)
    return value


def to_avro_json(values: Mapping[str, Any], schema: RecordSchema) -> dict[str, Any]:
    """A value (or key) dict in Avro JSON form; fields unknown to the schema are rendered as text."""
    out = {}
    for name, value in values.items():
        field = schema.fields.get(name)
        if field is None:
            out[name] = (
                value if value is None or isinstance(value, bool | int | float | str) else text_of(value)
            )
        else:
            out[name] = json_value(value, field.type)
    return out
