"""The payload entry point (the service's hot path) is the same mapping as the `Change` one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from eventbus.mapping import MappingEvaluationError, compile_mapping, load_mapping

REPO = Path(__file__).parents[3]


def _both_paths(compiled, records, related=()) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """Runs each record through `bind_payload` and `bind`; returns (records, events, dead letters)
    compared: a record the `Change` function refuses, the payload function refuses with the same reason.

    `related`: records of other tables the mapping's lookups read (all of them, as offline)."""
    from eventbus.debezium.connect_json import ConnectJsonDecoder
    from eventbus.lookups.offline import RecordedLookups

    decoder = ConnectJsonDecoder()
    compared = events = refused = 0
    lookups = RecordedLookups(compiled)
    for value, key, topic in related:
        change = decoder.decode(value, key, topic)
        if lookups.is_related(change):
            lookups.add(change)
    for value, key, topic in records:
        usual = decoder.decode_payload(value, topic)
        if usual is None:
            continue
        payload, table = usual
        change = decoder.decode(value, key, topic)
        lk = lookups.at(change)
        compared += 1
        on_payload = compiled.bind_payload(table)
        try:
            expected = compiled.bind(change.table)(change, lk)
        except MappingEvaluationError as error:
            with pytest.raises(MappingEvaluationError) as same:
                on_payload(payload, key, topic, decoder.decode_key, lk)
            assert str(same.value) == str(error)
            refused += 1
            continue
        assert on_payload(payload, key, topic, decoder.decode_key, lk) == expected
        events += len(expected)
    return compared, events, refused


def test_payload_and_change_functions_agree_on_generated_changes(tmp_path: Path) -> None:
    from eventbus_dev.samples import generate_records

    compiled = compile_mapping(load_mapping(REPO / "bench" / "mappings" / "claim_decided.yaml"))
    # Under REPLICA IDENTITY DEFAULT no update carries its old row: the mapping, which reads
    # before.status, dead-letters each; the same mapping testing is_null(before) publishes them.
    shutil.copytree(REPO / "bench" / "mappings", tmp_path / "m")
    handled = tmp_path / "m" / "claim_decided.yaml"
    text = handled.read_text()
    handled.write_text(text.replace("changed(after.status)", "(is_null(before) or changed(after.status))"))
    handling = compile_mapping(load_mapping(handled))
    for identity, toast, mapping, refusals in (
        ("full", 0.0, compiled, False),
        ("default", 0.5, compiled, True),
        ("default", 0.5, handling, False),
    ):
        records = [
            (r.value, r.key, r.topic)
            for r in generate_records(1500, seed=11, replica_identity=identity, toast_fraction=toast)
        ]
        compared, events, refused = _both_paths(mapping, records)
        outcome = (identity, compared, events, refused)
        assert compared == 1500 and (events == 0 if refusals else events > 100), outcome
        assert (refused > 100) if refusals else (refused == 0), outcome


def test_payload_and_change_functions_agree_on_captured_debezium_records() -> None:
    import orjson

    from eventbus.service.loading import load_mapping_set

    mapping_set = load_mapping_set(REPO / "mappings" / "claims")
    compared = events = 0
    for path in sorted((REPO / "mappings" / "claims" / "tests").glob("*/*.jsonl")):
        if path.name.endswith(".expected.jsonl"):
            continue
        docs = [orjson.loads(line) for line in path.read_text().splitlines()]
        records = [
            (orjson.dumps(d["value"]), None if d.get("key") is None else orjson.dumps(d["key"]), d["topic"])
            for d in docs
            if d.get("value") is not None
        ]
        for topic in dict.fromkeys(record[2] for record in records):
            of_topic = [record for record in records if record[2] == topic]
            for compiled in mapping_set.by_topic.get(topic, ()):
                records_compared, events_compared, refused = _both_paths(compiled, of_topic, records)
                assert refused == 0, path
                assert records_compared == len(of_topic), path  # every captured record is a usual one
                compared, events = compared + records_compared, events + events_compared
    assert compared > 20 and events >= 7
