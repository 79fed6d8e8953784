"""Mapping-engine benchmark: decode → evaluate → encode per change, next to a hand-written function.

Run: `.venv/bin/python -m bench.engine` (or `python bench/engine.py`); `--changes`, `--rounds`.

Workload: `eventbus_dev.samples` generates Debezium 3.x change records for the 20-column
`public.claims` table exactly as Kafka Connect's JsonConverter writes them on the staging topics
(schemas enabled, about 6.5 kB a value, key record too; 10 % inserts, 85 % updates with before and
after images, 5 % deletes). The mapping is `bench/mappings/claim_decided.yaml`: a state transition
(`changed(after.status) and after.status in [...]`) that about a quarter of the changes pass, and
a 7-field value with a decimal, a timestamp and a string function, plus a key.

Both contenders take the same `(value bytes, key bytes, topic)` records and append to the same list
one `(curated topic, key bytes, value bytes, headers)` per event, ready for `Producer.produce`: Avro
in the Confluent wire format under pre-resolved schema ids, CloudEvents headers with the
deterministic event id. `tests/unit/bench/test_engine_equivalence.py` proves their output identical.

* engine: what the transformer's processor runs per record (`eventbus.service.processor`, without
  the dedup watermark and the producer) — the record view `StagingRecord` over the service's
  `staging_decoder` (payload rows parsed to the columns the mapping reads), the mapping's
  `CompiledMapping.events_of(record)`, and `AvroEventSerializer.serialize(event)` per event; in
  consumer batches of 1,000 records and two passes, as `Processor.process` runs them (the
  mappings of the whole batch, then its events encoded in order).
* hand-written: `HandWrittenClaimDecided`, what a competent engineer writes for this one mapping
  with the same tools and no framework (see its docstring).

Rounds alternate engine, hand-written, engine, ...; the process is pinned to one core and timed in
CPU time (`bench/common.py`). Reported: the median changes/s of each and the ratio of medians.
"""

from __future__ import annotations

import argparse
import binascii
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # `python bench/engine.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench.common import machine_info, pinned_to_one_core, quiet_gc, timed
from eventbus.debezium.record import StagingRecord
from eventbus.events.avro import AvroEncoder, AvroEventSerializer, TopicSchemas, subject_name
from eventbus.events.headers import CONTENT_TYPE, MAPPING_HEADER, MAPPING_VERSION_HEADER, SPECVERSION
from eventbus.events.ids import EventIdFactory
from eventbus.events.schema_form import load_schema_file
from eventbus.mapping import CompiledMapping, compile_mapping, load_mapping
from eventbus.service.loop import LoopOptions
from eventbus.service.processor import staging_decoder
from eventbus_dev.samples import generate_records, topic_for

MAPPING_FILE: Final = Path(__file__).resolve().parent / "mappings" / "claim_decided.yaml"
# What `AvroEventSerializer.from_registry` resolves at start-up; ids are arbitrary but fixed.
SCHEMA_IDS: Final = {"claim_decided-key": 101, "claim_decided-value": 102}
STAGING_TOPIC: Final = topic_for("claims")  # where the generated records are from
BATCH_SIZE: Final = LoopOptions().batch_size  # records a consume() hands the processor at most
DEFAULT_CHANGES: Final = 100_000
DEFAULT_ROUNDS: Final = 9
SEED: Final = 20261125

Record = tuple[bytes, bytes, str]  # (value, key, staging topic) as the consumer hands them over
Output = tuple[str, bytes, bytes, list[tuple[str, bytes]]]  # (topic, key, value, headers)


def generate(n: int, seed: int = SEED) -> list[Record]:
    """`n` staging records; the sample objects are dropped so only the bytes stay alive."""
    return [(r.value, r.key, r.topic) for r in generate_records(n, seed=seed)]


def topic_schemas(compiled: CompiledMapping) -> list[TopicSchemas]:
    return [
        TopicSchemas(
            plan.topic,
            load_schema_file(Path(plan.key_schema.path)),
            load_schema_file(Path(plan.value_schema.path)),
        )
        for plan in compiled.analysis.emits
    ]


# --------------------------------------------------------------------------------------------------
# The engine


class Engine:
    """The service's per-record chain, as `eventbus.service.processor` runs it."""

    def __init__(self, mapping_file: Path = MAPPING_FILE) -> None:
        self.compiled = compile_mapping(load_mapping(mapping_file))
        self.schemas = topic_schemas(self.compiled)
        self.serializer = AvroEventSerializer(self.schemas, SCHEMA_IDS)

    def run(self, records: Sequence[Record], out: list[Output]) -> None:
        # A fresh decoder per run: each run starts cold, like a restarted consumer.
        decoder = staging_decoder({STAGING_TOPIC: [self.compiled]})
        events_of = self.compiled.events_of
        serialize = self.serializer.serialize
        append = out.append
        # In consumer batches and two passes, as `Processor.process` runs them: the mappings of
        # every record of the batch, then the events encoded in order.
        for start in range(0, len(records), BATCH_SIZE):
            batch = records[start : start + BATCH_SIZE]
            events = [
                event
                for value, key, topic in batch
                for event in events_of(StagingRecord(decoder, value, key, topic))
            ]
            for event in events:
                event_key, event_value, headers = serialize(event)
                append((event.topic, event_key, event_value, headers))


# --------------------------------------------------------------------------------------------------
# The hand-written function


_PAYLOAD_SEP: Final = b',"payload":'
_DECIDED: Final = frozenset({"Authorized", "Continued at Authorization"})
_PLACEHOLDER: Final = "__debezium_unavailable_value"
_MILLIS: Final = tuple(f".{n:03d}Z".encode() for n in range(1000))


class HandWrittenClaimDecided:
    """`claim_decided` written by hand for `public.claims`: the honest ceiling for Python.

    What it does per record, and why that is the fair best:

    * Decoding: the same shortcut as `ConnectJsonDecoder` — remember the `{"schema":...,"payload":`
      prefix of the topic (checked once against the parsed schema), and when a record starts with
      it `orjson.loads` only the payload through a zero-copy `memoryview`; anything else is parsed
      whole. No envelope validation, no error positions, no fallback path: plain dict access.
    * Filtering before anything else: `op`, then `after.status` against a frozenset (which also
      rejects null and the TOAST placeholder), then `before.status`. The key record is parsed only
      for changes that produce an event.
    * Conversions hand-coded and only for the event's columns: base64 → `int.from_bytes` →
      `Decimal(...).scaleb(-2)` for `numeric(12,2)` (exact: 12 digits fit the default 28-digit
      context), `datetime.fromisoformat` for the `timestamptz` text, a slice for the end-product
      code. No coercion checks: the table's column types are known to fit the Avro fields.
    * Encoding: the key and value dicts go to the same per-schema Avro encoders the engine uses
      (`AvroEncoder.raw`, generated straight-line code, faster than fastavro's `schemaless_writer`),
      with the same 5-byte Confluent prefix. Event id: `EventIdFactory` (the id is part of the
      output contract). Headers: built inline from pre-encoded constants, `ce_time` from a
      one-entry cache of the formatted second plus a table of `.mmmZ` suffixes: the same bytes as
      `build_headers`.

    It assumes what a hand-written function for one table may assume (REPLICA IDENTITY FULL, this
    column set), and raises on the rare inputs it does not handle instead of dead-lettering them.
    """

    def __init__(self, schemas: list[TopicSchemas], schema_ids: dict[str, int]) -> None:
        (spec,) = schemas
        self.topic = spec.topic
        self.key_raw = AvroEncoder(
            topic=spec.topic,
            part="key",
            schema=spec.key_schema,
            schema_id=schema_ids[subject_name(spec.topic, "key")],
        ).raw
        self.value_raw = AvroEncoder(
            topic=spec.topic,
            part="value",
            schema=spec.value_schema,
            schema_id=schema_ids[subject_name(spec.topic, "value")],
        ).raw
        self.event_id = EventIdFactory(
            connector="claims",
            table="public.claims",
            mapping="claim_decided",
            mapping_version=1,
            emit_index=0,
        )
        self.constant_headers = (
            ("ce_type", b"claim_decided.v1"),
            ("ce_source", b"/claims/public.claims"),
            (MAPPING_HEADER, b"claim_decided"),
            (MAPPING_VERSION_HEADER, b"1"),
        )

    @staticmethod
    def _prefix_length(data: bytes) -> int:
        """Length of `{"schema":<schema>,"payload":`, verified by parsing the schema part."""
        doc = orjson.loads(data)
        pos = data.find(_PAYLOAD_SEP)
        while pos != -1:
            try:
                if orjson.loads(data[10:pos]) == doc["schema"]:
                    return pos + len(_PAYLOAD_SEP)
            except orjson.JSONDecodeError:
                pass
            pos = data.find(_PAYLOAD_SEP, pos + 1)
        raise ValueError("not a Connect JSON record with schemas enabled")

    def run(self, records: Iterable[Record], out: list[Output]) -> None:
        loads, a2b, from_bytes = orjson.loads, binascii.a2b_base64, int.from_bytes
        fromisoformat, dec = datetime.fromisoformat, Decimal
        decided, placeholder = _DECIDED, _PLACEHOLDER
        key_raw, value_raw, event_id = self.key_raw, self.value_raw, self.event_id
        topic_out = self.topic
        ce_type, ce_source, mapping_header, version_header = self.constant_headers
        append = out.append
        gmtime, strftime, millis_suffix = time.gmtime, time.strftime, _MILLIS
        last_second, second_text = None, b""
        value_prefix = key_prefix = b"\0"  # learnt from the first record (never matches before)
        value_len = key_len = 0
        for value, key, _topic in records:
            if value.startswith(value_prefix):
                payload = loads(memoryview(value)[value_len:-1])
            else:
                value_len = self._prefix_length(value)
                value_prefix = value[:value_len]
                payload = loads(memoryview(value)[value_len:-1])
            if payload["op"] != "u":
                continue
            after = payload["after"]
            status = after["status"]
            if status not in decided:
                continue
            before = payload["before"]
            previous = None if before is None else before["status"]
            if previous == status:
                continue
            if previous == placeholder:
                raise ValueError("before.status unavailable (TOAST)")
            amount = after["amount"]
            if amount is not None:
                amount = dec(from_bytes(a2b(amount), "big", signed=True)).scaleb(-2)
            claim_id = after["id"]
            source = payload["source"]
            if not key.startswith(key_prefix):
                key_len = self._prefix_length(key)
                key_prefix = key[:key_len]
            event_key = {"claim_id": claim_id}
            event_value = {
                "claim_id": claim_id,
                "end_product_code": after["claim_type_code"][:3],
                "status": status,
                "previous_status": previous,
                "station_number": after["station_number"],
                "amount": amount,
                "decided_at": fromisoformat(after["updated_at"]),
            }
            second, millis = divmod(source["ts_ms"], 1000)
            if second != last_second:
                last_second, second_text = second, strftime("%Y-%m-%dT%H:%M:%S", gmtime(second)).encode()
            headers = [
                SPECVERSION,
                (
                    "ce_id",
                    event_id(source["lsn"], source["txId"], loads(memoryview(key)[key_len:-1])).encode(),
                ),
                ce_type,
                ce_source,
                ("ce_subject", str(claim_id).encode()),
                CONTENT_TYPE,
                mapping_header,
                version_header,
                ("ce_time", second_text + millis_suffix[millis]),
            ]
            append((topic_out, key_raw(event_key), value_raw(event_value), headers))


# --------------------------------------------------------------------------------------------------
# Measurement


def measure(
    changes: int = DEFAULT_CHANGES, rounds: int = DEFAULT_ROUNDS, *, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Interleaved rounds (engine, hand-written, engine, ...); returns the numbers as a dict."""
    with pinned_to_one_core() as cpu:
        log(f"pinned to CPU {cpu}; generating {changes:,} changes ...")
        records = generate(changes)
        mean_bytes = sum(len(v) + len(k) for v, k, _ in records) / len(records)
        engine = Engine()
        hand = HandWrittenClaimDecided(engine.schemas, SCHEMA_IDS)
        contenders: list[tuple[str, Callable[[Iterable[Record], list[Output]], None]]] = [
            ("engine", engine.run),
            ("handwritten", hand.run),
        ]
        out: list[Output] = []
        for _, run in contenders:  # warm-up: imports, lazy caches, first-record schema parse
            run(records[:2000], out)
        out.clear()
        rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
        walls: dict[str, list[float]] = {name: [] for name, _ in contenders}
        events = 0
        with quiet_gc():
            for number in range(1, rounds + 1):
                for name, run in contenders:
                    timing, _ = timed(lambda run=run: run(records, out))  # type: ignore[misc]
                    events = len(out)
                    out.clear()
                    rates[name].append(changes / timing.cpu_s)
                    walls[name].append(changes / timing.wall_s)
                log(
                    f"round {number}: engine {rates['engine'][-1]:>9,.0f}/s   "
                    f"hand-written {rates['handwritten'][-1]:>9,.0f}/s"
                )
    engine_rate = statistics.median(rates["engine"])
    hand_rate = statistics.median(rates["handwritten"])
    return {
        "engine_changes_per_s": round(engine_rate),
        "engine_handwritten_changes_per_s": round(hand_rate),
        "engine_vs_handwritten": round(engine_rate / hand_rate, 3),
        # Each round's two runs are neighbours in time: the median of their ratios is the least
        # sensitive to a noisy neighbour slowing several consecutive runs.
        "engine_vs_handwritten_paired": round(
            statistics.median(e / h for e, h in zip(rates["engine"], rates["handwritten"], strict=True)), 3
        ),
        "engine_us_per_change": round(1e6 / engine_rate, 2),
        "engine_handwritten_us_per_change": round(1e6 / hand_rate, 2),
        "engine_rounds": rounds,
        "engine_changes": changes,
        "engine_events_per_run": events,
        "engine_mean_record_bytes": round(mean_bytes),
        "engine_round_rates": [round(r) for r in rates["engine"]],
        "engine_handwritten_round_rates": [round(r) for r in rates["handwritten"]],
        "engine_wall_changes_per_s": round(statistics.median(walls["engine"])),
        "engine_handwritten_wall_changes_per_s": round(statistics.median(walls["handwritten"])),
        "engine_pinned_cpu": cpu,
    }


def report(result: dict[str, Any], log: Callable[[str], None] = print) -> None:
    engine, hand, ratio = (
        result["engine_changes_per_s"],
        result["engine_handwritten_changes_per_s"],
        result["engine_vs_handwritten"],
    )
    log(
        f"\n{result['engine_changes']:,} changes ({result['engine_mean_record_bytes']:,} B value+key each), "
        f"{result['engine_events_per_run']:,} events a run, median of {result['engine_rounds']} rounds, "
        f"CPU time on one core:"
    )
    log(f"  engine        {engine:>9,} changes/s  ({result['engine_us_per_change']} µs/change)")
    log(f"  hand-written  {hand:>9,} changes/s  ({result['engine_handwritten_us_per_change']} µs/change)")
    log(f"  ratio         {ratio:.3f}   (target ≥ 0.8)")
    log(f"  target ≥ 200,000 changes/s per core: {'met' if engine >= 200_000 else 'MISSED'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=DEFAULT_CHANGES)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    args = parser.parse_args(argv)
    result = measure(args.changes, args.rounds)
    report(result)
    info = machine_info()
    print(f"  machine: {info['cores']} cores, {info['cpu_model']}, Python {info['python_version']}")


if __name__ == "__main__":
    main()
