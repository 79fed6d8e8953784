"""A Kafka Connect worker SIGKILLed about a second after a broker restart must run its connector again
and stream changes within 60 s of being started again (issue #17, docs/connect-after-broker-restart.md).

Each round, while a source streams a steady trickle of changes: restart the broker (clean stop, start,
wait until it answers), SIGKILL the Connect worker one second later, start it again *without* any of
the stack's cures, and time how long until the worker is healthy, connector and task RUNNING, and a
change committed after the restart is on the staging topic. A worker not healthy 20 s after its start
gets what the project does for it (the stack's cure: abort the transactions Kafka's coordinator lost,
every 10 s); the round passes when changes flow within 60 s, by itself or so recovered. When a round
does not recover, what blocks it is printed (internal topics whose last stable offset lags their end,
the open transactions there and their producers, `find-hanging`).

`make test` runs one round. The dedicated run repeats it:
    EVENTBUS_CONNECT_RESTART_ROUNDS=10 .venv/bin/pytest -s -k rounds \
        tests/integration/sources/test_connect_after_broker_restart.py
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from typer.testing import CliRunner

from eventbus.cli.main import app
from eventbus_dev.stack.artifacts import ensure_artifacts
from eventbus_dev.stack.launcher import LocalStack
from eventbus_dev.stack.process import process_cmdline
from eventbus_dev.stack.settings import StackSettings
from eventbus_dev.stack.transactions import OPEN_MINUTES_DEFAULT, run_tool
from tests.support.stack import StackEndpoints

pytestmark = pytest.mark.stack

RECOVERY_BUDGET_S = 60.0
# Not healthy this long after its start: the worker waits on something; apply the stack's cure.
CURE_AFTER_S = 20.0
# The cure's age filter (`find-hanging --max-transaction-timeout`, minutes): the stack's (0, see
# transactions.py). A lost transaction began when the broker shut down, so a 1-minute filter lands
# recovery at 60-70 s after the worker's start; EVENTBUS_CONNECT_RESTART_CURE_MINUTES=1 measures that.
CURE_OPEN_MINUTES = int(os.environ.get("EVENTBUS_CONNECT_RESTART_CURE_MINUTES", str(OPEN_MINUTES_DEFAULT)))
INTERNAL_TOPICS = ("_connect-configs", "_connect-offsets", "_connect-status")


@dataclass
class Round:
    """Seconds from the worker's start: the budget counts from the moment the new worker is started,
    JVM start-up included (2-11 s with the stack's `plugin.discovery=service_load`, ~35 s without)."""

    number: int
    kill_delay_s: float = 1.0  # broker answering again -> Connect SIGKILLed
    rest_s: float | None = None  # worker start -> its REST server answers (any status)
    healthy_s: float | None = None  # -> /health 200 (internal topics read, group joined)
    running_s: float | None = None  # -> connector and task RUNNING
    flowing_s: float | None = None  # -> a change committed after the restart is on staging
    blocked: list[str] = field(default_factory=list)  # what held it, when it did not recover
    aborted: list[str] = field(default_factory=list)  # hanging transactions the project's cure ended

    @property
    def recovered(self) -> bool:
        return self.flowing_s is not None and self.flowing_s <= RECOVERY_BUDGET_S

    def __str__(self) -> str:
        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}s"

        verdict = "recovered" if self.recovered else "STUCK"
        return (
            f"round {self.number} (killed {self.kill_delay_s:.1f}s after the broker was back): {verdict}; "
            f"REST answers {seconds(self.rest_s)}, healthy {seconds(self.healthy_s)}, running "
            f"{seconds(self.running_s)}, changes flowing {seconds(self.flowing_s)}"
            + "".join(f"\n    cure: aborted a hanging transaction on {line}" for line in self.aborted)
            + "".join(f"\n    {line}" for line in self.blocked)
        )


class Trickle(threading.Thread):
    """Inserts a row every 50 ms, so the connector's producer is mid-transaction at any moment."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    while not self.stop.is_set():
                        conn.execute("insert into public.ticks default values")
                        self.stop.wait(0.05)
            except psycopg.Error:
                self.stop.wait(0.5)  # the database is not what this test breaks; try again


@dataclass
class Source:
    stack: StackEndpoints
    root: Path
    name: str = field(default_factory=lambda: f"rb{uuid.uuid4().hex[:8]}")

    @property
    def database(self) -> str:
        return f"{self.name}_db"

    @property
    def connector(self) -> str:
        return f"eventbus-source-{self.name}"

    @property
    def staging_topic(self) -> str:
        return f"staging.{self.name}.public.ticks"

    def cli(self, *args: str) -> str:
        env = {
            "RB_PW": self.stack.postgres_password,
            "EVENTBUS_CONNECT_URL": self.stack.connect_url,
            "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": self.stack.bootstrap_servers,
            "EVENTBUS_CONNECTORS_DIR": str(self.root / "connectors"),
            "EVENTBUS_MAPPINGS_DIR": str(self.root / "mappings"),
        }
        result = CliRunner().invoke(app, ["source", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    def create(self) -> None:
        with psycopg.connect(self.stack.libpq_dsn(), autocommit=True) as admin:
            admin.execute(f'create database "{self.database}"')
        with psycopg.connect(self.stack.libpq_dsn(self.database), autocommit=True) as conn:
            conn.execute("create table public.ticks (id bigserial primary key, at timestamptz default now())")
        (self.root / "connectors").mkdir()
        (self.root / "mappings").mkdir()
        (self.root / "connectors" / f"{self.name}.yaml").write_text(
            f"database:\n  host: {self.stack.postgres_host}\n  port: {self.stack.postgres_port}\n"
            f"  dbname: {self.database}\n  user: {self.stack.postgres_user}\n  password: {{env: RB_PW}}\n"
            f"  connect_host: {self.stack.postgres_host_for_connect}\n"
            f"  connect_port: {self.stack.postgres_port_for_connect}\n"
            "tables: [public.ticks]\nsnapshot_mode: no_data\nheartbeat: {interval: 1s}\n"
            "staging_topics: {partitions: 1, retention: 1d}\n"
        )
        self.cli("check", self.name, "--fix")
        self.cli("register", self.name)

    def remove(self) -> None:
        with httpx.Client(base_url=self.stack.connect_url, timeout=30) as client:
            client.put(f"/connectors/{self.connector}/stop")
            client.delete(f"/connectors/{self.connector}")
        from tests.support.stack import drop_database

        drop_database(self.stack, self.database)

    def committed_end(self) -> int:
        """The staging topic's last stable offset: what read_committed readers (the transformer) can
        read up to; it moves when a transaction of new changes commits. -1 while Kafka does not answer."""
        consumer = Consumer({"bootstrap.servers": self.stack.bootstrap_servers, "group.id": uuid.uuid4().hex,
                             "isolation.level": "read_committed"})  # fmt: skip
        try:
            return consumer.get_watermark_offsets(TopicPartition(self.staging_topic, 0), timeout=5)[1]
        except KafkaException:
            return -1
        finally:
            consumer.close()


class Breaker:
    """Restarts the broker and kills/starts Connect through the stack's own process management."""

    def __init__(self) -> None:
        self.stack = LocalStack(StackSettings())
        self.artifacts = ensure_artifacts(self.stack.settings, lambda _message: None)

    def restart_broker(self) -> None:
        kafka = self.stack.kafka
        kafka.process.stop(stop_signal=kafka.stop_signal, timeout=60)
        kafka.start(self.artifacts)
        self._wait(kafka.is_ready, 120, "the broker")

    def kill_connect(self) -> None:
        pid = self.stack.connect.process.pid()
        assert pid is not None, "the Connect worker is not running"
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while process_cmdline(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.1)

    def start_connect_bare(self) -> None:
        """The worker alone: none of `stack up`'s cures (hanging-transaction aborts)."""
        self.stack.connect.start(self.artifacts)

    def blocked_internal_partitions(self, stuck: bool) -> list[str]:
        """What may hold a worker at start-up. Always: the transactions `find-hanging` reports (no
        coordinator will end them). For a stuck round also: the internal topic partitions a
        read_committed reader cannot read to their end, with the open transactions there
        (`describe-producers`); a running task's own transaction shows there too, briefly."""
        settings = self.stack.settings
        libs = f"{self.artifacts.kafka_libs}/*"
        java = self.stack.kafka._java(self.artifacts.java, "-Xmx128m", "-cp", libs)

        def tool(*args: str) -> list[str]:
            # The table rows only: the tool also logs its client config to stdout (tab-indented).
            output = run_tool(java, settings.bootstrap_servers, *args).splitlines()
            return [row for row in output if len(row.split("\t")) >= 5 and not row.startswith("\t")]

        lines = []
        if stuck:
            probe = {"bootstrap.servers": settings.bootstrap_servers, "group.id": uuid.uuid4().hex}
            committed = Consumer({**probe, "isolation.level": "read_committed"})
            uncommitted = Consumer(probe)
            try:
                metadata = uncommitted.list_topics(timeout=10)
                for topic in INTERNAL_TOPICS:
                    for partition in metadata.topics[topic].partitions:
                        tp = TopicPartition(topic, partition)
                        stable = committed.get_watermark_offsets(tp, timeout=10)[1]
                        high = uncommitted.get_watermark_offsets(tp, timeout=10)[1]
                        if stable < high:
                            lines.append(f"{topic}-{partition}: last stable offset {stable} < end {high}")
                            producers = tool(
                                "describe-producers", "--topic", topic, "--partition", str(partition)
                            )
                            lines += [f"  {row}" for row in producers]
            finally:
                committed.close()
                uncommitted.close()
        hanging = tool("find-hanging", "--broker-id", "1", "--max-transaction-timeout", "1")
        lines += [f"find-hanging: {row}" for row in hanging if not row.startswith("Topic")]
        return lines

    @staticmethod
    def _wait(condition: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"{what} not ready within {timeout:.0f}s"
            time.sleep(0.5)


def run_round(number: int, source: Source, breaker: Breaker, delay_s: float) -> Round:
    result = Round(number, kill_delay_s=delay_s)
    breaker.restart_broker()
    time.sleep(delay_s)  # "about a second after the broker is back": the moment the fault needs
    breaker.kill_connect()
    breaker.start_connect_bare()
    started = time.monotonic()
    # Whatever the killed worker's task left open is aborted when its successor starts; the end only
    # moves for a transaction the new task commits.
    end_at_restart = source.committed_end()
    url = source.stack.connect_url
    # Watched past the budget, so a stuck round shows how long it stayed stuck, up to a point.
    give_up = started + 2 * RECOVERY_BUDGET_S
    next_cure = started + CURE_AFTER_S
    while time.monotonic() < give_up:
        elapsed = time.monotonic() - started
        if result.healthy_s is None and time.monotonic() >= next_cure:
            # What the project does for a worker that does not come up: end the transactions Kafka's
            # coordinator lost (the tool lists those open for a minute or more).
            cure = breaker.stack.abort_hanging_transactions(CURE_OPEN_MINUTES)
            result.aborted += [str(t) for t in cure]
            next_cure = time.monotonic() + 10
        try:
            health = httpx.get(f"{url}/health", timeout=3).status_code
            if result.rest_s is None:
                result.rest_s = elapsed
            if result.healthy_s is None and health == 200:
                result.healthy_s = elapsed
            if result.healthy_s is not None and result.running_s is None:
                body = httpx.get(f"{url}/connectors/{source.connector}/status", timeout=5).json()
                tasks = [t["state"] for t in body.get("tasks", [])]
                if body["connector"]["state"] == "RUNNING" and tasks and set(tasks) == {"RUNNING"}:
                    result.running_s = elapsed
        except (httpx.HTTPError, KeyError, ValueError):
            pass  # the worker is starting
        if result.running_s is not None and source.committed_end() > end_at_restart:
            result.flowing_s = time.monotonic() - started
            break
        time.sleep(1.0)
    # Also after a recovered round: a hanging transaction would hold the next worker start forever.
    result.blocked = breaker.blocked_internal_partitions(stuck=not result.recovered)
    return result


@pytest.fixture
def restarting_source(stack: StackEndpoints, tmp_path: Path) -> Iterator[tuple[Source, Breaker, Trickle]]:
    source = Source(stack, tmp_path)
    source.create()
    trickle = Trickle(stack.libpq_dsn(source.database))
    trickle.start()
    breaker = Breaker()
    try:
        yield source, breaker, trickle
    finally:
        trickle.stop.set()
        trickle.join(timeout=10)
        # Leave the stack as `stack up` would: cures applied, every service ready.
        breaker.stack.up()
        source.remove()


def _rounds(count: int, source: Source, breaker: Breaker, trickle: Trickle) -> list[Round]:
    rounds = []
    rng = random.Random(17)  # kill moments spread over 0.5-2 s after the broker is back, repeatably
    for number in range(1, count + 1):
        result = run_round(number, source, breaker, 1.0 if count == 1 else rng.uniform(0.5, 2.0))
        print(result, flush=True)
        rounds.append(result)
        if not result.recovered:
            breaker.stack.up()  # the cure, so the next round starts from a working worker
    return rounds


def test_connect_killed_a_second_after_a_broker_restart_streams_again_within_a_minute(
    restarting_source: tuple[Source, Breaker, Trickle],
) -> None:
    (result,) = _rounds(1, *restarting_source)
    assert result.recovered, str(result)


@pytest.mark.skipif(
    "EVENTBUS_CONNECT_RESTART_ROUNDS" not in os.environ,
    reason="the dedicated repetition: EVENTBUS_CONNECT_RESTART_ROUNDS=N",
)
def test_rounds_of_broker_restart_then_connect_kill(
    restarting_source: tuple[Source, Breaker, Trickle],
) -> None:
    rounds = _rounds(int(os.environ["EVENTBUS_CONNECT_RESTART_ROUNDS"]), *restarting_source)
    stuck = [r for r in rounds if not r.recovered]
    print(f"{len(rounds) - len(stuck)}/{len(rounds)} rounds recovered within {RECOVERY_BUDGET_S:.0f}s")
    assert not stuck, "\n".join(str(r) for r in stuck)
