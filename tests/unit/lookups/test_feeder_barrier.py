"""The lookup barrier asks the cluster for the related partitions' last stable offsets; right after a
broker restart the answer is often one of stale metadata (FENCED_LEADER_EPOCH in `make chaos`), which
is asked again, not a reason to stop."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from eventbus.lookups.feeder import CatchUpError, RelatedTopicsFeeder
from eventbus.lookups.store import VersionStore
from eventbus.lookups.versions import Interest
from eventbus.mapping import compile_mapping, load_mapping
from eventbus.service.logs import JsonFormatter
from tests.unit.contracts.conftest import copy_sample


class FakeAdmin:
    """`list_offsets` answers with the planned errors first, then offset 42 for every partition."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = errors
        self.calls = 0
        self.metadata_requests = 0

    def list_topics(self, timeout: float) -> None:
        self.metadata_requests += 1

    def list_offsets(self, request: dict[TopicPartition, Any], **_: Any) -> dict[TopicPartition, Any]:
        self.calls += 1
        code = self.errors.pop(0) if self.errors else None
        return {tp: _Future(code) for tp in request}


class _Future:
    def __init__(self, code: int | None) -> None:
        self.code = code

    def result(self) -> Any:
        if self.code is not None:
            raise KafkaException(KafkaError(self.code, "test: as the broker answered"))
        return SimpleNamespace(offset=42)


def _feeder(
    tmp_path: Path, errors: list[int], timeout_s: float = 5.0
) -> tuple[RelatedTopicsFeeder, FakeAdmin]:
    mapping = compile_mapping(load_mapping(copy_sample(tmp_path) / "decision_letter_available.yaml"))
    feeder = RelatedTopicsFeeder(
        VersionStore(None), Interest.of([mapping]),
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "barrier-test"},
        {"bootstrap.servers": "127.0.0.1:1"}, timeout_s=timeout_s,
    )  # fmt: skip
    admin = FakeAdmin(errors)
    feeder._admin = admin  # type: ignore[assignment]
    feeder._partitions = [TopicPartition("staging.claims.public.claims", p) for p in range(2)]
    return feeder, admin


@pytest.mark.parametrize(
    "code", [KafkaError.FENCED_LEADER_EPOCH, KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError._TRANSPORT]
)
def test_stale_metadata_after_a_broker_restart_is_asked_again(tmp_path: Path, code: int) -> None:
    feeder, admin = _feeder(tmp_path, [code, code])
    try:
        ends = feeder.last_stable_offsets()
    finally:
        feeder.close()
    assert ends == {("staging.claims.public.claims", 0): 42, ("staging.claims.public.claims", 1): 42}
    assert admin.calls == 3
    assert admin.metadata_requests == 2  # the leaders looked up afresh before each new attempt


def test_an_error_that_asking_again_does_not_cure_stops_at_once_with_its_name(tmp_path: Path) -> None:
    feeder, admin = _feeder(tmp_path, [KafkaError.TOPIC_AUTHORIZATION_FAILED])
    try:
        with pytest.raises(CatchUpError, match="TOPIC_AUTHORIZATION_FAILED"):
            feeder.last_stable_offsets()
    finally:
        feeder.close()
    assert admin.calls == 1


def test_stale_metadata_that_lasts_past_the_timeout_stops(tmp_path: Path) -> None:
    feeder, admin = _feeder(tmp_path, [KafkaError.FENCED_LEADER_EPOCH] * 100, timeout_s=0.5)
    try:
        with pytest.raises(CatchUpError, match="FENCED_LEADER_EPOCH"):
            feeder.last_stable_offsets()
    finally:
        feeder.close()
    assert 2 <= admin.calls < 10


class StuckConsumer:
    """Fetches nothing until its partitions are assigned again; then its positions move past the
    transaction markers up to the barrier (no records), as a consumer does after one."""

    def __init__(self, barrier: int) -> None:
        self.barrier = barrier
        self.assigned: list[list[tuple[str, int, int]]] = []
        self.consumed = 0

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned.append([(tp.topic, tp.partition, tp.offset) for tp in partitions])

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        self.consumed += 1
        return []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        offset = self.barrier if self.assigned else -1001  # unknown while stuck
        return [TopicPartition(tp.topic, tp.partition, offset) for tp in partitions]

    def list_topics(self, topic: str, timeout: float) -> Any:
        """The partitions the feeder has (none added): what the cluster would say."""
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions={0: None, 1: None}, error=None)})

    def close(self) -> None:
        pass


def test_a_stalled_fetch_is_restarted_by_assigning_the_partitions_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from eventbus.lookups import feeder as feeder_module

    monkeypatch.setattr(feeder_module, "_STALL_S", 0.3)
    feeder, _ = _feeder(tmp_path, [], timeout_s=5.0)
    topic = "staging.claims.public.claims"
    real_consumer = feeder._consumer
    stuck = StuckConsumer(barrier=42)
    feeder._consumer = stuck  # type: ignore[assignment]
    feeder._next = {(topic, 0): 40, (topic, 1): 42, ("heartbeats.claims", 0): 7}
    try:
        with caplog.at_level("WARNING", logger="eventbus.lookups"):
            feeder.catch_up()
    finally:
        real_consumer.close()
        feeder.close()
    # Every assigned partition again, each at the offset read up to (the heartbeats' too).
    assert stuck.assigned == [[(topic, 0, 40), (topic, 1, 42), ("heartbeats.claims", 0, 7)]]
    assert stuck.consumed > 1
    assert feeder._next[(topic, 0)] == 42
    (warning,) = [r for r in caplog.records if "stalled" in r.getMessage()]
    assert warning.behind == {f"{topic}[0]": "40<42"}  # type: ignore[attr-defined]


def test_a_fetch_that_stays_stalled_still_stops_at_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventbus.lookups import feeder as feeder_module

    monkeypatch.setattr(feeder_module, "_STALL_S", 0.2)
    feeder, _ = _feeder(tmp_path, [], timeout_s=1.0)
    topic = "staging.claims.public.claims"
    real_consumer = feeder._consumer
    stuck = StuckConsumer(barrier=-1001)  # never moves, assigned again or not
    feeder._consumer = stuck  # type: ignore[assignment]
    feeder._next = {(topic, 0): 40, (topic, 1): 42}
    try:
        behind = r"within 1 s: \{'staging.claims.public.claims\[0\]': '40<42'\}"
        with pytest.raises(CatchUpError, match=behind):
            feeder.catch_up()
    finally:
        real_consumer.close()
        feeder.close()
    assert 2 <= len(stuck.assigned) <= 5  # once per stall period, not in a loop


def test_a_slow_answer_for_the_barrier_is_not_taken_for_a_stalled_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a broker restart the barrier itself may take seconds to ask (stale metadata, asked
    again); the fetch is judged from when reading starts."""
    from eventbus.lookups import feeder as feeder_module

    monkeypatch.setattr(feeder_module, "_STALL_S", 0.3)
    monkeypatch.setattr(feeder_module, "_FIRST_DELAY_S", 0.4)  # one retry: longer than a stall
    feeder, admin = _feeder(tmp_path, [KafkaError.FENCED_LEADER_EPOCH], timeout_s=5.0)
    topic = "staging.claims.public.claims"
    real_consumer = feeder._consumer
    moving = StuckConsumer(barrier=42)
    moving.assigned.append([])  # fetching: its positions move at once
    feeder._consumer = moving  # type: ignore[assignment]
    feeder._next = {(topic, 0): 40, (topic, 1): 42}
    try:
        feeder.catch_up()
    finally:
        real_consumer.close()
        feeder.close()
    assert admin.calls == 2
    assert moving.assigned == [[]]  # never assigned again
    assert feeder._next[(topic, 0)] == 42


def test_an_undecodable_related_record_is_logged_without_its_keys_or_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ssn = "123-45-6789"
    feeder, _ = _feeder(tmp_path, [])
    # A row keyed by a personal value where the envelope's `payload` should be
    record = b'{"schema": {"type": "struct", "fields": []}, "%s": {"ssn": "%s"}}' % ((ssn.encode(),) * 2)
    try:
        with caplog.at_level("WARNING", logger="eventbus.lookups"):
            feeder._feed("staging.claims.public.claims", record, None)
    finally:
        feeder.close()
    (warning,) = [r for r in caplog.records if "undecodable" in r.getMessage()]
    line = JsonFormatter().format(warning)
    assert "missing 'payload' (has 'schema', 1 other key(s))" in line
    assert ssn not in line
