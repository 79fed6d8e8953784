"""The record view's reads the lookups need: position, time and streaming lag."""

from __future__ import annotations

import orjson

from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.record import StagingRecord
from eventbus_dev.samples import generate_records


def test_lag_is_how_long_after_its_commit_the_change_was_streamed() -> None:
    sample = next(r for r in generate_records(20, seed=3) if r.op == "u")
    document = orjson.loads(sample.value)
    committed = document["payload"]["source"]["ts_ms"]
    document["payload"]["ts_ms"] = committed + 10_000
    value = orjson.dumps(document)
    decoder = ConnectJsonDecoder()
    record = StagingRecord(decoder, value, sample.key, sample.topic)
    assert record.payload is not None and record.lag_ms == 10_000  # the payload path
    checked = StagingRecord(decoder, value, sample.key, sample.topic)
    checked.checked()
    assert checked.payload is None and checked.lag_ms == 10_000  # the checked path
    document["payload"]["ts_ms"] = committed - 5  # clocks apart: never a negative lag
    assert StagingRecord(decoder, orjson.dumps(document), sample.key, sample.topic).lag_ms == 0
    del document["payload"]["ts_ms"]
    assert StagingRecord(decoder, orjson.dumps(document), sample.key, sample.topic).lag_ms == 0
