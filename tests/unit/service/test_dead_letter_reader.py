"""`eventbus dlq list -n N` shows the N newest dead letters of the whole topic, by time across its
partitions (which are read one after another), oldest of them first; the summary counts them all."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from typer.testing import CliRunner

from eventbus.cli.main import app
from eventbus.service import dead_letter_reader
from eventbus.service.dead_letter import Origin, dead_letter_headers
from eventbus.service.dead_letter_reader import DeadLetter, newest

# (partition, offset) → timestamp: partition 0 holds the newest letters, partition 1 the oldest and
# is read last.
STAMPS = {(0, 0): 1_000, (0, 1): 5_000, (0, 2): 6_000, (1, 0): 2_000, (1, 1): 3_000, (1, 2): 4_000}


def _letter(partition: int, offset: int, stamp: int | None) -> DeadLetter:
    return DeadLetter(partition, offset, stamp, None, None, None)


def test_the_newest_across_partitions_oldest_first() -> None:
    letters = [_letter(p, o, stamp) for (p, o), stamp in STAMPS.items()]
    assert [letter.place for letter in newest(letters, 3)] == ["1@2", "0@1", "0@2"]
    assert [letter.place for letter in newest(letters, 100)] == ["0@0", "1@0", "1@1", "1@2", "0@1", "0@2"]


def test_equal_times_keep_the_offset_order_and_no_time_is_the_oldest() -> None:
    letters = [_letter(0, 7, 10), _letter(0, 8, 10), _letter(1, 0, None)]
    assert [letter.place for letter in newest(letters, 2)] == ["0@7", "0@8"]
    assert [letter.place for letter in newest(letters, 3)] == ["1@0", "0@7", "0@8"]


def test_none_asked_still_reads_them_all() -> None:
    read: list[DeadLetter] = []

    def letters() -> Any:
        for (p, o), stamp in STAMPS.items():
            read.append(_letter(p, o, stamp))
            yield read[-1]

    assert newest(letters(), 0) == []
    assert len(read) == len(STAMPS)  # the caller counts them as they pass


class _Message:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def error(self) -> None:
        return None

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, STAMPS[(self._partition, self._offset)])

    def headers(self) -> Any:
        origin = Origin("staging.claims.public.claims", 0, 100 * self._partition + self._offset)
        return dead_letter_headers(None, kind="decode", reason="column 'x': not a number", origin=origin,
                                   group="g", mapping="claim_withdrawn", mapping_version=1)  # fmt: skip

    def key(self) -> None:
        return None

    def value(self) -> bytes:
        return b"{}"


class _DeadLetterConsumer:
    """The dead-letter topic with two partitions of three records each (`STAMPS`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.pending: list[_Message] = []

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None, 1: None})})

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return (0, 3)

    def assign(self, partitions: list[TopicPartition]) -> None:
        (tp,) = partitions
        self.pending = [_Message(tp.partition, offset) for offset in range(tp.offset, 3)]

    def poll(self, timeout: float) -> _Message | None:
        return self.pending.pop(0) if self.pending else None

    def close(self) -> None:
        pass


def test_dlq_list_n_shows_the_newest_of_all_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dead_letter_reader, "Consumer", _DeadLetterConsumer)
    result = CliRunner().invoke(app, ["dlq", "list", "-n", "2"])
    assert result.exit_code == 0, result.output
    places = [line.split()[0] for line in result.output.splitlines() if "@" in line.split()[0]]
    assert places == ["0@1", "0@2"]  # partition 0's last two: newer than every letter of partition 1
    assert "6 dead letter(s) on" in result.output
    assert "       6  decode        claim_withdrawn                column 'x': not a number" in result.output
