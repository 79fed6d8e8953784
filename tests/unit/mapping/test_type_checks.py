"""Every column/field pairing `mapping validate` refuses with a table description, each with its exact
`file:line:col` message; and the pairings it accepts (when guards, explicit conversions)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from eventbus.debezium.pg_types import PgColumn, key_description, table_description
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.errors import MappingError

COLUMNS = [
    PgColumn("id", "int8", nullable=False),
    PgColumn("amount", "numeric", nullable=False, length=8, scale=2),
    PgColumn("ratio", "numeric", nullable=False),
    PgColumn("changed_at", "timestamp", nullable=False),
    PgColumn("happened_at", "timestamptz", nullable=False),
    PgColumn("opens", "time", nullable=False),
    PgColumn("code", "varchar", nullable=False, length=12),
    PgColumn("note", "text"),
    PgColumn("ratio_f", "float8", nullable=False),
]

DECIMAL_8_2 = {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2}


def _write(
    folder: Path,
    field_type: object,
    expression: str,
    when: str | None = None,
    columns: list[PgColumn] | None = None,
) -> Path:
    """A mapping of public.things publishing one field `x` of `field_type` from `expression`."""
    (folder / "tables").mkdir(parents=True)
    (folder / "schemas").mkdir()
    columns = COLUMNS if columns is None else columns
    envelope, _ = table_description("staging.shop", "public.things", columns)
    (folder / "tables" / "public.things.json").write_bytes(orjson.dumps(envelope))
    key = key_description("staging.shop", "public.things", columns[:1])
    (folder / "tables" / "public.things.key.json").write_bytes(orjson.dumps(key))
    record = {"type": "record", "name": "Thing", "fields": [{"name": "x", "type": field_type}]}
    (folder / "schemas" / "value.avsc").write_bytes(orjson.dumps(record))
    id_key = {"type": "record", "name": "ThingKey", "fields": [{"name": "id", "type": "long"}]}
    (folder / "schemas" / "key.avsc").write_bytes(orjson.dumps(id_key))
    mapping = folder / "thing.yaml"
    mapping.write_text(
        "name: thing\n"
        "version: 1\n"
        "description: one field\n"
        "source: {connector: shop, table: public.things}\n"
        "on: [insert, update]\n" + (f"when: {when}\n" if when else "") + "emit:\n"
        "  key_schema: schemas/key.avsc\n"
        "  value_schema: schemas/value.avsc\n"
        "  key: {id: after.id}\n"
        "  fields:\n"
        f"    x: {expression}\n"
    )
    return mapping


def _refusal(folder: Path, field_type: object, expression: str, when: str | None = None) -> str:
    mapping = _write(folder, field_type, expression, when)
    with pytest.raises(MappingError) as refused:
        compile_mapping(load_mapping(mapping))
    return refused.value.one_line()


LINE = 11  # the `x:` line of the generated mapping (one more with a `when:`)
COL = 8  # where the expression starts


@pytest.mark.parametrize(
    ("field_type", "expression", "message"),
    [
        (
            "string",
            "after.note",
            "column 'note' is nullable and the string field is not: a null would dead-letter its change; "
            'make the field a union ["null", "string"] with "default": null, or give a value for null: '
            "coalesce(..., <default>)",
        ),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 1},
            "after.amount",
            "column 'amount' is numeric(8,2) and the field keeps 1 decimal place(s): every value comes "
            "with 2 and would dead-letter; use decimal(8, 2), or round(x, 1) to say how to round",
        ),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
            "after.amount",
            "column 'amount' is numeric(8,2): up to 6 digits before the point, the field's decimal(6, 2) "
            "holds 4; use decimal(8, 2) or wider",
        ),
        (
            DECIMAL_8_2,
            "after.ratio",
            "column 'ratio' is an unconstrained numeric: its values have any number of decimal places, more "
            "than the field's 2 would dead-letter; round(x, 2) says how to round, or publish the exact text "
            "in a string field",
        ),
        (
            {"type": "long", "logicalType": "timestamp-millis"},
            "after.changed_at",
            "column 'changed_at' (MicroTimestamp) has microseconds, a timestamp-millis field drops them; use "
            "timestamp-micros, or say the truncation: timestamp_ms(...) gives epoch milliseconds",
        ),
        (
            {"type": "long", "logicalType": "local-timestamp-millis"},
            "after.happened_at",
            "column 'happened_at' (ZonedTimestamp) has microseconds, a local-timestamp-millis field drops "
            "them; use local-timestamp-micros, or say the truncation: timestamp_ms(...) gives epoch "
            "milliseconds",
        ),
        (
            {"type": "int", "logicalType": "time-millis"},
            "after.opens",
            "column 'opens' (MicroTime) has microseconds, a time-millis field drops them; use time-micros",
        ),
        (
            DECIMAL_8_2,
            "after.code",
            "a string value cannot go into a decimal field; convert it with decimal(...)",
        ),
        ("long", "after.code", "a string value cannot go into a long field; convert with int(...)"),
        (
            "int",
            "after.id",
            "column 'id' is a 64-bit integer (bigint) and an Avro int holds 32 bits: a value beyond "
            '±2,147,483,647 would dead-letter its change; make the field "long"',
        ),
        (
            "long",
            "after.ratio_f",
            "column 'ratio_f' is a floating-point number and the long field an integer: a value with a "
            "fraction, NaN or infinity would dead-letter its change; use a double field, or say how to "
            "round: int(round(x))",
        ),
        (
            "long",
            "after.id / 2",
            "this expression gives a floating-point number (as `/` does: 7 / 2 is 3.5) and the long field "
            "is an integer: a value with a fraction, NaN or infinity would dead-letter its change; use `//` "
            "for an integer quotient, say how to round: int(round(x)), or use a double field",
        ),
        (
            "double",
            "after.amount",
            "a decimal value cannot go into a double field; a double cannot hold every decimal exactly "
            "(123456789.0123456789 would be published as 123456789.01234567): use a decimal(p, s) field "
            "with the column's precision and scale, or float(...) to accept the rounding",
        ),
        (
            "long",
            "after.amount",
            "a decimal value cannot go into a long field; an exact decimal may have a fraction: use a "
            "decimal(p, s) field with the column's precision and scale, or int(...) (refuses to drop a "
            "fraction) or round(...) to say what to do",
        ),
    ],
)
def test_refused_pairings_name_file_line_column_and_the_fix(
    tmp_path: Path, field_type: object, expression: str, message: str
) -> None:
    mapping = tmp_path / "thing.yaml"
    assert _refusal(tmp_path, field_type, expression) == (
        f"{mapping}:{LINE}:{COL}: emit[0].fields.x: {message} (field 'x' of Thing)"
    )


@pytest.mark.parametrize(
    ("field_type", "expression", "when"),
    [
        ("string", "after.note", "not is_null(after.note)"),
        ("string", "after.note", "after.note != None and after.id > 0"),
        ("string", "after.note", "after.note in ['a', 'b']"),
        ("string", "coalesce(after.note, '')", None),
        (["null", "string"], "after.note", None),
        ({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 4}, "after.amount", None),
        (DECIMAL_8_2, "round(after.ratio, 2)", None),
        ("string", "after.ratio", None),
        (DECIMAL_8_2, "decimal(after.code)", None),
        ({"type": "long", "logicalType": "timestamp-millis"}, "timestamp_ms(after.changed_at)", None),
        ({"type": "long", "logicalType": "local-timestamp-micros"}, "after.changed_at", None),
        ({"type": "long", "logicalType": "time-micros"}, "after.opens", None),
        ("long", "after.id // 2", None),
        ("double", "after.id / 2", None),
        (DECIMAL_8_2, "round(after.amount / 3, 2)", None),
    ],
)
def test_accepted_pairings(tmp_path: Path, field_type: object, expression: str, when: str | None) -> None:
    mapping = _write(tmp_path, field_type, expression, when)
    compiled = compile_mapping(load_mapping(mapping))
    assert [plan.name for plan in compiled.analysis.emits[0].fields] == ["x"]


def test_a_guard_in_the_when_is_read_as_written(tmp_path: Path) -> None:
    """`is_null(after.note) or ...` proves nothing: the refusal stays, on the line after `when:`."""
    message = _refusal(tmp_path, "string", "after.note", "is_null(after.note) or after.id > 0")
    assert message.startswith(f"{tmp_path / 'thing.yaml'}:{LINE + 1}:{COL}: emit[0].fields.x: column 'note'")


@pytest.mark.parametrize(
    ("on", "key", "expression", "refused"),
    [
        ("delete", "before.id", "after.code", "after.code is always null here: a delete has no `after` "
         "row, so every event would dead-letter on the non-null field; read before.code"),
        ("[insert, snapshot]", "after.id", "before['code']", "before.code is always null here: an insert "
         "or snapshot read has no `before` row"),
        ("[insert, delete]", "after.id", "after.code", None),  # an insert has it
        ("delete", "before.id", "coalesce(after.code, before.code)", None),  # not a plain read of it
        ("delete", "before.id", "before.code", None),
    ],
)  # fmt: skip
def test_a_row_the_operations_never_have_is_refused(
    tmp_path: Path, on: str, key: str, expression: str, refused: str | None
) -> None:
    """A non-null field from a row none of the mapping's operations has (`after` of a delete):
    validate passed it, and every change dead-lettered."""
    mapping = _write(tmp_path, "string", expression)
    text = mapping.read_text().replace("on: [insert, update]", f"on: {on}")
    mapping.write_text(text.replace("key: {id: after.id}", f"key: {{id: {key}}}"))
    if refused is None:
        assert compile_mapping(load_mapping(mapping)).spec.name == "thing"
        return
    with pytest.raises(MappingError) as caught:
        compile_mapping(load_mapping(mapping))
    assert refused in str(caught.value)


def test_inline_test_intervals_are_what_debezium_sends(tmp_path: Path) -> None:
    """An interval column (Debezium's numeric mode, MicroDuration) written as ISO-8601 in a test
    arrives as the service sees it: months folded into time, 365.25/12 days each."""
    from eventbus.mapping.testing import test_mapping_file

    took = PgColumn("took", "interval", nullable=False)
    mapping = _write(tmp_path, "string", "duration_iso(after.took)", columns=[*COLUMNS, took])
    mapping.write_text(
        mapping.read_text()
        + "tests:\n"
        "  - name: months become hours\n"
        "    change: {op: insert, after: {id: 1, took: P1Y2M3DT4H5M6.789S}}\n"
        "    expect: [{value: {x: PT10303H5M6.789S}}]\n"
    )
    (result,) = test_mapping_file(mapping)
    assert result.passed, result.headline() + "\n" + "\n".join(result.diff)


@pytest.mark.parametrize(
    ("field_type", "expression", "refused"),
    [
        ("string", "str(after.tags)", "str() takes a single value, and this is a list (an array column)"),
        ("string", "upper(after.tags)", "upper() takes a single value"),
        ("bytes", "after.flags", "int"),  # a bit string is decoded as its value, an int: not bytes
    ],
)
def test_values_of_the_wrong_shape_are_refused_at_validate(
    tmp_path: Path, field_type: str, expression: str, refused: str
) -> None:
    columns = [
        *COLUMNS,
        PgColumn("tags", "_text", element=PgColumn("tags", "text")),
        PgColumn("flags", "varbit", length=10),
    ]
    mapping = _write(tmp_path, field_type, expression, columns=columns)
    with pytest.raises(MappingError) as caught:
        compile_mapping(load_mapping(mapping))
    assert refused in str(caught.value)


def test_a_list_may_go_where_lists_are_taken(tmp_path: Path) -> None:
    columns = [*COLUMNS, PgColumn("tags", "_text", element=PgColumn("tags", "text"))]
    mapping = _write(tmp_path, "int", "length(coalesce(after.tags, []))", columns=columns)
    assert compile_mapping(load_mapping(mapping)).spec.name == "thing"
