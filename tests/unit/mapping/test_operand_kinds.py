"""Expressions `mapping validate` refuses because an operand's kind can never work there (each would
dead-letter, or be false, for every change), with their exact `file:line:col` message; and the
correct expressions beside them, which still pass. Kinds come from the table description."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from eventbus.debezium.pg_types import PgColumn, key_description, table_description
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.errors import MappingError
from eventbus.mapping.expression_language import ExpressionError
from eventbus.mapping.expressions import ExpressionCompiler

COLUMNS = [
    PgColumn("id", "int8", nullable=False),
    PgColumn("count", "int4"),
    PgColumn("amount", "numeric", length=8, scale=2),
    PgColumn("name", "text"),
    PgColumn("active", "bool"),
    PgColumn("tags", "text", element=PgColumn("tags", "text")),
    PgColumn("changed_at", "timestamp"),
    PgColumn("happened_at", "timestamptz"),
    PgColumn("due_on", "date"),
    PgColumn("opens", "time"),
    PgColumn("opens_tz", "timetz"),
    PgColumn("ref", "uuid"),
    PgColumn("status", "claim_status", labels=("RECEIVED", "APPROVED", "DENIED")),
    PgColumn("scores", "int4", element=PgColumn("scores", "int4")),
]


def _mapping(folder: Path, expression: str) -> Path:
    """A mapping of public.things publishing `expression` as a nullable string field `x`."""
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    (folder / "schemas").mkdir(exist_ok=True)
    envelope, _ = table_description("staging.shop", "public.things", COLUMNS)
    (folder / "tables" / "public.things.json").write_bytes(orjson.dumps(envelope))
    key = key_description("staging.shop", "public.things", COLUMNS[:1])
    (folder / "tables" / "public.things.key.json").write_bytes(orjson.dumps(key))
    value = {"type": "record", "name": "Thing", "fields": [{"name": "x", "type": ["null", "string"]}]}
    (folder / "schemas" / "value.avsc").write_bytes(orjson.dumps(value))
    id_key = {"type": "record", "name": "ThingKey", "fields": [{"name": "id", "type": "long"}]}
    (folder / "schemas" / "key.avsc").write_bytes(orjson.dumps(id_key))
    mapping = folder / "thing.yaml"
    mapping.write_text(
        "name: thing\n"
        "version: 1\n"
        "description: one field\n"
        "source: {connector: shop, table: public.things}\n"
        "on: [insert, update]\n"
        "emit:\n"
        "  key_schema: schemas/key.avsc\n"
        "  value_schema: schemas/value.avsc\n"
        "  key: {id: after.id}\n"
        "  fields:\n"
        f"    x: \"{expression}\"\n"
    )
    return mapping


LINE = 11  # the `x:` line
COL = 9  # where the expression starts (after its opening quote), 1-based


def _refusal(folder: Path, expression: str) -> str:
    with pytest.raises(MappingError) as refused:
        compile_mapping(load_mapping(_mapping(folder, expression)))
    return refused.value.one_line()


DEAD = "every change would dead-letter"


@pytest.mark.parametrize(
    ("expression", "offset", "message"),
    [
        # 1. functions given a kind of argument they fail on for every value
        ("upper(after.count)", 6, f"upper() takes text, and this is an integer: {DEAD} (hint: convert it to "
         "text first: str(x))"),
        ("hash(after.tags)", 5, "hash() takes a single value, and this is a list (an array column) (hint: "
         "publish it into an Avro array/map/record field as it is, or length(...) of a list)"),
        ("mask(after.tags)", 5, "mask() takes a single value, and this is a list (an array column) (hint: "
         "publish it into an Avro array/map/record field as it is, or length(...) of a list)"),
        ("date(after.count)", 5, f"date() takes text, a date or a timestamp, and this is an integer: {DEAD} "
         "(hint: signature: date(x))"),
        ("abs(after.name)", 4, f"abs() takes an integer, a floating-point number or a decimal number, and "
         f"this is text: {DEAD} (hint: convert the text to a number first: decimal(x) or int(x))"),
        ("round(after.amount, after.amount)", 20, "argument 2 of round() takes an integer, and this is a "
         f"decimal number: {DEAD} (hint: signature: round(x, digits?))"),
        ("matches(after.count, '^1')", 8, "argument 1 of matches() takes text, and this is an integer: "
         f"{DEAD} (hint: convert it to text first: str(x))"),
        ("duration_seconds(after.changed_at)", 17, "duration_seconds() takes text or a duration (interval), "
         f"and this is a timestamp without time zone: {DEAD} (hint: signature: duration_seconds(x))"),
        # 2. arithmetic on what is not a number
        ("after.name - 1", 0, f"'-' needs numbers, and this is text: {DEAD} (hint: convert it first: "
         "decimal(x), int(x))"),
        ("after.name + after.count", 0, "'+' joins two texts or adds two numbers, and this adds text and an "
         f"integer: {DEAD} (hint: join texts with concat(x, y), or convert the text: decimal(x) + y)"),
        ("after.active + 1", 0, f"'+' needs numbers, and this is a boolean: {DEAD} (hint: count it as a "
         "number: int(x))"),
        ("after.happened_at - after.happened_at", 0, "'-' needs numbers, and this is a timestamp with time "
         f"zone: {DEAD} (hint: subtract epoch milliseconds: timestamp_ms(after.x) - timestamp_ms(after.y))"),
        ("-after.name", 0, f"'-' needs numbers, and this is text: {DEAD} (hint: convert it first: "
         "decimal(x), int(x))"),
        # 3. comparisons of kinds that never meet
        ("after.changed_at < '2024-01-01'", 0, "a timestamp without time zone and text (the text is not read "
         f"as one) cannot be ordered: {DEAD} (hint: compare dates instead: date(x) >= date('2024-01-31'))"),
        ("after.happened_at == '2024-01-01'", 0, "a timestamp with time zone and text (the text is not read "
         "as one) are never equal (hint: write the instant as datetime('2024-01-31T00:00:00Z'))"),
        ("after.due_on == '2024-01-01'", 0, "a date and text (the text is not read as one) are never equal "
         "(hint: write the date as date('2024-01-31'))"),
        ("after.opens in ['08:00']", 15, "a time of day and text (the text is not read as one) are never "
         "equal (hint: compare its text, which sorts as the time: str(x) >= '12:00:00')"),
        ("after.due_on >= after.changed_at", 0, f"a date and a timestamp cannot be ordered: {DEAD} (hint: "
         "compare dates: date(x) == after.day)"),
        ("after.ref == after.name", 0, "a uuid compared with text is never equal (hint: compare str(x))"),
        ("after.changed_at > source.ts_ms", 0, "a timestamp without time zone and an integer cannot be "
         f"ordered: {DEAD} (hint: compare epoch milliseconds: timestamp_ms(after.x) > source.ts_ms)"),
        ("after.count in ['1', '2']", 15, "an integer and text are never equal (hint: convert one side so "
         "both are the same kind: str(x), decimal(x), date(x))"),
        # 4. wall-clock against zoned timestamps
        ("after.changed_at > after.happened_at", 0, "a timestamp without time zone (a wall-clock reading) "
         f"and one with a time zone cannot be ordered: {DEAD} (hint: compare a `timestamp` column with "
         "another `timestamp` column, or compare dates: date(after.x) >= date(after.y))"),
        ("max(after.happened_at, after.changed_at)", 23, "a timestamp without time zone (a wall-clock "
         f"reading) and one with a time zone cannot be ordered: {DEAD} (hint: compare a `timestamp` column "
         "with another `timestamp` column, or compare dates: date(after.x) >= date(after.y))"),
        ("after.changed_at == datetime('2024-01-01')", 0, "a timestamp without time zone (a wall-clock "
         "reading) and one with a time zone are never equal (hint: compare a `timestamp` column with another "
         "`timestamp` column, or compare dates: date(after.x) >= date(after.y))"),
        ("after.opens < after.opens_tz", 0, "a time without time zone (a wall-clock reading) and one with "
         f"a time zone cannot be ordered: {DEAD} (hint: compare their text: str(x) == str(y))"),
        ("coalesce(after.changed_at, after.happened_at)", 27, "coalesce() of a timestamp without time zone "
         "and one with a time zone: its value could be either, and the two can neither be ordered nor be "
         "equal (hint: make both the same: datetime(x) reads a wall-clock value as UTC)"),
        # 5. an enum column against a text that is none of its labels
        ("after.status == 'APROVED'", 16, "'APROVED' is not a label of enum column 'status' (RECEIVED, "
         "APPROVED, DENIED): never equal (hint: did you mean 'APPROVED'?)"),
        ("'denied' != after.status", 0, "'denied' is not a label of enum column 'status' (RECEIVED, "
         "APPROVED, DENIED): never equal (hint: did you mean 'DENIED'?)"),
        ("after.status in ['RECEIVED', 'CLOSED']", 16, "'CLOSED' is not a label of enum column 'status' "
         "(RECEIVED, APPROVED, DENIED): never equal"),
        ("became(after.status, 'RECIEVED')", 21, "'RECIEVED' is not a label of enum column 'status' "
         "(RECEIVED, APPROVED, DENIED): never equal (hint: did you mean 'RECEIVED'?)"),
        ("'7' in after.scores", 0, "text and an integer are never equal (hint: convert one side so both "
         "are the same kind: str(x), decimal(x), date(x))"),
        ("became(after.count, '1')", 20, "an integer and text are never equal (hint: convert one side so "
         "both are the same kind: str(x), decimal(x), date(x))"),
        # 6. min/max of values that cannot be ordered
        ("min(after.active, 'no')", 18, f"a boolean and text cannot be ordered: {DEAD} (hint: convert one "
         "side so both are the same kind: str(x), decimal(x), date(x))"),
        ("max(after.count, after.amount, after.name)", 31, f"an integer and text cannot be ordered: {DEAD} "
         "(hint: convert one side so both are the same kind: str(x), decimal(x), date(x))"),
    ],
)  # fmt: skip
def test_refused_with_file_line_column_and_the_fix(
    tmp_path: Path, expression: str, offset: int, message: str
) -> None:
    assert _refusal(tmp_path, expression) == (
        f"{tmp_path / 'thing.yaml'}:{LINE}:{COL + offset}: emit[0].fields.x: {message}"
    )


@pytest.mark.parametrize(
    "expression",
    [
        "upper(after.name)", "hash(after.ref)", "mask(str(after.count))", "date(after.changed_at)",
        "date(after.name)", "abs(after.amount)", "round(after.amount, 1)", "matches(after.name, '^1')",
        "timestamp_ms(after.changed_at)", "length(after.tags)",
        "after.count + 1", "after.amount * 2.5 - after.count", "after.name + '!'", "-after.amount",
        "timestamp_ms(after.happened_at) - timestamp_ms(after.changed_at)",
        "timestamp_ms(after.changed_at) > source.ts_ms",
        "after.changed_at < after.changed_at", "date(after.changed_at) >= date('2024-01-01')",
        "after.happened_at > datetime('2024-01-01T00:00:00Z')", "after.due_on == date(after.happened_at)",
        "str(after.ref) == 'x'", "after.count in [1, 2]", "after.active == 1", "after.count == after.amount",
        "max(after.happened_at, datetime(after.changed_at))", "coalesce(after.changed_at, after.changed_at)",
        "min(after.count, after.amount, 0.5)", "coalesce(after.name, 'none')",
        "after.status == 'APPROVED'", "after.status in ['RECEIVED', 'DENIED']",
        "became(after.status, 'DENIED')", "became(after.count, 1)", "after.opens < after.opens",
        "after.due_on == date('2024-01-01')", "str(after.opens) in ['08:00:00']",
        "lower(after.status) == 'aproved'", "'APP' in after.name", "7 in after.scores",
    ],
)  # fmt: skip
def test_expressions_of_fitting_kinds_pass(tmp_path: Path, expression: str) -> None:
    compiled = compile_mapping(load_mapping(_mapping(tmp_path, expression)))
    assert [plan.name for plan in compiled.analysis.emits[0].fields] == ["x"]


@pytest.mark.parametrize(
    "expression",
    ["upper(after.count)", "after.name - 1", "after.changed_at < '2024'", "after.status == 'X'",
     "min(after.active, 'no')", "after.changed_at > after.happened_at"],
)  # fmt: skip
def test_without_a_table_description_nothing_is_refused(expression: str) -> None:
    """No table description: no kinds known, so nothing is refused on a guess."""
    assert ExpressionCompiler().compile(expression).source


def test_isostring_columns_have_the_kinds_of_their_values() -> None:
    """time.precision.mode=isostring columns decode to datetimes/dates/times: they were text to
    validate, so comparing one with a timestamp would have been refused as text. Whether one has a
    zone depends on its text, so it is compared with either kind of timestamp."""
    from eventbus.mapping.tables import columns_from_connect_schema

    columns = columns_from_connect_schema({"type": "struct", "fields": [
        {"field": "iso", "type": "string", "name": "io.debezium.time.IsoTimestamp"},
        {"field": "zoned", "type": "string", "name": "io.debezium.time.ZonedTimestamp"},
        {"field": "wall", "type": "int64", "name": "io.debezium.time.MicroTimestamp"},
        {"field": "day", "type": "string", "name": "io.debezium.time.IsoDate"},
    ]})  # fmt: skip
    assert [columns[name].kind for name in ("iso", "day")] == ["datetime", "date"]
    assert ExpressionCompiler(columns).compile("after.iso < after.zoned").source
    assert ExpressionCompiler(columns).compile("after.iso < after.wall").source
    with pytest.raises(ExpressionError, match="cannot be ordered"):
        ExpressionCompiler(columns).compile("after.zoned < after.wall")
    with pytest.raises(ExpressionError, match="a date and a timestamp are never equal"):
        ExpressionCompiler(columns).compile("after.day == after.iso")


def test_a_looked_up_enum_column_is_checked_against_its_labels_too() -> None:
    from eventbus.mapping.tables import ColumnInfo

    status = ColumnInfo("status", "string", False, "string", "io.debezium.data.Enum", labels=("OPEN", "SHUT"))
    compiler = ExpressionCompiler({}, lookups={"claim": {"status": status}})
    with pytest.raises(ExpressionError, match=r"'OPN' is not a label of enum column 'status' \(OPEN, SHUT\)"):
        compiler.compile("claim.status == 'OPN'")
    assert compiler.compile("claim.status in ['OPEN', 'SHUT']").source
