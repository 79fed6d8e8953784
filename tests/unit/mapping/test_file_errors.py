"""Mapping, tests and fixture files that are broken in ways YAML or JSON lets through: each is an
error at its `file:line[:col]` saying what to do, never a traceback or a test that passes silently."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventbus.cli.main import app
from eventbus.mapping import MappingError, MappingErrors, load_mapping
from eventbus.mapping.testing import TestResult, test_mapping_file

FIXTURES = Path(__file__).parents[2] / "fixtures" / "mappings"
SAMPLE = Path(__file__).parents[3] / "mappings" / "claims"
MAPPING_NAME = "claim_milestone_reached"


def _errors(path: Path) -> list[MappingError]:
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    error = caught.value
    return error.errors if isinstance(error, MappingErrors) else [error]


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    """A copy of the valid fixture mapping folder (table description, schemas, a jsonl case)."""
    shutil.copytree(FIXTURES / "valid", tmp_path / "valid")
    return tmp_path / "valid"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _failures(path: Path) -> list[TestResult]:
    return [result for result in test_mapping_file(path) if not result.passed]


# --- the YAML itself ----------------------------------------------------------------------------


def test_a_merge_key_is_refused_where_it_is_written(valid: Path) -> None:
    """ruamel keeps merged keys without positions: the loader raised a KeyError traceback."""
    path = valid / f"{MAPPING_NAME}.yaml"
    # The first emit block's key is anchored; the second (claim_audit) merges it.
    block = "    key: {claim_id: after.claim_id}\n    fields:\n      claim_id: after.claim_id\n"
    first_key = block + "      milestone"
    _edit(path, first_key, first_key.replace("key: {", "key: &key {"))
    audit_key = block + "      operation"
    _edit(path, audit_key, audit_key.replace("key: {claim_id: after.claim_id}", "key:\n      <<: *key"))
    [error] = _errors(path)
    line = path.read_text().splitlines().index("      <<: *key") + 1
    assert str(error).startswith(f"{path}:{line}:7: merge keys (<<) are not supported")
    assert error.hint is not None and "write the keys out" in error.hint


def test_a_file_that_is_not_utf8_names_the_byte_and_its_line(valid: Path) -> None:
    path = valid / f"{MAPPING_NAME}.yaml"
    path.write_bytes(path.read_bytes().replace(b"owner: claims-team", b"owner: \xe9quipe"))
    [error] = _errors(path)
    assert error.message == "file is not UTF-8 (byte 0xe9 at line 4)"
    assert (error.line, error.column) == (4, 8)
    assert "owner: " in error.render()  # the excerpt reads the file despite the byte


@pytest.mark.parametrize(
    ("text", "line", "found"),
    [
        ("# a list by mistake\n- name: a\n", 2, "its YAML document is a list"),
        ("just words\n", 1, "its YAML document is text"),
        ("", 1, "the file is empty"),
        ("# only a comment\n", 1, "the file is empty"),
    ],
)
def test_a_document_that_is_not_a_mapping_is_said_so_at_its_line(
    tmp_path: Path, text: str, line: int, found: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    [error] = _errors(path)
    assert str(error).startswith(f"{path}:{line}:1: not a mapping file: {found}")


@pytest.mark.parametrize(
    ("written", "kind"),
    [
        ("1", "a number"),
        ("true", "a boolean"),
        ("~", "null"),
        ("2024-01-01", "a date"),
        ("2024-01-01T10:00:00Z", "a timestamp"),
    ],
)
def test_a_key_that_is_not_text_is_refused_with_the_hint_to_quote_it(
    valid: Path, written: str, kind: str
) -> None:
    """Such a key became `str()` of YAML's value (`True`, `None`): a column or field the author
    never wrote, reported (if at all) under another name."""
    path = valid / f"{MAPPING_NAME}.yaml"
    _edit(path, "      previous_milestone: before.status\n", f"      {written}: before.status\n")
    [error] = _errors(path)
    assert str(error).startswith(f"{path}:16:7: key {written} is not text: YAML reads it as {kind}")
    assert error.hint == f'quote it: "{written}":'


def test_yaml_1_1_reads_on_as_a_boolean_key(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("%YAML 1.1\n---\nname: m\non: insert\n")
    [error] = _errors(path)
    assert str(error).startswith(f"{path}:4:1: key on is not text: YAML reads it as a boolean")
    path.write_text("%YAML 1.1\n---\non: insert\nyes: 1\n")  # both are True: a duplicate key
    [error] = _errors(path)
    assert str(error).startswith(f"{path}:4:1: duplicate key 'True'")
    assert error.hint == "YAML reads this key as a boolean or null, not text: quote the keys"


@pytest.mark.parametrize("value", ["2024-02-30", "2024-02-30T10:00:00Z", "2023-13-01"])
def test_an_impossible_date_is_placed_at_its_value(valid: Path, value: str) -> None:
    path = valid / f"{MAPPING_NAME}.yaml"
    _edit(path, "filed_on: 2024-01-15,", f"filed_on: {value},")
    [error] = _errors(path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if value in text)
    column = path.read_text().splitlines()[line - 1].index(value) + 1
    assert str(error).startswith(f"{path}:{line}:{column}: {value} is not a valid date or timestamp")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!env OWNER", "YAML tag !env is not supported"),
        ("!!python/object:os.system x", "YAML tag !!python/object:os.system is not supported"),
        ("!!omap [a: 1]", "YAML tag !!omap is not supported"),
        ("!!set {a, b}", "YAML tag !!set is not supported"),
        ("!!float many", "invalid value: could not convert string to float: 'many'"),
    ],
)
def test_a_tag_is_refused_at_its_value(valid: Path, value: str, message: str) -> None:
    """An ordered map crashed the loader (TypeError); other tags reached the models as ruamel's
    objects, or (on a mapping) passed with the tag dropped; a bad !!float was unplaced."""
    path = valid / f"{MAPPING_NAME}.yaml"
    _edit(path, "owner: claims-team", f"owner: {value}")
    [error] = _errors(path)
    assert str(error).startswith(f"{path}:4:8: {message}")


def test_an_explicit_str_tag_is_text(valid: Path) -> None:
    path = valid / f"{MAPPING_NAME}.yaml"
    _edit(path, "owner: claims-team", "owner: !!str 010")
    assert load_mapping(path).owner == "010"


# --- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wait", "message"),
    [
        (".inf", "a duration is a finite number"),
        (".nan", "a duration is a finite number"),
        ("-1", "a duration cannot be negative"),
        ("1e300", "a lookup wait is at most 7d"),
        ("30000d", "a lookup wait is at most 7d"),
        ("1" + "0" * 400, "a lookup wait is at most 7d"),  # an int beyond any float
        ("99999999999999999999999999999999999999999999999999" * 8 + "s", "a duration is a finite number"),
    ],
)
def test_a_lookup_wait_that_is_endless_negative_or_absurd_is_refused_at_its_line(
    tmp_path: Path, wait: str, message: str
) -> None:
    shutil.copytree(SAMPLE, tmp_path / "claims")
    path = tmp_path / "claims" / "decision_letter_available.yaml"
    _edit(path, "wait: 60s", f"wait: {wait}")
    [error] = _errors(path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "wait:" in text)
    assert str(error).startswith(f"{path}:{line}:")
    assert error.key_path is not None and error.key_path.endswith(".wait") and message in error.message


@pytest.mark.parametrize(
    ("retention", "message"),
    [("36501d", "a retention is at most 36500d (write 'forever' for no limit)"),
     ("9" * 400 + "d", "a duration is a finite number")],
)  # fmt: skip
def test_a_retention_beyond_a_century_or_endless_is_refused(
    valid: Path, retention: str, message: str
) -> None:
    path = valid / f"{MAPPING_NAME}.yaml"
    _edit(
        path,
        "  - topic: claim_audit\n",
        f"  - topic: claim_audit\n    topic_settings: {{retention: {retention}}}\n",
    )
    [error] = _errors(path)
    assert (
        error.line == _line_of(path, "topic_settings")
        and message in error.message
        and error.key_path == "emit[1].topic_settings.retention"
    )


# --- test data ------------------------------------------------------------------------------------


def test_an_unquoted_number_in_a_text_column_fails_its_test_at_the_value(valid: Path) -> None:
    """YAML reads `notes: 010` as the number 10: the test ran with an int where the service has text."""
    path = valid / f"{MAPPING_NAME}.yaml"
    _edit(
        path,
        "after: {claim_id: 1, status: UNDER_REVIEW, notes: b}",
        "after: {claim_id: 1, status: UNDER_REVIEW, notes: 010}",
    )
    [failure] = _failures(path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "notes: 010" in text)
    column = path.read_text().splitlines()[line - 1].index("010") + 1
    assert (failure.file, failure.line, failure.column) == (str(path), line, column)
    assert (
        "change.after.notes: 10 does not fit the string column notes (YAML reads it as a number"
        in failure.reason
    )
    assert "quote it" in failure.reason


def test_a_date_for_a_timestamp_column_and_an_impossible_quoted_date_fail_their_tests(valid: Path) -> None:
    path = valid / f"{MAPPING_NAME}.yaml"
    _edit(path, "status_changed_at: 2024-06-01T00:00:00Z", "status_changed_at: 2024-06-01")
    _edit(path, "after: {claim_id: 3, status: RECEIVED, status_changed_at: 2024-01-01T00:00:00Z}",
          "after: {claim_id: 3, status: RECEIVED, filed_on: '2024-02-30'}")  # fmt: skip
    failures = _failures(path)
    reasons = {failure.name: failure.reason for failure in failures}
    assert "needs the time too" in reasons["closing also emits the audit event"]
    assert "'2024-02-30' does not fit the date column filed_on" in reasons["snapshot reads produce nothing"]
    assert all(failure.column is not None for failure in failures)


def test_an_unquoted_code_in_a_given_row_fails_its_test_at_the_value(tmp_path: Path) -> None:
    """The sample quotes `claim_type_code: "010"`; unquoted, the looked-up row had the number 10."""
    shutil.copytree(SAMPLE, tmp_path / "claims")
    path = tmp_path / "claims" / "decision_letter_available.yaml"
    _edit(path, 'claim_id: 2003, claim_type_code: "010"', "claim_id: 2003, claim_type_code: 010")
    [failure] = _failures(path)
    line = _line_of(path, "claim_type_code: 010")
    assert (failure.line, failure.column) == (line, path.read_text().splitlines()[line - 1].index("010") + 1)
    assert failure.reason.startswith("test data: given.public.claims[0].claim_type_code: 10 does not fit")


# --- tests files --------------------------------------------------------------------------------


SUITE_TEST = """\
- name: from the suite
  change:
    op: u
    before: {claim_id: 1, status: UNDER_REVIEW}
    after: {claim_id: 1, status: UNDER_REVIEW}
  expect: []
"""


@pytest.mark.parametrize(
    ("expectation", "message"),
    [
        ("expect: [{contains: {}}]", "[0].expect[0].contains: an empty 'contains' checks nothing"),
        ("expect_error:", "[0].expect_error: 'expect_error' is empty"),
        ('expect_error: ""', "[0].expect_error: 'expect_error' is empty"),
        ("expect:", "[0].expect: 'expect' is empty"),
    ],
)
def test_an_expectation_that_checks_nothing_is_refused(valid: Path, expectation: str, message: str) -> None:
    """`contains: {}` matched any event and `expect_error: ""` any error: such tests always passed."""
    suite = valid / f"{MAPPING_NAME}.tests.yaml"
    suite.write_text(SUITE_TEST.replace("expect: []", expectation))
    [failure] = _failures(valid / f"{MAPPING_NAME}.yaml")
    assert (failure.file, failure.line) == (str(suite), 6) and failure.column is not None
    assert failure.reason.startswith(message), failure.reason
    inline = valid / f"{MAPPING_NAME}.yaml"
    _edit(inline, "    expect: []\n  - name: closing", f"    {expectation}\n  - name: closing")
    [error] = _errors(inline)
    test = _line_of(inline, "unrelated column change")
    line = inline.read_text().splitlines().index(f"    {expectation}", test) + 1
    assert error.line == line and error.message.startswith(message.split(": ", 1)[1])


def test_a_broken_tests_file_fails_only_its_own_tests(valid: Path, tmp_path: Path) -> None:
    """A YAML error in one `.tests.yaml` aborted `eventbus mapping test` for every other mapping."""
    shutil.copytree(SAMPLE, tmp_path / "claims")
    suite = valid / f"{MAPPING_NAME}.tests.yaml"
    suite.write_text(SUITE_TEST + "- name: [broken\n")
    [failure] = _failures(valid / f"{MAPPING_NAME}.yaml")
    assert failure.name == "tests file" and failure.file == str(suite) and failure.line == 8
    assert "invalid YAML" in failure.reason
    result = CliRunner().invoke(app, ["mapping", "test", str(tmp_path / "claims"), str(valid)])
    assert result.exit_code == 1
    assert "1 failed" in result.output and " 0 passed" not in result.output
    assert f"FAIL tests file [{suite}:8:" in result.output
    for problem, line in (("\xe9: x\n".encode("latin-1"), 1), (b"# tests\n\nname: not a list\n", 3)):
        suite.write_bytes(problem)
        [failure] = _failures(valid / f"{MAPPING_NAME}.yaml")
        assert failure.file == str(suite) and failure.line == line
        assert failure.reason.startswith(
            ("file is not UTF-8", "not a tests file: its YAML document is a mapping")
        )


def test_a_test_of_a_tests_file_is_placed_at_its_bad_key(valid: Path) -> None:
    suite = valid / f"{MAPPING_NAME}.tests.yaml"
    suite.write_text(
        SUITE_TEST + SUITE_TEST.replace("from the suite", "second").replace("op: u", "op: upsert")
    )
    [failure] = _failures(valid / f"{MAPPING_NAME}.yaml")
    assert (failure.line, failure.column) == (9, 9) and failure.reason.startswith(
        "[1].change.op: input should be"
    )


# --- fixtures (jsonl) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{oops", "not valid JSON"),
        ("[1, 2]", "expected an event (a JSON object with topic, key, value), got a list"),
    ],
)
def test_a_broken_line_of_an_expected_file_is_named_by_file_and_line(
    valid: Path, line: str, reason: str
) -> None:
    expected = valid / "tests" / MAPPING_NAME / "decision.expected.jsonl"
    expected.write_text(expected.read_text() + "\n" + line + "\n")
    [failure] = _failures(valid / f"{MAPPING_NAME}.yaml")
    assert (failure.file, failure.line) == (str(expected), 3) and failure.reason.startswith(reason)
    expected.write_bytes(b"\xff\n")
    [failure] = _failures(valid / f"{MAPPING_NAME}.yaml")
    assert (failure.file, failure.line, failure.reason) == (
        str(expected),
        1,
        "file is not UTF-8 (byte 0xff at line 1)",
    )


# --- mapping run ------------------------------------------------------------------------------------


def test_run_fails_on_a_dead_letter_and_names_each_input_by_its_line(valid: Path, tmp_path: Path) -> None:
    mapping = valid / f"{MAPPING_NAME}.yaml"
    good = (valid / "tests" / MAPPING_NAME / "decision.jsonl").read_text()
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text(good)
    second.write_text("\n{oops\n")
    dead = tmp_path / "dead.jsonl"
    dead.write_text("stale\n")
    args = [
        "mapping",
        "run",
        "-m",
        str(mapping),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--dead-letter",
        str(dead),
    ]
    result = CliRunner().invoke(app, [*args, "-i", str(first), "-i", str(second)])
    assert result.exit_code == 1, result.output
    assert f"dead letter at {second}:2: not valid JSON" in result.output
    assert '"line":2' in dead.read_text() and f'"input":"{second}"' in dead.read_text()
    result = CliRunner().invoke(app, [*args, "-i", str(first)])
    assert result.exit_code == 0, result.output
    assert dead.read_text() == ""  # written, empty: the last run's dead letters are not left behind
    second.write_bytes(b'{"a": "\xe9"}\n')
    result = CliRunner().invoke(app, [*args, "-i", str(second)])
    assert result.exit_code == 2 and "file is not UTF-8 (byte 0xe9 at line 1)" in result.output


@pytest.mark.parametrize(
    ("file", "key_path"),
    [("schemas/claim_audit.avsc", "emit[1].value_schema"), ("tables/public.claims.json", "source.table")],
)
def test_a_schema_or_table_description_that_is_not_utf8_is_said_so_at_its_reference(
    valid: Path, file: str, key_path: str
) -> None:
    """orjson said 'str is not valid UTF-8: surrogates not allowed: line 1 column 1', whatever the line."""
    (valid / file).write_bytes((valid / file).read_bytes().rstrip() + b"\n\xff\n")
    lines = (valid / file).read_bytes().count(b"\n")
    [error] = [e for e in _errors(valid / f"{MAPPING_NAME}.yaml") if e.key_path == key_path]
    assert f"file is not UTF-8 (byte 0xff at line {lines})" in error.message
