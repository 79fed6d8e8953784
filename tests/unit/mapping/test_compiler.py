"""Compiled mappings: op filters, deletes, snapshots, several emits, TOAST, errors, Avro output."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
from decimal import Decimal
from pathlib import Path

import fastavro
import orjson
import pytest
from typer.testing import CliRunner

from eventbus.cli.main import app
from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.events.ids import event_id
from eventbus.mapping import MappingBindError, MappingEvaluationError, compile_mapping, load_mapping
from eventbus.mapping.avro import to_avro_json
from eventbus.mapping.codegen import CodeGenerator
from eventbus.mapping.compiler import DecodedRows, test_change
from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus_dev.samples import generate_records

VALID = Path(__file__).parents[2] / "fixtures" / "mappings" / "valid"
MAPPING = VALID / "claim_milestone_reached.yaml"
BENCH_MAPPING = Path(__file__).parents[3] / "bench" / "mappings" / "claim_decided.yaml"

HEAD = """name: audit
version: 3
description: every change of a claim
source: {connector: claims, table: public.claims}
"""
EMIT = """emit:
  key_schema: schemas/claim_key.avsc
  value_schema: schemas/claim_audit.avsc
  key:
    claim_id: coalesce(after.claim_id, before.claim_id)
  fields:
    claim_id: coalesce(after.claim_id, before.claim_id)
    operation: op
    filed_on: before.filed_on
"""


def _mapping(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    shutil.copytree(VALID / "schemas", tmp_path / "schemas")
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return compile_mapping(load_mapping(path))


def _run(compiled, op, before=None, after=None, **source):  # type: ignore[no-untyped-def]
    return compiled.apply_decoded(test_change(compiled.spec, op, before, after, source=source))


def test_on_filters_operations_and_snapshot_is_opt_in(tmp_path: Path) -> None:
    compiled = _mapping(tmp_path, HEAD + "on: [insert, delete]\n" + EMIT)
    assert len(_run(compiled, "c", after={"claim_id": 1})) == 1
    assert _run(compiled, "u", before={"claim_id": 1}, after={"claim_id": 1}) == []
    assert _run(compiled, "r", after={"claim_id": 1}) == []
    with_snapshot = _mapping(tmp_path / "s", HEAD + "on: [insert, snapshot]\n" + EMIT)
    assert [e.value["operation"] for e in _run(with_snapshot, "r", after={"claim_id": 1})] == ["r"]


def test_deletes_read_the_before_image(tmp_path: Path) -> None:
    compiled = _mapping(tmp_path, HEAD + "on: delete\n" + EMIT)
    [event] = _run(compiled, "d", before={"claim_id": 9, "filed_on": dt.date(2024, 1, 2)}, lsn=5)
    assert event.key == {"claim_id": 9}
    assert event.value == {"claim_id": 9, "operation": "d", "filed_on": dt.date(2024, 1, 2)}


def test_event_attributes_and_deterministic_id(tmp_path: Path) -> None:
    compiled = _mapping(tmp_path, HEAD + "on: insert\n" + EMIT)
    [event] = _run(compiled, "c", after={"claim_id": 4}, lsn=77, tx_id=3, ts_ms=1_700_000_000_000)
    assert event.event_type == "audit.v3"
    assert event.event_source == "/claims/public.claims"
    assert event.subject == "4"
    assert event.time_ms == 1_700_000_000_000
    assert event.topic == "audit"  # defaults to the mapping name
    assert event.event_id == event_id(
        connector="claims", lsn=77, tx_id=3, table="public.claims", primary_key={"claim_id": 4},
        mapping="audit", mapping_version=3, emit_index=0,
    )  # fmt: skip
    [again] = _run(compiled, "c", after={"claim_id": 4}, lsn=77, tx_id=3, ts_ms=1_700_000_000_000)
    assert again.event_id == event.event_id


def test_several_emits_with_their_own_conditions() -> None:
    compiled = compile_mapping(load_mapping(MAPPING))
    before = {"claim_id": 2, "status": "DECISION_MADE"}
    after = {
        "claim_id": 2,
        "status": "CLOSED",
        "status_changed_at": dt.datetime(2024, 1, 1),
        "veteran_ssn": "1",
    }
    events = _run(compiled, "u", before, after)
    assert [e.topic for e in events] == ["claim_milestone_reached", "claim_audit"]
    assert len({e.event_id for e in events}) == 2
    after["status"] = "UNDER_REVIEW"
    assert [e.topic for e in _run(compiled, "u", before, after)] == ["claim_milestone_reached"]


def test_unavailable_values_never_reach_an_event() -> None:
    compiled = compile_mapping(load_mapping(MAPPING))
    before = {"claim_id": 1, "status": "RECEIVED"}
    after = {
        "claim_id": 1,
        "status": "CLOSED",
        "status_changed_at": dt.datetime(2024, 1, 1),
        "veteran_ssn": "1",
    }
    after["amount_claimed"] = UNAVAILABLE
    with pytest.raises(MappingEvaluationError) as caught:
        _run(compiled, "u", before, after)
    error = caught.value
    assert (error.mapping, error.emit_index, error.field) == (
        "claim_milestone_reached",
        0,
        "fields.amount_claimed",
    )
    assert "TOAST" in error.reason
    # and the placeholder text in decoded rows means the same thing
    after["amount_claimed"] = "__debezium_unavailable_value"
    with pytest.raises(MappingEvaluationError, match="TOAST"):
        _run(compiled, "u", before, after)


def test_bind_converts_only_read_columns_and_caches_per_table() -> None:
    compiled = compile_mapping(load_mapping(MAPPING))
    converted: list[str] = []

    all_columns = (
        "claim_id",
        "status",
        "status_changed_at",
        "amount_claimed",
        "veteran_ssn",
        "filed_on",
        "notes",
    )

    class Table:
        name = "public.claims"

        def __init__(self, columns: tuple[str, ...]) -> None:
            self.columns = dict.fromkeys(columns)

        def converter(self, column: str):  # type: ignore[no-untyped-def]
            def convert(value):  # type: ignore[no-untyped-def]
                converted.append(column)
                return value

            return convert

    table = Table(all_columns)
    function = compiled.bind(table)
    assert compiled.bind(table) is function
    change = test_change(compiled.spec, "u", {"status": "A", "notes": "x"}, {"status": "A", "notes": "y"})
    assert function(change) == []
    assert sorted(converted) == ["status", "status"]  # `when` failed: no other column touched
    assert "notes" not in compiled.columns
    with pytest.raises(MappingBindError, match=r"public\.other"):
        compiled.bind(DecodedRows("public.other"))
    with pytest.raises(MappingBindError, match="has no column"):
        compiled.bind(Table(("status",)))

    # A column gone from the table is an error only for changes the mapping handles (inserts and
    # updates, here): a delete of that table version has no events, not a dead letter each.
    narrow = Table(("status",))
    delete = test_change(compiled.spec, "d", {"status": "A"}, None)
    delete.table = narrow
    assert compiled.events_of_change(delete) == []
    for op in ("c", "u"):
        change = test_change(compiled.spec, op, {"status": "A"} if op == "u" else None, {"status": "B"})
        change.table = narrow
        with pytest.raises(MappingBindError, match="has no column"):
            compiled.events_of_change(change)


def test_generated_code_has_no_builtins() -> None:
    compiled = compile_mapping(load_mapping(MAPPING))
    namespace = compiled._factory.__globals__
    assert namespace["__builtins__"] == {}
    assert "import" not in compiled.source and "__import__" not in compiled.source


def test_code_specialised_for_a_table_version_has_no_builtins_either(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bound to a table version with typed columns, a mapping runs a factory generated anew, with
    trivial conversions inlined (`CompiledMapping._factory_for`): the same sandbox must hold there."""
    sources: list[str] = []
    module = CodeGenerator.module

    def recorded(self: CodeGenerator) -> str:
        source = module(self)
        sources.append(source)
        return source

    monkeypatch.setattr(CodeGenerator, "module", recorded)
    compiled = compile_mapping(load_mapping(BENCH_MAPPING))
    record = next(iter(generate_records(1, seed=1)))
    compiled.bind(ConnectJsonDecoder().decode(record.value, record.key, record.topic).table)
    assert compiled._variants, "a typed table version gets a specialised factory"
    assert len(sources) == 2 and sources[1] != sources[0]
    for factory in compiled._variants.values():
        assert factory.__globals__["__builtins__"] == {}
    assert "import" not in sources[1] and "__import__" not in sources[1]


def test_values_are_avro_ready_and_render_as_avro_json() -> None:
    compiled = compile_mapping(load_mapping(MAPPING))
    before = {"claim_id": 1, "status": "RECEIVED"}
    changed_at = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    after = {"claim_id": 1, "status": "DECISION_MADE", "status_changed_at": changed_at,
             "amount_claimed": Decimal("1250.50"), "veteran_ssn": "123"}  # fmt: skip
    [event] = _run(compiled, "u", before, after)
    schema = compiled.value_schema(0)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema.parsed, event.value)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, schema.parsed)["amount_claimed"] == Decimal("1250.50")
    rendered = to_avro_json(event.value, schema)
    assert rendered["amount_claimed"] == "1250.50"
    assert rendered["milestone_at"] == 1714557600000
    assert rendered["source_system"] == "claims-db"


@pytest.mark.parametrize(
    ("value", "rendered"),
    [(float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"), (1.5, 1.5)],
)
def test_non_finite_doubles_are_not_rendered_as_null(value: float, rendered: object) -> None:
    """`mapping run` output: JSON has no NaN or infinities, and null would read as a missing value."""
    from eventbus.mapping.avro import FieldType, json_value

    assert json_value(value, FieldType("double", nullable=False, schema="double")) == rendered


def test_decimal_with_too_many_places_is_an_error_not_a_silent_rounding() -> None:
    compiled = compile_mapping(load_mapping(MAPPING))
    after = {"claim_id": 1, "status": "CLOSED", "status_changed_at": dt.datetime(2024, 1, 1),
             "amount_claimed": Decimal("1.005"), "veteran_ssn": "1"}  # fmt: skip
    with pytest.raises(MappingEvaluationError, match="more than 2 decimal places"):
        _run(compiled, "u", {"status": "A"}, after)
    # Too many digits before the point (a column widened to numeric(16,2)) names that, too
    after["amount_claimed"] = Decimal("12345678901234.5")
    with pytest.raises(MappingEvaluationError, match=r"more than 10 digits before the point"):
        _run(compiled, "u", {"status": "A"}, after)


def test_an_int_beyond_32_bits_is_refused_for_an_avro_int(tmp_path: Path) -> None:
    """A bigint column (or one altered to bigint) mapped to an Avro int: the value passed the int
    check and the encoders wrote it as a long, which a reader of the int decodes as another number."""
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "key.avsc").write_text(
        '{"type": "record", "name": "K", "namespace": "t", "fields": [{"name": "id", "type": "int"}]}'
    )
    (schemas / "value.avsc").write_text(
        '{"type": "record", "name": "V", "namespace": "t", "fields": ['
        '{"name": "id", "type": "int"}, {"name": "qty", "type": ["null", "int"], "default": null}]}'
    )
    (tmp_path / "m.yaml").write_text(
        HEAD + "on: [insert]\nemit:\n  key_schema: schemas/key.avsc\n  value_schema: schemas/value.avsc\n"
        "  key: {id: after.claim_id}\n  fields:\n    id: after.claim_id\n    qty: after.qty\n"
    )
    compiled = compile_mapping(load_mapping(tmp_path / "m.yaml"))
    (event,) = _run(compiled, "c", after={"claim_id": 2**31 - 1, "qty": -(2**31)})
    assert event.value == {"id": 2**31 - 1, "qty": -(2**31)}
    assert len(_run(compiled, "c", after={"claim_id": 1, "qty": None})) == 1
    for after in ({"claim_id": 1, "qty": 3_000_000_000}, {"claim_id": 2**31, "qty": 1}):
        with pytest.raises(MappingEvaluationError, match="does not fit Avro int \\(out of range\\)"):
            _run(compiled, "c", after=after)


def test_reasons_of_python_errors_that_name_only_types_say_them(tmp_path: Path) -> None:
    """`unexpected TypeError` said nothing to act on; a message that names types only is kept (a
    message that may quote a value still is not)."""
    compiled = _mapping(tmp_path, HEAD + "on: [insert]\nwhen: after.filed_on < '2024-01-01'\n" + EMIT)
    with pytest.raises(MappingEvaluationError) as raised:
        _run(compiled, "c", after={"claim_id": 1, "filed_on": dt.date(2024, 1, 1)})
    assert "'<' not supported between instances of 'datetime.date' and 'str'" in str(raised.value)
    key_field = "claim_id: coalesce(after.claim_id, before.claim_id)\n    operation"
    emit = EMIT.replace(key_field, "claim_id: round(after.x)\n    operation")
    rounding = _mapping(tmp_path / "r", HEAD + "on: [insert]\n" + emit)
    for x in (float("nan"), float("inf")):
        with pytest.raises(MappingEvaluationError, match=re.escape("round() of a NaN or infinite double")):
            _run(rounding, "c", after={"claim_id": 1, "x": x})


runner = CliRunner()


@pytest.mark.parametrize("command", ["validate", "test"])
def test_cli_checks_nothing_is_a_failure(tmp_path: Path, command: str) -> None:
    """A mistyped path or an empty folder must not pass as "nothing failed" (e.g. in CI)."""
    missing = runner.invoke(app, ["mapping", command, str(tmp_path / "mapings")])
    assert missing.exit_code == 2
    assert f"no such file or folder: {tmp_path / 'mapings'}" in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["mapping", command, str(tmp_path / "empty")])
    assert empty.exit_code == 1
    assert "no mapping files found" in empty.output and "nothing was checked" in empty.output


def test_cli_validate_test_run_schema(tmp_path: Path) -> None:
    assert runner.invoke(app, ["mapping", "validate", str(VALID)]).exit_code == 0
    broken = VALID.parent / "broken" / "unknown_function.yaml"
    result = runner.invoke(app, ["mapping", "validate", str(broken)])
    assert result.exit_code == 1
    assert "^" in result.output and "unknown function loweer()" in result.output
    assert runner.invoke(app, ["mapping", "test", str(VALID)]).exit_code == 0
    assert runner.invoke(app, ["mapping", "test", str(broken)]).exit_code == 1
    fixture = VALID / "tests" / "claim_milestone_reached" / "decision.jsonl"
    bad = tmp_path / "in.jsonl"
    bad.write_text(fixture.read_text() + "{oops\n")
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    result = runner.invoke(
        app,
        ["mapping", "run", "-m", str(MAPPING), "-i", str(bad), "-o", str(out), "--dead-letter", str(dead)],
    )
    assert result.exit_code == 1, result.output  # a dead letter fails the run
    assert out.read_text() == (fixture.parent / "decision.expected.jsonl").read_text()
    assert '"line":3' in dead.read_text() and "not valid JSON" in dead.read_text()
    assert f"dead letter at {bad}:3: not valid JSON" in result.output
    assert "without their key" not in result.output
    # Value-only lines: ids come from the event key, not the staging key the service uses: said.
    values_only = tmp_path / "values.jsonl"
    values_only.write_bytes(orjson.dumps(orjson.loads(fixture.read_text().splitlines()[0])["value"]) + b"\n")
    result = runner.invoke(app, ["mapping", "run", "-m", str(MAPPING), "-i", str(values_only)])
    keyless = "note: 1 record(s) without their key: their events' ids are made from the event key"
    assert result.exit_code == 0 and keyless in " ".join(result.output.split()), result.output
    schema = runner.invoke(app, ["mapping", "schema"])
    assert schema.exit_code == 0 and '"additionalProperties": false' in schema.output


def test_failing_test_prints_name_location_and_diff(tmp_path: Path) -> None:
    shutil.copytree(VALID, tmp_path / "valid")
    path = tmp_path / "valid" / "claim_milestone_reached.yaml"
    path.write_text(
        path.read_text().replace("previous_milestone: UNDER_REVIEW", "previous_milestone: RECEIVED")
    )
    result = runner.invoke(app, ["mapping", "test", str(path)])
    assert result.exit_code == 1
    assert f"FAIL decision made [{path}:30]: events differ" in result.output
    assert "value.previous_milestone: expected 'RECEIVED', got 'UNDER_REVIEW'" in result.output


def test_row_columns_are_what_the_generated_code_reads_of_each_row(tmp_path: Path) -> None:
    """What a payload parser keeps of each row (`service.processor.staging_decoder`)."""
    when = "on: update\nwhen: changed(after.status) and after.amount > 0\n"
    compiled = _mapping(tmp_path, HEAD + when + EMIT)
    assert compiled.row_columns("after") == {"claim_id", "status", "amount"}
    assert compiled.row_columns("before") == {"claim_id", "status", "filed_on"}
    # the mapping's events need no other column of either row
    before = {"claim_id": 1, "status": "OPEN", "filed_on": None}
    after = {"claim_id": 1, "status": "DONE", "amount": Decimal(5)}
    (event,) = _run(compiled, "u", before, after)
    assert event.value["claim_id"] == 1


@pytest.mark.parametrize(
    ("when", "line", "column"),
    [
        # line 5 is `when:`; the unknown column `claim_idd` is on the third line of the condition
        (">-\n  op == 'u'\n  and after.status == 'X'\n  and after.claim_idd > 3\n", 8, 7),
        ("|\n  op == 'u'\n  and after.status == 'X'\n  and after.claim_idd > 3\n", 8, 7),
        ("\"op == 'u'\n  and after.status == 'X'\n  and after.claim_idd > 3\"\n", 7, 7),
        ("op == 'u'\n  and after.status == 'X'\n  and after.claim_idd > 3\n", 7, 7),
        ("op == 'u' and after.claim_idd > 3\n", 5, 21),
    ],
    ids=["folded", "literal", "double-quoted", "plain", "one line"],
)
def test_errors_in_expressions_over_several_lines_point_at_the_character(
    tmp_path: Path, when: str, line: int, column: int
) -> None:
    """Folded and flow scalars join their lines with spaces; the error is still placed on its own line
    (it was at the `>-`, or past the end of the first line). A literal block parses as one expression."""
    shutil.copytree(VALID / "schemas", tmp_path / "schemas")
    shutil.copytree(VALID / "tables", tmp_path / "tables")
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + f"when: {when}" + "on: update\n" + EMIT)
    with pytest.raises(MappingErrors) as caught:
        load_mapping(path)
    (error,) = caught.value.errors
    assert "unknown column 'claim_idd' of after" in error.message
    assert (error.line, error.column) == (line, column)


def test_a_literal_block_condition_with_an_unclosed_bracket_points_at_it(tmp_path: Path) -> None:
    shutil.copytree(VALID / "schemas", tmp_path / "schemas")
    path = tmp_path / "m.yaml"
    when = "when: |\n  op == 'u'\n  and (after.status == 'X'\n  or op == 'c'\n"
    path.write_text(HEAD + when + "on: update\n" + EMIT)
    with pytest.raises(MappingErrors) as caught:
        load_mapping(path)
    (error,) = caught.value.errors
    assert "'(' was never closed" in error.message
    assert (error.line, error.column) == (7, 7)


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("on: 'insert, update'\n", "several operations are a list: on: [insert, update]"),
        ("on: [c, u]\n", "operations are named: 'c' is insert"),
        ("on: update\nwhen: after.status == NEW\n", "text is quoted inside the expression: \"'NEW'\""),
        ("on: update\nwhen: after.from == 'x'\n", "'from' is a Python keyword: read the column as "
         "after['from']"),
    ],
)
def test_common_slips_get_a_hint_that_says_what_to_write(tmp_path: Path, line: str, hint: str) -> None:
    shutil.copytree(VALID / "schemas", tmp_path / "schemas")
    shutil.copytree(VALID / "tables", tmp_path / "tables")
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + line + EMIT)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    errors = caught.value.errors if isinstance(caught.value, MappingErrors) else [caught.value]
    assert hint in [e.hint for e in errors], [e.hint for e in errors]


def test_events_expected_in_another_order_are_said_to_be_so(tmp_path: Path) -> None:
    shutil.copytree(VALID, tmp_path / "m")
    mapping = tmp_path / "m" / "claim_milestone_reached.yaml"
    text = mapping.read_text()
    in_order = (
        "      - contains: {milestone: CLOSED, previous_milestone: DECISION_MADE}\n"
        "      - topic: claim_audit\n"
        "        value: {claim_id: 2, operation: closed, filed_on: 2024-01-15}\n"
    )
    swapped = (
        "      - topic: claim_audit\n"
        "        value: {claim_id: 2, operation: closed, filed_on: 2024-01-15}\n"
        "      - contains: {milestone: CLOSED, previous_milestone: DECISION_MADE}\n"
    )
    assert in_order in text
    mapping.write_text(text.replace(in_order, swapped))
    from eventbus.mapping.testing import test_mapping_file

    result = next(r for r in test_mapping_file(mapping) if r.name == "closing also emits the audit event")
    assert not result.passed
    assert result.diff == [
        "  the expected events are all there, in another order: the mapping emits them as "
        "claim_milestone_reached, claim_audit (its emit blocks' order); list them in that order"
    ]
