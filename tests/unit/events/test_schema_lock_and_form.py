from __future__ import annotations

from pathlib import Path

import pytest
from fastavro.schema import parse_schema, to_parsing_canonical_form

from eventbus.errors import ConfigError
from eventbus.events.schema_form import canonical_form, fingerprint
from eventbus.events.schema_lock import SchemaLock, load_lock, save_lock

from .conftest import KEY_SCHEMA, VALUE_SCHEMA


def test_canonical_form_is_pcf_when_there_is_nothing_to_extend() -> None:
    plain = {
        "type": "record",
        "name": "K",
        "namespace": "a.b",
        "doc": "d",
        "fields": [
            {"name": "x", "type": {"type": "array", "items": "string"}},
            {"name": "y", "type": ["null", {"type": "enum", "name": "E", "symbols": ["A"]}]},
            {"name": "z", "type": "E"},
        ],
    }
    assert canonical_form(plain) == to_parsing_canonical_form(parse_schema(plain))


def test_fingerprint_ignores_layout_and_docs_but_not_meaning() -> None:
    text = '{ "doc": "x", "fields": [{"type": "long", "name": "ClaimId"}], "name": "DecisionLetterKey",'
    text += ' "namespace": "gov.va.eventbus", "type": "record" }'
    assert fingerprint(text) == fingerprint(KEY_SCHEMA)
    rescaled = {
        **VALUE_SCHEMA,
        "fields": [
            {**f, "type": {**f["type"], "scale": 3}} if f["name"] == "Amount" else f
            for f in VALUE_SCHEMA["fields"]
        ],
    }
    assert fingerprint(rescaled) != fingerprint(VALUE_SCHEMA)


def test_lock_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "schemas.lock.yaml"
    assert load_lock(path) == SchemaLock()
    lock = SchemaLock()
    lock.pin("t-value", 42, fingerprint(VALUE_SCHEMA))
    lock.pin("t-key", 41, fingerprint(KEY_SCHEMA))
    save_lock(lock, path)
    text = path.read_text()
    assert text.index("t-key") < text.index("t-value")  # sorted for stable diffs
    assert load_lock(path) == lock


def test_bad_lock_file_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "schemas.lock.yaml"
    path.write_text("version: 1\nsubjects:\n  t-key: {schema_id: 3, fingerprint: md5:abc}\n")
    with pytest.raises(
        ConfigError, match=r"schemas.lock.yaml: invalid schema lock file: subjects.t-key.fingerprint"
    ):
        load_lock(path)


def test_a_schema_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    from eventbus.events.schema_form import load_schema_file

    path = tmp_path / "v.avsc"
    path.write_bytes(b'{"type": "record",\n "name": "Stra\xdfe", "fields": []}')  # a Latin-1 export
    with pytest.raises(ConfigError, match=r"v\.avsc:2: file is not UTF-8 \(byte 0xdf at line 2\)"):
        load_schema_file(path)
