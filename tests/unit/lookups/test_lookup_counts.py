"""The lookup counts on /metrics count each lookup of a change once.

A mapping runs on a record's payload first (the hot path); when that fails, the checked path runs
it again on the decoded record and its answer counts. Its lookups were counted on both paths."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.lookups
from bench.engine import generate
from bench.lookups import fill_store, lookup_mapping_dir
from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.record import StagingRecord
from eventbus.lookups.resolver import LookupResolver
from eventbus.lookups.store import VersionStore
from eventbus.mapping import compile_mapping, load_mapping


def test_a_change_whose_payload_path_fails_counts_its_lookups_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench.lookups, "STORE_FILLER_ROWS", 0)  # the rows the records name are enough
    _, lookup_file = lookup_mapping_dir(tmp_path)
    compiled = compile_mapping(load_mapping(lookup_file))
    records = generate(60)
    fill_store(tmp_path / "store", records, compiled)
    resolver = LookupResolver(VersionStore(tmp_path / "store"), progress_ts={})
    lookups = resolver.for_mapping(compiled.spec.name, compiled.lookups)
    decoder = ConnectJsonDecoder(schemas_enabled=True)
    updates = [StagingRecord(decoder, v, k, t) for v, k, t in records]
    updates = [record for record in updates if record.op == "u"]

    def counts() -> dict[str, tuple[int, int, int]]:
        return {name: (s.hits, s.waited, s.missing) for (_, name), s in resolver.stats.items()}

    for record in updates:
        position = record.position
        assert position is not None
        resolver.at(position[0], record.ts_ms)
        assert record.payload is not None
        # Both lookups run before the condition reads after.status; a status no generated code
        # expects (unhashable) fails the payload path after them, the checked path reads the record.
        record.payload = {**record.payload, "after": {**record.payload["after"], "status": {"odd": 1}}}
        compiled.events_of(record, lookups)

    assert counts() == {"station": (len(updates), 0, 0), "veteran": (len(updates), 0, 0)}
    assert len(updates) > 40
