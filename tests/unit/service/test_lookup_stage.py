"""The lookup stage's bookkeeping without Kafka: parking is undone with an aborted batch, kept with a
committed one, survives in the changelog encoding, and pruning never drops what a change may need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eventbus.lookups.store import Version, VersionStore
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.service.dead_letter import Origin
from eventbus.service.dedup import encode_watermark
from eventbus.service.lookup_stage import LookupStage, _decode, _encode
from eventbus.service.processor import ParkedRecord
from tests.unit.contracts.conftest import copy_sample

TRIGGER = "staging.claims.public.claim_lifecycle_status"


class FakeFeeder:
    def __init__(self, store: VersionStore, committed: dict[tuple[str, int], tuple[int, str | None]]) -> None:
        self.store = store
        self.committed = committed
        self.progress_ts: dict[str, int] = {}

    def committed_offsets(
        self, group: str, topics: list[str]
    ) -> dict[tuple[str, int], tuple[int, str | None]]:
        assert group == "g" and topics == [TRIGGER]
        return self.committed


def _stage(
    tmp_path: Path, committed: dict[tuple[str, int], tuple[int, str | None]]
) -> tuple[LookupStage, list[Any]]:
    mapping = compile_mapping(load_mapping(copy_sample(tmp_path) / "decision_letter_available.yaml"))
    produced: list[Any] = []
    feeder = FakeFeeder(VersionStore(None), committed)
    stage = LookupStage(
        [mapping], feeder, lambda topic, value, key, headers=None: produced.append((topic, key, value)),  # type: ignore[arg-type]
        "parked", {"group.id": "g.lookups"}, read_changelog=lambda topic, config: {},
    )  # fmt: skip
    return stage, produced


def _record(offset: int) -> ParkedRecord:
    return ParkedRecord(
        b"{}", b"k", [("h", b"v")], Origin(TRIGGER, 0, offset), ("decision_letter_available",)
    )


def test_parking_is_undone_by_an_abort_and_kept_by_a_commit(tmp_path: Path) -> None:
    stage, produced = _stage(tmp_path, {})
    stage.assigned([type("TP", (), {"topic": TRIGGER, "partition": 0})()])  # type: ignore[list-item]
    stage.at((500, 501), 1_000)
    stage.park(_record(7))
    assert list(stage.parked) == [f"{TRIGGER}/0/7"]
    assert produced[-1][0] == "parked" and produced[-1][1] == f"{TRIGGER}/0/7".encode()
    stage.rolled_back()
    assert stage.parked == {}
    stage.park(_record(7))
    stage.committed()
    stage.rolled_back()  # a later batch's abort does not touch what an earlier batch committed
    assert list(stage.parked) == [f"{TRIGGER}/0/7"]


def test_the_changelog_entry_keeps_the_record_and_its_commit() -> None:
    record = _record(9)
    assert _decode(_encode(record, 1234)) == (record, 1234)


def test_a_header_without_a_value_stays_without_one_across_a_restart() -> None:
    # Kafka tells a header sent without a value from one with an empty value; so must the entry.
    record = ParkedRecord(b"{}", None, [("traceparent", None), ("empty", b"")], Origin(TRIGGER, 0, 3), ("m",))
    assert _decode(_encode(record, 1))[0].headers == [("traceparent", None), ("empty", b"")]


def test_prune_keeps_what_the_oldest_committed_position_or_parked_change_may_need(tmp_path: Path) -> None:
    committed = {
        (TRIGGER, 0): (10, encode_watermark((300, 301, 1))),
        (TRIGGER, 1): (4, encode_watermark((200, 201, 1))),
    }
    stage, _ = _stage(tmp_path, committed)
    store = stage.feeder.store
    table = "claims/public.claims(claim_id)"
    for commit in (50, 150, 250, 350):
        store.add(
            table, "1", Version(commit, commit, 0, {"claim_id": 1, "claim_type_code": str(commit)}, None)
        )
    stage.assigned([type("TP", (), {"topic": TRIGGER, "partition": 0})()])  # type: ignore[list-item]
    stage.at((120, 121), 0)
    stage.park(_record(3))  # a parked change at commit 120 still needs the version at 50
    assert stage.prune() == 0
    stage._parked_commits.clear()
    stage.parked.clear()
    assert stage.prune() == 1  # bound 200: the version at 150 answers every later change; 50 goes
    assert [v.commit for v in store.versions(table, "1")] == [150, 250, 350]
    stage.feeder.committed[(TRIGGER, 2)] = (-1, None)  # a partition with nothing committed: keep all
    assert stage.prune() == 0
