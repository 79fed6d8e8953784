"""Lookup benchmarks: what reading related rows costs the engine, and the store's memory and restore.

Run: `.venv/bin/python -m bench.lookups` (`--changes`, `--rounds`, `--rows`, `--skip-store`).

1. `lookup_vs_plain` (no services): the engine benchmark's chain (bench/engine.py: decode → mapping →
   Avro) on the same 20-column `public.claims` records, for a mapping with **two lookups per change**
   (`station` by `station_number`, `veteran` by `veteran_participant_id`, both read by the first part of
   `when`, so every update looks both up) against the same mapping without the lookups. The related
   rows (every key the records use, three versions each, plus unrelated rows up to 200,000) sit in an
   on-disk `VersionStore` opened cold; each change sets its commit position as the service does.
   Rounds alternate plain / lookups on one pinned core, CPU time; the ratio of medians is reported.
2. `lookup_store_rss_mb` and `lookup_restore_s` (real stack): 1,000,000 rows of a looked-up table are
   written to its staging topic as Debezium would (Connect JSON with schemas), then a real
   `eventbus transformer run` with an empty state directory starts: the time until its store has
   caught up (its own log line) is the restore; then 5,000 triggering changes are produced, and the
   process's peak RSS (VmHWM) over its whole life is the memory figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # `python bench/lookups.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench.common import pinned_to_one_core, quiet_gc, timed
from bench.engine import BATCH_SIZE, MAPPING_FILE, SCHEMA_IDS, Output, Record, generate, topic_schemas
from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.record import StagingRecord
from eventbus.events.avro import AvroEventSerializer
from eventbus.lookups.resolver import LookupResolver, key_text, table_id
from eventbus.lookups.store import Version, VersionStore
from eventbus.mapping import CompiledMapping, compile_mapping, load_mapping

DEFAULT_CHANGES: Final = 50_000
DEFAULT_ROUNDS: Final = 7
DEFAULT_ROWS: Final = 1_000_000
STORE_FILLER_ROWS: Final = 200_000

LOOKUPS: Final = """\
lookup:
  station:
    table: public.stations
    key: {station_number: after.station_number}
    on_missing: "null"
  veteran:
    table: public.veterans
    key: {participant_id: after.veteran_participant_id}
    on_missing: "null"
"""
STATIONS: Final = [("station_number", "int32"), ("region", "string"), ("open", "boolean")]
VETERANS: Final = [("participant_id", "int64"), ("branch", "string"), ("active", "boolean")]


def connect_envelope(
    table: str, columns: list[tuple[str, str]], prefix: str = "staging.bench"
) -> dict[str, Any]:
    """The Connect JSON schema of a Debezium envelope for a table of plain columns."""
    row = {
        "type": "struct", "optional": True, "name": f"{prefix}.{table}.Value",
        "fields": [{"type": kind, "optional": False, "field": name} for name, kind in columns],
    }  # fmt: skip
    source = {
        "type": "struct", "optional": False, "name": "io.debezium.connector.postgresql.Source",
        "fields": [{"type": t, "optional": o, "field": f} for f, t, o in (
            ("version", "string", False), ("connector", "string", False), ("name", "string", False),
            ("ts_ms", "int64", False), ("snapshot", "string", True), ("db", "string", False),
            ("sequence", "string", True), ("schema", "string", False), ("table", "string", False),
            ("txId", "int64", True), ("lsn", "int64", True))],
    }  # fmt: skip
    return {
        "type": "struct", "optional": False, "name": f"{prefix}.{table}.Envelope",
        "fields": [row | {"field": "before"}, row | {"field": "after"}, source | {"field": "source"},
                   {"type": "string", "optional": False, "field": "op"},
                   {"type": "int64", "optional": True, "field": "ts_ms"}],
    }  # fmt: skip


def lookup_mapping_dir(root: Path) -> tuple[Path, Path]:
    """The engine benchmark's mapping, plain and with two lookups, with the related tables captured."""
    plain_dir, lookup_dir = root / "plain", root / "lookups"
    shutil.copytree(MAPPING_FILE.parent, plain_dir)
    shutil.copytree(MAPPING_FILE.parent, lookup_dir)
    text = MAPPING_FILE.read_text()
    # The same mapping; the lookup variant reads both related rows before its own condition.
    plain = text.replace(
        "when: >-\n  changed(after.status)", "when: >-\n  after.priority >= 0\n  and changed(after.status)"
    )
    looked = text.replace("on: update\n", "on: update\n" + LOOKUPS).replace(
        "when: >-\n  changed(after.status)",
        "when: >-\n  coalesce(station.open, true) and coalesce(veteran.active, true)\n"
        "  and changed(after.status)",
    )
    (plain_dir / MAPPING_FILE.name).write_text(plain)
    (lookup_dir / MAPPING_FILE.name).write_text(looked)
    for table, columns in (("public.stations", STATIONS), ("public.veterans", VETERANS)):
        (lookup_dir / "tables" / f"{table}.json").write_text(json.dumps(connect_envelope(table, columns)))
        key = {
            "type": "struct",
            "fields": [{"type": columns[0][1], "optional": False, "field": columns[0][0]}],
        }
        (lookup_dir / "tables" / f"{table}.key.json").write_text(json.dumps(key))
    return plain_dir / MAPPING_FILE.name, lookup_dir / MAPPING_FILE.name


def fill_store(path: Path, records: list[Record], compiled: CompiledMapping) -> int:
    """Every station and Veteran the records name, three versions each, plus unrelated rows."""
    decoder = ConnectJsonDecoder(schemas_enabled=True)
    stations, veterans = set(), set()
    for value, _key, topic in records:
        usual = decoder.decode_payload(value, topic)
        row = usual and (usual[0]["after"] or usual[0]["before"])
        if row:
            stations.add(row.get("station_number"))
            veterans.add(row.get("veteran_participant_id"))
    plans = {plan.name: plan for plan in compiled.lookups}
    store = VersionStore(path)
    rows = 0
    rng = random.Random(7)
    for name, keys, make in (
        ("station", stations, lambda k, v: {"station_number": k, "region": f"R{v}", "open": True}),
        ("veteran", veterans, lambda k, v: {"participant_id": k, "branch": f"B{v}", "active": True}),
    ):
        plan = plans[name]
        tid = table_id(plan.connector, plan.table, plan.key_columns)
        extra = [rng.randrange(10**12, 10**13) for _ in range(STORE_FILLER_ROWS // 2)]
        for key in [k for k in keys if k is not None] + extra:
            for version in range(3):  # versions committed before, around and after the changes
                store.add(
                    tid, key_text((key,)), Version(version * 10**9, version, 0, make(key, version), None)
                )  # type: ignore[arg-type]
                rows += 1
    store.commit_offsets({})
    store.close()
    return rows


class LookupEngine:
    """bench/engine.py's `Engine`, plus what the processor does for a mapping with lookups."""

    def __init__(self, mapping_file: Path, store_path: Path | None, *, cold: bool = False) -> None:
        """`cold`: open the store anew for every run (as after a restart: every row read from disk
        once); otherwise it stays open, its hot rows in memory, as in a running service."""
        self.compiled = compile_mapping(load_mapping(mapping_file))
        self.serializer = AvroEventSerializer(topic_schemas(self.compiled), SCHEMA_IDS)
        self.store_path = store_path
        self.cold = cold
        self._store: VersionStore | None = None

    def run(self, records: Sequence[Record], out: list[Output]) -> None:
        decoder = ConnectJsonDecoder(schemas_enabled=True)
        events_of = self.compiled.events_of
        serialize = self.serializer.serialize
        append = out.append
        store = resolver = None
        lk = None
        if self.store_path is not None:
            if self._store is None or self.cold:
                self._store = VersionStore(self.store_path)
            store = self._store
            resolver = LookupResolver(store, progress_ts={})
            lk = resolver.for_mapping(self.compiled.spec.name, self.compiled.lookups)
        # Two passes per consumer batch, as `Processor.process` runs them (see `Engine.run`).
        for start in range(0, len(records), BATCH_SIZE):
            events = []
            for value, key, topic in records[start : start + BATCH_SIZE]:
                record = StagingRecord(decoder, value, key, topic)
                # As the processor does for every record of a lookup topic: the dedup watermark's
                # position, which is also what the lookups are answered as of.
                position = record.position
                if resolver is not None:
                    resolver.at(0 if position is None else position[0], record.ts_ms)
                events += events_of(record, lk)
            for event in events:
                event_key, event_value, headers = serialize(event)
                append((event.topic, event_key, event_value, headers))
        if store is not None and self.cold:
            store.close()


def measure_engine(changes: int, rounds: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="eventbus-lookup-bench-") as tmp, pinned_to_one_core() as cpu:
        root = Path(tmp)
        plain_file, lookup_file = lookup_mapping_dir(root)
        log(f"pinned to CPU {cpu}; generating {changes:,} changes ...")
        records = generate(changes)
        plain = LookupEngine(plain_file, None)
        looked = LookupEngine(lookup_file, root / "store.sqlite")
        cold = LookupEngine(lookup_file, root / "store.sqlite", cold=True)
        stored = fill_store(root / "store.sqlite", records, looked.compiled)
        log(f"store: {stored:,} row versions on disk")
        contenders = [("plain", plain.run), ("lookups", looked.run), ("cold", cold.run)]
        out: list[Output] = []
        for _, run in contenders:
            run(records[:2000], out)
        out.clear()
        rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
        events: dict[str, int] = {}
        with quiet_gc():
            for number in range(1, rounds + 1):
                for name, run in contenders:
                    timing, _ = timed(lambda run=run: run(records, out))  # type: ignore[misc]
                    events[name] = len(out)
                    out.clear()
                    rates[name].append(changes / timing.cpu_s)
                plain_now, looked_now, cold_now = (rates[n][-1] for n in ("plain", "lookups", "cold"))
                log(f"round {number}: plain {plain_now:>9,.0f}/s   two lookups {looked_now:>9,.0f}/s   "
                    f"(store opened cold: {cold_now:>9,.0f}/s)")  # fmt: skip
    plain_rate, lookup_rate = statistics.median(rates["plain"]), statistics.median(rates["lookups"])
    cold_rate = statistics.median(rates["cold"])
    if not events["plain"] == events["lookups"] == events["cold"]:
        raise RuntimeError(f"the two mappings should emit alike: {events}")
    return {
        "lookup_vs_plain": round(lookup_rate / plain_rate, 3),
        "lookup_changes_per_s": round(lookup_rate),
        "lookup_plain_changes_per_s": round(plain_rate),
        "lookup_us_per_lookup": round((1e6 / lookup_rate - 1e6 / plain_rate) / 2, 2),
        "lookup_round_ratios": [
            round(a / b, 3) for a, b in zip(rates["lookups"], rates["plain"], strict=True)
        ],
        "lookup_vs_plain_cold": round(cold_rate / plain_rate, 3),
        "lookup_store_row_versions": stored,
        "lookup_changes": changes,
        "lookup_rounds": rounds,
    }


# --- the store in a real transformer -----------------------------------------------------------------


def measure_store(rows: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    from confluent_kafka import Producer

    from bench.transformer import BOOTSTRAP, create_topic, delete_topics, proc_peak_rss_mb
    from tests.support.stack import REPO

    source = f"benchlk{uuid.uuid4().hex[:6]}"
    related = f"staging.{source}.public.veterans"
    trigger = f"staging.{source}.public.claims"
    target = f"bench_lookup_{source}"
    created = [related, trigger, target, f"staging.dlq.{source}", f"staging.parked.{source}"]
    root = Path(tempfile.mkdtemp(prefix="eventbus-lookup-store-"))
    try:
        create_topic(related, 3, **{"cleanup.policy": "compact"})
        create_topic(trigger, 3)
        create_topic(target, 3)
        create_topic(f"staging.dlq.{source}", 1)  # the broker creates no topic by itself, as on the bus
        schema = connect_envelope("public.veterans", VETERANS, prefix=f"staging.{source}")
        key_schema = {
            "type": "struct",
            "optional": False,
            "name": f"staging.{source}.public.veterans.Key",
            "fields": [{"type": "int64", "optional": False, "field": "participant_id"}],
        }
        producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 50, "compression.type": "lz4",
                             "enable.idempotence": True, "queue.buffering.max.messages": 1_000_000,
                             "partitioner": "murmur2_random"})  # fmt: skip
        started = time.perf_counter()
        prefix = orjson.dumps(schema)
        for number in range(rows):
            pid = 600_000_000 + number
            payload = {
                "before": None, "after": {"participant_id": pid, "branch": "Army", "active": True},
                "source": {"version": "3.6.1.Final", "connector": "postgresql", "name": f"staging.{source}",
                           "ts_ms": 1_700_000_000_000, "snapshot": "true", "db": "bench", "sequence": None,
                           "schema": "public", "table": "veterans", "txId": None, "lsn": 1},
                "op": "r", "ts_ms": 1_700_000_000_000,
            }  # fmt: skip
            value = b'{"schema":' + prefix + b',"payload":' + orjson.dumps(payload) + b"}"
            key = orjson.dumps({"schema": key_schema, "payload": {"participant_id": pid}})
            while True:
                try:
                    producer.produce(related, value, key)
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.flush(300)
        log(f"{rows:,} related rows written in {time.perf_counter() - started:.1f}s")

        mappings = root / "mappings"
        _, lookup_file = lookup_mapping_dir(root / "m")
        shutil.copytree(lookup_file.parent, mappings)
        text = (mappings / MAPPING_FILE.name).read_text()
        text = text.replace("connector: claims", f"connector: {source}").replace(
            "topic: claim_decided", f"topic: {target}"
        )
        text = text.replace(
            f"  topic: {target}\n", f"  topic: {target}\n  topic_settings: {{partitions: 3}}\n", 1
        )
        # Only the Veteran lookup: the stations table is not part of this run.
        text = text.replace(
            LOOKUPS.split("  veteran:")[0].removeprefix("lookup:\n"),
            "",
        )
        text = text.replace("coalesce(station.open, true) and ", "")
        (mappings / MAPPING_FILE.name).write_text(text)
        config = root / "config.yaml"
        config.write_text(
            f"group_id: {source}\ninstance_id: bench\nstate_dir: {root / 'state'}\n"
            f"kafka: {{bootstrap_servers: '{BOOTSTRAP}'}}\nhttp: {{enabled: false}}\n"
        )
        log_path = root / "transformer.log"
        env = {**os.environ, "PYTHONPATH": str(REPO / "transformer")}
        with log_path.open("w") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "eventbus.cli", "transformer", "run", "--mappings", str(mappings),
                 "--config", str(config)], stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=root,
            )  # fmt: skip
        peak = 0.0
        restore_s = None
        deadline = time.monotonic() + 900
        while restore_s is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"transformer stopped or too slow:\n{log_path.read_text()[-3000:]}")
            peak = max(peak, proc_peak_rss_mb(process.pid) or 0.0)
            for line in log_path.read_text().splitlines():
                if "lookup store caught up" in line:
                    restore_s = json.loads(line).get("seconds")
            time.sleep(0.5)
        log(f"restored {rows:,} rows in {restore_s}s")
        from eventbus_dev.samples import generate_records

        for record in generate_records(5_000, seed=3, topic_prefix=f"staging.{source}"):
            producer.produce(trigger, record.value, record.key)
        producer.flush(60)
        time.sleep(10)
        peak = max(peak, proc_peak_rss_mb(process.pid) or 0.0)
        process.terminate()
        process.wait(60)
        store_bytes = sum(f.stat().st_size for f in (root / "state").glob("*"))
        return {
            "lookup_store_rss_mb": round(peak, 1),
            "lookup_restore_s": restore_s,
            "lookup_store_rows": rows,
            "lookup_store_disk_mb": round(store_bytes / 1e6, 1),
        }
    finally:
        delete_topics(created)
        shutil.rmtree(root, ignore_errors=True)


def measure(changes: int = DEFAULT_CHANGES, rounds: int = DEFAULT_ROUNDS, rows: int = DEFAULT_ROWS,
            *, store: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    result = measure_engine(changes, rounds, log)
    if store:
        result |= measure_store(rows, log)
    return result


def report(result: dict[str, Any], log: Callable[[str], None] = print) -> None:
    log(
        f"\nlookups: {result['lookup_changes']:,} changes, "
        f"median of {result['lookup_rounds']} rounds, one core:"
    )
    log(f"  plain mapping       {result['lookup_plain_changes_per_s']:>9,} changes/s")
    log(f"  with two lookups    {result['lookup_changes_per_s']:>9,} changes/s "
        f"({result['lookup_us_per_lookup']} µs a lookup)")  # fmt: skip
    log(f"  lookup_vs_plain     {result['lookup_vs_plain']:.3f}   (target ≥ 0.7; store opened cold for "
        f"every run: {result['lookup_vs_plain_cold']:.3f})")  # fmt: skip
    if "lookup_store_rss_mb" in result:
        log(f"  {result['lookup_store_rows']:,} looked-up rows: transformer peak RSS "
            f"{result['lookup_store_rss_mb']} MB (target ≤ 250), restore from an empty disk "
            f"{result['lookup_restore_s']} s, store {result['lookup_store_disk_mb']} MB on disk")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=DEFAULT_CHANGES)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--skip-store", action="store_true", help="only the engine part (no services)")
    args = parser.parse_args(argv)
    report(measure(args.changes, args.rounds, args.rows, store=not args.skip_store))


if __name__ == "__main__":
    main()
