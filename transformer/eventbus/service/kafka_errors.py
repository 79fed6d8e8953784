"""How the loop sorts the Kafka client's errors, as confluent-kafka documents them.

Every error of a transactional call (and of `produce`, `poll`, `consume`) is one of three kinds:

- *retriable* (`KafkaError.retriable()`): the same call again, with back-off, until the operation
  timeout; a `produce` that finds the local queue full (`BufferError`) waits for room the same way;
- *abortable* (`txn_requires_abort()`): the transaction cannot commit; abort it, rewind every
  partition to its committed offset and carry on;
- *fatal* (`fatal()`, fenced, or anything else): stop with exit code 2; the orchestrator restarts
  the process, whose `init_transactions()` settles whatever was left open.

Errors that come in other ways are sorted here too: error events in a consumed batch
(`without_error_events`) and exceptions raised inside the client's callbacks (`CallbackErrors`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum
from typing import Any, Final, TypeVar, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from eventbus.service.errors import FatalKafkaError, ServiceError
from eventbus.service.partitions import Record

log = logging.getLogger("eventbus.service.loop")
T = TypeVar("T")
Produce = Callable[..., None]

FENCED: Final = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
# `produce` returns a bare error code, without the flags: a fenced or failed producer says _FATAL.
_FATAL_CODES: Final = FENCED | {KafkaError._FATAL}
_FIRST_DELAY_S: Final = 0.05
_MAX_DELAY_S: Final = 1.0
_ROOM_POLL_S: Final = 0.05


class Handling(Enum):
    RETRY = "retry"
    ABORT = "abort"
    FATAL = "fatal"


def handling(error: KafkaError) -> Handling:
    """The documented order: retriable → retry, txn_requires_abort → abort, anything else → fatal."""
    if error.fatal() or error.code() in _FATAL_CODES:
        return Handling.FATAL
    if error.retriable():
        return Handling.RETRY
    if error.txn_requires_abort():
        return Handling.ABORT
    return Handling.FATAL


def retrying(what: str, call: Callable[[float], T], timeout_s: float) -> T:
    """`call(remaining seconds)` again while it fails with a retriable error, up to `timeout_s`.

    Raises the last `KafkaException` when it is not retriable or the time is up.
    """
    deadline = time.monotonic() + timeout_s
    delay = _FIRST_DELAY_S
    while True:
        try:
            return call(max(0.0, deadline - time.monotonic()))
        except KafkaException as exc:
            error = exc.args[0]
            if handling(error) is not Handling.RETRY or time.monotonic() + delay > deadline:
                raise
            log.info("retrying", extra={"call": what, "error": error.str(), "code": error.name()})
            time.sleep(delay)  # back-off before asking the broker again, not synchronisation
            delay = min(delay * 2, _MAX_DELAY_S)


def fatal_error(what: str, error: KafkaError) -> ServiceError:
    """The error that stops the service, in one line that says what to do where we know it."""
    hint = ""
    if error.code() in FENCED:
        hint = " (another process took our transactional.id: give each one its own EVENTBUS_INSTANCE_ID)"
    elif error.code() == KafkaError.FENCED_INSTANCE_ID or "FENCED_INSTANCE_ID" in error.str():
        # static_membership: a consumer's fatal error names the cause only in its text.
        hint = (
            " (another process joined the group with our group.instance.id: give each one its own "
            "EVENTBUS_INSTANCE_ID)"
        )
    elif error.code() == KafkaError._TIMED_OUT or error.retriable():
        hint = (
            " (no answer in time: is the Kafka cluster at kafka.bootstrap_servers reachable, with these "
            "credentials?)"
        )
    # Whether the client gave up on the producer (fatal) or we stop on an error it did not classify:
    # a retriable error here is one that outlived its deadline, which the hint already says.
    flags = ""
    if error.fatal():
        flags = "; fatal"
    elif not error.retriable() and not error.txn_requires_abort():
        flags = "; neither retriable nor abortable"
    timed_out = error.code() in (KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT) or error.retriable()
    return FatalKafkaError(f"{what}: {error.str()} [{error.name()}{flags}]", hint=hint, timed_out=timed_out)


def retrying_or_fatal(what: str, call: Callable[[float], T], timeout_s: float) -> T:
    """`retrying`, with an error still there at the end turned into the one that stops the service."""
    try:
        return retrying(what, call, timeout_s)
    except KafkaException as exc:
        raise fatal_error(what, exc.args[0]) from None


def without_error_events(messages: list[Message]) -> list[Record]:
    """A consumed batch's records, without its error events: what is left is typed as `Record`s.

    A fatal error event stops the service; end-of-partition events are dropped; any other is logged
    (the client recovers from it by itself).
    """
    if all(m.error() is None for m in messages):
        return cast(list[Record], messages)
    good = []
    for message in messages:
        error = message.error()
        if error is None:
            good.append(message)
        elif error.fatal():
            raise fatal_error("consume", error)
        elif error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", extra={"error": error.str(), "code": error.name()})
    return cast(list[Record], good)


class CallbackErrors:
    """An exception raised inside a client callback, kept until the loop can raise it.

    librdkafka runs the rebalance callbacks and `error_cb` inside `consume()` and `poll()`; an
    exception there would surface at an arbitrary point, so it is kept and raised again by the loop
    right after the call returns (`raise_kept`).
    """

    __slots__ = ("_error",)

    def __init__(self) -> None:
        self._error: BaseException | None = None

    def keep(self, error: BaseException) -> None:
        self._error = error

    def guard(self, callback: Callable[[Consumer, list[TopicPartition]], None]) -> Callable[..., None]:
        """`callback` with whatever it raises kept instead."""

        def guarded(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            try:
                callback(consumer, partitions)
            except BaseException as error:  # raised again by raise_kept
                self._error = error

        return guarded

    def raise_kept(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def producing(producer: Producer, timeout_s: float) -> Produce:
    """`producer.produce(topic, value, key, headers=...)` that waits for room in a full local queue
    and retries retriable errors, both up to `timeout_s`.

    Past that the batch cannot be produced: it raises an abortable `KafkaException` (the loop aborts
    and redoes the batch). Non-retriable errors propagate for the loop to sort. The usual call costs
    one Python frame around `produce`.
    """
    raw_produce, poll = producer.produce, producer.poll

    def produce(topic: str, value: bytes | None, key: bytes | None, headers: Any = None) -> None:
        try:
            raw_produce(topic, value, key, headers=headers)
        except (BufferError, KafkaException) as first:
            _produce_again(raw_produce, poll, timeout_s, first, topic, value, key, headers)

    return produce


def _produce_again(
    raw_produce: Produce,
    poll: Callable[[float], Any],
    timeout_s: float,
    first: BaseException,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    headers: Any,
) -> None:
    deadline = time.monotonic() + timeout_s
    failure = first
    while True:
        if isinstance(failure, KafkaException) and handling(failure.args[0]) is not Handling.RETRY:
            raise failure
        if time.monotonic() >= deadline:
            break
        # Serves delivery reports and lets librdkafka send: that is what makes room in the queue.
        poll(_ROOM_POLL_S)
        try:
            raw_produce(topic, value, key, headers=headers)
            return
        except (BufferError, KafkaException) as again:
            failure = again
    reason = "the local queue stayed full" if isinstance(failure, BufferError) else str(failure)
    log.warning("produce gave up", extra={"topic": topic, "after_s": timeout_s, "error": reason})
    raise KafkaException(
        KafkaError(
            KafkaError._QUEUE_FULL if isinstance(failure, BufferError) else failure.args[0].code(),
            f"produce to {topic} failed for {timeout_s:.0f}s: {reason}",
            txn_requires_abort=True,
        )
    )
