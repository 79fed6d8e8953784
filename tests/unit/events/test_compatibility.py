from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient

from eventbus.events.compatibility import check_compatibility, explain
from eventbus.events.errors import SchemaRegistryError
from eventbus.events.schema_form import as_json


def _record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "Claim", "namespace": "gov.va", "fields": list(fields)}


def _lines(new: Any, old: Any, level: str = "BACKWARD") -> list[str]:
    return [str(issue) for issue in explain(new, old, level)[0]]


OLD = _record({"name": "ClaimId", "type": "long"}, {"name": "Count", "type": "int"})


def test_int_to_string_is_explained() -> None:
    new = _record({"name": "ClaimId", "type": "long"}, {"name": "Count", "type": "string"})
    assert _lines(new, OLD) == ["field Count: int → string: not a promotable type change"]


def test_int_to_long_is_a_promotion_backward_but_not_forward() -> None:
    new = _record({"name": "ClaimId", "type": "long"}, {"name": "Count", "type": "long"})
    assert _lines(new, OLD, "BACKWARD") == []
    # Said as what fails: the old schema's consumers (FULL said "not a promotable type change" of a
    # change that is a promotion, backward)
    assert _lines(new, OLD, "FORWARD") == [
        "field Count: int → long: consumers on the old schema cannot read long values (a widening is "
        "backward compatible only; the subject also checks forward)"
    ]


def test_added_field_needs_a_default_under_backward() -> None:
    new = _record(*OLD["fields"], {"name": "Status", "type": "string"})
    assert _lines(new, OLD) == [
        "field Status: added without a default (events written with the old schema lack it)"
    ]
    with_default = _record(*OLD["fields"], {"name": "Status", "type": ["null", "string"], "default": None})
    assert _lines(with_default, OLD) == []


def test_removed_required_field_breaks_forward_and_full_not_backward() -> None:
    new = _record({"name": "ClaimId", "type": "long"})
    expected = [
        "field Count: removed, and the old schema has no default for it (consumers on the old schema need it)"
    ]
    assert _lines(new, OLD, "BACKWARD") == []
    assert _lines(new, OLD, "FORWARD") == expected
    assert _lines(new, OLD, "FULL_TRANSITIVE") == expected
    assert _lines(new, OLD, "NONE") == []


def test_making_a_field_nullable_is_backward_compatible_only() -> None:
    new = _record({"name": "ClaimId", "type": "long"}, {"name": "Count", "type": ["null", "int"]})
    assert _lines(new, OLD, "BACKWARD") == []
    assert _lines(new, OLD, "FORWARD") == [
        "field Count: int → null: consumers on the old schema cannot read null"
    ]


def test_nested_paths_enums_and_renames() -> None:
    def schema(symbols: list[str], inner: str) -> dict[str, Any]:
        status = {"type": "enum", "name": "Status", "symbols": symbols}
        detail = {"type": "record", "name": inner, "fields": [{"name": "status", "type": status}]}
        return _record({"name": "detail", "type": detail})

    old = schema(["OPEN", "CLOSED"], "Detail")
    assert _lines(schema(["OPEN"], "Detail"), old) == [
        "field detail.status: enum Status: symbol CLOSED removed and the reader has no default"
    ]
    assert _lines(schema(["OPEN", "CLOSED"], "Details"), old) == [
        "field detail: record renamed Detail → Details without an alias"
    ]


def test_decimal_scale_change_is_a_warning() -> None:
    def schema(scale: int) -> dict[str, Any]:
        return _record(
            {
                "name": "Amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": scale},
            }
        )

    issues, warnings = explain(schema(4), schema(2))
    assert issues == []
    assert [str(w) for w in warnings] == [
        "field Amount: decimal(9,2) → decimal(9,4): the same bytes change meaning"
    ]


def test_check_against_mock_registry_falls_back_to_local_verdict(registry: SchemaRegistryClient) -> None:
    subject = "claims-value"
    new = _record({"name": "ClaimId", "type": "long"}, {"name": "Count", "type": "string"})
    first = check_compatibility(registry, subject, OLD)
    assert first.new_subject and first.compatible

    registry.register_schema(subject, Schema(as_json(OLD), "AVRO"))
    result = check_compatibility(registry, subject, new)

    # The mock has no compatibility or config endpoint: level is our default, verdict is ours.
    assert (result.level, result.level_source, result.latest_version) == ("BACKWARD", "default", 1)
    assert result.registry_verdict is None
    assert not result.compatible
    assert [str(i) for i in result.issues] == ["field Count: int → string: not a promotable type change"]
    assert any("local analysis" in note for note in result.notes)


def test_a_version_returned_without_its_text_is_refused(
    registry: SchemaRegistryClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = "claims-value"
    registry.register_schema(subject, Schema(as_json(OLD), "AVRO"))
    # The client reads a registry answer without a "schema" field as a schema whose text is None.
    textless = RegisteredSchema(subject, 1, 1, None, Schema(None, "AVRO"))
    monkeypatch.setattr(registry, "get_latest_version", lambda *args, **kwargs: textless)
    with pytest.raises(SchemaRegistryError, match="returned version 1 without its text"):
        check_compatibility(registry, subject, OLD)


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(Exception, match="unknown compatibility level"):
        explain(OLD, OLD, "SIDEWAYS")
