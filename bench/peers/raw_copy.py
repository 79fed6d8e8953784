"""The raw ceiling: a confluent-kafka consume → produce loop that copies bytes, exactly-once.

Run: `.venv/bin/python -m bench.peers.raw_copy --source TOPIC --target TOPIC --group GROUP`.

It is what the transformer would be with a mapping that costs nothing: the same client library, the
same librdkafka settings (rendered by `TransformerSettings`, so batching, `linger.ms`, compression,
fetch sizes and queue limits are the service's defaults), the same transactions (begin on the first
record of a batch; `send_offsets_to_transaction` + `commit_transaction` every `commit_interval_ms`
or `max_records_per_transaction` records). Each staging record's key and value bytes are produced
unchanged to `--target` (keys placed with murmur2 as the service does).

What it leaves out, because a ceiling must not pay for it: decoding, mappings, Avro, headers, dedup,
dead letters, metrics, HTTP, and error handling beyond "stop" (no retries, no abort-and-rewind, no
rebalance callbacks: the benchmark gives it a fresh group with one member).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # `python bench/peers/raw_copy.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from eventbus.service.settings import DeliveryMode, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    options = parser.parse_args(argv)

    # The service's own defaults, rendered exactly as `eventbus transformer run` renders them
    # (EVENTBUS_* variables apply here too, so a tuning experiment moves both alike).
    settings = load_settings(
        group_id=options.group,
        instance_id="raw",
        delivery=DeliveryMode.EXACTLY_ONCE,
        kafka={"bootstrap_servers": options.bootstrap},
    )
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(error.str())

    producer = Producer(
        settings.producer_config(reveal=True)
        | {"delivery.report.only.error": True, "on_delivery": on_delivery}
    )
    consumer = Consumer(settings.consumer_config(reveal=True))
    stop = False

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    producer.init_transactions(60)
    consumer.subscribe([options.source])
    interval = settings.commit_interval_ms / 1000
    max_records = settings.max_records_per_transaction
    batch_size = settings.batch_size
    target = options.target
    produce, poll, consume = producer.produce, producer.poll, consumer.consume
    next_offsets: dict[tuple[str, int], int] = {}
    open_txn, opened_at, in_txn = False, 0.0, 0

    def commit() -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 60)
        producer.commit_transaction(60)
        if failures:
            raise SystemExit(f"delivery failed: {failures[0]}")

    try:
        while not stop:
            timeout = interval if not open_txn else max(0.0, opened_at + interval - time.monotonic())
            messages = consume(num_messages=batch_size, timeout=timeout)
            if messages:
                if not open_txn:
                    producer.begin_transaction()
                    open_txn, opened_at, in_txn = True, time.monotonic(), 0
                for message in messages:
                    if message.error() is not None:
                        raise SystemExit(f"consume failed: {message.error().str()}")
                    value, key = message.value(), message.key()
                    try:
                        produce(target, value, key)
                    except BufferError:  # local queue full: let librdkafka send, then retry
                        while True:
                            poll(0.05)
                            try:
                                produce(target, value, key)
                                break
                            except BufferError:
                                continue
                    next_offsets[(message.topic(), message.partition())] = message.offset() + 1
                in_txn += len(messages)
            poll(0)
            if open_txn and (in_txn >= max_records or time.monotonic() - opened_at >= interval):
                commit()
                open_txn = False
        if open_txn:
            commit()
    finally:
        consumer.close()
        producer.flush(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
