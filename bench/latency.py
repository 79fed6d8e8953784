"""End-to-end latency: PostgreSQL commit → curated event visible to a `read_committed` consumer.

Run: `.venv/bin/python -m bench.latency` (`--rate 1000 --seconds 60`); needs the local stack.

1. A fresh database (unique name) with the sample claims schema (`eventbus_dev.demo.traffic`, REPLICA
   IDENTITY FULL) and 500 claims, registered as a source exactly as a team does it
   (`eventbus source register` with the sample `connectors/claims.yaml` pointed at it: Debezium with
   `exactly.once.support=required`, staging topics with 3 partitions).
2. A bench mapping (`claim_status_recorded`: every update of a claim → one 4-field Avro event) and
   a real `eventbus transformer run` process, exactly-once, default settings except
   `commit_interval_ms` 50 (see DEFAULT_COMMIT_INTERVAL_MS); Debezium `poll.interval.ms` 20.
3. Traffic: `--rate` updates per second for `--seconds` (after a 5 s warm-up that is not counted),
   each update its own transaction (`status` and `status_changed_at` of one claim), sent in 10 ms
   ticks through libpq pipeline mode so the rate holds without a round trip per statement; a tick
   late by more than one interval is not made up in a burst.
4. A `read_committed` consumer on the curated topic takes, per event, its receive wall clock minus
   `ce_time` (the change's source `ts_ms`: PostgreSQL's commit time, millisecond resolution).
   Same machine, same clock. Reported: p50/p95/p99/max and a CDF chart; the transformer's peak RSS
   (`VmHWM`) over the run.

The connector, slot, database, topics and registry subjects are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # `python bench/latency.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psycopg
from confluent_kafka import Consumer, Message, TopicPartition

from bench.common import REPO
from bench.transformer import (
    BOOTSTRAP,
    PARTITIONS,
    REGISTRY,
    _delete_subjects,
    create_topic,
    delete_topics,
    proc_peak_rss_mb,
)

EVENTBUS: Final = Path(sys.executable).parent / "eventbus"
CONNECT: Final = os.environ.get("EVENTBUS_CONNECT_URL", "http://127.0.0.1:18083")
PG_HOST: Final = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT: Final = int(os.environ.get("BENCH_PG_PORT", "15432"))
PG_USER: Final = os.environ.get("BENCH_PG_USER", "postgres")
PG_PASSWORD: Final = os.environ.get("BENCH_PG_PASSWORD", "postgres")
DEFAULT_RATE: Final = 1_000
DEFAULT_SECONDS: Final = 60
WARMUP_S: Final = 5.0
TICK_S: Final = 0.01
# Debezium's `poll.interval.ms` (its default: 500) is how long the connector lets changes gather
# before handing a batch to Connect: at 1,000 changes/s it alone adds ~250 ms on average. Set in the
# bench's source definition through its `debezium:` section (None: the connector's default).
DEFAULT_POLL_INTERVAL_MS: Final[int | None] = 20
# The transformer's commit_interval_ms for this run (its default: 100). A change waits on average
# half the interval for its transaction's commit: 50 ms took ~50 ms off p50 here and cost ~7 % of
# peak throughput (bench/README.md).
DEFAULT_COMMIT_INTERVAL_MS: Final = 50
CLAIMS: Final = 500
STATUSES: Final = ("UNDER_REVIEW", "GATHERING_EVIDENCE", "DECISION_MADE", "AUTHORIZED", "CLOSED", "RECEIVED")

MAPPING: Final = """\
name: claim_status_recorded
version: 1
description: Every update of a claim, with its status (latency benchmark workload).
owner: platform-team
source: {{connector: {source}, table: public.claims}}
on: update
emit:
  topic: {topic}
  topic_settings: {{partitions: {partitions}}}
  key_schema: schemas/claim_key.avsc
  value_schema: schemas/claim_status_recorded.avsc
  key:
    claim_id: after.claim_id
  fields:
    claim_id: after.claim_id
    status: after.status
    previous_status: before.status
    status_changed_at: after.status_changed_at
"""
VALUE_SCHEMA: Final = {
    "type": "record",
    "name": "ClaimStatusRecorded",
    "namespace": "gov.va.eventbus.bench",
    "fields": [
        {"name": "claim_id", "type": "long"},
        {"name": "status", "type": "string"},
        {"name": "previous_status", "type": ["null", "string"], "default": None},
        {"name": "status_changed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


def _dsn(database: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} dbname={database} user={PG_USER} password={PG_PASSWORD}"


def _eventbus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EVENTBUS), *args], capture_output=True, text=True, env=env, cwd=REPO, check=False
    )


def _ce_time_ms(text: bytes) -> float:
    # ce_time is RFC 3339 in UTC with milliseconds, e.g. 2026-11-27T16:20:00.123Z
    return datetime.fromisoformat(text.decode().replace("Z", "+00:00")).timestamp() * 1000


def _staging_ts_ms(value: bytes) -> float | None:
    """`payload.source.ts_ms` of a staging record, found without parsing the 6 kB document."""
    at = value.find(b'"ts_ms":', value.find(b'"source":{'))
    if at < 0:
        return None
    end = at + 8
    while value[end : end + 1].isdigit():
        end += 1
    return float(value[at + 8 : end])


def _curated_ts_ms(message: Message) -> float | None:
    ce_time = next((v for k, v in message.headers() or [] if k == "ce_time"), None)
    return None if ce_time is None else _ce_time_ms(ce_time)


class Receiver(threading.Thread):
    """read_committed consumer: (receive wall ms - source ts_ms) per record of `topic`."""

    def __init__(self, topic: str, partitions: int, source_ms: Callable[[Message], float | None]) -> None:
        super().__init__(daemon=True)
        self.source_ms = source_ms
        self.consumer = Consumer(
            {
                "bootstrap.servers": BOOTSTRAP,
                "group.id": f"latency-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,  # the reader must not add its own batching delay
                "fetch.queue.backoff.ms": 1,
            }
        )
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.samples: list[tuple[float, float]] = []  # (source ts ms, latency ms)
        self.records = self.raw_bytes = 0  # key + value bytes as read (uncompressed)
        self.stop_flag = threading.Event()

    def run(self) -> None:
        consume, samples = self.consumer.consume, self.samples
        try:
            while not self.stop_flag.is_set():
                for message in consume(num_messages=1000, timeout=0.05):
                    received = time.time() * 1000  # taken first: nothing of ours counts as latency
                    if message.error() is not None:
                        continue
                    self.records += 1
                    self.raw_bytes += len(message.key() or b"") + len(message.value() or b"")
                    source_ms = self.source_ms(message)
                    if source_ms is not None:
                        samples.append((source_ms, received - source_ms))
        finally:
            self.consumer.close()


def drive(database: str, rate: int, seconds: float, seed_ids: list[int]) -> tuple[int, float]:
    """Updates at `rate`/s for `seconds`, one transaction each; returns (changes, achieved rate)."""
    per_tick = rate * TICK_S
    sent = 0
    owed = 0.0
    statement = "update public.claims set status = %s, status_changed_at = now() where claim_id = %s"
    with psycopg.connect(_dsn(database), autocommit=True) as conn:
        started = time.monotonic()
        next_tick = started
        while True:
            now = time.monotonic()
            if now - started >= seconds:
                break
            owed += per_tick
            count = int(owed)
            owed -= count
            # Pipeline mode: `count` single-statement (autocommit) transactions in one round trip.
            with conn.pipeline():
                for _ in range(count):
                    claim = seed_ids[sent % len(seed_ids)]
                    status = STATUSES[(sent // len(seed_ids)) % len(STATUSES)]
                    conn.execute(statement, (status, claim), prepare=True)
                    sent += 1
            next_tick += TICK_S
            pause = next_tick - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing the traffic, not synchronisation
            elif pause < -TICK_S:
                next_tick = time.monotonic()  # fell behind: do not burst to catch up
        elapsed = time.monotonic() - started
    return sent, sent / elapsed


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def measure(
    rate: int = DEFAULT_RATE,
    seconds: float = DEFAULT_SECONDS,
    poll_interval_ms: int | None = DEFAULT_POLL_INTERVAL_MS,
    commit_interval_ms: int = DEFAULT_COMMIT_INTERVAL_MS,
    *,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    source, database = f"blat{suffix}", f"blat_{suffix}"
    topic = f"claim_status_recorded_{suffix}"
    group = f"blat-{suffix}"
    root = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    env = {
        **os.environ,
        "CLAIMS_DB_PASSWORD": PG_PASSWORD,
        "EVENTBUS_CONNECT_URL": CONNECT,
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
    }
    definition = root / "connectors" / f"{source}.yaml"
    process: subprocess.Popen[bytes] | None = None
    receiver: Receiver | None = None
    staging: Receiver | None = None
    registered = False
    peak_rss: float | None = None
    try:
        from eventbus_dev.demo.traffic import create_schema, make_engine, seed

        with psycopg.connect(_dsn("postgres"), autocommit=True) as admin:
            admin.execute(f'create database "{database}"')
        engine = make_engine(f"postgresql+psycopg://{PG_USER}:{PG_PASSWORD}@{PG_HOST}:{PG_PORT}/{database}")
        create_schema(engine)
        seed(engine, claims=CLAIMS)
        engine.dispose()
        with psycopg.connect(_dsn(database)) as conn:
            seed_ids = [row[0] for row in conn.execute("select claim_id from public.claims order by 1")]

        mappings = root / "mappings"
        ignore = shutil.ignore_patterns("tests", "*.yaml")  # the sample's schemas and tables, our mapping
        shutil.copytree(REPO / "mappings" / "claims", mappings, ignore=ignore)
        (mappings / "claim_status_recorded.yaml").write_text(
            MAPPING.format(source=source, topic=topic, partitions=PARTITIONS)
        )
        (mappings / "schemas" / "claim_status_recorded.avsc").write_text(json.dumps(VALUE_SCHEMA))
        text = (REPO / "connectors" / "claims.yaml").read_text()
        text = text.replace("dbname: claims", f"dbname: {database}")
        text = text.replace("port: 15432", f"port: {PG_PORT}")
        if poll_interval_ms is not None:
            text += f"debezium:\n  poll.interval.ms: {poll_interval_ms}\n"
        definition.parent.mkdir()
        definition.write_text(text)
        done = _eventbus("source", "register", str(definition), "--mappings-dir", str(mappings), env=env)
        if done.returncode != 0:
            raise RuntimeError(f"source register failed:\n{done.stdout}{done.stderr}")
        registered = True
        log(f"source {source} registered (database {database}, {CLAIMS} claims)")

        create_topic(topic)  # as a team would before deploying; the reader is assigned from the start
        create_topic(f"staging.dlq.{group}", 1)  # the broker creates no topic by itself, as on the bus
        log_path = root / "transformer.log"
        with log_path.open("wb") as handle:
            process = subprocess.Popen(
                [str(EVENTBUS), "transformer", "run", "--mappings", str(mappings)],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env
                | {
                    "EVENTBUS_REGISTRY__URL": REGISTRY,
                    "EVENTBUS_GROUP_ID": group,
                    "EVENTBUS_INSTANCE_ID": "bench",
                    "EVENTBUS_HTTP__PORT": "0",
                    "EVENTBUS_COMMIT_INTERVAL_MS": str(commit_interval_ms),
                },
                cwd=REPO,
            )
        _wait_ready(process, log_path)
        receiver = Receiver(topic, PARTITIONS, _curated_ts_ms)
        receiver.start()
        # The staging topic too, to split the latency: Debezium + Connect, then the transformer.
        staging = Receiver(f"staging.{source}.public.claims", PARTITIONS, lambda m: _staging_ts_ms(m.value()))
        staging.start()

        sampler_stop = threading.Event()
        rss: list[float] = []

        def sample_rss() -> None:
            while not sampler_stop.wait(0.5):
                value = proc_peak_rss_mb(process.pid)  # type: ignore[union-attr]
                if value is not None:
                    rss.append(value)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        log(f"warm-up {WARMUP_S:.0f}s, then {rate:,} changes/s for {seconds:.0f}s ...")
        drive(database, rate, WARMUP_S, seed_ids)
        measured_from = time.time() * 1000
        sent, achieved = drive(database, rate, seconds, seed_ids)
        measured_to = time.time() * 1000
        # Drain: every change of the measured window must arrive (or the run is reported short).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = sum(1 for ts, _ in receiver.samples if measured_from <= ts <= measured_to)
            if got >= sent:
                break
            time.sleep(0.2)  # waiting for the tail of events, not synchronisation
        sampler_stop.set()
        sampler.join()
        peak_rss = max(rss) if rss else None
        staging_disk = _topic_bytes_on_disk(f"staging.{source}.public.claims")
    finally:
        for reader in (receiver, staging):
            if reader is not None:
                reader.stop_flag.set()
                reader.join(timeout=10)
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        if registered:
            _eventbus("source", "remove", str(definition), "--drop-slot", "--yes", env=env)
        _drop_database(database)
        delete_topics(
            [
                topic,
                f"staging.dlq.{group}",
                f"staging.{source}.public.claims",
                f"staging.{source}.public.contentions",
                f"__debezium-heartbeat.staging.{source}",  # Debezium's heartbeat topic for this source
            ]
        )
        _delete_subjects([f"{topic}-key", f"{topic}-value"])
        shutil.rmtree(root, ignore_errors=True)

    assert receiver is not None and staging is not None
    window = sorted(lat for ts, lat in receiver.samples if measured_from <= ts <= measured_to)
    staged = sorted(lat for ts, lat in staging.samples if measured_from <= ts <= measured_to)
    if not window:
        raise RuntimeError("no curated event arrived in the measured window")
    result = {
        "e2e_p50_ms": round(percentile(window, 50), 1),
        "e2e_p95_ms": round(percentile(window, 95), 1),
        "e2e_p99_ms": round(percentile(window, 99), 1),
        "e2e_max_ms": round(window[-1], 1),
        "e2e_mean_ms": round(statistics.fmean(window), 1),
        "e2e_min_ms": round(window[0], 1),
        # Source commit → staging record visible (read_committed): Debezium + Connect's transactions.
        "e2e_staging_p50_ms": round(percentile(staged, 50), 1) if staged else None,
        "e2e_staging_p99_ms": round(percentile(staged, 99), 1) if staged else None,
        "e2e_debezium_poll_interval_ms": poll_interval_ms,
        "e2e_commit_interval_ms": commit_interval_ms,
        "e2e_rate_target": rate,
        "e2e_rate_achieved": round(achieved, 1),
        "e2e_seconds": seconds,
        "e2e_changes_sent": sent,
        "e2e_events_received": len(window),
        "transformer_peak_rss_mb_latency": None if peak_rss is None else round(peak_rss, 1),
        # The staging topic's log segments on the broker's disk (zstd, batches as Connect wrote
        # them, transaction markers included) against the same records' key + value as read.
        "staging_bytes_per_change": round(staging_disk / staging.records)
        if staging_disk and staging.records
        else None,
        "staging_raw_bytes_per_change": round(staging.raw_bytes / staging.records)
        if staging.records
        else None,
        # The sorted latencies thinned to ≤ 2,000 points: enough to redraw the CDF.
        "e2e_cdf_ms": [round(window[int(i * (len(window) - 1) / 1999)], 1) for i in range(2000)]
        if len(window) > 2000
        else [round(v, 1) for v in window],
    }
    return result


def _topic_bytes_on_disk(topic: str) -> int | None:
    """Bytes of a topic's log segments in the local stack's broker (None when not found there)."""
    from eventbus_dev.stack.settings import StackSettings

    data = StackSettings().state / "kafka" / "data"
    segments = [
        f for d in data.glob(f"{topic}-*") if d.name.rsplit("-", 1)[-1].isdigit() for f in d.glob("*.log")
    ]
    return sum(f.stat().st_size for f in segments) if segments else None


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    port: int | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"transformer exited {process.returncode}:\n{log_path.read_text()[-3000:]}")
        if port is None:
            for line in log_path.read_text(errors="replace").splitlines():
                if '"transformer starting"' in line:
                    port = json.loads(line).get("http_port")
        if port is not None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.3)  # polling start-up, not synchronisation
    raise RuntimeError(f"transformer not ready in {timeout:.0f}s:\n{log_path.read_text()[-3000:]}")


def _drop_database(database: str, timeout: float = 60) -> None:
    with psycopg.connect(_dsn("postgres"), autocommit=True) as admin:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = admin.execute(
                "select slot_name from pg_replication_slots where database = %s and active", (database,)
            ).fetchall()
            if not active:
                break
            time.sleep(0.5)  # the connector releases its slot asynchronously after removal
        for (slot,) in admin.execute(
            "select slot_name from pg_replication_slots where database = %s", (database,)
        ).fetchall():
            admin.execute("select pg_drop_replication_slot(%s)", (slot,))
        admin.execute(f'drop database if exists "{database}" with (force)')


def report(result: dict[str, Any], log: Callable[[str], None] = print) -> None:
    log(
        f"\n{result['e2e_events_received']:,} events from {result['e2e_changes_sent']:,} changes at "
        f"{result['e2e_rate_achieved']:,.0f}/s (target {result['e2e_rate_target']:,}) over "
        f"{result['e2e_seconds']:.0f}s, PostgreSQL commit → read_committed consumer:"
    )
    for key in ("e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "e2e_max_ms"):
        log(f"  {key[4:7]:<4} {result[key]:>8.1f} ms")
    log(f"  p99 target ≤ 250 ms: {'met' if result['e2e_p99_ms'] <= 250 else 'MISSED'}")
    log(
        f"  of which source commit → staging visible (Debezium poll.interval.ms "
        f"{result['e2e_debezium_poll_interval_ms'] or 'default'}): p50 {result['e2e_staging_p50_ms']} ms, "
        f"p99 {result['e2e_staging_p99_ms']} ms\n"
        f"  staging on disk: {result['staging_bytes_per_change']} B a change "
        f"({result['staging_raw_bytes_per_change']} B of key + value as read)"
    )
    log(f"  transformer peak RSS {result['transformer_peak_rss_mb_latency']} MB")


def cdf_chart(result: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = result["e2e_cdf_ms"]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot(values, [i / (len(values) - 1) for i in range(len(values))], color="#3b6ea8")
    for q, key in ((0.5, "e2e_p50_ms"), (0.95, "e2e_p95_ms"), (0.99, "e2e_p99_ms")):
        ax.axvline(result[key], color="#9aa5b1", linestyle=":", linewidth=1)
        ax.annotate(f"p{round(q * 100)} {result[key]:.0f} ms", (result[key], q), fontsize=8,
                    xytext=(4, -10), textcoords="offset points")  # fmt: skip
    ax.axvline(250, color="#c0392b", linestyle="--", linewidth=1, label="p99 target 250 ms")
    ax.set_xscale("log")
    ax.set_xlabel("PostgreSQL commit → curated event visible (read_committed), ms")
    ax.set_ylabel("fraction of events")
    ax.set_title(
        f"end-to-end latency at {result['e2e_rate_achieved']:,.0f} changes/s, {result['e2e_seconds']:.0f}s"
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = folder / "latency_cdf.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument(
        "--poll-interval-ms", type=int, default=DEFAULT_POLL_INTERVAL_MS, help="Debezium poll.interval.ms"
    )
    parser.add_argument("--commit-interval-ms", type=int, default=DEFAULT_COMMIT_INTERVAL_MS)
    parser.add_argument("--debezium-default", action="store_true", help="leave poll.interval.ms at 500")
    parser.add_argument("--chart", type=Path, help="write the CDF chart into this folder")
    options = parser.parse_args(argv)
    poll = None if options.debezium_default else options.poll_interval_ms
    result = measure(options.rate, options.seconds, poll, options.commit_interval_ms)
    report(result)
    if options.chart:
        options.chart.mkdir(parents=True, exist_ok=True)
        print(f"wrote {cdf_chart(result, options.chart)[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
