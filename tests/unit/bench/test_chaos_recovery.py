"""How the chaos run tells a recovered fault from one after which changes never flowed again."""

from __future__ import annotations

import time
from typing import Any

from bench.chaos import RecoveryWatch


class _Scripted(RecoveryWatch):
    """Committed offsets and staging ends as the test sets them, instead of read from Kafka."""

    def __init__(self) -> None:
        super().__init__(pipeline=None)  # type: ignore[arg-type]
        self.positions: dict[str, int] = {"transformer": 100, "staging": 500, "connect": 500}

    def flow(self, kind: str) -> int:
        return self.positions["staging" if kind in ("staging", "connect") else kind]


def _results(watch: _Scripted) -> dict[str, Any]:
    watch.start()
    time.sleep(0.7)  # one look of the watcher
    return watch.results()


def test_committed_offsets_moving_is_a_recovery() -> None:
    watch = _Scripted()
    watch.watch("transformer", time.monotonic(), watch.flow("transformer"))
    watch.positions["transformer"] = 120
    results = _results(watch)
    assert len(results["transformer"]) == 1 and not results["not_recovered"] and not results["idle_after"]


def test_a_kill_after_the_last_change_is_idle_not_unrecovered() -> None:
    watch = _Scripted()
    watch.watch("transformer", time.monotonic(), watch.flow("transformer"))  # nothing comes after
    results = _results(watch)
    assert results["idle_after"] == ["transformer"] and not results["not_recovered"]


def test_changes_that_came_but_were_never_committed_are_unrecovered() -> None:
    watch = _Scripted()
    watch.watch("transformer", time.monotonic(), watch.flow("transformer"))
    watch.watch("connect", time.monotonic(), watch.flow("connect"))
    watch.positions["staging"] = 510  # new changes on staging (so connect recovered) ...
    results = _results(watch)  # ... but the transformer never committed them
    assert results["not_recovered"] == ["transformer"] and not results["idle_after"]
    assert len(results["connect"]) == 1
