"""Every broken fixture fails to load with the exact position and a recognisable message."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus.mapping import MappingError, MappingErrors, load_mapping

BROKEN = Path(__file__).parents[2] / "fixtures" / "mappings" / "broken"

CASES = [
    ("bad_on_value", 5, 14, "input should be 'insert', 'update', 'delete' or 'snapshot'"),
    ("bad_yaml", 7, 5, "invalid YAML: expected ',' or ']'"),
    ("bare_row", 12, 16, "'after' is a whole row"),
    ("comprehension_attempt", 6, 8, "comprehensions are not allowed"),
    ("dunder_escape", 6, 7, "access to attribute '__class__' is not allowed"),
    ("duplicate_key", 6, 1, "duplicate key 'version'"),
    ("duplicate_test_names", 17, 11, "duplicate test name 'same'"),
    ("fstring_attempt", 6, 7, "f-strings are not allowed"),
    ("getattr_call", 6, 7, "calling getattr() is not allowed"),
    ("import_attempt", 6, 7, "only functions of the mapping language can be called"),
    ("import_statement", 6, 7, "syntax error"),
    ("inconvertible_column_type", 11, 15, "a string value cannot go into a long field"),
    ("invalid_avro_schema", 8, 17, "invalid Avro schema: UnknownType: strng"),
    ("invalid_regex", 6, 29, "invalid regular expression"),
    ("key_field_not_in_schema", 9, 3, "key schema field 'claim_id' is not mapped and has no default"),
    ("lambda_attempt", 6, 9, "lambdas are not allowed"),
    ("literal_wrong_type", 11, 15, "a string value cannot go into a long field"),
    ("mapped_field_not_in_schema", 13, 5, "field 'operaton_kind' is not in the value schema"),
    ("mask_keep_not_literal", 12, 40, "mask() keep must be an integer literal"),
    ("method_call", 6, 7, "only functions of the mapping language can be called (no methods)"),
    ("missing_required_key", 1, 1, "missing required key 'description'"),
    ("missing_schema_file", 8, 17, "schema file not found: ../valid/schemas/claim_audti.avsc"),
    ("non_deterministic", 12, 20, "function now_ms() is not allowed"),
    ("not_a_mapping", 1, 1, "not a mapping file: its YAML document is a list"),
    ("pow_operator", 6, 7, "exponentiation (**) is not allowed"),
    ("regex_not_literal", 6, 29, "matches() needs a literal regular expression"),
    ("schema_field_unmapped", 10, 3, "value schema field 'operation' is not mapped and has no default"),
    ("subscript_escape", 6, 7, "subscripts are only allowed as before['column'] or after['column']"),
    ("syntax_error", 6, 7, "syntax error: invalid syntax"),
    ("test_expect_and_error", 14, 5, "a test needs exactly one of 'expect' (events) or 'expect_error'"),
    ("tuple_class_escape", 6, 7, "access to attribute '__subclasses__' is not allowed"),
    ("unknown_column_captured", 6, 15, "unknown column 'statuz' of after"),
    ("unknown_emit_key", 7, 3, "unknown key 'topc'"),
    ("unknown_function", 6, 7, "unknown function loweer()"),
    ("unknown_name", 6, 7, "unknown name 'status'"),
    ("unknown_source_field", 6, 7, "unknown source field 'tx'"),
    ("unknown_top_key", 6, 1, "unknown key 'descripton'"),
    ("walrus_attempt", 6, 8, "assignment expressions (:=) are not allowed"),
    ("wrong_arity", 6, 7, "lower() takes 1 argument(s), got 2"),
    ("wrong_type_version", 2, 10, "input should be a valid integer, got str 'one'"),
]

HINTS = {
    "unknown_top_key": "did you mean 'description'?",
    "unknown_emit_key": "did you mean 'topic'?",
    "unknown_function": "did you mean 'lower'?",
    "unknown_column_captured": "did you mean 'status'?",
    "missing_schema_file": "did you mean '../valid/schemas/claim_audit.avsc'?",
    "non_deterministic": "use source.ts_ms",
    "duplicate_key": "first defined on line 2",
    "mapped_field_not_in_schema": "did you mean 'operation'?",
}


def _first_error(name: str) -> MappingError:
    path = BROKEN / f"{name}.yaml"
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    error = caught.value
    return error.errors[0] if isinstance(error, MappingErrors) else error


@pytest.mark.parametrize(("name", "line", "column", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_broken_mapping_reports_position_and_message(
    name: str, line: int, column: int, fragment: str
) -> None:
    error = _first_error(name)
    expected_prefix = f"{BROKEN / name}.yaml:{line}:{column}: "
    assert str(error).startswith(expected_prefix), str(error)
    assert fragment in error.message
    if name in HINTS:
        assert error.hint is not None and HINTS[name] in error.hint


def test_every_broken_fixture_has_a_case() -> None:
    files = {path.stem for path in BROKEN.glob("*.yaml")}
    assert files == {case[0] for case in CASES}
    assert len(files) >= 30


def test_rendering_adds_an_excerpt_with_a_caret() -> None:
    rendered = _first_error("unknown_function").render()
    lines = rendered.splitlines()
    assert lines[0].endswith("when: unknown function loweer() (hint: did you mean 'lower'?)")
    marked = next(i for i, text in enumerate(lines) if text.startswith(" > "))
    assert lines[marked].endswith("when: loweer(after.status) == 'x'")
    assert lines[marked + 1].index("^") == lines[marked].index("loweer")


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(MappingErrors) as caught:
        load_mapping(BROKEN / "key_field_not_in_schema.yaml")
    messages = [e.message for e in caught.value.errors]
    assert any("is not mapped" in m for m in messages)
    assert any("field 'claim' is not in the key schema" in m for m in messages)
