"""An update without its old row (REPLICA IDENTITY not FULL: `before` is null) for a mapping that
reads `before.*`, `changed()` or `became()` is a dead letter that names the table and the fix, not
a spurious transition; unless the mapping tests `is_null(before)` itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from eventbus.cli.main import app
from eventbus.mapping import MappingEvaluationError, compile_mapping, load_mapping
from eventbus.mapping.compiler import CompiledMapping, test_change

VALID = Path(__file__).parents[2] / "fixtures" / "mappings" / "valid"
HEAD = """name: claim_decided
version: 2
description: a claim's status became DECIDED
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
"""
BECAME = "on: [insert, update, delete]\nwhen: op == 'd' or became(after.status, 'DECIDED')\n"
GUARDED = BECAME.replace("or became(", "or not is_null(before) and became(")
AFTER_ONLY = "on: [insert, update]\nwhen: after.status == 'DECIDED'\n"
FIX = "ALTER TABLE public.claims REPLICA IDENTITY FULL"
DECIDED = {"claim_id": 7, "status": "DECIDED"}


def _mapping(folder: Path, text: str) -> CompiledMapping:
    shutil.copytree(VALID / "schemas", folder / "schemas")
    (folder / "m.yaml").write_text(text)
    return compile_mapping(load_mapping(folder / "m.yaml"))


def _both(compiled: CompiledMapping, op: str, before: dict | None, after: dict | None) -> list:  # type: ignore[type-arg]
    """The events of the `Change` function, after checking the payload function (the service's
    hot path) gives the same events or the same error."""
    change = test_change(compiled.spec, op, before, after)
    payload = {"op": op, "before": before, "after": after, "source": {"lsn": 1, "ts_ms": 2}}
    on_payload = compiled.bind_payload(change.table)
    try:
        events = compiled.apply_decoded(change)
    except MappingEvaluationError as error:
        with pytest.raises(MappingEvaluationError) as same:
            on_payload(payload, None, None, lambda key, topic: None)
        assert str(same.value) == str(error)
        raise
    assert [e.value for e in on_payload(payload, None, None, lambda key, topic: None)] == [
        e.value for e in events
    ]
    return events


def test_an_update_without_its_old_row_is_a_dead_letter_naming_the_table_and_the_fix(tmp_path: Path) -> None:
    compiled = _mapping(tmp_path, HEAD + BECAME + EMIT)
    with pytest.raises(MappingEvaluationError) as refused:
        _both(compiled, "u", None, DECIDED)
    reason = str(refused.value)
    assert reason.startswith("mapping claim_decided v2: an update of public.claims came without its old row")
    assert FIX in reason and "before.status" in reason and "is_null(before)" in reason
    assert "DECIDED" not in reason and "7" not in reason.replace("v2", "")  # names, never values
    # With its old row the update is what it always was; inserts, deletes and snapshots are untouched.
    assert [e.value for e in _both(compiled, "u", {"claim_id": 7, "status": "OPEN"}, DECIDED)] == [
        {"claim_id": 7, "operation": "u", "filed_on": None}
    ]
    assert _both(compiled, "u", DECIDED, DECIDED) == []
    assert [e.value["operation"] for e in _both(compiled, "c", None, DECIDED)] == ["c"]
    assert [e.value["operation"] for e in _both(compiled, "d", DECIDED, None)] == ["d"]


def test_the_reason_quotes_a_table_name_postgresql_would_fold(tmp_path: Path) -> None:
    compiled = _mapping(tmp_path, HEAD.replace("public.claims", "Claims.ClaimNotes") + BECAME + EMIT)
    with pytest.raises(MappingEvaluationError) as refused:
        _both(compiled, "u", None, DECIDED)
    assert "an update of Claims.ClaimNotes came" in str(refused.value)
    assert 'ALTER TABLE "Claims"."ClaimNotes" REPLICA IDENTITY FULL' in str(refused.value)


@pytest.mark.parametrize(
    ("table", "sql"),
    [
        ("public.order", 'public."order"'),  # reserved words: unquoted, the statement is a syntax error
        ("user.select", '"user"."select"'),
        ('public.a"b', 'public."a""b"'),
        ("public.claims$1", "public.claims$1"),
    ],
)
def test_the_reason_quotes_a_reserved_word_or_a_quote_as_postgresql_requires(
    tmp_path: Path, table: str, sql: str
) -> None:
    compiled = _mapping(tmp_path, HEAD.replace("public.claims", table) + BECAME + EMIT)
    with pytest.raises(MappingEvaluationError) as refused:
        _both(compiled, "u", None, DECIDED)
    assert f"ALTER TABLE {sql} REPLICA IDENTITY FULL (" in str(refused.value)


def test_the_check_sits_only_where_before_is_null_and_only_for_mappings_that_need_it(tmp_path: Path) -> None:
    source = _mapping(tmp_path / "became", HEAD + BECAME + EMIT).source
    lines = source.splitlines()
    checks = [number for number, line in enumerate(lines) if line.strip() == "if _op == 'u':"]
    assert len(checks) == 2  # once per entry point (Change, payload)
    for number in checks:
        assert lines[number - 1].strip() == "if _b is None:" and "raise _no_old_row()" in lines[number + 1]
    for folder, text in (
        ("guarded", HEAD + GUARDED + EMIT),
        ("after_only", HEAD + AFTER_ONLY + EMIT.replace(", before.claim_id", "")),
        ("no_updates", HEAD + BECAME.replace("update, ", "") + EMIT),
    ):
        compiled = _mapping(tmp_path / folder, text)
        assert "_no_old_row" not in compiled.source and compiled.analysis.old_row_reads == (), folder


def test_a_mapping_testing_is_null_before_handles_the_update_itself(tmp_path: Path) -> None:
    compiled = _mapping(tmp_path, HEAD + GUARDED + EMIT)
    assert _both(compiled, "u", None, DECIDED) == []
    assert len(_both(compiled, "u", {"claim_id": 7, "status": "OPEN"}, DECIDED)) == 1


def test_a_mapping_reading_only_after_is_unaffected(tmp_path: Path) -> None:
    compiled = _mapping(tmp_path, HEAD + AFTER_ONLY + EMIT.replace(", before.claim_id", ""))
    assert [e.value for e in _both(compiled, "u", None, DECIDED)] == [
        {"claim_id": 7, "operation": "u", "filed_on": None}
    ]


def test_before_read_only_by_fields_refuses_only_updates_the_condition_lets_through(tmp_path: Path) -> None:
    fields = EMIT.replace("operation: op", "operation: coalesce(before.status, 'none')")
    compiled = _mapping(tmp_path, HEAD + AFTER_ONLY + fields)
    assert _both(compiled, "u", None, {"claim_id": 7, "status": "OPEN"}) == []
    with pytest.raises(MappingEvaluationError, match=FIX):
        _both(compiled, "u", None, DECIDED)


# --- the offline tools run the same code: `mapping test` and `mapping run` -------------------------

runner = CliRunner()
UPDATE_WITHOUT_BEFORE = """tests:
  - name: an edit under REPLICA IDENTITY DEFAULT
    change:
      op: update
      after: {claim_id: 7, status: DECIDED}
"""


def test_mapping_test_reports_the_dead_letter_and_can_expect_it(tmp_path: Path) -> None:
    expecting_an_event = UPDATE_WITHOUT_BEFORE + "    expect: [{contains: {claim_id: 7}}]\n"
    _mapping(tmp_path, HEAD + BECAME + EMIT + expecting_an_event)
    failed = runner.invoke(app, ["mapping", "test", str(tmp_path / "m.yaml")])
    output = " ".join(failed.output.split())
    assert failed.exit_code == 1
    assert "FAIL an edit under REPLICA IDENTITY DEFAULT" in output and FIX in output
    (tmp_path / "m.yaml").write_text(
        HEAD + BECAME + EMIT + UPDATE_WITHOUT_BEFORE + "    expect_error: REPLICA IDENTITY FULL\n"
    )
    assert runner.invoke(app, ["mapping", "test", str(tmp_path / "m.yaml")]).exit_code == 0
    guarded = tmp_path / "guarded"
    _mapping(guarded, HEAD + GUARDED + EMIT + UPDATE_WITHOUT_BEFORE + "    expect: []\n")
    assert runner.invoke(app, ["mapping", "test", str(guarded / "m.yaml")]).exit_code == 0


@pytest.mark.parametrize(
    ("when", "events", "dead_letters"),
    [
        ("changed(after.status) and after.status in ['DECISION_MADE', 'CLOSED']", 0, 2),
        ("not is_null(before) and changed(after.status)", 0, 0),
        ("is_null(before) or changed(after.status)", 2, 0),
        ("after.status in ['DECISION_MADE', 'CLOSED'] and after.claim_id > 0", 2, 0),
    ],
    ids=["changed", "guarded, filtered", "guarded, published", "after only"],
)
def test_mapping_run_over_updates_without_their_old_row(
    tmp_path: Path, when: str, events: int, dead_letters: int
) -> None:
    folder = tmp_path / "valid"
    shutil.copytree(VALID, folder)
    mapping = folder / "claim_milestone_reached.yaml"
    head, _, rest = mapping.read_text().partition("\nwhen: changed(after.status) and ")
    mapping.write_text(f"{head}\nwhen: {when}\n" + rest.partition("\n")[2].split("tests:")[0])
    if "before" not in when:  # `previous_milestone` and the audit block read the old row too
        after_only = mapping.read_text().replace("before.status", "\"'none'\"")
        mapping.write_text(after_only.replace("became(after.status, 'CLOSED')", "after.status == 'CLOSED'"))
    recorded = folder / "tests" / "claim_milestone_reached" / "decision.jsonl"
    records = [orjson.loads(line) for line in recorded.read_text().splitlines()]
    for record in records:
        record["value"]["before"] = None
    without_before = tmp_path / "in.jsonl"
    without_before.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    out, dead = tmp_path / "out.jsonl", tmp_path / "dead.jsonl"
    result = runner.invoke(
        app, ["mapping", "run", "-m", str(mapping), "-i", str(without_before), "-o", str(out),
              "--dead-letter", str(dead)],
    )  # fmt: skip
    assert result.exit_code == (1 if dead_letters else 0), result.output
    assert f"{events} event(s), {dead_letters} dead letter(s)" in result.output
    if dead_letters:
        reasons = [orjson.loads(line)["reason"] for line in dead.read_text().splitlines()]
        assert all(FIX in reason and "public.claims" in reason for reason in reasons)
