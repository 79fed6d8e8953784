"""`eventbus mapping run` (`run_records`) over recorded staging records."""

from __future__ import annotations

import orjson

from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.testing import run_records
from tests.unit.contracts.conftest import SAMPLE


def test_schemaless_records_of_another_table_are_never_read_as_the_mapped_one() -> None:
    """`mapping run` on records written with schemas.enable=false: the captured schema of the
    mapped table converts that table's records only; a delete of another table is skipped."""
    compiled = compile_mapping(load_mapping(SAMPLE / "claim_withdrawn.yaml"))

    def delete(table: str, before: dict[str, object]) -> str:
        source = {"version": "3.6.1.Final", "connector": "postgresql", "name": "claims",
                  "ts_ms": 1767700000000, "snapshot": "false", "db": "claims", "schema": "public",
                  "table": table, "txId": 7, "lsn": 4242, "sequence": '["4200","4242"]'}  # fmt: skip
        return orjson.dumps({"before": before, "after": None, "source": source, "op": "d"}).decode()

    outcome = run_records(compiled, [
        delete("contentions", {"contention_id": 11, "claim_id": 3003, "status": "OPEN"}),
        delete("claims", {"claim_id": 3003, "status": "UNDER_REVIEW"}),
    ])  # fmt: skip
    assert [event["value"] for event in outcome.events] == [
        {"claim_id": 3003, "last_status": "UNDER_REVIEW", "withdrawn_at_ms": 1767700000000}
    ]
    assert outcome.skipped == 1 and outcome.dead_letters == []
