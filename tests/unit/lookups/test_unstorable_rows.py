"""A looked-up row with an integer beyond 64 bits (a numeric without scale, a decimal written as a
number) cannot be stored as the store's JSON. The staging topic is compacted and keeps the record,
so failing on it would fail every start: the record is skipped, named by table and column (never by
value), and counted; the rest of the store keeps working."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from eventbus.lookups.feeder import RelatedTopicsFeeder
from eventbus.lookups.resolver import table_id
from eventbus.lookups.store import UnstorableRowError, Version, VersionStore
from eventbus.lookups.versions import Interest
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.mapping.testing import run_records, test_mapping_file
from eventbus.service.lookup_stage import _LookupCollector
from tests.unit.contracts.conftest import copy_sample, edit

LETTER = "decision_letter_available.yaml"
CLAIMS = "staging.claims.public.claims"
HUGE = 2**70  # 1180591620717411303424
CLAIMS_ID = table_id("claims", "public.claims", ("claim_id",))


def _claim_record(folder: Path, claim_id: int, amount: Any, *, commit: int) -> bytes:
    """A claims change as Kafka Connect writes it; `json`, not orjson, which refuses `HUGE` too."""
    schema = json.loads((folder / "tables" / "public.claims.json").read_text())
    after = {"claim_id": claim_id, "claim_type_code": "010", "benefit_type": "compensation", "status": "X",
             "status_changed_at": 0, "claimant_participant_id": 5, "veteran_participant_id": 5,
             "station_code": "301", "amount_claimed": amount, "date_filed": 20000, "date_closed": None,
             "notes": None, "updated_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    payload = {
        "before": None, "after": after, "op": "c", "ts_ms": commit, "transaction": None,
        "source": {"version": "3.6.1.Final", "connector": "postgresql", "name": "staging.claims",
                   "ts_ms": commit, "snapshot": "false", "db": "claims", "schema": "public",
                   "sequence": f'["{commit}","{commit}"]', "table": "claims", "txId": commit, "lsn": commit,
                   "xmin": None},
    }  # fmt: skip
    return json.dumps({"schema": schema, "payload": payload}).encode()


def test_the_store_refuses_such_a_row_by_column_and_keeps_no_trace_of_it() -> None:
    store = VersionStore(None)
    store.add("t", "1", Version(1, 1, None, {"id": 1, "n": 5}, None))
    assert [v.row for v in store.versions("t", "1")] == [{"id": 1, "n": 5}]  # cached from here on
    with pytest.raises(UnstorableRowError) as raised:
        store.add("t", "1", Version(2, 2, None, {"id": 1, "n": HUGE, "m": -HUGE}, None))
    assert raised.value.columns == ["n", "m"]
    assert str(HUGE) not in str(raised.value)
    store.flush()
    assert [v.row for v in store.versions("t", "1")] == [{"id": 1, "n": 5}]  # neither cached nor written
    assert store.row_count() == 1


def test_the_feeder_skips_the_record_warns_by_column_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = copy_sample(tmp_path)
    mapping = compile_mapping(load_mapping(folder / LETTER))
    feeder = RelatedTopicsFeeder(
        VersionStore(None), Interest.of([mapping]),
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "unstorable-test"},
        {"bootstrap.servers": "127.0.0.1:1"},
    )  # fmt: skip
    try:
        with caplog.at_level(logging.WARNING, logger="eventbus.lookups"):
            feeder._feed(CLAIMS, _claim_record(folder, 1, None, commit=100), None)
            feeder._feed(CLAIMS, _claim_record(folder, 2, HUGE, commit=200), None)
            feeder._feed(CLAIMS, _claim_record(folder, 3, None, commit=300), None)
        store = feeder.store
        assert store.latest(CLAIMS_ID, "1") is not None
        assert store.latest(CLAIMS_ID, "2") is None
        assert store.latest(CLAIMS_ID, "3") is not None
        assert feeder.records_skipped == 1
        assert feeder.progress_ts == {"claims": 300}  # the source's progress still read from it
        (warning,) = caplog.records
        assert warning.topic == CLAIMS  # type: ignore[attr-defined]
        assert warning.table == "public.claims"  # type: ignore[attr-defined]
        assert warning.columns == ["amount_claimed"]  # type: ignore[attr-defined]
        assert str(HUGE) not in warning.getMessage() + repr(vars(warning))
        # and the metric says so
        stage: Any = SimpleNamespace(resolver=SimpleNamespace(stats={}), parked={}, feeder=feeder)
        families = {family.name: family for family in _LookupCollector(stage).collect()}
        assert families["eventbus_lookup_records_skipped"].samples[0].value == 1
    finally:
        feeder.close()


def test_mapping_run_dead_letters_such_a_related_record_by_column(tmp_path: Path) -> None:
    folder = copy_sample(tmp_path)
    compiled = compile_mapping(load_mapping(folder / LETTER))
    outcome = run_records(compiled, [_claim_record(folder, 2, HUGE, commit=200).decode()])
    (dead,) = outcome.dead_letters
    assert dead["line"] == 1 and "amount_claimed" in dead["reason"] and "64 bits" in dead["reason"]


def test_an_inline_test_given_such_a_row_fails_as_test_data_at_its_line(tmp_path: Path) -> None:
    mapping = copy_sample(tmp_path) / LETTER
    given = 'veteran_participant_id: 600000001, benefit_type: compensation, station_code: "301"}'
    edit(mapping, given, given[:-1] + f", amount_claimed: {HUGE}}}")
    failed = [result for result in test_mapping_file(mapping) if not result.passed]
    (result,) = failed
    assert result.name == "authorized claim of the Veteran"
    assert result.reason.startswith("test data: given: ") and "'amount_claimed'" in result.reason
