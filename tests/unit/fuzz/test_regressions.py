"""Regression tests for what the fuzzer found: hostile records that escaped `Processor.handle` as
exceptions (a crash loop on one poison record stops every partition behind it) or became wrong events.
Each is now a dead letter with a reason that says what is wrong."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest

from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.errors import DecodeError
from eventbus.service import dead_letter as dl
from tests.unit.fuzz.harness import DLQ, Harness, Seed, captured_seeds, sample_harness


@pytest.fixture(scope="module")
def harness() -> Harness:
    return sample_harness("mock://fuzz-regressions")


@pytest.fixture(scope="module")
def update(harness: Harness) -> Seed:
    """A real status update that the sample mappings turn into a curated event."""
    return next(
        s for s in captured_seeds()
        if s.value and b'"op":"u"' in s.value and harness.check(s.topic, s.key, s.value) == "emitted"
    )  # fmt: skip


def _edited(seed: Seed, edit: Any) -> bytes:
    assert seed.value is not None
    document = orjson.loads(seed.value)
    edit(document)
    return orjson.dumps(document)


def _dead_letter(harness: Harness, seed: Seed, value: bytes) -> dict[str, str]:
    """The (first) dead letter of a record; several mappings failing on it write one each."""
    assert harness.check(seed.topic, seed.key, value) == "dead_lettered"
    records = [p for p in harness.produced if p[0] == DLQ]
    assert records
    return {k: v.decode() for k, v in records[0][3].items()}


def test_the_unedited_seed_is_an_event(harness: Harness, update: Seed) -> None:
    assert harness.check(update.topic, update.key, update.value) == "emitted"


@pytest.mark.parametrize(
    ("field", "junk", "message"),
    [
        ("ts_ms", "AxY=", "source.ts_ms must be an integer or null, not str"),  # crashed building ce_time
        ("lsn", "0/16B3748", "source.lsn must be an integer or null, not str"),  # crashed in dedup
        ("txId", [1], "source.txId must be an integer or null, not list"),  # crashed in the event id
        ("snapshot", ["false"], "source.snapshot must be a string or null, not list"),  # unhashable
        ("ts_ms", 1.5e308, "source.ts_ms must be an integer or null, not float"),  # OverflowError
    ],
)
def test_source_fields_of_the_wrong_type_are_decode_errors(
    harness: Harness, update: Seed, field: str, junk: Any, message: str
) -> None:
    value = _edited(update, lambda d: d["payload"]["source"].__setitem__(field, junk))
    headers = _dead_letter(harness, update, value)
    assert headers[dl.KIND] == "decode"
    assert message in headers[dl.REASON]


def test_an_envelope_field_named_by_a_list_is_ignored_not_a_crash(harness: Harness, update: Seed) -> None:
    value = _edited(update, lambda d: d["schema"]["fields"][0].__setitem__("field", ["before"]))
    ConnectJsonDecoder().decode(value, update.key, update.topic)  # was TypeError: unhashable type: 'list'
    harness.check(update.topic, update.key, value)  # any of the three outcomes


def test_a_logical_type_name_that_is_not_text_is_a_decode_error(harness: Harness, update: Seed) -> None:
    def edit(document: dict[str, Any]) -> None:
        after = next(f for f in document["schema"]["fields"] if f["field"] == "after")
        after["fields"][0]["name"] = {"x": 1}

    value = _edited(update, edit)
    with pytest.raises(DecodeError, match="'name' must be a string"):  # was TypeError: unhashable
        ConnectJsonDecoder().decode(value, update.key, update.topic)
    assert _dead_letter(harness, update, value)[dl.KIND] == "decode"


def test_a_record_name_that_is_not_text_is_a_decode_error_not_an_attribute_error(update: Seed) -> None:
    def edit(document: dict[str, Any]) -> None:  # the row struct's record name, read for the table name
        next(f for f in document["schema"]["fields"] if f["field"] == "after")["name"] = 1.5

    value = _edited(update, edit)
    with contextlib.suppress(DecodeError):  # decoded or refused; an AttributeError was not fine
        ConnectJsonDecoder().decode(value, update.key, update.topic)


def test_a_value_without_its_schema_is_a_dead_letter_not_a_wrong_event(
    harness: Harness, update: Seed
) -> None:
    # Read as schemaless, epoch micros went out as millis: a valid Avro event 1000 times in the future.
    value = _edited(update, lambda d: d.__setitem__("schema", None))
    headers = _dead_letter(harness, update, value)
    assert headers[dl.KIND] == "decode"
    assert "null schema" in headers[dl.REASON]


def test_a_table_version_without_columns_is_a_mapping_dead_letter(harness: Harness, update: Seed) -> None:
    def edit(document: dict[str, Any]) -> None:  # an envelope schema whose row structs are gone
        document["schema"]["fields"] = [
            f for f in document["schema"]["fields"] if f["field"] not in ("before", "after")
        ]

    headers = _dead_letter(harness, update, _edited(update, edit))
    assert headers[dl.KIND] == "mapping"  # was UnknownColumnError escaping the processor
    assert "has no column" in headers[dl.REASON]
