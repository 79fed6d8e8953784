"""Chaos run (issue #8): claims traffic through the whole pipeline while everything is broken on purpose.

`python -m bench.chaos [--changes N] [--short] [--faults KIND=N,...] [--private-stack]` (`make chaos` runs
the full version; the short one runs in `make test` through tests/integration/test_chaos_short.py):

1. Its own database, source (connector, slot, staging topics) and curated topics (the sample claims
   mappings copied with unique names) on the running local stack, or on a private one.
2. `ClaimsTraffic` in a few threads drives at least N committed source transactions, each at least one
   row change, while a fault thread works through a schedule placed at random points of the traffic:
   SIGKILL the transformer (then start it again), SIGKILL the Connect worker (then start it again),
   restart the Kafka broker, restart PostgreSQL, in random order; one Connect kill comes 0.3-1.8 s
   after a broker restart came back (`connect_kills_after_broker_restart`). The traffic may run only a
   little ahead of the next fault, so every fault happens mid-flow and the traffic keeps flowing while
   it recovers; `recovery_seconds` says per fault kind how long until changes flowed again.
3. Once Debezium has delivered everything (the database's final rows equal the last staging image of
   every key) and the transformer has committed up to the end of staging, it is stopped with SIGTERM.
4. Expected events are computed offline, as `eventbus mapping run` does (`run_records`), from every
   staging record of the run, and compared with the curated topics read with `read_committed`:
   lost, duplicated (by event id and by content), unexpected, different content, per-key order; the
   dead-letter topic against the offline dead letters; the accounting identity.

Writes bench/results/chaos.json (or --output) and exits 1 on any loss, duplicate, disorder, mismatch
or unmet fault count.

What is measurable about the accounting across kill -9: a killed incarnation takes its counters with
it, and its last batch (not committed) is redone by the next one. So the identity is checked (a) by
every incarnation's own metrics, scraped just before it is killed and in its final log line, and (b)
for the whole run from what is durable in Kafka: every staging record up to the committed offsets is
either the source of delivered events, on the DLQ, or filtered (tombstone, re-delivery, no match).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import httpx
import orjson
import psycopg
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from bench.common import git_commit
from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.errors import DecodeError
from eventbus.lookups.offline import RecordedLookups
from eventbus.mapping.avro import load_record_schema, to_avro_json
from eventbus.mapping.compiler import compile_mapping
from eventbus.mapping.errors import MappingEvaluationError
from eventbus.mapping.spec import load_mapping
from eventbus.mapping.testing import run_records
from eventbus_dev.demo.traffic import ClaimsTraffic, create_schema, make_engine, seed
from eventbus_dev.stack.artifacts import ensure_artifacts
from eventbus_dev.stack.launcher import LocalStack
from eventbus_dev.stack.process import process_cmdline
from eventbus_dev.stack.settings import StackSettings
from eventbus_dev.stack.transactions import CURE_PERIOD_S

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "chaos.json"
MAPPINGS = (
    "claim_milestone_reached",
    "decision_letter_available",
    "contention_classified",
    "claim_withdrawn",
)
# Captured tables: primary key, and the two columns compared between the database and staging.
TABLES = {
    "claims": ("claim_id", "status", "updated_at"),
    "contentions": ("contention_id", "classification_code", "updated_at"),
    "claim_lifecycle_status": ("lifecycle_id", "status", "changed_at"),
}
PRIVATE_PORT_OFFSET = 300


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ChaosError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)  # polling a condition


class ChaosError(Exception):
    """The run could not be carried out (not a finding about the pipeline)."""


FAULT_COUNTS = {  # --faults names → Plan fields
    "transformer": "transformer_kills",
    "connect": "connect_kills",
    "broker": "broker_restarts",
    "postgres": "postgres_restarts",
    "connect_after_broker": "connect_kills_after_broker_restart",
}


@dataclass(frozen=True)
class Plan:
    changes: int
    transformer_kills: int
    connect_kills: int  # in all, those right after a broker restart included
    broker_restarts: int
    postgres_restarts: int
    threads: int
    seed: int
    # Of the Connect kills, how many come within two seconds after a broker restart came back (the
    # coincidence of rolling broker patching and a worker deployment, issue #17).
    connect_kills_after_broker_restart: int = 1
    # False: only the mappings without lookups, so the transformer overlaps its commits with the next
    # batch (a loop with lookups never does) and that path is what the faults hit.
    lookups: bool = True

    @classmethod
    def full(cls, changes: int | None, seed: int) -> Plan:
        return cls(changes or 100_000, 15, 3, 2, 2, threads=4, seed=seed)

    @classmethod
    def short(cls, changes: int | None, seed: int) -> Plan:
        return cls(changes or 5_000, 10, 2, 1, 1, threads=3, seed=seed)

    def with_counts(self, counts: str | None) -> Plan:
        """`transformer=2,connect=1,...` overrides fault counts (a quick check of the run itself)."""
        if not counts:
            return self
        values = {}
        for item in counts.split(","):
            name, _, number = item.partition("=")
            field_name = FAULT_COUNTS.get(name.strip())
            if field_name is None:
                raise ChaosError(f"--faults: unknown fault {name!r} (transformer, connect, broker, postgres, "
                                 "connect_after_broker)")  # fmt: skip
            values[field_name] = int(number)
        return dataclasses.replace(self, **values)


# --- the stack ---------------------------------------------------------------------------------------


def private_settings(state: Path) -> StackSettings:
    default = StackSettings()
    o = PRIVATE_PORT_OFFSET
    return StackSettings(
        state_dir=state, cache_dir=default.cache, postgres_port=default.postgres_port + o,
        kafka_port=default.kafka_port + o, kafka_controller_port=default.kafka_controller_port + o,
        connect_port=default.connect_port + o, registry_port=default.registry_port + o,
        registry_management_port=default.registry_management_port + o,
    )  # fmt: skip


class Stack:
    """The services the run breaks and repairs, through the stack's own process management."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.local = LocalStack(settings)
        self.lock = threading.Lock()  # one fault at a time

    def up(self) -> None:
        self.local.up()

    def libpq_dsn(self, database: str = "postgres") -> str:
        s = self.settings
        return (
            f"host={s.host} port={s.postgres_port} dbname={database} user={s.postgres_user} "
            f"password={s.postgres_password.get_secret_value()}"
        )

    def kill_connect(self) -> None:
        """SIGKILL the Connect worker's process group, then start it again and wait until it answers."""
        pid = self.local.connect.process.pid()
        if pid is None:
            raise ChaosError("the Connect worker is not running")
        os.killpg(pid, signal.SIGKILL)
        _wait_gone(pid)
        self.local.up()  # starts exactly the services that are not running, waits until all are ready

    def restart_broker(self) -> None:
        kafka = self.local.kafka
        kafka.process.stop(stop_signal=kafka.stop_signal, timeout=60)
        self.local.up()

    def restart_broker_then_kill_connect(self, delay_s: float) -> float:
        """Restart the broker and, `delay_s` after it answers again, SIGKILL the Connect worker; then
        start what is down. Returns the seconds between the broker answering and the kill."""
        kafka = self.local.kafka
        kafka.process.stop(stop_signal=kafka.stop_signal, timeout=60)
        kafka.start(ensure_artifacts(self.settings, lambda _message: None))
        wait_for(kafka.is_ready, 180, "the broker to answer again")
        back = time.monotonic()
        time.sleep(delay_s)  # the moment of the coincidence itself, not a synchronisation
        pid = self.local.connect.process.pid()
        if pid is None:
            raise ChaosError("the Connect worker is not running")
        os.killpg(pid, signal.SIGKILL)
        killed_after = time.monotonic() - back
        _wait_gone(pid)
        self.local.up()
        return killed_after

    def restart_postgres(self) -> None:
        postgres = self.local.postgres
        postgres.process.stop(stop_signal=postgres.stop_signal, timeout=60)
        self.local.up()


def _wait_gone(pid: int) -> None:
    # Our own child (a private stack) must be reaped; someone else's disappears by itself.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    wait_for(lambda: process_cmdline(pid) is None, 30, f"process {pid} to exit")


# --- the pipeline under test ---------------------------------------------------------------------------


@dataclass
class Pipeline:
    stack: Stack
    work: Path
    mappings: tuple[str, ...] = MAPPINGS  # the names (files) of the mappings the transformer runs
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    hanging_transactions_aborted: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        return f"chaos{self.suffix}"

    @property
    def database(self) -> str:
        return f"chaos_{self.suffix}"

    @property
    def connector(self) -> str:
        return f"eventbus-source-{self.source}"

    @property
    def group(self) -> str:
        return f"chaos-{self.suffix}"

    @property
    def dlq_topic(self) -> str:
        return f"staging.dlq.{self.group}"

    @property
    def staging_topics(self) -> list[str]:
        return [f"staging.{self.source}.public.{table}" for table in TABLES]

    @property
    def consumed_topics(self) -> list[str]:
        """The staging topics the transformer's group reads: its mappings' tables (once created)."""
        tables = {
            load_mapping(self.mappings_dir / f"{name}.yaml").source.table for name in self.mappings
        }
        return sorted(f"staging.{self.source}.{table}" for table in tables)

    @property
    def topics(self) -> dict[str, str]:
        return {name: f"{name}_{self.suffix}" for name in self.mappings}

    @property
    def mappings_dir(self) -> Path:
        return self.work / "mappings"

    @property
    def definition(self) -> Path:
        return self.work / "connectors" / f"{self.source}.yaml"

    def cli_env(self) -> dict[str, str]:
        s = self.stack.settings
        return {
            **os.environ,
            "CLAIMS_DB_PASSWORD": s.postgres_password.get_secret_value(),
            "EVENTBUS_CONNECT_URL": s.connect_url,
            "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": s.bootstrap_servers,
        }

    def create(self) -> None:
        s = self.stack.settings
        with psycopg.connect(self.stack.libpq_dsn(), autocommit=True) as admin:
            admin.execute(f'create database "{self.database}"')
        engine = make_engine(s.postgres_dsn(self.database))
        create_schema(engine)
        seed(engine, claims=30)  # snapshotted rows: never events
        engine.dispose()

        definition = (REPO / "connectors" / "claims.yaml").read_text()
        definition = definition.replace("dbname: claims", f"dbname: {self.database}")
        definition = definition.replace("port: 15432", f"port: {s.postgres_port}")
        self.definition.parent.mkdir(parents=True, exist_ok=True)
        self.definition.write_text(definition)

        shutil.copytree(
            REPO / "mappings" / "claims", self.mappings_dir, ignore=shutil.ignore_patterns("tests")
        )
        for path in self.mappings_dir.glob("*.yaml"):
            if path.stem not in self.mappings:
                path.unlink()
        for name, topic in self.topics.items():
            path = self.mappings_dir / f"{name}.yaml"
            text = path.read_text().replace("connector: claims", f"connector: {self.source}")
            text = re.sub(rf"^  topic: {name}$", f"  topic: {topic}", text, flags=re.M)
            # Three partitions, as created below (the transformer refuses another count).
            text = re.sub(r"^  topic_settings: .*\n", "", text, flags=re.M)
            text = re.sub(
                rf"^(  topic: {topic})$", r"\1\n  topic_settings: {partitions: 3}", text, flags=re.M
            )
            path.write_text(text)

        # Curated topics with several partitions, so per-key order is a real question.
        admin = AdminClient({"bootstrap.servers": s.bootstrap_servers})
        wanted = [NewTopic(t, num_partitions=3, replication_factor=1) for t in self.topics.values()]
        wanted.append(NewTopic(self.dlq_topic, num_partitions=1, replication_factor=1))
        for future in admin.create_topics(wanted).values():
            future.result(timeout=30)

        registered = subprocess.run(
            [sys.executable, "-m", "eventbus.cli", "source", "register", str(self.definition),
             "--mappings-dir", str(self.mappings_dir)],
            capture_output=True, text=True, env=self.cli_env(), cwd=REPO, check=False,
        )  # fmt: skip
        if registered.returncode != 0:
            raise ChaosError(f"registering the source failed:\n{registered.stdout}{registered.stderr}")
        self.wait_connector_running(120)

    def connector_state(self) -> tuple[str, list[str]]:
        try:
            response = httpx.get(
                f"{self.stack.settings.connect_url}/connectors/{self.connector}/status", timeout=5
            )
        except httpx.HTTPError:
            return "UNREACHABLE", []
        if response.status_code != 200:
            return f"HTTP {response.status_code}", []
        body = response.json()
        return body["connector"]["state"], [t["state"] for t in body.get("tasks", [])]

    def wait_connector_running(self, timeout: float) -> int:
        """Until the connector and its task run; a FAILED task is restarted (returns how many times).
        Not running: every `CURE_PERIOD_S`, hanging transactions (the stack's transactions.py) are
        aborted."""
        restarts = 0
        deadline = time.monotonic() + timeout
        next_check = time.monotonic() + CURE_PERIOD_S
        while True:
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + CURE_PERIOD_S
                for transaction in self.stack.local.abort_hanging_transactions():
                    say(f"aborted a hanging transaction on {transaction}")
                    self.hanging_transactions_aborted.append(str(transaction))
            state, tasks = self.connector_state()
            if state == "RUNNING" and tasks and all(t == "RUNNING" for t in tasks):
                return restarts
            if "FAILED" in tasks or state == "FAILED":
                say(f"connector {state}, tasks {tasks}: restarting it through the REST API")
                with contextlib.suppress(httpx.HTTPError):
                    httpx.post(f"{self.stack.settings.connect_url}/connectors/{self.connector}/restart",
                               params={"includeTasks": "true", "onlyFailed": "true"}, timeout=10)  # fmt: skip
                restarts += 1
            if time.monotonic() > deadline:
                raise ChaosError(f"connector {self.connector} not running: {state} {tasks}")
            time.sleep(0.5)  # polling the connector's state

    def _drop_database(self) -> None:
        with psycopg.connect(self.stack.libpq_dsn(), autocommit=True) as admin:
            with contextlib.suppress(psycopg.Error):
                wait_for(
                    lambda: (
                        admin.execute(
                            "select count(*) from pg_replication_slots where database = %s and active",
                            (self.database,),
                        ).fetchone()
                        == (0,)
                    ),
                    60,
                    "the slot to be released",
                )
            admin.execute(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = %s",
                (self.database,),
            )
            admin.execute(f'drop database if exists "{self.database}" with (force)')

    def remove(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "eventbus.cli", "source", "remove", str(self.definition), "--drop-slot",
             "--yes"], capture_output=True, text=True, env=self.cli_env(), cwd=REPO, check=False,
        )  # fmt: skip
        # Cleanup after the figures are written: a session PostgreSQL drops meanwhile (seen twice
        # in `make test`: "server closed the connection unexpectedly") is asked again, and what
        # still fails is said, not raised, since it would turn a passed run into exit 1.
        for attempt in range(3):
            try:
                self._drop_database()
                break
            except psycopg.OperationalError as error:
                if attempt == 2:
                    say(f"cleanup: database {self.database} not dropped: {str(error).splitlines()[0]}")
                time.sleep(1.0)  # back-off before a new session, not synchronisation
        admin_client = AdminClient({"bootstrap.servers": self.stack.settings.bootstrap_servers})
        topics = [*self.staging_topics, *self.topics.values(), self.dlq_topic]
        for future in admin_client.delete_topics(topics, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)


# --- the transformer as a real process -----------------------------------------------------------------


class Transformer:
    """`eventbus transformer run` restarted after every kill; one log file per incarnation."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.process: subprocess.Popen[bytes] | None = None
        self.log_file: Path | None = None
        self.http_port: int | None = None
        self.incarnations = 0
        self.kills = 0
        self.unexpected_exits: list[int] = []
        self.scrapes: list[dict[str, float]] = []  # last /metrics of every killed incarnation
        self.lock = threading.RLock()
        self._watching = True
        self._watcher = threading.Thread(target=self._watch, name="transformer-watch", daemon=True)

    def env(self) -> dict[str, str]:
        s = self.pipeline.stack.settings
        return {
            **os.environ,
            "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": s.bootstrap_servers,
            "EVENTBUS_REGISTRY__URL": s.registry_url,
            "EVENTBUS_GROUP_ID": self.pipeline.group,
            # Stable across restarts: the next incarnation fences the killed one's transactional id.
            "EVENTBUS_INSTANCE_ID": "chaos",
            "EVENTBUS_HTTP__PORT": "0",
            "EVENTBUS_HTTP__HOST": "127.0.0.1",
            # Short sessions so a killed member's partitions move within seconds.
            "EVENTBUS_KAFKA__CONSUMER": json.dumps(
                {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
            ),
        }

    def start(self) -> None:
        with self.lock:
            self.incarnations += 1
            self.log_file = self.pipeline.work / f"transformer.{self.incarnations:03d}.log"
            self.http_port = None
            with self.log_file.open("wb") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "eventbus.cli", "transformer", "run", "--mappings",
                     str(self.pipeline.mappings_dir)],
                    stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=REPO,
                )  # fmt: skip
        if not self._watcher.is_alive():
            self._watcher.start()

    def _watch(self) -> None:
        # An orchestrator restarts a transformer that exits by itself (e.g. a fatal Kafka error while
        # the broker was down); we do the same and count it.
        while self._watching:
            with self.lock:
                process = self.process
                if process is not None and process.poll() is not None and self._watching:
                    self.unexpected_exits.append(process.returncode)
                    say(f"transformer exited by itself with {process.returncode}; restarting it")
                    self.start()
            time.sleep(0.5)  # polling the child's state

    def logs(self) -> Iterator[dict[str, Any]]:
        if self.log_file is None or not self.log_file.exists():
            return
        for line in self.log_file.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    yield json.loads(line)

    def ready(self) -> bool:
        with self.lock:
            if self.http_port is None:
                for entry in self.logs():
                    if entry.get("msg") == "transformer starting":
                        self.http_port = entry["http_port"]
            port = self.http_port
        if port is None:
            return False
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 180) -> None:
        wait_for(self.ready, timeout, "the transformer to be ready")

    def scrape(self) -> dict[str, float]:
        """The record outcome counters of the running incarnation."""
        text = httpx.get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5).text
        found: dict[str, float] = {}
        for match in re.finditer(r'^eventbus_records_total\{outcome="(\w+)"\} ([0-9.e+]+)$', text, re.M):
            found[match.group(1)] = float(match.group(2))
        balanced = re.search(r"^eventbus_accounting_balanced ([0-9.]+)$", text, re.M)
        found["balanced"] = float(balanced.group(1)) if balanced else -1.0
        return found

    def kill9(self) -> None:
        with self.lock:
            assert self.process is not None
            with contextlib.suppress(httpx.HTTPError):
                self.scrapes.append(self.scrape())
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
            self.kills += 1
            self.start()

    def terminate(self) -> dict[str, Any]:
        with self.lock:
            self._watching = False
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            code = self.process.wait(timeout=120)
        stopped = [e for e in self.logs() if e.get("msg") == "transformer stopped"]
        if code != 0 or not stopped:
            raise ChaosError(f"the last transformer stopped with {code}; see {self.log_file}")
        return stopped[-1]["accounting"]

    def kill_quietly(self) -> None:
        with self.lock:
            self._watching = False
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=30)


# --- traffic and faults --------------------------------------------------------------------------------


@dataclass
class Fault:
    at: float  # fraction of the traffic after which it happens
    kind: str  # transformer, connect, broker, postgres, or connect_after_broker (both, in that order)


CONNECT_AFTER_BROKER = "connect_after_broker"


def schedule(plan: Plan, rng: random.Random) -> list[Fault]:
    """Transformer kills at random points; the infrastructure faults in random order, each at a random
    point of its own slot of the run. `connect_kills_after_broker_restart` of the Connect kills are
    paired with a broker restart: the worker is killed within two seconds after the broker is back
    (such a worker once stayed stuck for ten minutes, docs/connect-after-broker-restart.md)."""
    faults = [Fault(rng.uniform(0.03, 0.93), "transformer") for _ in range(plan.transformer_kills)]
    paired = min(plan.connect_kills_after_broker_restart, plan.connect_kills, plan.broker_restarts)
    infra = (
        [CONNECT_AFTER_BROKER] * paired
        + ["connect"] * (plan.connect_kills - paired)
        + ["broker"] * (plan.broker_restarts - paired)
        + ["postgres"] * plan.postgres_restarts
    )
    rng.shuffle(infra)
    for i, kind in enumerate(infra):  # spread over the run, each at a random point of its slot
        slot = 0.85 / len(infra)
        faults.append(Fault(0.08 + slot * i + rng.uniform(0.1, 0.9) * slot, kind))
    return sorted(faults, key=lambda f: f.at)


class Traffic:
    """Claims traffic in threads, allowed at most `window` of the total ahead of the next fault."""

    def __init__(self, pipeline: Pipeline, plan: Plan, window: float) -> None:
        self.engine = make_engine(pipeline.stack.settings.postgres_dsn(pipeline.database))
        self.plan = plan
        self.window = window
        self.committed = 0
        self.rejected = 0  # transactions the database refused (concurrent delete, restart): no change
        self.limit = 0
        self.cond = threading.Condition()
        self.error: BaseException | None = None
        self.actions: Counter[str] = Counter()

    def allow_until(self, fraction: float) -> None:
        with self.cond:
            self.limit = min(self.plan.changes, int((fraction + self.window) * self.plan.changes))
            self.cond.notify_all()

    def progress(self) -> float:
        return self.committed / self.plan.changes

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(self.plan.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.engine.dispose()
        if self.error is not None:
            raise self.error

    def _worker(self, index: int) -> None:
        traffic = ClaimsTraffic(self.engine, seed=self.plan.seed * 100 + index)
        try:
            while True:
                with self.cond:
                    while self.committed >= self.limit and self.committed < self.plan.changes:
                        self.cond.wait(0.5)
                    if self.committed >= self.plan.changes:
                        return
                try:
                    action = traffic.step()
                except OperationalError:
                    # PostgreSQL is restarting: nothing was committed; try again once it answers.
                    with self.cond:
                        self.rejected += 1
                    time.sleep(0.2)  # back-off while the database is away
                    continue
                except SQLAlchemyError:
                    # A row another thread deleted meanwhile (stale update, foreign key): rolled back.
                    with self.cond:
                        self.rejected += 1
                    continue
                with self.cond:
                    self.committed += 1
                    self.actions[action] += 1
        except BaseException as error:  # surfaced by run()
            self.error = error


class Faults:
    def __init__(
        self, pipeline: Pipeline, transformer: Transformer, traffic: Traffic, faults: list[Fault]
    ) -> None:
        self.pipeline = pipeline
        self.transformer = transformer
        self.traffic = traffic
        self.faults = faults
        self.done: Counter[str] = Counter()
        self.connector_task_restarts = 0
        self.recovery = RecoveryWatch(pipeline)
        self.connect_kill_delays_s: list[float] = []  # broker back -> Connect killed
        self.error: BaseException | None = None
        self.rng = random.Random(traffic.plan.seed + 1)

    def run(self) -> None:
        self.recovery.start()
        try:
            for fault in self.faults:
                self.traffic.allow_until(fault.at)
                wait_for(
                    lambda f=fault: self.traffic.progress() >= f.at, 900, f"traffic to reach {fault.at:.0%}"
                )
                started = time.monotonic()
                self._inject(fault.kind)
                # Recovered once changes flow again, counted from where they stood when the service was
                # back (a change written before the fault struck is no sign of recovery): watched in
                # the background, so the traffic (which the flow needs) moves on meanwhile.
                self.recovery.watch(fault.kind, started, self.recovery.flow(fault.kind))
                if fault.kind == CONNECT_AFTER_BROKER:
                    self.done["broker"] += 1
                    self.done["connect"] += 1
                self.done[fault.kind] += 1
            self.traffic.allow_until(1.0)
        except BaseException as error:
            self.error = error
            self.traffic.allow_until(1.0)

    def _inject(self, kind: str) -> None:
        stack = self.pipeline.stack
        progress = f"{self.traffic.committed}/{self.traffic.plan.changes}"
        if kind == "transformer":
            # At a random moment of a running transformer (mid-batch or between batches).
            self.transformer.wait_ready()
            time.sleep(self.rng.uniform(0.0, 1.5))  # the random moment itself, not a synchronisation
            say(f"SIGKILL transformer (incarnation {self.transformer.incarnations}) at {progress}")
            self.transformer.kill9()
            return
        say(f"{kind} fault at {progress}")
        if kind == "connect":
            stack.kill_connect()
        elif kind == "broker":
            stack.restart_broker()
        elif kind == "postgres":
            stack.restart_postgres()
        elif kind == CONNECT_AFTER_BROKER:
            delay = stack.restart_broker_then_kill_connect(self.rng.uniform(0.3, 1.8))
            self.connect_kill_delays_s.append(round(delay, 2))
            say(f"Connect killed {delay:.1f}s after the broker was back")
        self.connector_task_restarts += self.pipeline.wait_connector_running(240)
        say(f"{kind} back, connector running")


class RecoveryWatch(threading.Thread):
    """Seconds from each fault until changes flowed again: for a transformer kill, until the group's
    committed offsets moved; for the infrastructure, until a new change was on the staging topics
    (read_committed ends).

    A transformer kill after which no change reached staging (the last faults of a run, when the
    new incarnation finds nothing left to do) has nothing to flow: it is listed under `idle_after`,
    not as unrecovered (the run's final wait for the end of staging to be committed checks that
    incarnation)."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(name="recovery-watch", daemon=True)
        self.pipeline = pipeline
        self.pending: list[tuple[str, float, int, int]] = []  # kind, started, before, staging then
        self.seconds: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def flow(self, kind: str) -> int:
        """The position changes are counted from: committed offsets (transformer) or staging ends."""
        bootstrap = self.pipeline.stack.settings.bootstrap_servers
        try:
            if kind == "transformer":
                ends = end_offsets(bootstrap, self.pipeline.consumed_topics)
                return sum(max(0, o) for o in committed(bootstrap, self.pipeline.group, list(ends)).values())
            return sum(end_offsets(bootstrap, self.pipeline.staging_topics, read_committed=True).values())
        except Exception:  # the service being broken does not answer; count from nothing
            return -1

    def staging(self) -> int:
        """Records (and markers) on the staging topics that committed readers see."""
        return self.flow("staging")

    def watch(self, kind: str, started: float, before: int) -> None:
        staging = self.staging() if kind == "transformer" else -1
        with self.lock:
            self.pending.append((kind, started, before, staging))

    def run(self) -> None:
        while not self.stopped.is_set():
            with self.lock:
                pending = list(self.pending)
            for entry in pending:
                kind, started, before, _ = entry
                if self.flow(kind) > before:
                    with self.lock:
                        self.pending.remove(entry)
                        self.seconds.setdefault(kind, []).append(round(time.monotonic() - started, 1))
            self.stopped.wait(0.5)

    def results(self) -> dict[str, list[Any]]:
        """Per kind; a Connect kill after a broker restart also counts as one of each."""
        self.stopped.set()
        self.join(timeout=10)
        out: dict[str, list[Any]] = {kind: [] for kind in ("transformer", "connect", "broker", "postgres")}
        for kind, values in self.seconds.items():
            for target in ("broker", "connect", kind) if kind == CONNECT_AFTER_BROKER else (kind,):
                out.setdefault(target, []).extend(values)
        staging_now = self.staging()

        def idle(kind: str, staging_then: int) -> bool:
            return kind == "transformer" and 0 <= staging_then == staging_now

        out["idle_after"] = [kind for kind, _, _, then in self.pending if idle(kind, then)]
        out["not_recovered"] = [kind for kind, _, _, then in self.pending if not idle(kind, then)]
        return out


# --- reading Kafka -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int = 0  # the broker's append time (curated topics use LogAppendTime)


def read_all(bootstrap: str, topics: list[str], timeout: float = 600) -> list[Record]:
    """Every committed record of `topics` (read_committed), per partition in offset order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "enable.partition.eof": True, "fetch.max.bytes": 52428800})  # fmt: skip
    try:
        partitions = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=30).topics[topic]
            partitions += [TopicPartition(topic, p, 0) for p in metadata.partitions]
        ends = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions
        }
        pending = {k for k, end in ends.items() if end > 0}
        consumer.assign(partitions)
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise ChaosError(f"reading {topics}: still pending {sorted(pending)}")
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                where = (message.topic(), message.partition())
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        # EOF is reported at the high watermark even after trailing transaction markers.
                        if message.offset() >= ends[where]:
                            pending.discard(where)
                        continue
                    raise ChaosError(f"reading {where}: {error.str()}")
                out.append(Record(message.topic(), message.partition(), message.offset(), message.key(),
                                  message.value(), list(message.headers() or []),
                                  message.timestamp()[1]))  # fmt: skip
        return out
    finally:
        consumer.close()


def end_offsets(
    bootstrap: str, topics: list[str], read_committed: bool = False
) -> dict[tuple[str, int], int]:
    """High watermarks, or with `read_committed` the last stable offsets (what committed readers see)."""
    isolation = "read_committed" if read_committed else "read_uncommitted"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-probe-{uuid.uuid4().hex}",
                         "isolation.level": isolation})  # fmt: skip
    try:
        ends = {}
        for topic in topics:
            for p in consumer.list_topics(topic, timeout=30).topics[topic].partitions:
                ends[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
        return ends
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=30)
        return {(tp.topic, tp.partition): tp.offset for tp in found}
    finally:
        consumer.close()


# --- the comparison ------------------------------------------------------------------------------------


@dataclass
class Staging:
    records: list[Record]
    unique: list[Record]  # without Debezium's re-deliveries (same place in the source log)
    redeliveries: int
    tombstones: int
    streamed_changes: int  # unique c/u/d changes (the database's change history)
    transactions: int  # distinct source transactions among them


def staging_identity(topic: str, key: bytes | None, payload: dict[str, Any]) -> tuple[Any, ...]:
    source = payload.get("source") or {}
    return (topic, key, payload.get("op"), source.get("lsn"), source.get("sequence"), source.get("txId"))


def analyse_staging(records: list[Record]) -> Staging:
    seen: set[tuple[Any, ...]] = set()
    unique: list[Record] = []
    redeliveries = tombstones = streamed = 0
    transactions: set[Any] = set()
    for record in records:
        if record.value is None:
            tombstones += 1
            unique.append(record)
            continue
        payload = orjson.loads(record.value)["payload"]
        identity = staging_identity(record.topic, record.key, payload)
        if identity in seen:
            redeliveries += 1
            continue
        seen.add(identity)
        unique.append(record)
        if payload.get("op") in ("c", "u", "d"):
            streamed += 1
            transactions.add(payload["source"].get("txId"))
    return Staging(records, unique, redeliveries, tombstones, streamed, len(transactions))


def staging_matches_database(pipeline: Pipeline, records: list[Record]) -> list[str]:
    """Differences between the database's final rows and the last staging image of each key."""
    decoder = ConnectJsonDecoder()
    last: dict[tuple[str, Any], Any] = {}
    for record in records:
        if record.value is None:
            continue
        change = decoder.decode(record.value, record.key, record.topic)
        if change is None or change.op not in "cudr":
            continue
        table = change.source.table
        pk, column, moment = TABLES[table]
        row = change.after if change.op != "d" else None
        ident = (change.before or change.after or {}).get(pk)
        if row is None:
            last[(table, ident)] = None
        else:
            last[(table, ident)] = (row[column], change.table.converter(moment)(row[moment]))
    problems: list[str] = []
    with psycopg.connect(pipeline.stack.libpq_dsn(pipeline.database)) as conn:
        for table, (pk, column, moment) in TABLES.items():
            query = f"select {pk}, {column}, {moment} from public.{table}"
            rows = {r[0]: (r[1], r[2]) for r in conn.execute(query)}
            staged = {ident: v for (t, ident), v in last.items() if t == table}
            for ident, values in rows.items():
                if staged.get(ident) is None:
                    problems.append(f"{table} {ident}: in the database, not (or deleted) in staging")
                elif staged[ident][0] != values[0] or staged[ident][1] != values[1]:
                    problems.append(f"{table} {ident}: database {values}, staging {staged[ident]}")
            for ident, values in staged.items():
                if values is not None and ident not in rows:
                    problems.append(f"{table} {ident}: deleted in the database, alive in staging")
    return problems


@dataclass
class Expected:
    events: list[dict[str, Any]]  # `run_records` output of every mapping, staging order
    dead_letters: int  # records at least one mapping fails on (the DLQ's expected size)
    emitted_from: int  # records at least one mapping emits from (and none fails on)
    no_match: int  # records no mapping emits from or fails on


def expected_events(pipeline: Pipeline, staging: Staging) -> Expected:
    """The offline expectation: `run_records` (what `eventbus mapping run` does) per mapping over the
    staging records of its table, and per record the outcome the transformer must have counted."""
    compiled = [
        compile_mapping(load_mapping(pipeline.mappings_dir / f"{name}.yaml")) for name in pipeline.mappings
    ]
    by_topic: dict[str, list[Any]] = {}
    for mapping in compiled:
        by_topic.setdefault(f"staging.{pipeline.source}.{mapping.spec.source.table}", []).append(mapping)
    lines_by_partition: dict[tuple[str, int], list[bytes]] = {}
    decoder = ConnectJsonDecoder()
    dead = emitted = no_match = 0
    # Mappings with lookups read the related tables' rows as of each change's commit: offline, every
    # related record is known first (what `mapping run` does with several tables).
    recorded = {id(m): RecordedLookups(m) for m in compiled if m.lookups}
    for record in staging.unique:
        if record.value is None or not recorded:
            continue
        try:
            change = decoder.decode(record.value, record.key, record.topic)
        except DecodeError:
            continue
        for lookups in recorded.values():
            if change is not None and lookups.is_related(change):
                lookups.add(change)
    for record in staging.unique:
        if record.value is None:
            continue  # a tombstone: counted as such
        key = record.key if record.key is not None else b"null"
        line = (
            b'{"topic":' + orjson.dumps(record.topic) + b',"key":' + key + b',"value":' + record.value + b"}"
        )
        lines_by_partition.setdefault((record.topic, record.partition), []).append(line)
        outcomes = []
        try:
            change = decoder.decode(record.value, record.key, record.topic)
        except DecodeError:
            dead += 1
            continue
        for mapping in by_topic.get(record.topic, []):
            lookups = recorded.get(id(mapping))
            try:
                if lookups is None:
                    outcomes.append(bool(mapping.bind(change.table)(change)))
                else:
                    outcomes.append(bool(mapping.bind(change.table)(change, lookups.at(change))))
            except MappingEvaluationError:
                outcomes.append(None)
        if None in outcomes:
            dead += 1
        elif any(outcomes):
            emitted += 1
        else:
            no_match += 1
    events: list[dict[str, Any]] = []
    # Per staging partition, so each event knows where its change came from: order is promised per
    # source key (one staging partition), not between rows that share a curated key (contentions of
    # one claim come from different staging partitions and may interleave either way).
    related_lines = [
        line
        for (topic, _), lines in lines_by_partition.items()
        if any(topic.endswith("." + plan.table) for m in compiled for plan in m.lookups)
        for line in lines
    ]
    for (topic, partition), lines in lines_by_partition.items():
        for mapping in by_topic.get(topic, []):
            # A lookup mapping's own records are its triggers; the related tables' are its rows.
            given = [*lines, *related_lines] if mapping.lookups else lines
            for event in run_records(mapping, given).events:
                event["staging_partition"] = partition
                events.append(event)
    return Expected(events, dead, emitted, no_match)


def content(topic: str, key: Any, value: Any) -> bytes:
    return orjson.dumps([topic, key, value], option=orjson.OPT_SORT_KEYS)


def compare(pipeline: Pipeline, expected: list[dict[str, Any]], curated: list[Record]) -> dict[str, Any]:
    # Decoded with the mappings' own schemas rather than through the registry: the registry was
    # restarted with PostgreSQL mid-run and a fetch of it must not be what hangs the verdict. Each
    # topic must then carry one schema id only (the one the transformer resolved).
    schemas = pipeline.mappings_dir / "schemas"
    key_schema = load_record_schema(schemas / "claim_key.avsc")
    value_schemas = {t: load_record_schema(schemas / f"{name}.avsc") for name, t in pipeline.topics.items()}
    parsed_key = fastavro.parse_schema(orjson.loads((schemas / "claim_key.avsc").read_bytes()))
    parsed_values = {
        topic: fastavro.parse_schema(orjson.loads((schemas / f"{name}.avsc").read_bytes()))
        for name, topic in pipeline.topics.items()
    }
    schema_ids: dict[tuple[str, str], set[bytes]] = {}

    def decode(data: bytes | None, topic: str, schema: Any, part: str) -> Any:
        if data is None or data[:1] != b"\0":
            raise ChaosError(f"a record on {topic} is not in the Confluent wire format")
        schema_ids.setdefault((topic, part), set()).add(data[1:5])
        return fastavro.schemaless_reader(io.BytesIO(data[5:]), schema)

    delivered: list[tuple[str, bytes, Record]] = []  # (event id, content, record)
    for record in curated:
        key = to_avro_json(decode(record.key, record.topic, parsed_key, "key"), key_schema)
        value = decode(record.value, record.topic, parsed_values[record.topic], "value")
        value = to_avro_json(value, value_schemas[record.topic])
        headers = {k: v.decode() for k, v in record.headers}
        delivered.append((headers["ce_id"], content(record.topic, key, value), record))

    want: dict[str, dict[str, Any]] = {}
    for event in expected:  # the first copy of an id (re-deliveries give the same id)
        want.setdefault(event["headers"]["ce_id"], event)
    ids = Counter(d[0] for d in delivered)
    wanted_content = Counter(content(e["topic"], e["key"], e["value"]) for e in want.values())
    delivered_content = Counter(d[1] for d in delivered)
    wanted_by_id = {i: content(e["topic"], e["key"], e["value"]) for i, e in want.items()}
    different = sum(1 for event_id, body, _ in delivered if wanted_by_id.get(event_id, body) != body)

    # Per key: the delivered order (partition offsets) must be the staging order of the same events,
    # for the events that come from one staging partition (see `expected_events`).
    def group_of(event: dict[str, Any]) -> str:
        return f"{event['topic']}|{event['key']}|{event['staging_partition']}"

    expected_order: dict[str, list[str]] = {}
    for event_id, event in want.items():
        expected_order.setdefault(group_of(event), []).append(event_id)
    actual_order: dict[str, list[str]] = {}
    for event_id, _, _ in sorted(delivered, key=lambda d: (d[2].topic, d[2].partition, d[2].offset)):
        if event_id in want:  # an unexpected event is counted as such, it has no place to be in
            actual_order.setdefault(group_of(want[event_id]), []).append(event_id)
    out_of_order = 0
    for group, order in actual_order.items():
        first_seen = list(dict.fromkeys(order))
        reference = [i for i in expected_order.get(group, []) if i in set(first_seen)]
        if first_seen != reference:
            out_of_order += 1
    # Where each copy of a duplicated event is (at most 20 events): to set beside the transformer
    # logs' aborts and kills when a run fails.
    copies: dict[str, list[str]] = {}
    for event_id, _, record in delivered:
        if ids[event_id] > 1 and (event_id in copies or len(copies) < 20):
            append_time = time.strftime("%H:%M:%S", time.gmtime(record.timestamp_ms / 1000))
            copies.setdefault(event_id, []).append(
                f"{record.topic}[{record.partition}]@{record.offset} appended {append_time}."
                f"{record.timestamp_ms % 1000:03d}"
            )
    mixed = {f"{topic}-{part}": len(ids) for (topic, part), ids in schema_ids.items() if len(ids) != 1}
    if mixed:
        raise ChaosError(f"curated topics written with several schema ids: {mixed}")
    return {
        "expected_events": len(want),
        "delivered_events": len(delivered),
        "lost": len(want.keys() - ids.keys()),
        "duplicated": sum(n - 1 for n in ids.values() if n > 1),
        "duplicated_by_content": sum(
            max(0, n - wanted_content.get(c, 0)) for c, n in delivered_content.items()
        ),
        "unexpected": len(ids.keys() - want.keys()),
        "different_content": different,
        "out_of_order": out_of_order,
        "keys": len(actual_order),
        "duplicate_copies": copies,
    }


# --- the run -------------------------------------------------------------------------------------------


def lookup_free_mappings() -> tuple[str, ...]:
    folder = REPO / "mappings" / "claims"
    compiled = {name: compile_mapping(load_mapping(folder / f"{name}.yaml")) for name in MAPPINGS}
    return tuple(name for name, mapping in compiled.items() if not mapping.lookups)


def run(plan: Plan, stack: Stack, work: Path, output: Path) -> int:
    started = time.monotonic()
    rng = random.Random(plan.seed)
    say(f"stack: {stack.settings.bootstrap_servers}, Connect {stack.settings.connect_url}")
    stack.up()
    pipeline = Pipeline(stack, work, mappings=MAPPINGS if plan.lookups else lookup_free_mappings())
    say(f"source {pipeline.source}, database {pipeline.database}, group {pipeline.group}")
    pipeline.create()
    transformer = Transformer(pipeline)
    try:
        transformer.start()
        transformer.wait_ready()
        traffic = Traffic(pipeline, plan, window=0.03)
        faults = Faults(pipeline, transformer, traffic, schedule(plan, rng))
        fault_thread = threading.Thread(target=faults.run, name="faults", daemon=True)
        fault_thread.start()
        traffic_started = time.monotonic()
        traffic.run()
        traffic_s = time.monotonic() - traffic_started
        fault_thread.join()
        if faults.error is not None:
            raise faults.error
        say(f"traffic: {traffic.committed} transactions in {traffic_s:.0f}s, {traffic.rejected} rejected")

        # Debezium has delivered everything when the last staging image of every row is the database's.
        bootstrap = stack.settings.bootstrap_servers
        staging_records: list[Record] = []
        problems: list[str] = ["not read yet"]
        deadline = time.monotonic() + 300
        while problems and time.monotonic() < deadline:
            wait_for(_stable(bootstrap, pipeline.staging_topics), 120, "staging to settle", interval=3)
            staging_records = read_all(bootstrap, pipeline.staging_topics)
            problems = staging_matches_database(pipeline, staging_records)
            if problems:
                say(f"staging not complete yet ({len(problems)} rows differ), waiting")
        # The database's change history is all of staging; what the transformer reads is every table
        # unless only some mappings run (--without-lookups).
        history = analyse_staging(staging_records)
        consumed_topics = set(pipeline.consumed_topics)
        staging_records = [record for record in staging_records if record.topic in consumed_topics]
        staging = analyse_staging(staging_records)

        # The transformer has committed everything once its offsets are past the last record.
        last = {}
        for record in staging_records:
            last[(record.topic, record.partition)] = record.offset + 1
        wait_for(
            lambda: all(o >= last[k] for k, o in committed(bootstrap, pipeline.group, list(last)).items()),
            300, "the transformer to commit the end of staging", interval=1.0,
        )  # fmt: skip
        recovery = faults.recovery.results()
        final = transformer.terminate()
        say("transformer stopped with SIGTERM; computing the expected events offline")

        expected = expected_events(pipeline, staging)
        curated = read_all(bootstrap, list(pipeline.topics.values()))
        dlq = read_all(bootstrap, [pipeline.dlq_topic])
        figures = compare(pipeline, expected.events, curated)
    except BaseException:
        transformer.kill_quietly()
        pipeline.remove()
        raise

    consumed = len(staging_records)
    per_incarnation = [*transformer.scrapes, {**final, "balanced": 1.0 if final["balanced"] else 0.0}]
    results: dict[str, Any] = {
        "changes": history.streamed_changes,
        "changes_consumed": staging.streamed_changes,
        "source_transactions": traffic.committed,
        "source_transactions_rejected": traffic.rejected,
        "actions": dict(traffic.actions),
        "transformer_kills": transformer.kills,
        "transformer_unexpected_exits": transformer.unexpected_exits,
        "connect_kills": faults.done["connect"],
        "broker_restarts": faults.done["broker"],
        "postgres_restarts": faults.done["postgres"],
        "connect_kills_after_broker_restart": faults.done[CONNECT_AFTER_BROKER],
        "connect_kill_seconds_after_broker_back": faults.connect_kill_delays_s,
        "connector_task_restarts": faults.connector_task_restarts,
        "hanging_transactions_aborted": pipeline.hanging_transactions_aborted,
        "recovery_seconds": recovery,
        **figures,
        "dead_lettered": len(dlq),
        "dead_lettered_expected": expected.dead_letters,
        "staging_records": consumed,
        "staging_redeliveries": staging.redeliveries,
        # Every committed source transaction must be in staging (an ambiguous commit during a
        # PostgreSQL restart may add one the traffic counted as rejected).
        "staging_transactions": history.transactions,
        "staging_complete": not problems,
        "staging_problems": problems[:20],
        "accounting": {
            # Durable, for the whole run: every consumed staging record has exactly one outcome.
            "consumed": consumed,
            "emitted_from": expected.emitted_from,
            "dead_lettered": len(dlq),
            "filtered": staging.tombstones + staging.redeliveries + expected.no_match,
            "balanced": consumed
            == expected.emitted_from
            + len(dlq)
            + staging.tombstones
            + staging.redeliveries
            + expected.no_match,
            # Lower bound: the counts a killed incarnation committed after its last scrape are gone.
            "observed_consumed": int(sum(s.get("consumed", 0) for s in per_incarnation)),
            # Each incarnation's own counters (killed ones: the last scrape before SIGKILL).
            "incarnations": len(per_incarnation),
            "every_incarnation_balanced": all(s.get("balanced") == 1.0 for s in per_incarnation),
            "final_incarnation": final,
        },
        "plan": plan.__dict__,
        # Which stack was broken: the shared one (.stack/) or a private one (--private-stack DIR).
        "stack": {
            "state_dir": str(stack.settings.state),
            "bootstrap_servers": stack.settings.bootstrap_servers,
        },
        "duration_s": round(time.monotonic() - started, 1),
        "traffic_s": round(traffic_s, 1),
        "git_commit": git_commit(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    accounting = results["accounting"]
    failures = []
    for name in (
        "lost",
        "duplicated",
        "duplicated_by_content",
        "unexpected",
        "different_content",
        "out_of_order",
    ):
        if results[name]:
            failures.append(f"{name} = {results[name]}")
    if results["dead_lettered"] != expected.dead_letters:
        failures.append(f"dead-lettered {results['dead_lettered']}, offline {expected.dead_letters}")
    if not accounting["balanced"] or not accounting["every_incarnation_balanced"]:
        failures.append("accounting identity does not hold")
    if not results["staging_complete"]:
        failures.append("staging does not hold the database's final state")
    if results["staging_transactions"] < traffic.committed:
        failures.append(
            f"{traffic.committed} source transactions, {results['staging_transactions']} in staging"
        )
    if recovery["not_recovered"]:
        failures.append(f"changes did not flow again after: {recovery['not_recovered']}")
    for name in ("transformer_kills", "connect_kills", "broker_restarts", "postgres_restarts", "changes",
                 "connect_kills_after_broker_restart"):  # fmt: skip
        wanted = getattr(plan, name)
        if results[name] < wanted:
            failures.append(f"{name} = {results[name]} < {wanted}")
    results["passed"] = not failures
    results["failures"] = failures

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_figures(results, output)
    pipeline.remove()  # on success and on findings; a broken run cleans up above
    return 0 if not failures else 1


def _stable(bootstrap: str, topics: list[str]) -> Callable[[], bool]:
    """True once the end offsets are the same as at the previous call (polled every few seconds)."""
    previous: list[dict[tuple[str, int], int]] = []

    def stable() -> bool:
        now = end_offsets(bootstrap, topics)
        same = bool(previous) and previous[-1] == now
        previous.append(now)
        return same

    return stable


def print_figures(results: dict[str, Any], output: Path) -> None:
    rows = ("changes", "transformer_kills", "connect_kills", "broker_restarts", "postgres_restarts",
            "expected_events", "delivered_events", "lost", "duplicated", "duplicated_by_content",
            "unexpected", "different_content", "out_of_order", "dead_lettered", "staging_redeliveries",
            "connect_kills_after_broker_restart", "connector_task_restarts")  # fmt: skip
    print()
    for name in rows:
        print(f"  {name:<24} {results[name]}")
    for event_id, copies in results.get("duplicate_copies", {}).items():
        print(f"  {'duplicate ' + event_id[:8]:<24} {', '.join(copies)}")
    for kind, seconds in results["recovery_seconds"].items():
        if kind not in ("not_recovered", "idle_after") and seconds:
            print(f"  {'recovery ' + kind:<24} max {max(seconds):.1f}s of {seconds}")
    a = results["accounting"]
    print(f"  {'accounting':<24} consumed {a['consumed']} = emitted-from {a['emitted_from']} "
          f"+ filtered {a['filtered']} + dead-lettered {a['dead_lettered']}")  # fmt: skip
    print(
        f"  {'result':<24} {'PASSED' if results['passed'] else 'FAILED: ' + '; '.join(results['failures'])}"
    )
    print(f"  written to {output}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, help="source transactions to drive (default 100k, short 5k)")
    parser.add_argument("--short", action="store_true", help="the CI version: 5k changes, the minimum faults")
    parser.add_argument("--private-stack", type=Path, metavar="DIR",
                        help=f"run on a private stack in DIR (ports +{PRIVATE_PORT_OFFSET}) instead of the "
                             "shared one; it is left running for the next run")  # fmt: skip
    parser.add_argument("--faults", metavar="KIND=N,...",
                        help="fault counts instead of the plan's: transformer, connect, broker, postgres, "
                             "connect_after_broker (of the Connect kills, those right after a broker "
                             "restart)")  # fmt: skip
    parser.add_argument("--without-lookups", action="store_true",
                        help="run only the mappings without lookups: the transformer then overlaps each "
                             "commit with the next batch, and the faults hit that path")  # fmt: skip
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, metavar="DIR",
                        help="keep the run's files (a log per transformer incarnation, the mappings) in "
                             "DIR; by default a temporary folder, kept only when the run fails")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        plan = (Plan.short if args.short else Plan.full)(args.changes, args.seed).with_counts(args.faults)
        plan = dataclasses.replace(plan, lookups=not args.without_lookups)
    except (ChaosError, ValueError) as error:
        parser.error(str(error))
    settings = private_settings(args.private_stack.resolve()) if args.private_stack else StackSettings()
    say(f"plan: {plan}")
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="chaos-"))
    code = 2
    try:
        code = run(plan, Stack(settings), work, args.output)
    except ChaosError as error:
        say(f"the run could not be completed: {error}")
    finally:
        if code == 0 and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"the run's files (a log per transformer incarnation) are kept in {work}")
    return code


if __name__ == "__main__":
    sys.exit(main())
