"""Transformer throughput on the local stack, next to the raw ceiling and a Quix Streams peer.

Run: `.venv/bin/python -m bench.transformer` (`--changes`, `--rounds`, `--only eos,raw,...`).

1. A fresh staging topic (3 partitions, unique name) is preloaded with `--changes` Debezium records
   from `eventbus_dev.samples` (Connect JSON with schemas, ~6.5 kB a value: 10 % inserts, 85 %
   updates with before/after, 5 % deletes), produced in large zstd batches (as Connect writes staging
   since #17) without per-record flush; for `eos_plain`, an uncompressed copy as well.
2. Each contender is a separate process that reads the whole topic from the beginning with a fresh
   consumer group and writes to its own fresh output topic (3 partitions):
   * `eos`: `eventbus transformer run` with `bench/mappings/claim_decided.yaml`, exactly-once;
   * `alo`: the same in at-least-once mode;
   * `eos_plain`: `eos` on the uncompressed copy (what zstd staging costs the transformer);
   * `raw`: `bench/peers/raw_copy.py`, consume → produce of the bytes, same client settings and
     transactions, no mapping (the ceiling);
   * `quix`: `bench/peers/quix_app.py`, the same mapping in Quix Streams, exactly-once, in its own
     virtualenv (`.cache/venv-quix`, created on first use: Quix pins an older confluent-kafka).
   Rounds interleave the contenders, the order rotating each round; medians are reported.
3. Clock: the output topics use `message.timestamp.type=LogAppendTime`, so every contender's output
   is stamped by the broker whatever timestamps the client sets (Quix copies the input's). A run
   starts at the first output record's append time and ends when the contender's group has
   committed every staging partition to its end (polled every 50 ms): for exactly-once that is
   when the last events became visible. Rate = staging changes / that span. The span from the first
   to the last output record is recorded too (`..._append_span_s`).
4. Per run: CPU seconds of the contender process (`/proc/<pid>/stat`), its peak RSS (`VmHWM`),
   the machine's CPU use, and (except for raw) the committed output records counted.

Every topic, group and registry subject created here is unique and deleted at the end.
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
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # `python bench/transformer.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import REPO, machine_info
from eventbus.service.settings import MANAGED_CONSUMER_KEYS, MANAGED_PRODUCER_KEYS, load_settings
from eventbus_dev.samples import generate_records

BENCH = Path(__file__).resolve().parent
MAPPINGS: Final = BENCH / "mappings"
EVENTBUS: Final = Path(sys.executable).parent / "eventbus"
QUIX_VENV: Final = REPO / ".cache" / "venv-quix"
QUIX_REQUIREMENT: Final = "quixstreams==3.28.1"
BOOTSTRAP: Final = os.environ.get("EVENTBUS_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")
REGISTRY: Final = os.environ.get("EVENTBUS_REGISTRY__URL", "http://127.0.0.1:18081/apis/ccompat/v7")
DEFAULT_CHANGES: Final = 500_000
DEFAULT_ROUNDS: Final = 3
PARTITIONS: Final = 3
SEED: Final = 20261125
CONTENDERS: Final = ("eos", "alo", "raw", "quix", "eos_plain")
# Staging as `source register` has Connect write it (#17: zstd); `eos_plain` reads an uncompressed copy.
STAGING_COMPRESSION: Final = "zstd"
POLL_S: Final = 0.05
CLK_TCK: Final = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------------
# Kafka helpers


def admin() -> AdminClient:
    return AdminClient({"bootstrap.servers": BOOTSTRAP})


def create_topic(name: str, partitions: int = PARTITIONS, **config: str) -> None:
    client = admin()  # kept alive until the result is in (a collected client cancels its requests)
    futures = client.create_topics([NewTopic(name, partitions, 1, config=config)])
    futures[name].result(timeout=30)


def delete_topics(names: list[str]) -> None:
    client = admin()
    existing = set(client.list_topics(timeout=10).topics)
    doomed = [n for n in names if n in existing]
    if doomed:
        for future in client.delete_topics(doomed, operation_timeout=30).values():
            try:
                future.result(timeout=30)
            except KafkaException as error:
                print(f"  (could not delete a topic: {error})")


def end_offsets(topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"probe-{uuid.uuid4().hex[:8]}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
        }
    finally:
        consumer.close()


def preload(
    topic: str, changes: int, prefix: str, log: Callable[[str], None], compression: str = STAGING_COMPRESSION
) -> dict[str, Any]:
    """Produce `changes` sample records as fast as the client allows: big batches, no flushes."""
    create_topic(topic)
    producer = Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "partitioner": "murmur2_random",  # as Connect's Java producer places keys
            # Each partition in produce order even across retries, as Connect's exactly-once producer
            # keeps it: the transformer's dedup watermark drops a change that lands behind a later one.
            "enable.idempotence": True,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "batch.num.messages": 10_000,
            "compression.type": compression,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    produce, poll = producer.produce, producer.poll
    started = time.perf_counter()
    value_bytes = key_bytes = 0
    ops: dict[str, int] = {}
    for number, record in enumerate(generate_records(changes, seed=SEED, topic_prefix=prefix), 1):
        value_bytes += len(record.value)
        key_bytes += len(record.key)
        ops[record.op] = ops.get(record.op, 0) + 1
        while True:
            try:
                produce(topic, record.value, record.key)
                break
            except BufferError:
                poll(0.1)
        if number % 5_000 == 0:
            poll(0)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"preload: {remaining} record(s) not delivered")
    elapsed = time.perf_counter() - started
    log(
        f"preloaded {topic} ({compression}): {changes:,} changes ({value_bytes / changes:,.0f} B value"
        f" + {key_bytes / changes:,.0f} B key each, {(value_bytes + key_bytes) / 1e9:.2f} GB)"
        f" in {elapsed:.1f}s; ops {ops}"
    )
    return {
        "preload_s": round(elapsed, 1),
        "mean_value_bytes": round(value_bytes / changes),
        "mean_key_bytes": round(key_bytes / changes),
        "ops": ops,
    }


def first_and_last_append(topic: str) -> tuple[float | None, float | None]:
    """Broker append times (s) of the first and last record of `topic` (all partitions)."""
    ends = end_offsets(topic)
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"probe-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
        }
    )
    first: float | None = None
    last: float | None = None
    try:
        for partition, end in ends.items():
            if end <= 0:
                continue
            # The first data record is at offset 0; the last few offsets are data and commit markers
            # (markers are never delivered), so the last record is among the last handful.
            for start in (0, max(0, end - 4)):
                consumer.assign([TopicPartition(topic, partition, start if start else OFFSET_BEGINNING)])
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    messages = consumer.consume(num_messages=10, timeout=0.5)
                    stamps = [m.timestamp()[1] / 1000 for m in messages if m.error() is None]
                    if stamps:
                        if start == 0:
                            first = min(stamps) if first is None else min(first, min(stamps))
                        else:
                            last = max(stamps) if last is None else max(last, max(stamps))
                        if (
                            start == 0
                            or consumer.position([TopicPartition(topic, partition)])[0].offset >= end
                        ):
                            break
                    elif (
                        start != 0 and consumer.position([TopicPartition(topic, partition)])[0].offset >= end
                    ):
                        break
    finally:
        consumer.close()
    return first, last


def count_committed(topic: str) -> int:
    """Records of `topic` a read_committed consumer sees."""
    ends = end_offsets(topic)
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"probe-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    count = 0
    idle_since = time.monotonic()
    try:
        while True:
            messages = consumer.consume(num_messages=10_000, timeout=0.5)
            count += sum(1 for m in messages if m.error() is None)
            if messages:
                idle_since = time.monotonic()
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] for tp in positions if ends[tp.partition] > 0):
                return count
            if time.monotonic() - idle_since > 15:
                raise RuntimeError(f"counting {topic}: stuck at {count}")
    finally:
        consumer.close()


# --------------------------------------------------------------------------------------------------
# Processes


def proc_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads


def proc_peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def broker_pid() -> int | None:
    """The local stack's Kafka broker (its CPU per change is part of every contender's cost)."""
    marker = str(REPO / ".stack" / "kafka")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "kafka.Kafka" in cmdline and marker in cmdline:
            return int(entry.name)
    return None


def ensure_quix_venv(log: Callable[[str], None]) -> Path | None:
    """The peer's own virtualenv (Quix Streams pins confluent-kafka < 2.13; the project uses newer)."""
    python = QUIX_VENV / "bin" / "python"
    # Made from the interpreter the project's virtualenv runs on: both contenders on the same Python build.
    probe = [str(python), "-c", "import sys, quixstreams, orjson, fastavro; print(sys.base_prefix)"]
    if python.exists():
        answer = subprocess.run(probe, capture_output=True, text=True, check=False)
        if answer.returncode == 0 and answer.stdout.strip() == sys.base_prefix:
            return python
    log(f"creating {QUIX_VENV} with {QUIX_REQUIREMENT} (once) ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(QUIX_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", QUIX_REQUIREMENT, "orjson", "fastavro"], check=True
        )
    except (OSError, subprocess.CalledProcessError) as error:
        log(f"Quix Streams peer unavailable: {error}")
        return None
    return python


# --------------------------------------------------------------------------------------------------
# One run


@dataclass
class RunResult:
    contender: str
    round: int
    changes: int
    seconds: float
    changes_per_s: float
    append_span_s: float | None
    events_out: int | None
    cpu_s: float | None
    cpu_us_per_change: float | None
    peak_rss_mb: float | None
    machine_cpu_busy: float | None  # share of all cores busy during the run (0..1)
    broker_cpu_us_per_change: float | None  # the shared broker's CPU (other users' load included)


@dataclass
class Workspace:
    source: str
    staging: str
    changes: int
    root: Path
    quix_python: Path | None
    profile_dir: Path | None = None
    plain_source: str | None = None  # the uncompressed copy's connector name (`eos_plain`)
    created_topics: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)

    def source_of(self, contender: str) -> str:
        return self.plain_source if contender == "eos_plain" and self.plain_source else self.source

    def staging_of(self, contender: str) -> str:
        return f"staging.{self.source_of(contender)}.public.claims"

    def mappings_for(self, target: str, source: str) -> Path:
        """bench/mappings pointed at `source`'s staging topic and the output topic `target`."""
        folder = self.root / f"mappings-{target}"
        shutil.copytree(MAPPINGS, folder)
        path = folder / "claim_decided.yaml"
        text = path.read_text()
        text = text.replace("connector: claims", f"connector: {source}")
        text = text.replace("topic: claim_decided", f"topic: {target}")
        # The partitions `run_one` creates the topic with (the transformer refuses another count).
        text = text.replace(
            f"  topic: {target}\n", f"  topic: {target}\n  topic_settings: {{partitions: {PARTITIONS}}}\n", 1
        )
        path.write_text(text)
        return folder


def tuning_extras() -> tuple[dict[str, Any], dict[str, Any]]:
    """The service's librdkafka tuning (not its managed keys): what the Quix peer is given too."""
    settings = load_settings(kafka={"bootstrap_servers": BOOTSTRAP})
    skip = {"client.id", "group.id", "auto.offset.reset", "enable.partition.eof"}
    consumer = {
        k: v
        for k, v in settings.consumer_config().items()
        if k not in MANAGED_CONSUMER_KEYS and k not in skip
    }
    producer = {
        k: v
        for k, v in settings.producer_config().items()
        if k not in MANAGED_PRODUCER_KEYS and k not in skip and k != "max.in.flight.requests.per.connection"
    }
    return consumer, producer


def _profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` (collapsed stacks, idle frames left out) until it exits."""
    spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def command_for(contender: str, ws: Workspace, target: str, group: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if contender in ("eos", "alo", "eos_plain"):
        env |= {
            "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            "EVENTBUS_REGISTRY__URL": REGISTRY,
            "EVENTBUS_GROUP_ID": group,
            "EVENTBUS_INSTANCE_ID": "bench",
            "EVENTBUS_HTTP__PORT": "0",
            "EVENTBUS_DELIVERY": "at-least-once" if contender == "alo" else "exactly-once",
        }
        ws.subjects += [f"{target}-key", f"{target}-value"]
        mappings = ws.mappings_for(target, ws.source_of(contender))
        return [str(EVENTBUS), "transformer", "run", "--mappings", str(mappings)], env
    if contender == "raw":
        args = ["--source", ws.staging, "--target", target, "--group", group, "--bootstrap", BOOTSTRAP]
        return [sys.executable, "-m", "bench.peers.raw_copy", *args], env
    assert ws.quix_python is not None
    consumer, producer = tuning_extras()
    return [
        str(ws.quix_python), str(BENCH / "peers" / "quix_app.py"), "--source", ws.staging, "--target", target,
        "--group", group, "--bootstrap", BOOTSTRAP, "--consumer-config", json.dumps(consumer),
        "--producer-config", json.dumps(producer),
    ], env  # fmt: skip


def run_one(contender: str, number: int, ws: Workspace, log: Callable[[str], None]) -> RunResult:
    tag = f"{contender}{number}"
    target, group = f"{ws.source}_{tag}", f"{ws.source}-{tag}"
    create_topic(target, **{"message.timestamp.type": "LogAppendTime"})
    ws.created_topics.append(target)
    if contender in ("eos", "alo", "eos_plain"):
        create_topic(f"staging.dlq.{group}", 1)  # the broker creates no topic by itself, as on the bus
        ws.created_topics.append(f"staging.dlq.{group}")
    staging = ws.staging_of(contender)
    ends = end_offsets(staging)
    command, env = command_for(contender, ws, target, group)
    log_path = ws.root / f"{tag}.log"
    probe = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
    partitions = [TopicPartition(staging, p) for p in ends]
    timeout = 120 + ws.changes / 2_000  # a contender slower than 2k changes/s is broken, not slow
    with log_path.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    spy = _profiler(process.pid, ws.profile_dir / f"{tag}.txt") if ws.profile_dir else None
    peak: float | None = None
    busy0 = machine_busy()
    broker = broker_pid()
    broker0 = proc_cpu_s(broker) if broker else None
    started = time.monotonic()
    done_at: float | None = None
    cpu: float | None = None
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{contender} exited {process.returncode}; see {log_path}")
            peak = proc_peak_rss_mb(process.pid) or peak
            try:
                committed = probe.committed(partitions, timeout=5)
            except KafkaException:
                committed = []
            if committed and all(tp.offset >= ends[tp.partition] for tp in committed):
                done_at = time.time()
                cpu = proc_cpu_s(process.pid)
                peak = proc_peak_rss_mb(process.pid) or peak
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{contender} did not finish in {timeout:.0f}s; see {log_path}")
            time.sleep(POLL_S)  # polling the committed offsets, not synchronisation
        busy1 = machine_busy()
        broker1 = proc_cpu_s(broker) if broker else None
    finally:
        probe.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if spy is not None:
            spy.wait(timeout=60)  # py-spy writes its file once the process it watches has exited
    first, last = first_and_last_append(target)
    if first is None:
        raise RuntimeError(f"{contender} wrote nothing to {target}; see {log_path}")
    seconds = done_at - first
    events = None if contender == "raw" else count_committed(target)
    delete_topics([target, f"staging.dlq.{group}"])
    machine = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    result = RunResult(
        contender=contender,
        round=number,
        changes=ws.changes,
        seconds=round(seconds, 3),
        changes_per_s=round(ws.changes / seconds),
        append_span_s=None if last is None else round(last - first, 3),
        events_out=events,
        cpu_s=None if cpu is None else round(cpu, 2),
        cpu_us_per_change=None if cpu is None else round(cpu / ws.changes * 1e6, 2),
        peak_rss_mb=None if peak is None else round(peak, 1),
        machine_cpu_busy=round(machine, 3),
        broker_cpu_us_per_change=None
        if broker0 is None or broker1 is None
        else round((broker1 - broker0) / ws.changes * 1e6, 2),
    )
    log(
        f"  {contender:<9} round {number}: {result.changes_per_s:>8,} changes/s over {seconds:6.2f}s"
        f"  cpu {result.cpu_us_per_change} µs/change  rss {result.peak_rss_mb} MB"
        f"  broker {result.broker_cpu_us_per_change} µs/change  machine {machine:.0%}  events {events}"
    )
    return result


# --------------------------------------------------------------------------------------------------
# The benchmark


def measure(
    changes: int = DEFAULT_CHANGES,
    rounds: int = DEFAULT_ROUNDS,
    contenders: tuple[str, ...] = CONTENDERS,
    *,
    profile_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    source = f"bench{uuid.uuid4().hex[:8]}"
    quix_python = ensure_quix_venv(log) if "quix" in contenders else None
    if quix_python is None:
        contenders = tuple(c for c in contenders if c != "quix")
    root = Path(tempfile.mkdtemp(prefix="bench-transformer-"))
    ws = Workspace(source, f"staging.{source}.public.claims", changes, root, quix_python, profile_dir)
    if "eos_plain" in contenders:
        ws.plain_source = f"{source}p"
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    runs: list[RunResult] = []
    try:
        load = preload(ws.staging, changes, f"staging.{source}", log)
        if ws.plain_source:
            plain = ws.staging_of("eos_plain")
            ws.created_topics.append(plain)
            preload(plain, changes, f"staging.{ws.plain_source}", log, compression="none")
        for number in range(1, rounds + 1):
            shift = (number - 1) % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                runs.append(run_one(contender, number, ws, log))
    finally:
        delete_topics([ws.staging, *ws.created_topics])
        _delete_subjects(ws.subjects)
        shutil.rmtree(root, ignore_errors=True)
    return summarise(runs, load, changes, rounds)


def _delete_subjects(subjects: list[str]) -> None:
    if not subjects:
        return
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = SchemaRegistryClient({"url": REGISTRY})
    for subject in subjects:
        try:
            client.delete_subject(subject)
            client.delete_subject(subject, permanent=True)
        except SchemaRegistryError:
            pass


def summarise(runs: list[RunResult], load: dict[str, Any], changes: int, rounds: int) -> dict[str, Any]:
    def median_of(contender: str, attribute: str) -> float | None:
        values = [getattr(r, attribute) for r in runs if r.contender == contender]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    rate = {c: median_of(c, "changes_per_s") for c in CONTENDERS}

    def ratio(a: str, b: str) -> float | None:
        return None if not rate[a] or not rate[b] else round(rate[a] / rate[b], 3)  # type: ignore[operator]

    transformer_rss = [r.peak_rss_mb for r in runs if r.contender in ("eos", "alo") and r.peak_rss_mb]
    result: dict[str, Any] = {
        "transformer_eos_events_per_s": None if rate["eos"] is None else round(rate["eos"]),
        "transformer_alo_events_per_s": None if rate["alo"] is None else round(rate["alo"]),
        "raw_ceiling_events_per_s": None if rate["raw"] is None else round(rate["raw"]),
        "quix_events_per_s": None if rate["quix"] is None else round(rate["quix"]),
        "transformer_eos_plain_staging_events_per_s": None
        if rate["eos_plain"] is None
        else round(rate["eos_plain"]),
        "transformer_vs_raw": ratio("eos", "raw"),
        "transformer_vs_quix": ratio("eos", "quix"),
        # #17: reading zstd staging must cost the transformer at most 5 % against uncompressed.
        "transformer_zstd_vs_plain_staging": ratio("eos", "eos_plain"),
        "transformer_peak_rss_mb_throughput": max(transformer_rss) if transformer_rss else None,
        "throughput_changes": changes,
        "throughput_rounds": rounds,
        "throughput_preload": load,
        "throughput_runs": [asdict(r) for r in runs],
        "throughput_cpu_us_per_change": {c: median_of(c, "cpu_us_per_change") for c in CONTENDERS},
        "throughput_peak_rss_mb": {c: median_of(c, "peak_rss_mb") for c in CONTENDERS},
        "throughput_broker_cpu_us_per_change": {
            c: median_of(c, "broker_cpu_us_per_change") for c in CONTENDERS
        },
        "throughput_events_out": {c: median_of(c, "events_out") for c in CONTENDERS},
    }
    return result


def report(result: dict[str, Any], log: Callable[[str], None] = print) -> None:
    cpu = result["throughput_cpu_us_per_change"]
    rss = result["throughput_peak_rss_mb"]
    log(
        f"\n{result['throughput_changes']:,} staging changes, median of {result['throughput_rounds']} rounds "
        "(changes/s from the first output record to the last offset committed):"
    )
    for name, key, contender in (
        ("transformer exactly-once", "transformer_eos_events_per_s", "eos"),
        ("transformer at-least-once", "transformer_alo_events_per_s", "alo"),
        ("raw ceiling (copy, EOS)", "raw_ceiling_events_per_s", "raw"),
        ("Quix Streams (EOS)", "quix_events_per_s", "quix"),
    ):
        value = result[key]
        shown = "not measured" if value is None else f"{value:>9,}/s"
        log(f"  {name:<27} {shown}   cpu {cpu[contender]} µs/change   peak RSS {rss[contender]} MB")
    log(f"  transformer / raw   {result['transformer_vs_raw']}   (target ≥ 0.8)")
    log(f"  transformer / Quix  {result['transformer_vs_quix']}   (target ≥ 3)")
    log(f"  zstd / plain staging {result['transformer_zstd_vs_plain_staging']}   (target ≥ 0.95)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=DEFAULT_CHANGES)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help="comma-separated: eos,alo,raw,quix,eos_plain"
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--profile", type=Path, help="py-spy every run into this folder (collapsed stacks; slows the runs)"
    )
    options = parser.parse_args(argv)
    contenders = tuple(c for c in options.only.split(",") if c)
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contender(s): {', '.join(sorted(unknown))}")
    print(json.dumps({k: machine_info()[k] for k in ("cores", "cpu_model", "git_commit")}))
    result = measure(options.changes, options.rounds, contenders, profile_dir=options.profile)
    report(result)
    if options.json:
        options.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
