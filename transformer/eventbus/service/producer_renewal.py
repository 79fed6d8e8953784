"""The loop's producer: one librdkafka instance at a time, replaced after every aborted transaction.

Why: librdkafka does not implement KIP-890 (transactions version 2, where the broker bumps the
producer epoch at the end of every transaction). Without it, a produce request of an aborted
transaction that is still on its way - sent before a broker restart, retried after it, or simply
slow - can be appended after the abort, inside the *next* transaction of the same producer id and
epoch, and be committed with it. Its events would then be published twice: once by that stray
request and once when the aborted batch is processed again. (`make chaos` saw 42 such duplicates in
one run of five.) A new instance's `init_transactions()` bumps the epoch, and the broker refuses every
request of the older epoch, so nothing of the aborted transaction can land anywhere afterwards. This
is what a restart does, done in-process; it costs one producer and one InitProducerId round trip
(55-510 ms on the local broker) per abort, and aborts only follow faults and lost partitions.

The retired instance is purged and dropped without being polled again, and its callbacks are cut
off: its delivery reports and errors (it is fenced now) belong to no batch of the loop any more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from eventbus.service.kafka_errors import Produce, producing

_CALLBACKS = ("on_delivery", "error_cb")


class RenewableProducer:
    """`current` is the instance in use; `produce` its retrying `produce` (kafka_errors.producing)."""

    def __init__(
        self,
        config: dict[str, Any],
        produce_timeout_s: float,
        client: Callable[[dict[str, Any]], Producer] = Producer,
    ) -> None:
        self._config = config
        self._client = client
        self._produce_timeout_s = produce_timeout_s
        self.instances = 0  # made so far; the one in use is the last
        self.current = self._make()
        self.produce: Produce = producing(self.current, produce_timeout_s)

    def renew(self) -> Producer:
        """Retire the instance in use and make the next one; its `init_transactions()` is the caller's
        (it fences the retired one). Returns the new instance."""
        retired = self.current
        # Nothing of the retired instance may be sent any more, whatever its state.
        retired.purge(in_queue=True, in_flight=True, blocking=False)
        self.current = self._make()
        self.produce = producing(self.current, self._produce_timeout_s)
        if "oauth_cb" in self._config:
            # As at start-up (service/app.py): the first MSK IAM token is asked for through poll().
            self.current.poll(1.0)
        return self.current

    def _make(self) -> Producer:
        self.instances += 1
        instance = self.instances
        config = dict(self._config)
        for name in _CALLBACKS:
            callback = config.get(name)
            if callback is not None:
                config[name] = self._while_current(instance, callback)
        return self._client(config)

    def _while_current(self, instance: int, callback: Callable[..., None]) -> Callable[..., None]:
        def call(*args: Any) -> None:
            if self.instances == instance:
                callback(*args)

        return call
