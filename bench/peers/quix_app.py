"""The peer: a Quix Streams application doing the `claim_decided` mapping, exactly-once.

Run (in the peer's own virtualenv, see bench/README.md):
`.cache/venv-quix/bin/python bench/peers/quix_app.py --source TOPIC --target TOPIC --group GROUP`.

It is what a competent Quix Streams user writes for `bench/mappings/claim_decided.yaml`, with the
library's public API only (`Application`, `app.topic`, `StreamingDataFrame.filter/apply/to_topic`,
its JSON deserializer and Avro serializer), and `processing_guarantee="exactly-once"`:

* Input: the staging topic as Quix's `json` deserializer gives it (orjson, the whole Connect JSON
  document: schema and payload); the mapping reads `payload`.
* Filter: an update whose `after.status` is a decision status and differs from `before.status`.
* Event: the same 7 fields as the mapping (end-product code = first 3 characters of the claim type
  code; Connect's base64 decimal → `Decimal` with the column's scale 2; the ISO `timestamptz` text
  → `datetime`), key `{claim_id}`; both Avro-encoded by Quix's `AvroSerializer` (fastavro
  `schemaless_writer`) with the same schemas as the mapping (`bench/mappings/schemas/`).

Differences from the transformer, on purpose (a peer is measured as its users run it, without
features it does not have): no Confluent wire-format prefix / schema id (Quix's plain Avro
serializer; its registry-backed one delegates to confluent-kafka's slower serializer), no CloudEvents
headers or deterministic event id, no dedup watermark, no dead-letter topic (a failing record stops
the application), no metrics. The Kafka client settings that decide batching (`linger.ms`, batch
sizes, compression, queue limits, fetch wait) and the commit policy are passed in by the benchmark,
the same as the transformer's.
"""

from __future__ import annotations

import argparse
import base64
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from quixstreams import Application
from quixstreams.models.serializers.avro import AvroSerializer

SCHEMAS: Final = Path(__file__).resolve().parent.parent / "mappings" / "schemas"
DECIDED: Final = frozenset({"Authorized", "Continued at Authorization"})
AMOUNT_SCALE: Final = 2  # numeric(12,2): Connect sends the unscaled integer, big-endian, base64


def is_decision(value: dict[str, Any]) -> bool:
    """`on: update` + `changed(after.status) and after.status in [...]`."""
    payload = value["payload"]
    if payload["op"] != "u":
        return False
    status = payload["after"]["status"]
    if status not in DECIDED:
        return False
    before = payload["before"]
    return before is None or before["status"] != status


def to_event(value: dict[str, Any]) -> dict[str, Any]:
    payload = value["payload"]
    after, before = payload["after"], payload["before"]
    amount = after["amount"]
    if amount is not None:
        unscaled = int.from_bytes(base64.b64decode(amount), "big", signed=True)
        amount = Decimal(unscaled).scaleb(-AMOUNT_SCALE)
    return {
        "claim_id": after["id"],
        "end_product_code": after["claim_type_code"][:3],
        "status": after["status"],
        "previous_status": None if before is None else before["status"],
        "station_number": after["station_number"],
        "amount": amount,
        "decided_at": datetime.fromisoformat(after["updated_at"]),
    }


def event_key(event: dict[str, Any]) -> dict[str, Any]:
    return {"claim_id": event["claim_id"]}


def build(options: argparse.Namespace) -> Application:
    app = Application(
        broker_address=options.bootstrap,
        consumer_group=options.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=options.commit_interval,
        commit_every=options.commit_every,
        consumer_extra_config=json.loads(options.consumer_config),
        producer_extra_config=json.loads(options.producer_config),
        loglevel="WARNING",
        auto_create_topics=False,  # the benchmark creates them (same partitions for every contender)
        use_changelog_topics=False,  # stateless
    )
    source = app.topic(options.source, key_deserializer="bytes", value_deserializer="json")
    target = app.topic(
        options.target,
        key_serializer=AvroSerializer(json.loads((SCHEMAS / "claim_key.avsc").read_text())),
        value_serializer=AvroSerializer(json.loads((SCHEMAS / "claim_decided.avsc").read_text())),
    )
    sdf = app.dataframe(source)
    sdf = sdf.filter(is_decision).apply(to_event)
    sdf.to_topic(target, key=event_key)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Quix Streams peer of the claim_decided mapping")
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--commit-interval", type=float, default=0.1, help="seconds (Quix default 5)")
    parser.add_argument("--commit-every", type=int, default=20_000, help="records (Quix default 0: off)")
    parser.add_argument("--consumer-config", default="{}", help="extra librdkafka consumer properties (JSON)")
    parser.add_argument("--producer-config", default="{}", help="extra librdkafka producer properties (JSON)")
    options = parser.parse_args(argv)
    build(options).run()  # returns on SIGTERM/SIGINT after committing its checkpoint
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
