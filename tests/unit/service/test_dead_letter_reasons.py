"""Dead-letter reasons name the field, column, type and rule; a value only of a column marked public.

The record carries an `ssn` column, personal data (`sensitivity` marks the field publishing its hash
`pii`). Whatever fails on it — an expression, the Avro coercion of a field, the conversion of its raw
Debezium value, or an exception nobody expected — the `eventbus_dlq_reason` header names what failed
and never quotes the number. A column the mapping publishes as it is in a field marked `public`
(`status`) is shown. The mapping author's offline tools run on test data and do show the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from eventbus.debezium import logical_types
from eventbus.errors import NO_VALUE
from eventbus.events.avro import AvroEventSerializer, RegistryMode, connect_registry
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.analysis import analyse
from eventbus.mapping.avro import AvroValueError
from eventbus.mapping.functions import ExpressionRuntimeError
from eventbus.mapping.reasons import failure_factory, public_columns
from eventbus.mapping.testing import run_records
from eventbus.service import dead_letter as dl
from eventbus.service.loading import load_mapping_set
from eventbus.service.metrics import Tally
from eventbus.service.partitions import PartitionState
from eventbus.service.processor import Processor
from eventbus_dev.samples import SampleRecord, generate_records
from tests.unit.contracts.conftest import copy_sample, edit

SSN = "123-45-6789"
SOURCE = "pii"
TOPIC = f"staging.{SOURCE}.public.claims"

MAPPING = """\
name: claim_probe
version: 2
description: A claim with a probe field that fails on purpose.
sensitivity: {{claim_id: internal, ssn: pii, status: {status}, probe: internal}}
source: {{connector: {source}, table: public.claims}}
on: [insert, update]
emit:
  topic: probes
  key_schema: schemas/key.avsc
  value_schema: schemas/probe.avsc
  key: {{claim_id: after.id}}
  fields:
    claim_id: after.id
    ssn: hash(after.ssn)
    status: after.status
    probe: {probe}
"""
KEY_SCHEMA = {"type": "record", "name": "Key", "fields": [{"name": "claim_id", "type": "long"}]}
PROBE_SCHEMA = {
    "type": "record",
    "name": "Probe",
    "fields": [
        {"name": "claim_id", "type": "long"},
        {"name": "ssn", "type": "string"},
        {"name": "status", "type": "string"},
        {"name": "probe", "type": ["null", "long"]},
    ],
}
TEXT = {"type": "string", "optional": True}
# An SSN kept as numeric(9,0): Connect sends the unscaled number as base64 bytes
NUMERIC = {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
           "version": 1, "parameters": {"scale": "0"}}  # fmt: skip


def _write(folder: Path, probe: str, *, status: str = "internal") -> Path:
    (folder / "schemas").mkdir(parents=True)
    (folder / "schemas" / "key.avsc").write_text(json.dumps(KEY_SCHEMA))
    (folder / "schemas" / "probe.avsc").write_text(json.dumps(PROBE_SCHEMA))
    (folder / "probe.yaml").write_text(MAPPING.format(source=SOURCE, probe=probe, status=status))
    return folder


def _record(column: dict[str, Any], ssn: Any = SSN, **after: Any) -> SampleRecord:
    """An insert of the sample table with an `ssn` column of Connect schema `column` (raw value `ssn`)."""
    record = next(r for r in generate_records(5, seed=3, topic_prefix=f"staging.{SOURCE}") if r.op == "c")
    document = orjson.loads(record.value)
    for row in document["schema"]["fields"][:2]:  # before, after
        row["fields"].append({**column, "field": "ssn"})
    document["payload"]["after"].update(ssn=ssn, **after)
    record.value = orjson.dumps(document)
    return record


class Produced(list[tuple[str, dict[str, bytes]]]):
    def __call__(self, topic: str, value: bytes | None, key: bytes | None, headers: Any = None) -> None:
        self.append((topic, dict(headers or [])))


def _dead_letter_reason(folder: Path, record: SampleRecord, serializer: Any = None) -> str:
    """Run one record through the service's processor; the reason of its one dead letter."""
    mappings = load_mapping_set(folder)
    if serializer is None:
        serializer = AvroEventSerializer.from_registry(
            connect_registry("mock://reasons"), mappings.topic_schemas, mode=RegistryMode.AUTO_REGISTER
        )
    produced = Produced()
    tally = Tally(m.spec.name for m in mappings.mappings)
    processor = Processor(mappings, serializer, produced, dead_letter_topic="dlq", group="g", tally=tally)
    processor.handle(record.value, record.key, None, TOPIC, 0, 7, processor.routes[TOPIC],
                     PartitionState(None, None))  # fmt: skip
    [(topic, headers)] = produced
    assert topic == "dlq" and tally.dead_lettered == 1
    assert record.value is not None and SSN.encode() in record.value  # the record itself keeps it
    return headers[dl.REASON].decode()


def _offline_reason(folder: Path, record: SampleRecord) -> str:
    """The same record through `eventbus mapping run` (the author's tool, on test data)."""
    outcome = run_records(compile_mapping(load_mapping(folder / "probe.yaml")), [record.value])
    [dead] = outcome.dead_letters
    return str(dead["reason"])


@pytest.mark.parametrize(
    ("probe", "column", "raw", "expected"),
    [
        pytest.param(
            "int(after.ssn)", TEXT, SSN,
            "mapping claim_probe v2, emit[0], fields.probe: int() cannot convert text that is not an integer",
            id="expression",
        ),
        pytest.param(
            "after.ssn", TEXT, SSN,
            "mapping claim_probe v2, emit[0], fields.probe: a str value does not fit Avro long",
            id="avro-coercion",
        ),
        pytest.param(
            "1", NUMERIC, SSN,
            "mapping claim_probe v2, reading columns: column 'public.claims.ssn' "
            "(bytes org.apache.kafka.connect.data.Decimal): cannot convert the str value: binascii.Error",
            id="logical-type",
        ),
    ],
)  # fmt: skip
def test_a_personal_value_never_reaches_the_reason(
    tmp_path: Path, probe: str, column: dict[str, Any], raw: Any, expected: str
) -> None:
    folder = _write(tmp_path, probe)
    record = _record(column, raw)
    reason = _dead_letter_reason(folder, record)
    assert reason == expected
    assert SSN not in reason and SSN.replace("-", "") not in reason
    # Offline, on test data, the author sees the value that failed
    assert _offline_reason(folder, record) == f"{expected} (value: {SSN!r})"


def test_an_unexpected_exception_is_named_by_its_type_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A converter with a bug: Python's own message quotes the value
    # ("invalid literal for int() with base 10: '123-45-6789'")
    def buggy(col: Any, opts: Any, column: str) -> Callable[[Any], Any]:
        return lambda value: int(value)

    monkeypatch.setitem(logical_types.LOGICAL_FACTORIES, "test.BuggySsn", buggy)
    folder = _write(tmp_path, "1")
    record = _record({**TEXT, "name": "test.BuggySsn"})
    reason = _dead_letter_reason(folder, record)
    assert reason == "mapping claim_probe v2, reading columns: unexpected ValueError"
    offline = _offline_reason(folder, record)
    assert offline == f"{reason} (ValueError: invalid literal for int() with base 10: {SSN!r})"


def test_an_unexpected_exception_outside_the_mapping_names_its_type_and_place(tmp_path: Path) -> None:
    class BuggySerializer:
        def serialize(self, event: Any) -> Any:
            return {}[event.value["status"]]  # KeyError('Authorized'): quotes the value

    folder = _write(tmp_path, "1", status="internal")
    record = _record(TEXT)
    reason = _dead_letter_reason(folder, record, BuggySerializer())
    assert reason.startswith("unexpected KeyError at test_dead_letter_reasons.py:")
    assert reason.endswith("(serialize)")
    assert orjson.loads(record.value)["payload"]["after"]["status"] not in reason


def test_a_column_published_in_a_public_field_shows_its_value(tmp_path: Path) -> None:
    folder = _write(tmp_path, "int(after.status)", status="public")
    record = _record(TEXT, status="Under review")
    reason = _dead_letter_reason(folder, record)
    assert reason == (
        "mapping claim_probe v2, emit[0], fields.probe: int() cannot convert text that is not an "
        "integer (value: 'Under review')"
    )
    assert _offline_reason(folder, record) == reason  # shown once


def test_a_public_column_shows_its_value_in_a_conversion_error(tmp_path: Path) -> None:
    folder = _write(tmp_path, "1", status="public")
    record = _record(TEXT)
    document = orjson.loads(record.value)
    for row in document["schema"]["fields"][:2]:  # status with a UUID schema, and text that is none
        next(f for f in row["fields"] if f["field"] == "status")["name"] = "io.debezium.data.Uuid"
    document["payload"]["after"]["status"] = "Under review"
    record.value = orjson.dumps(document)
    reason = _dead_letter_reason(folder, record)
    assert reason == (
        "mapping claim_probe v2, reading columns: column 'public.claims.status' "
        "(string io.debezium.data.Uuid): cannot convert the str value: ValueError (value: 'Under review')"
    )


def test_a_value_mixing_public_and_personal_columns_is_not_shown(tmp_path: Path) -> None:
    folder = _write(tmp_path, "int(concat(after.status, after.ssn))", status="public")
    reason = _dead_letter_reason(folder, _record(TEXT))
    assert reason.endswith("int() cannot convert text that is not an integer")
    assert SSN not in reason


def test_only_a_column_published_as_it_is_in_a_public_field_is_public(tmp_path: Path) -> None:
    folder = _write(tmp_path, "1", status="public")
    text = (folder / "probe.yaml").read_text()
    # a public field that publishes a *function* of a column does not make the column public
    text = text.replace("ssn: pii", "ssn: public").replace("probe: internal", "probe: public")
    (folder / "probe.yaml").write_text(text.replace("probe: 1", "probe: length(before.claim_number)"))
    spec = load_mapping(folder / "probe.yaml")
    assert public_columns(spec, analyse(spec)) == {"status"}


def test_the_failure_factory_decides_per_position(tmp_path: Path) -> None:
    spec = load_mapping(_write(tmp_path, "int(after.ssn)", status="public") / "probe.yaml")
    positions = [(None, "reading columns"), (0, "fields.probe"), (0, "fields.status"), (0, "event")]
    fail = failure_factory(spec, analyse(spec), positions)
    probe = fail(1, ExpressionRuntimeError("int() cannot convert text that is not an integer", SSN))
    assert (
        str(probe)
        == "mapping claim_probe v2, emit[0], fields.probe: int() cannot convert text that is not an integer"
    )
    assert probe.with_data() == f"{probe} (value: {SSN!r})"
    status = fail(2, AvroValueError("a str value does not fit Avro long", "Open"))
    assert str(status).endswith("a str value does not fit Avro long (value: 'Open')")  # a public column
    key = fail(3, ExpressionRuntimeError("cannot turn dict into text", {"id": 1}))  # the key is not public
    assert str(key) == "mapping claim_probe v2, emit[0], event: cannot turn dict into text"
    # Python's own message may quote the value: the reason names the type; authors see the message
    error = fail(1, ValueError(f"invalid literal for int() with base 10: {SSN!r}"))
    assert str(error) == "mapping claim_probe v2, emit[0], fields.probe: unexpected ValueError"
    assert error.value is NO_VALUE and SSN in error.with_data()


def test_columns_of_looked_up_rows_are_never_public(tmp_path: Path) -> None:
    mapping = copy_sample(tmp_path) / "decision_letter_available.yaml"
    edit(
        mapping,
        "  claim_id: internal\n",
        "  claim_id: public\n  claim_type_code: public\n  claim_lifecycle_status: public\n",
    )
    spec = load_mapping(mapping)
    analysis = analyse(spec)
    # claim_type_code publishes claim.claim_type_code, a column of the looked-up claims row
    assert public_columns(spec, analysis) == {"claim_id", "status"}
    positions = [
        (None, "reading columns"),
        (None, "lookup.claim"),
        (None, "when"),
        (0, "fields.claim_type_code"),
    ]
    fail = failure_factory(spec, analysis, positions)
    for position in (1, 2, 3):  # each reads the looked-up row
        error = fail(position, ExpressionRuntimeError("lower() expects text, got int", 600000001))
        assert "600000001" not in str(error) and "600000001" in error.with_data()


def test_personal_fields_hashed_without_a_salt_are_named_at_start_up(tmp_path: Path) -> None:
    from eventbus.service.app import hashed_personal_fields

    mappings = load_mapping_set(_write(tmp_path, "null"))
    # ssn is pii and hashed; status (internal) and the unhashed fields are not named
    assert hashed_personal_fields(mappings) == ["claim_probe.ssn"]


def test_an_update_without_its_old_row_is_a_dead_letter_naming_the_table_and_the_fix(tmp_path: Path) -> None:
    """REPLICA IDENTITY DEFAULT: an update comes with `before` null. A mapping reading before.* would
    take it for a transition; the service dead-letters it, saying which table to fix and how."""
    folder = _write(tmp_path, "length(before.claim_number)")
    record = _record(TEXT)
    document = orjson.loads(record.value)
    assert document["payload"]["before"] is None
    document["payload"]["op"] = "u"
    record.value = orjson.dumps(document)
    reason = _dead_letter_reason(folder, record)
    assert reason.startswith(
        "mapping claim_probe v2: an update of public.claims came without its old row (before is null: "
        "the table's REPLICA IDENTITY is not FULL), and this mapping reads before.claim_number"
    )
    assert "ALTER TABLE public.claims REPLICA IDENTITY FULL" in reason
    assert _offline_reason(folder, record) == reason  # `mapping run` says the same


def _malformed(change: Callable[[dict[str, Any]], None]) -> SampleRecord:
    """The sample insert (with its `ssn` column) as `change` breaks its JSON document."""
    record = _record(TEXT)
    document = orjson.loads(record.value)
    change(document)
    record.value = orjson.dumps(document)
    return record


def _ssn_as_a_top_level_key(document: dict[str, Any]) -> None:
    document[SSN] = document.pop("payload")  # a row keyed by a personal value, no `payload`


def _ssn_as_a_connect_type(document: dict[str, Any]) -> None:
    for row in document["schema"]["fields"][:2]:  # before, after
        next(f for f in row["fields"] if f["field"] == "ssn")["type"] = SSN


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            _ssn_as_a_top_level_key,
            f"value record of topic {TOPIC!r} is not a Connect JSON envelope: missing 'payload' "
            "(has 'schema', 1 other key(s)); is the converter's schemas.enable setting what you expect?",
            id="key",
        ),
        pytest.param(
            _ssn_as_a_connect_type,
            f"value record of topic {TOPIC!r}: unusable schema: column 'public.claims.ssn': unknown "
            "Kafka Connect type; expected one of int8, int16, int32, int64, boolean, float32, float64, "
            "float, double, string, bytes, array, map, struct",
            id="schema-type",
        ),
    ],
)
def test_a_malformed_record_s_keys_and_values_never_reach_the_reason(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    folder = _write(tmp_path, "1")
    reason = _dead_letter_reason(folder, _malformed(change))
    assert reason == expected
    assert SSN not in reason


def test_a_record_that_is_not_json_is_named_by_the_parser_s_rule_and_position(tmp_path: Path) -> None:
    folder = _write(tmp_path, "1")
    record = _record(TEXT)
    record.value = record.value.replace(f'"{SSN}"'.encode(), f'"{SSN}" {SSN}'.encode())
    reason = _dead_letter_reason(folder, record)
    assert reason.startswith(f"value record of topic {TOPIC!r} is not valid JSON: JSON is malformed: ")
    assert reason.endswith(")") and "(byte " in reason
    assert SSN not in reason
