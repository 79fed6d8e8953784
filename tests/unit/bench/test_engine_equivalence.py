"""The engine benchmark compares like with like: the compiled mapping and the hand-written function
produce byte-identical curated records (topic, key, value, headers) for the same staging records.

Not a timing test: `bench/engine.py` measures, this only checks what is measured.
"""

from __future__ import annotations

import io

import fastavro
import pytest

from bench.engine import SCHEMA_IDS, Engine, HandWrittenClaimDecided, Output, generate
from eventbus_dev.samples import generate_records


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


def _both(engine: Engine, records: list[tuple[bytes, bytes, str]]) -> tuple[list[Output], list[Output]]:
    from_engine: list[Output] = []
    from_hand: list[Output] = []
    engine.run(records, from_engine)
    HandWrittenClaimDecided(engine.schemas, SCHEMA_IDS).run(records, from_hand)
    return from_engine, from_hand


def test_identical_output_for_generated_changes(engine: Engine) -> None:
    records = generate(5_000, seed=7)
    from_engine, from_hand = _both(engine, records)
    # The workload must exercise the event path, not only the filter.
    assert 500 < len(from_engine) < 2_500
    assert len(from_hand) == len(from_engine)
    for number, (mine, theirs) in enumerate(zip(from_engine, from_hand, strict=True)):
        assert mine == theirs, f"event {number} differs"


def test_identical_output_with_negative_and_null_amounts(engine: Engine) -> None:
    # Another seed and only updates: more events, both signs of the decimal, null amounts.
    records = [(r.value, r.key, r.topic) for r in generate_records(3_000, seed=11, op_weights={"u": 1.0})]
    from_engine, from_hand = _both(engine, records)
    assert from_engine == from_hand
    (schemas,) = engine.schemas
    parsed = fastavro.parse_schema(schemas.value_schema)
    amounts = [
        fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed)["amount"] for _, _, value, _ in from_engine
    ]
    assert None in amounts
    assert any(a is not None and a < 0 for a in amounts)
    assert any(a is not None and a > 0 for a in amounts)


def test_headers_and_wire_format(engine: Engine) -> None:
    records = generate(2_000, seed=3)
    from_engine, _ = _both(engine, records)
    topic, key, value, headers = from_engine[0]
    assert topic == "claim_decided"
    assert key[:5] == b"\x00" + SCHEMA_IDS["claim_decided-key"].to_bytes(4, "big")
    assert value[:5] == b"\x00" + SCHEMA_IDS["claim_decided-value"].to_bytes(4, "big")
    names = [name for name, _ in headers]
    assert names == [
        "ce_specversion",
        "ce_id",
        "ce_type",
        "ce_source",
        "ce_subject",
        "content-type",
        "eventbus_mapping",
        "eventbus_mapping_version",
        "ce_time",
    ]
