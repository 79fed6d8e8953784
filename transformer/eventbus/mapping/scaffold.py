"""A starter mapping for a table, from its table description: Avro key and value schemas with the
exact logical type of each column, a mapping that publishes every column, and one inline test.

What is written validates (`eventbus mapping validate`) and its test passes (`eventbus mapping
test`) as it stands; the author then narrows it to a business event (`when:`, fewer fields,
sensitivity). The Avro type chosen for each Connect column type, and why (mappings/README.md,
"Types"):

| Connect (Debezium) column          | Avro field                       | expression                |
| ---------------------------------- | -------------------------------- | ------------------------- |
| Decimal(p, s) (numeric(p,s))       | bytes decimal(p, s)              | after.x                   |
| numeric(p,-s) / numeric(p, s > p)  | decimal(p+s, 0) / decimal(s, s)  | after.x                   |
| VariableScaleDecimal (numeric)     | string, the exact decimal text   | after.x                   |
| MicroTimestamp/Timestamp           | long local-timestamp-micros      | after.x                   |
| ZonedTimestamp (timestamptz)       | long timestamp-micros            | after.x                   |
| Date / MicroTime                   | int date / long time-micros      | after.x                   |
| MicroDuration (interval)           | long, microseconds               | duration_micros(after.x)  |
| Uuid                               | string uuid                      | after.x                   |
| Enum, Json, Xml                    | string                           | after.x                   |
| ZonedTime (timetz)                 | string, ISO text in UTC (+00:00) | after.x                   |
| Bits (bit(n), varbit(n), n <= 63)  | long: the bits' value            | after.x                   |
| array                              | array of the element (nullable)  | after.x                   |

An array's elements take the element type's form (numeric[] is an array of strings, each element
made Avro-ready as a column's value is). Left out, with the reason (a note, and a comment in the
mapping file): `name` (Debezium streams it as null), longer bit strings, arrays whose elements need
a conversion call (interval[], which Debezium does not send anyway), and what the table
description skipped (`left_out`). Columns whose names look personal are listed in a commented
`sensitivity:` suggestion (`personal_names`).

An unconstrained numeric has no scale a `decimal(p, s)` could state: each value keeps its own
(the decoder gives the exact `Decimal`), so the only exact Avro form is its text. An enum is a
string (its labels in the field's doc), not an Avro enum: a label added to the PostgreSQL type then
changes no schema.
"""

from __future__ import annotations

import datetime as dt
import itertools
import keyword
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import orjson

from eventbus.debezium.pg_types import SOURCE_TYPE, true_scale
from eventbus.mapping.personal_names import looks_personal
from eventbus.mapping.tables import columns_from_connect_schema

_OPERATIONS: Final = ("insert", "update", "delete", "snapshot")
_AVRO_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION_SAMPLE: Final = "P1DT2H3M4.5S"  # an interval as ISO-8601 text, as tests may write it
_DURATION_MICROS: Final = (86_400 + 2 * 3600 + 3 * 60 + 4) * 1_000_000 + 500_000


class ScaffoldError(ValueError):
    """The table cannot be scaffolded as asked (no key, an unknown key column, ...)."""


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    column: str
    field: str  # the Avro field name
    avro: Any  # the Avro type, without null
    nullable: bool
    expression: str  # for side `after` (or `before` for delete mappings)
    sample: Any  # a test value as the YAML change row holds it
    expected: Any  # what the event carries for it, as the test expects it
    doc: str | None = None


@dataclass(slots=True)
class Scaffold:
    """The files of a starter mapping, relative to the mapping folder, and notes for the author."""

    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _avro_field_name(column: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", column)
    return name if _AVRO_NAME.match(name) else f"_{name}"


def _read(side: str, column: str) -> str:
    if column.isidentifier() and not keyword.iskeyword(column) and not column.startswith("__"):
        return f"{side}.{column}"
    return f"{side}[{orjson.dumps(column).decode()}]"


def _parameters(schema: Mapping[str, Any]) -> Mapping[str, str]:
    parameters = schema.get("parameters")
    return parameters if isinstance(parameters, Mapping) else {}


def _sample_decimal(precision: int, scale: int) -> str:
    """A value using every digit of numeric(p, s): 123456.78 for (8, 2)."""
    digits = ("123456789" * 5)[:precision]
    whole, fraction = digits[: precision - scale] or "0", digits[precision - scale :]
    return f"{whole}.{fraction}" if scale else whole


def _decimal_plan(parameters: Mapping[str, str], doc: str | None) -> tuple[Any, str, str | None]:
    """Avro decimal, test sample and doc of a numeric(p, s) column (Connect's Decimal)."""
    scale = true_scale(int(parameters.get("scale", "0")))
    precision = int(parameters.get("connect.decimal.precision", "0")) or max(19, scale + 1)
    if scale < 0:
        # numeric(5,-2): whole numbers of up to 7 digits, rounded to hundreds (PostgreSQL 15+)
        avro = {"type": "bytes", "logicalType": "decimal", "precision": precision - scale, "scale": 0}
        sample = _sample_decimal(precision, 0) + "0" * -scale
        return avro, sample, doc or f"numeric({precision},{scale}): whole numbers rounded to {10**-scale}"
    if scale > precision:
        # numeric(3,5): values below 10**(3-5), with 5 places; an Avro decimal's scale is at most
        # its precision, and decimal(5, 5) holds every such value
        avro = {"type": "bytes", "logicalType": "decimal", "precision": scale, "scale": scale}
        return avro, "0." + "0" * (scale - precision) + _sample_decimal(precision, 0), doc
    avro = {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
    return avro, _sample_decimal(precision, scale), doc


_LONG_BITS: Final = 63  # the most bits whose value a long holds


def _bits_plan(column: str, parameters: Mapping[str, str], doc: str | None) -> tuple[Any, int, str] | str:
    """bit(n > 1) and bit varying: the decoder gives the bit string's value ('1011' is 11), which
    goes into a long when it has at most 63 bits; longer ones (an unbounded varbit) cannot."""
    length = parameters.get("length", "")
    if not length.isdigit() or int(length) > _LONG_BITS:
        size = f"up to {length} bits" if length.isdigit() else "no stated length"
        return (
            f"column {column!r} (bit string, {size}) left out: its value does not fit an Avro long; "
            "give it a length of at most 63 (bit varying(63)), or publish an expression of your own "
            "(the column's value is the integer its bits spell)"
        )
    n = int(length)
    text = f"the value of the bit string (up to {n} bits, leftmost most significant: '1011' is 11)"
    if parameters.get(SOURCE_TYPE, "").startswith("varbit"):
        text += "; leading zeros are not kept ('0011' is 3)"
    return "long", min(5, 2**n - 1), doc or text


def _sample_text(schema: Mapping[str, Any]) -> str:
    length = _parameters(schema).get("__debezium.source.column.length")
    text = "sample"
    if length is not None and length.isdigit():
        text = (text * 4)[: int(length)]
        if _parameters(schema).get("__debezium.source.column.type", "").startswith("bpchar"):
            text = text.ljust(int(length))  # char(n) comes padded
    return text


# Docs Debezium gives a logical type's schema (a column comment replaces them)
_DEBEZIUM_DOCS: Final = frozenset({"Variable scaled decimal"})


# What an element loses on Debezium's side (observed with 3.6.1): said in the field's doc
_ELEMENT_DOCS: Final = {
    "io.debezium.time.MicroTime": "times to the millisecond (Debezium drops time[] elements' microseconds)",
}


def plan_column(column: str, schema: Mapping[str, Any], side: str, number: int) -> ColumnPlan | str:
    """How one column becomes an Avro field, or why it is left out (a note for the author)."""
    connect_type = schema.get("type")
    logical = schema.get("name")
    read = _read(side, column)
    nullable = bool(schema.get("optional", False))
    doc = schema.get("doc") if isinstance(schema.get("doc"), str) else None
    if doc in _DEBEZIUM_DOCS:  # the logical type's doc, not a column comment: ours says more
        doc = None
    avro: Any
    sample: Any
    expected: Any = None
    expression = read
    if _parameters(schema).get(SOURCE_TYPE) == "name":
        return (
            f"column {column!r} (name) left out: Debezium 3.6 sends a name column's value only in "
            "snapshot rows; streamed changes carry null ('' when NOT NULL). To publish it, change its "
            f"type to text or varchar(63) (ALTER TABLE ... ALTER COLUMN {column} TYPE text)"
        )
    if logical == "org.apache.kafka.connect.data.Decimal":
        avro, sample, doc = _decimal_plan(_parameters(schema), doc)
    elif logical == "io.debezium.data.VariableScaleDecimal":
        avro, sample = "string", "123456789.0123456789"
        doc = doc or "an unconstrained numeric: the exact decimal as text (no fixed scale to state)"
    elif logical in ("io.debezium.time.MicroTimestamp", "io.debezium.time.Timestamp",
                     "io.debezium.time.NanoTimestamp"):  # fmt: skip
        avro = {"type": "long", "logicalType": "local-timestamp-micros"}
        # before 1970: epoch counts below zero are where off-by-one truncations hide
        millis = logical == "io.debezium.time.Timestamp"
        sample = "1969-07-20T20:17:40.5" if millis else "1969-07-20T20:17:40.123456"
    elif logical == "io.debezium.time.ZonedTimestamp":
        avro, sample = {"type": "long", "logicalType": "timestamp-micros"}, "2024-02-29T12:34:56.789012Z"
    elif logical == "io.debezium.time.Date":
        avro, sample = {"type": "int", "logicalType": "date"}, "2024-02-29"
    elif logical in ("io.debezium.time.MicroTime", "io.debezium.time.Time", "io.debezium.time.NanoTime"):
        avro, sample = {"type": "long", "logicalType": "time-micros"}, "12:34:56.789012"
    elif logical == "io.debezium.time.MicroDuration":
        avro, sample, expected = "long", _DURATION_SAMPLE, _DURATION_MICROS
        expression = f"duration_micros({read})"
        doc = doc or "an interval in microseconds (a month counts 365.25/12 days, as Debezium's)"
    elif logical == "io.debezium.time.Interval":
        avro, sample = "string", _DURATION_SAMPLE
        expression = f"duration_iso({read})"
    elif logical == "io.debezium.data.Uuid":
        avro, sample = {"type": "string", "logicalType": "uuid"}, f"00000000-0000-4000-8000-{number:012d}"
    elif logical == "io.debezium.data.Enum":
        labels = [label for label in _parameters(schema).get("allowed", "").split(",") if label]
        avro, sample = "string", labels[0] if labels else "label"
        doc = doc or (f"one of: {', '.join(labels)}" if labels else None)
    elif logical == "io.debezium.data.Json":
        avro, sample = "string", '{"sample": 1}'
    elif logical in ("io.debezium.time.ZonedTime",):
        # Debezium's text as the test's input; the event has the decoder's UTC time as ISO text
        avro, sample, expected = "string", "12:34:56.789012Z", "12:34:56.789012+00:00"
        doc = doc or "a time of day in UTC, as ISO text ending in +00:00 (Avro's time types hold no zone)"
    elif logical in ("io.debezium.data.Xml", "io.debezium.data.Ltree", "io.debezium.data.EnumSet"):
        avro, sample = "string", "sample"
    elif logical == "io.debezium.data.Bits":
        bits = _bits_plan(column, _parameters(schema), doc)
        if isinstance(bits, str):
            return bits
        avro, sample, doc = bits
    elif logical is not None:  # geometries, ...: the author chooses their form
        return f"column {column!r} ({logical}) left out: no Avro form is generated for it"
    elif connect_type in ("int8", "int16", "int32"):
        avro, sample = "int", number
    elif connect_type == "int64":
        avro, sample = "long", number
    elif connect_type in ("float", "float32", "double", "float64"):
        avro, sample = ("float" if connect_type in ("float", "float32") else "double"), 1.5
    elif connect_type == "boolean":
        avro, sample = "boolean", True
    elif connect_type == "string":
        avro, sample = "string", _sample_text(schema)
    elif connect_type == "bytes":
        avro, sample = "bytes", "sample"
    elif connect_type == "array":
        items = schema.get("items")
        if not isinstance(items, Mapping):
            items = {}
        # Elements are made Avro-ready as a column's value is (an unconstrained numeric's become
        # its exact text), so an element's plan is the array's items
        element = plan_column(column, items, side, number)
        if isinstance(element, str) or element.expression != read:
            why = f": {element.split(' left out: ', 1)[-1]}" if isinstance(element, str) else ""
            return f"column {column!r} (an array of {items.get('name') or items.get('type')}) left out{why}"
        avro = {"type": "array", "items": ["null", element.avro]}
        lost = _ELEMENT_DOCS.get(str(items.get("name")))
        doc = doc or lost or (f"elements: {element.doc}" if element.doc else None)
        sample = [element.sample, element.sample]
        expected = [element.expected, element.expected] if element.expected is not None else None
    else:
        return f"column {column!r} ({logical or connect_type}) left out: no Avro form is generated for it"
    return ColumnPlan(
        column, _avro_field_name(column), avro, nullable, expression, sample,
        sample if expected is None else expected, doc,
    )  # fmt: skip


def _record(name: str, namespace: str, doc: str, fields: list[dict[str, Any]]) -> str:
    document = {"type": "record", "name": name, "namespace": namespace, "doc": doc, "fields": fields}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def _avro_field(plan: ColumnPlan, *, key: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": plan.field}
    if plan.nullable and not key:
        out["type"] = ["null", plan.avro]
        out["default"] = None
    else:
        out["type"] = plan.avro
    if plan.doc:
        out["doc"] = plan.doc
    return out


def _record_name(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part) or "Event"


def _flow(values: Mapping[str, Any]) -> str:
    """A YAML flow mapping (JSON is YAML) of test values."""
    return orjson.dumps(dict(values)).decode()


def scaffold_mapping(
    name: str,
    *,
    connector: str,
    table: str,
    description: Mapping[str, Any],
    key_columns: tuple[str, ...],
    operations: tuple[str, ...] = ("insert", "update"),
    generated_from: str = "",
    left_out: Sequence[str] = (),
) -> Scaffold:
    """The starter files for mapping `name` of `table`; raises `ScaffoldError`.

    `left_out`: why columns the description does not hold are not published (the caller's
    notes); they go into the mapping file's comments with the columns left out here."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ScaffoldError(f"mapping name {name!r}: use snake_case (letters, digits, _), as bus topics")
    unknown_operations = [op for op in operations if op not in _OPERATIONS]
    if unknown_operations or not operations:
        raise ScaffoldError(
            f"--on {','.join(operations)}: operations are {', '.join(_OPERATIONS)} (comma-separated)"
        )
    if not key_columns:
        raise ScaffoldError(
            f"{table} has no primary key: name the key columns with --key COL[,COL] (a source capturing "
            "it declares them as its key_columns, which `mapping new --source` then uses)"
        )
    if "delete" in operations and len(operations) > 1:
        raise ScaffoldError(
            "a delete has no `after` row: scaffold deletes as their own mapping (--on delete, reads before.*)"
        )
    side = "before" if operations == ("delete",) else "after"
    rows = _row_schemas(description)
    unknown = [column for column in key_columns if column not in rows]
    if unknown:
        raise ScaffoldError(f"key column(s) {', '.join(unknown)} not in {table} (columns: {', '.join(rows)})")
    scaffold = Scaffold()
    omitted = list(left_out)
    plans: list[ColumnPlan] = []
    fields_taken: set[str] = set()
    for number, (column, schema) in enumerate(rows.items(), start=1):
        planned = plan_column(column, schema, side, number)
        if isinstance(planned, str):
            if column in key_columns:
                raise ScaffoldError(f"key {planned}")
            scaffold.notes.append(planned)
            omitted.append(planned)
            continue
        if planned.field in fields_taken:
            # "a-b" and a_b both become the Avro name a_b: the schema would have it twice.
            candidates = (f"{planned.field}_{n}" for n in itertools.count(2))
            unique = next(name for name in candidates if name not in fields_taken)
            scaffold.notes.append(f"column {column!r} is field {unique}: {planned.field} is another column's")
            planned = replace(planned, field=unique)
        fields_taken.add(planned.field)
        plans.append(planned)
    # In the order given: the key's fields are the event key's, in that order.
    keys = [plan for column in key_columns for plan in plans if plan.column == column]
    nullable = [plan.column for plan in keys if plan.nullable]
    if nullable:
        raise ScaffoldError(
            f"key column(s) {', '.join(nullable)} of {table} may be null: an event key needs a value; "
            "choose NOT NULL columns with --key"
        )
    personal = [plan.field for plan in plans if looks_personal(plan.column)]
    if personal:
        scaffold.notes.append(
            f"field(s) {', '.join(personal)} look personal: classify them under `sensitivity:` "
            f"(suggestion in {name}.yaml); pii/phi fields are published hashed or masked"
        )
    record = _record_name(name)
    namespace = "eventbus." + re.sub(r"[^A-Za-z0-9_.]", "_", connector)
    scaffold.files[f"schemas/{name}_key.avsc"] = _record(
        f"{record}Key", namespace, f"Key of {name}: the key columns of {table}.",
        [_avro_field(plan, key=True) for plan in keys],
    )  # fmt: skip
    scaffold.files[f"schemas/{name}.avsc"] = _record(
        record, namespace, f"A change of a {table} row (starter schema: every column).",
        [_avro_field(plan, key=False) for plan in plans],
    )  # fmt: skip
    scaffold.files[f"{name}.yaml"] = _mapping_text(
        name, connector, table, operations, side, keys, plans, generated_from, _comments(omitted, personal)
    )
    return scaffold


def _row_schemas(description: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    columns_from_connect_schema(description)  # raises ValueError for what is not a table description
    fields = {f.get("field"): f for f in description.get("fields", []) if isinstance(f, Mapping)}
    row = fields.get("after") or fields.get("before") or description
    return {f["field"]: f for f in row.get("fields", []) if isinstance(f, Mapping) and "field" in f}


def _mapping_text(
    name: str,
    connector: str,
    table: str,
    operations: tuple[str, ...],
    side: str,
    keys: list[ColumnPlan],
    plans: list[ColumnPlan],
    generated_from: str,
    comments: list[str],
) -> str:
    today = dt.date.today().isoformat()
    op = operations[0]
    row = {plan.column: plan.sample for plan in plans}
    key_row = {plan.column: plan.sample for plan in keys}
    about = f"{'an' if op[0] in 'aeiou' else 'a'} {op} of a {table} row is published with every column"
    lines = [
        f"# Generated by `eventbus mapping new` from {table}{generated_from} on {today}.",
        "# A starting point: say which changes are the business event (`when:`), publish only the",
        "# fields consumers need, and mark personal data under `sensitivity:` (hash/mask it).",
        *comments,
        f"name: {name}",
        "version: 1",
        f"description: {_yaml_text(f'A change of a {table} row (describe the business event here).')}",
        "lifecycle: development",
        f"source: {{connector: {connector}, table: {_yaml_text(table)}}}",
        f"on: {operations[0] if len(operations) == 1 else '[' + ', '.join(operations) + ']'}",
        "emit:",
        f"  topic: {name}",
        f"  key_schema: schemas/{name}_key.avsc",
        f"  value_schema: schemas/{name}.avsc",
        "  key:",
        *(f"    {_yaml_text(plan.field)}: {_yaml_expression(plan.expression)}" for plan in keys),
        "  fields:",
        *(f"    {_yaml_text(plan.field)}: {_yaml_expression(plan.expression)}" for plan in plans),
        "tests:",
        f"  - name: {_yaml_text(about)}",
        "    change:",
        f"      op: {op}",
    ]
    if op == "update":
        lines.append(f"      before: {_flow(key_row)}")
    lines.append(f"      {side}: {_flow(row)}")
    lines += [
        "    expect:",
        f"      - key: {_flow({plan.field: plan.expected for plan in keys})}",
        f"        value: {_flow({plan.field: plan.expected for plan in plans})}",
    ]
    return "\n".join(lines) + "\n"


def _comments(omitted: list[str], personal: list[str]) -> list[str]:
    """Comment lines of the mapping file: the columns left out and why, fields to classify."""
    lines = []
    if omitted:
        lines.append("#")
        lines.append("# Columns not published (no starter field is generated for them):")
        for note in omitted:
            lines += textwrap.wrap(note, 96, initial_indent="# - ", subsequent_indent="#   ")
    if personal:
        lines += [
            "#",
            "# These fields look personal: classify each (public | internal | confidential | pii | phi).",
            "# A pii/phi field loads only when published hashed or masked (hash(after.x), mask(after.x)),",
            "# or listed in allow_pii after a privacy review (mappings/README.md, Sensitivity):",
            "# sensitivity:",
            *(f"#   {field}: pii" for field in personal),
        ]
    return lines


# Plain words YAML reads as null or a boolean (under YAML 1.1 too), which a field may be named
_YAML_WORDS: Final = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})


def _yaml_text(text: str) -> str:
    """`text` as YAML reads it back: plain when it is, else quoted (a field named null or true, a
    table name with `, `, `: ` or `#`)."""
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_. ()]*(?<! )", text) and text.lower() not in _YAML_WORDS
    return text if plain else orjson.dumps(text).decode()


def _yaml_expression(expression: str) -> str:
    # `after["odd col"]` and anything else YAML would read otherwise is written quoted
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.()]*", expression):
        return expression
    return orjson.dumps(expression).decode()


__all__ = ["ColumnPlan", "Scaffold", "ScaffoldError", "plan_column", "scaffold_mapping"]
