"""Mappings with lookups: validate errors with positions, chains, given rows, offline runs in commit order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.errors import MappingError, MappingErrors
from eventbus.mapping.testing import run_records, test_mapping_file
from tests.unit.contracts.conftest import copy_sample, edit

LETTER = "decision_letter_available.yaml"
KEY_LINE = "    key: {claim_id: after.claim_id}\n"


def _errors(path: Path) -> list[MappingError]:
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    error = caught.value
    return list(error.errors) if isinstance(error, MappingErrors) else [error]


def _line(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_key_of_the_wrong_type_is_an_error_at_the_expression(tmp_path: Path) -> None:
    mapping = copy_sample(tmp_path) / LETTER
    edit(mapping, KEY_LINE, "    key: {claim_id: after.status}\n")
    (error,) = _errors(mapping)
    assert (error.line, error.column) == (_line(mapping, "key: {claim_id: after.status}"), 21)
    assert error.key_path == "lookup.claim.key.claim_id"
    assert "key column 'claim_id' of public.claims is int, but this expression gives string" in error.message


def test_a_table_that_is_not_captured_is_an_error(tmp_path: Path) -> None:
    mapping = copy_sample(tmp_path) / LETTER
    edit(mapping, "    table: public.claims\n", "    table: public.veterans\n")
    errors = _errors(mapping)
    first = errors[0]
    assert first.key_path == "lookup.claim.table"
    assert first.line == _line(mapping, "table: public.veterans")
    assert "looked-up table public.veterans is not captured" in first.message
    assert "tables/public.veterans.json" in first.message
    assert "eventbus mapping tables --source claims" in (first.hint or "")
    edit(mapping, "    table: public.veterans\n", "    table: public.claimss\n")
    assert "did you mean 'public.claims'?" in (_errors(mapping)[0].hint or "")


def test_the_key_must_be_the_primary_key(tmp_path: Path) -> None:
    mapping = copy_sample(tmp_path) / LETTER
    edit(mapping, KEY_LINE, "    key: {veteran_participant_id: after.claim_id}\n")
    (error,) = _errors(mapping)
    assert error.key_path == "lookup.claim.key"
    assert (
        "must be the primary key (or declared key_columns) of public.claims: (claim_id), "
        "not (veteran_participant_id)" in error.message
    )
    assert "tables/public.claims.key.json" in (error.hint or "")


def test_the_key_of_a_keyless_table_is_its_declared_key_columns(tmp_path: Path) -> None:
    """A table without a primary key is captured keyed by the source's key_columns, which its
    captured key description holds: a lookup names those columns."""
    folder = copy_sample(tmp_path)
    key_path = folder / "tables" / "public.claims.key.json"
    key = orjson.loads(key_path.read_bytes())
    key["fields"].append({"type": "int64", "optional": False, "field": "veteran_participant_id"})
    key_path.write_bytes(orjson.dumps(key))
    mapping = folder / LETTER
    (error,) = _errors(mapping)
    assert (
        "must be the primary key (or declared key_columns) of public.claims: "
        "(claim_id, veteran_participant_id), not (claim_id)" in error.message
    )
    edit(mapping, KEY_LINE, "    key: {claim_id: after.claim_id, veteran_participant_id: 7}\n")
    (claim,) = compile_mapping(load_mapping(mapping)).lookups
    assert claim.key_columns == ("claim_id", "veteran_participant_id")


def test_a_cycle_of_lookups_is_an_error_at_each_lookup_in_it(tmp_path: Path) -> None:
    mapping = copy_sample(tmp_path) / LETTER
    edit(
        mapping,
        KEY_LINE,
        "    key: {claim_id: other.claim_id}\n"
        "  other:\n    table: public.claims\n    key: {claim_id: claim.claim_id}\n",
    )
    errors = _errors(mapping)
    assert {e.key_path for e in errors} == {"lookup.claim.key"}
    assert "lookups form a cycle: claim → other → claim" in errors[0].message
    assert errors[0].line == _line(mapping, "key: {claim_id: other.claim_id}")


def test_a_table_of_another_source_needs_consistency_latest(tmp_path: Path) -> None:
    mapping = copy_sample(tmp_path) / LETTER
    edit(mapping, "    table: public.claims\n", "    table: public.claims\n    connector: benefits\n")
    (error,) = _errors(mapping)
    assert error.key_path == "lookup.claim.connector"
    assert "two databases have no common commit order" in error.message
    edit(mapping, "    connector: benefits\n", "    connector: benefits\n    consistency: latest\n")
    assert load_mapping(mapping).lookup["claim"].consistency == "latest"


def test_unknown_columns_of_a_looked_up_row_and_bad_names(tmp_path: Path) -> None:
    mapping = copy_sample(tmp_path) / LETTER
    edit(mapping, "claim_type_code: claim.claim_type_code", "claim_type_code: claim.claim_typ_code")
    (error,) = _errors(mapping)
    assert "unknown column 'claim_typ_code' of claim" in error.message
    assert "did you mean 'claim_type_code'" in (error.hint or "")
    edit(mapping, "claim.claim_typ_code", "claim.claim_type_code")
    edit(mapping, "  claim:\n    table", "  upper:\n    table")
    assert any("'upper' cannot name a lookup" in e.message for e in _errors(mapping))


def test_given_rows_must_be_of_looked_up_tables(tmp_path: Path) -> None:
    mapping = copy_sample(tmp_path) / LETTER
    edit(
        mapping,
        "      public.claims:\n        - {claim_id: 2002,",
        "      public.claimz:\n        - {claim_id: 2002,",
    )
    (error,) = _errors(mapping)
    assert error.key_path == "tests[0].given.public.claimz"
    assert "did you mean 'public.claims'" in (error.hint or "")


def _veterans(folder: Path) -> None:
    """A third table, `public.veterans` (primary key participant_id), captured beside the sample."""
    tables = folder / "tables"
    claims = json.loads((tables / "public.claims.json").read_text())
    for field in claims["fields"]:
        if field["field"] in ("before", "after"):
            field["fields"] = [
                {"type": "int64", "optional": False, "field": "participant_id"},
                {"type": "string", "optional": False, "field": "station_code"},
            ]
    (tables / "public.veterans.json").write_text(json.dumps(claims))
    key = {"type": "struct", "fields": [{"type": "int64", "optional": False, "field": "participant_id"}]}
    (tables / "public.veterans.key.json").write_text(json.dumps(key))


def test_a_chain_of_lookups_runs_in_dependency_order(tmp_path: Path) -> None:
    folder = copy_sample(tmp_path)
    _veterans(folder)
    mapping = folder / LETTER
    # Written before the lookup it depends on: run order comes from the keys, not the file.
    edit(
        mapping,
        "lookup:\n",
        "lookup:\n  veteran:\n    table: public.veterans\n"
        '    key: {participant_id: claim.veteran_participant_id}\n    on_missing: "null"\n',
    )
    edit(mapping, "actor_station: coalesce(after.station_code, claim.station_code)",
         "actor_station: coalesce(after.station_code, veteran.station_code, claim.station_code)")  # fmt: skip
    edit(mapping, "station_code: \"301\"}\n    expect:\n      - contains: {claim_lifecycle_status: CONTINUED",
         "station_code: \"301\"}\n      public.veterans: [{participant_id: 7, station_code: \"999\"}]\n"
         "    expect:\n      - contains: {claim_lifecycle_status: CONTINUED")  # fmt: skip
    edit(mapping, 'actor_station: "301"}', 'actor_station: "999"}')
    compiled = compile_mapping(load_mapping(mapping))
    assert [plan.name for plan in compiled.lookups] == ["claim", "veteran"]
    results = test_mapping_file(mapping)
    assert [r.headline() for r in results if not r.passed] == []
    assert len(results) == 7  # six inline tests and the recorded story (tests/decision_letter_available)


def test_is_null_of_a_lookup_in_the_condition(tmp_path: Path) -> None:
    """`not is_null(lookup)` in the top-level `when` (a lookup with `on_missing: null`): the claim
    must exist for an event, and a missing one filters the change instead of dead-lettering it."""
    mapping = copy_sample(tmp_path) / LETTER
    edit(mapping, "    on_missing: dead_letter\n", '    on_missing: "null"\n')
    edit(mapping, "when: >-\n  after.status in", "when: >-\n  not is_null(claim) and after.status in")
    edit(mapping, '    expect_error: "lookup claim: no row of public.claims"', "    expect: []")
    results = test_mapping_file(mapping)
    assert [r.headline() for r in results if not r.passed] == []
    assert len(results) == 7  # six inline tests (the last one now expects no event) and the story


# --- offline runs over recorded changes of several tables -----------------------------------------


def _record(folder: Path, table: str, op: str, after: dict[str, Any] | None, *, commit: int, lsn: int,
            ts_ms: int, before: dict[str, Any] | None = None) -> str:  # fmt: skip
    schema = json.loads((folder / "tables" / f"{table}.json").read_text())
    payload = {
        "before": before, "after": after, "op": op, "ts_ms": ts_ms, "transaction": None,
        "source": {"version": "3.6.1.Final", "connector": "postgresql", "name": "staging.claims",
                   "ts_ms": ts_ms, "snapshot": "false", "db": "claims", "sequence": f'["{commit}","{lsn}"]',
                   "schema": "public", "table": table.split(".")[1], "txId": commit, "lsn": lsn,
                   "xmin": None},
    }  # fmt: skip
    return orjson.dumps({"schema": schema, "payload": payload}).decode()


def _claim(claim_id: int, code: str, **extra: Any) -> dict[str, Any]:
    return {"claim_id": claim_id, "claim_type_code": code, "benefit_type": "compensation", "status": "X",
            "status_changed_at": 0, "claimant_participant_id": 5, "veteran_participant_id": 5,
            "station_code": "301", "amount_claimed": None, "date_filed": 20000, "date_closed": None,
            "notes": None, "updated_at": "2026-01-01T00:00:00Z"} | extra  # fmt: skip


def _status(lifecycle_id: int, claim_id: int, status: str = "AUTHORIZED") -> dict[str, Any]:
    return {"lifecycle_id": lifecycle_id, "claim_id": claim_id, "status": status,
            "changed_at": 1_770_000_000_000_000, "station_code": None}  # fmt: skip


def test_mapping_run_replays_several_tables_in_commit_order(tmp_path: Path) -> None:
    folder = copy_sample(tmp_path)
    compiled = compile_mapping(load_mapping(folder / LETTER))
    lifecycle, claims = "public.claim_lifecycle_status", "public.claims"
    claim_lines = [
        _record(folder, claims, "c", _claim(1, "010"), commit=100, lsn=101, ts_ms=1_000),  # earlier txn
        _record(folder, claims, "c", _claim(2, "020"), commit=200, lsn=201, ts_ms=2_000),  # same txn
        # claim 1 changes its type after the status row: the event keeps the old type
        _record(folder, claims, "u", _claim(1, "400"), commit=300, lsn=301, ts_ms=3_000),
        # claim 3 arrives after its status row, within the wait (60 s of source time)
        _record(folder, claims, "c", _claim(3, "110"), commit=500, lsn=501, ts_ms=30_000),
        # claim 4 arrives too late
        _record(folder, claims, "c", _claim(4, "110"), commit=600, lsn=601, ts_ms=200_000),
    ]
    status_lines = [
        _record(folder, lifecycle, "c", _status(10, 2), commit=200, lsn=202, ts_ms=2_000),
        _record(folder, lifecycle, "c", _status(11, 1), commit=250, lsn=251, ts_ms=2_500),
        _record(folder, lifecycle, "c", _status(12, 3), commit=400, lsn=401, ts_ms=4_000),
        _record(folder, lifecycle, "c", _status(13, 4), commit=450, lsn=451, ts_ms=4_500),
    ]
    # The status file first: order in the input does not matter, commit positions do.
    outcome = run_records(compiled, [*status_lines, *claim_lines])
    values = [(e["value"]["claim_id"], e["value"]["claim_type_code"]) for e in outcome.events]
    assert values == [(2, "020"), (1, "010"), (3, "110")]
    assert [d["line"] for d in outcome.dead_letters] == [4]  # claim 4: not within the wait
    assert "lookup claim: no row of public.claims" in outcome.dead_letters[0]["reason"]


@pytest.mark.parametrize("schemas", [True, False], ids=["with schemas", "schemaless"])
def test_mapping_run_converts_looked_up_columns_as_the_service_does(tmp_path: Path, schemas: bool) -> None:
    """A looked-up date column is a `date` offline too (it was the raw day count, so comparing it
    failed), from the record's schema or, for schemaless records, from the table's description."""
    folder = copy_sample(tmp_path)
    edit(folder / LETTER, "when: >-\n", "when: >-\n  claim.date_filed >= date('2024-01-01') and\n")
    compiled = compile_mapping(load_mapping(folder / LETTER))
    lifecycle, claims = "public.claim_lifecycle_status", "public.claims"
    lines = [
        _record(folder, claims, "c", _claim(1, "010", date_filed=20000), commit=100, lsn=101, ts_ms=1_000),
        _record(folder, claims, "c", _claim(2, "010", date_filed=19000), commit=110, lsn=111, ts_ms=1_100),
        _record(folder, lifecycle, "c", _status(10, 1), commit=200, lsn=201, ts_ms=2_000),  # 2024-10-04
        _record(folder, lifecycle, "c", _status(11, 2), commit=210, lsn=211, ts_ms=2_100),  # 2022-01-08
    ]
    if not schemas:
        lines = [orjson.dumps(orjson.loads(line)["payload"]).decode() for line in lines]
    outcome = run_records(compiled, lines)
    assert outcome.dead_letters == []
    assert [e["value"]["claim_id"] for e in outcome.events] == [1]


def test_offline_tests_and_runs_encode_events_as_the_service_does(tmp_path: Path) -> None:
    """A value its Avro schema cannot hold (here an integer beyond 64 bits into a long) passed
    `mapping test` and `mapping run` (or crashed writing its output) while the service dead-letters it:
    both now encode every event, and say why it does not fit without quoting the value."""
    folder = copy_sample(tmp_path)
    mapping = folder / LETTER
    wide = "    claim_id: after.claim_id * 9000000000000000000\n    claim_type_code"  # beyond 64 bits
    edit(mapping, "    claim_id: after.claim_id\n    claim_type_code", wide)
    results = test_mapping_file(mapping)
    failed = [r for r in results if not r.passed]
    assert [r.name for r in failed][:2] == [
        "authorized claim of the Veteran",
        "continued at authorization also makes a letter; the claim's station when the row has none",
    ]
    reason = failed[0].reason
    assert reason.startswith("serialization error (the service would dead-letter it):")
    assert "field claim_id: expected long, got a value of type int beyond 64 bits" in reason
    assert "2002" not in reason  # the value itself stays out
    story = (folder / "tests" / "decision_letter_available" / "story.jsonl").read_text().splitlines()
    outcome = run_records(compile_mapping(load_mapping(mapping)), story)
    assert outcome.events == [] and outcome.dead_letters
    assert all("beyond 64 bits" in d["reason"] for d in outcome.dead_letters)


MILESTONE = "claim_milestone_reached.yaml"


def test_inline_test_rows_are_the_values_the_service_decodes(tmp_path: Path) -> None:
    """Test rows are written as YAML gives them (decimals and dates as text); with the table's
    description they become what the service's decoder gives, so a condition on a numeric or a date
    column behaves offline as in production (it compared text with a number before: TypeError)."""
    folder = copy_sample(tmp_path)
    mapping = folder / MILESTONE
    condition = "after.amount_claimed > 100 and after.date_filed >= date('2026-01-01') and"
    edit(mapping, "when: >-\n", f"when: >-\n  {condition}\n")
    edit(mapping, 'station_code: "317"}\n    expect:\n      - key: {claim_id: 1001}',
         'station_code: "317", amount_claimed: "150.00", date_filed: "2026-01-02"}\n'
         '    expect:\n      - key: {claim_id: 1001}')  # fmt: skip
    results = test_mapping_file(mapping)
    assert results[0].name == "a new claim is received" and results[0].passed, results[0].headline()

    edit(mapping, 'amount_claimed: "150.00"', 'amount_claimed: "150,00"')
    first = test_mapping_file(mapping)[0]
    assert not first.passed
    assert first.reason == (
        "test data: change.after.amount_claimed: '150,00' does not fit the decimal column amount_claimed "
        '(a decimal is written as text, e.g. "1234.50")'
    )


def test_given_rows_are_the_values_the_service_decodes(tmp_path: Path) -> None:
    mapping = copy_sample(tmp_path) / LETTER
    edit(mapping, "when: >-\n", "when: >-\n  claim.date_filed >= date('2026-01-01') and\n")
    edit(mapping, "veteran_participant_id: 600000001, benefit_type: compensation, station_code: \"301\"}",
         "veteran_participant_id: 600000001, benefit_type: compensation, station_code: \"301\",\n"
         "           date_filed: \"2026-01-02\"}")  # fmt: skip
    first = test_mapping_file(mapping)[0]
    assert first.name == "authorized claim of the Veteran" and first.passed, first.headline()


def test_looked_up_columns_get_the_type_checks_of_the_row_columns(tmp_path: Path) -> None:
    """A looked-up column goes into a field under the same checks as `after.x` (they were skipped):
    here a nullable column into a non-null field; and with `on_missing: null` every looked-up
    column is null when no row is found, unless `when: not is_null(<lookup>)` lets only found rows
    through."""
    mapping = copy_sample(tmp_path) / LETTER
    edit(mapping, "program_type_code: upper(claim.benefit_type)", "program_type_code: claim.notes")
    (error,) = _errors(mapping)
    assert error.key_path == "emit[0].fields.program_type_code"
    assert "column 'notes' is nullable and the string field is not" in error.message

    mapping = copy_sample(tmp_path / "null") / LETTER
    edit(mapping, "    on_missing: dead_letter\n", '    on_missing: "null"\n')
    # (the sample's condition compares claim_type_code and the participant ids: those are proven there)
    edit(mapping, "program_type_code: upper(claim.benefit_type)", "program_type_code: claim.benefit_type")
    (error,) = _errors(mapping)
    assert error.key_path == "emit[0].fields.program_type_code"
    assert error.message.startswith(
        "claim.benefit_type is null when lookup claim finds no row (on_missing: null), and the string "
        "field is not nullable"
    )
    edit(mapping, "when: >-\n", "when: >-\n  not is_null(claim) and\n")
    assert compile_mapping(load_mapping(mapping)).spec.name == "decision_letter_available"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("claim_id: str(after.claim_id)", "key column 'claim_id' of public.claims is int, but this "
         "expression gives string"),
        ("claim_id: decimal(after.claim_id)", None),  # integers and decimals meet by their number
        ("claim_id: 2002", None),  # a constant integer is a key value too
    ],
)  # fmt: skip
def test_lookup_key_values_match_the_key_columns_text(tmp_path: Path, key: str, message: str | None) -> None:
    mapping = copy_sample(tmp_path) / LETTER
    edit(mapping, KEY_LINE, f"    key: {{{key}}}\n")
    if message is None:
        compiled = compile_mapping(load_mapping(mapping))
        assert key != "claim_id: 2002" or compiled.lookups[0].key[0].value == 2002
        return
    (error,) = _errors(mapping)
    assert error.key_path == "lookup.claim.key.claim_id" and message in error.message
    assert error.hint == "convert it: int(...)"


def test_a_failing_test_shows_expected_and_actual_alike(tmp_path: Path) -> None:
    """Both sides of a diff in one form (times as ISO-8601, not a datetime against epoch millis), the
    expected events listed when the count differs, and the expected error text when it differs."""
    mapping = copy_sample(tmp_path) / MILESTONE
    edit(mapping, "milestone_at: 2026-01-05T08:00:00, veteran", "milestone_at: 2026-01-05T08:00:01, veteran")
    extra = "      - contains: {milestone: GATHERING_EVIDENCE}\n"
    edit(mapping, "    expect:\n      - contains: {milestone: DECISION_MADE",
         f"    expect:\n{extra}      - contains: {{milestone: DECISION_MADE")  # fmt: skip
    results = {r.name: r for r in test_mapping_file(mapping)}
    received = results["a new claim is received"]
    assert received.diff == [
        "  value.milestone_at: expected 2026-01-05T08:00:01.000Z, got 2026-01-05T08:00:00.000Z"
    ]
    decision = results["decision made"]
    assert decision.diff[0] == "  expected 2 event(s), got 1"
    assert decision.diff[1].startswith('  expected: {"contains":{"milestone":"GATHERING_EVIDENCE"}}')
    assert decision.diff[3].startswith('  got:      {"topic":"claim_milestone_reached","value":{')
