"""The payload entry point (the service's hot path) is the same mapping as the `Change` one."""

from __future__ import annotations

from pathlib import Path

from eventbus.mapping import compile_mapping, load_mapping

REPO = Path(__file__).parents[3]


def _both_paths(compiled, records, related=()) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Runs each record through `bind_payload` and `bind`; returns (records, events) compared.

    `related`: records of other tables the mapping's lookups read (all of them, as offline)."""
    from eventbus.debezium.connect_json import ConnectJsonDecoder
    from eventbus.lookups.offline import RecordedLookups

    decoder = ConnectJsonDecoder()
    compared = events = 0
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
        expected = compiled.bind(change.table)(change, lk)
        assert compiled.bind_payload(table)(payload, key, topic, decoder.decode_key, lk) == expected
        compared, events = compared + 1, events + len(expected)
    return compared, events


def test_payload_and_change_functions_agree_on_generated_changes() -> None:
    from eventbus_dev.samples import generate_records

    compiled = compile_mapping(load_mapping(REPO / "bench" / "mappings" / "claim_decided.yaml"))
    for identity, toast in (("full", 0.0), ("default", 0.5)):
        records = [
            (r.value, r.key, r.topic)
            for r in generate_records(1500, seed=11, replica_identity=identity, toast_fraction=toast)
        ]
        compared, events = _both_paths(compiled, records)
        assert compared == 1500 and events > 100, (identity, compared, events)


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
                records_compared, events_compared = _both_paths(compiled, of_topic, records)
                assert records_compared == len(of_topic), path  # every captured record is a usual one
                compared, events = compared + records_compared, events + events_compared
    assert compared > 20 and events >= 7
