"""Committing one transaction while the next batch is decoded and mapped (exactly-once).

`send_offsets_to_transaction` and `commit_transaction` are round trips to the coordinators: 9-15 ms
each time on the benchmark's machine, 7.5-11.6 % of the loop's wall time, during which the loop only
waits (bench/README.md). The client releases the GIL while it waits, so the loop runs the two calls
on a thread of their own (`CommitInFlight`) and meanwhile consumes and processes *one* more batch,
whose produce calls are kept (`DeferredProduce`) instead of sent: no transaction is open to send
them in until the commit is over. Then the loop either begins the next transaction and produces what
was kept, or, when the commit failed, aborts and rewinds to the last committed offsets, the kept
batch included (it is dropped and read again). Which partition positions and counts the commit in
flight covers is snapshotted when it starts (`Partitions.snapshot`, `Tally.take`), so the kept
batch's positions and counts stay out of it.

Not overlapped: at-least-once (its commit is a flush and an offset commit), a loop with lookups (its
barrier steps L1-L4 rely on one batch at a time) and bounded runs (replay).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError

from eventbus.service.metrics import Tally
from eventbus.service.partitions import Snapshot

Produce = Callable[..., None]


class DeferredProduce:
    """Stands in for the producer's `produce` while a commit is in flight: keeps the calls in order."""

    __slots__ = ("calls", "since")

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes | None, bytes | None, Any]] = []
        self.since: float | None = None  # monotonic time the first kept batch was processed

    def __call__(self, topic: str, value: bytes | None, key: bytes | None, headers: Any = None) -> None:
        self.calls.append((topic, value, key, headers))

    def replay(self, produce: Produce) -> None:
        """Produce every kept call, in order (the next transaction is open); then forget them."""
        calls, self.calls = self.calls, []
        for topic, value, key, headers in calls:
            produce(topic, value, key, headers=headers)

    def clear(self) -> None:
        self.calls = []
        self.since = None


class CommitFailed(Exception):
    """One of the commit's calls failed past its retries: which step, and the client's error."""

    def __init__(self, step: str, error: KafkaError) -> None:
        super().__init__(f"{step}: {error.str()}")
        self.step = step
        self.error = error


class CommitInFlight:
    """The commit's calls, run on a thread (`background`) or right away; `wait` returns when they
    are done and raises what they raised."""

    def __init__(self, calls: Callable[[], None], *, background: bool) -> None:
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, args=(calls,), name="commit", daemon=True)
            self._thread.start()
        else:
            self._run(calls)

    def _run(self, calls: Callable[[], None]) -> None:
        try:
            calls()
        except BaseException as error:  # handed to the loop's thread by `wait`
            self._error = error

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error

    def wait_quietly(self, timeout_s: float) -> None:
        """At most `timeout_s` for the calls to end, whatever they raise (the service is stopping
        on a fatal error: nothing it could do with the outcome)."""
        if self._thread is not None:
            self._thread.join(timeout_s)


@dataclass(frozen=True, slots=True)
class PendingCommit:
    """A transaction's commit set going: its calls, and the positions and counts it settles."""

    flight: CommitInFlight
    snapshot: Snapshot
    tally: Tally
