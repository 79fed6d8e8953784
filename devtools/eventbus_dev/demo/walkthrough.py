"""`make demo`: the three steps of a producing team, on the sample claims domain, end to end.

It runs the same commands the README tells a team to paste (register the source, test the mappings,
start the transformer), then drives a minute of realistic claims traffic and shows the curated
events as a consumer on the bus sees them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from eventbus.errors import EventBusError
from eventbus_dev.demo.database import DEMO_DATABASE, ensure_database, seed_if_empty
from eventbus_dev.demo.traffic import ClaimsTraffic
from eventbus_dev.demo.watch import CuratedEventReader, ReceivedEvent, distinct_counts
from eventbus_dev.stack.launcher import LocalStack
from eventbus_dev.stack.process import ManagedProcess
from eventbus_dev.stack.settings import StackSettings

CURATED_TOPICS = (
    "claim_milestone_reached",
    "decision_letter_available",
    "contention_classified",
    "claim_withdrawn",
)
TRANSFORMER_HTTP_PORT = 18090


class DemoError(EventBusError):
    """A step of the demo failed; the message names the step and where to look."""


def transformer_process(settings: StackSettings) -> ManagedProcess:
    """The demo's transformer, managed like the stack's services (pid file + command-line marker)."""
    home = settings.state / "transformer"
    return ManagedProcess(
        name="transformer",
        pid_file=settings.state / "run" / "transformer.pid",
        log_file=settings.state / "logs" / "transformer.log",
        marker=str(home),
    )


class Walkthrough:
    def __init__(self, *, duration: float, rate: float, console: Console | None = None) -> None:
        self.settings = StackSettings()
        self.duration = duration
        self.rate = rate
        self.console = console or Console()
        self.repo = self.settings.repo_dir
        self.env = {**os.environ, "CLAIMS_DB_PASSWORD": self.settings.postgres_password.get_secret_value()}

    def step(self, number: int, title: str) -> None:
        self.console.rule(f"[bold]Step {number}[/] {title}")

    def run_command(self, *args: str) -> None:
        """Run an `eventbus` command as a user would, showing it and its output."""
        command = [sys.executable, "-m", "eventbus.cli", *args]
        self.console.print(f"[cyan]$ eventbus {' '.join(args)}[/]")
        result = subprocess.run(
            command, cwd=self.repo, env=self.env, capture_output=True, text=True, check=False
        )
        output = (result.stdout + result.stderr).rstrip()
        if output:
            self.console.print(output, highlight=False, markup=False)
        if result.returncode != 0:
            raise DemoError(
                f"`eventbus {' '.join(args)}` failed (exit {result.returncode}); see its output above"
            )

    def run(self) -> None:
        started = time.monotonic()
        self.step(1, "start the local stack (PostgreSQL, Kafka, Kafka Connect + Debezium, Apicurio Registry)")
        LocalStack(self.settings, log=lambda m: self.console.print(f"  {m}")).up()

        self.step(2, "the sample claims database, with rows that predate the connector")
        engine = ensure_database(self.settings)
        seeded = seed_if_empty(engine)
        self.console.print(
            f"  database {DEMO_DATABASE!r}: tables public.claims, public.contentions; "
            + (f"{seeded} claims seeded" if seeded else "existing rows kept")
        )

        self.step(3, "register the source: preflight checks, staging topics, Debezium connector")
        self.run_command("source", "check", "claims", "--fix")
        self.run_command("source", "register", "claims")

        self.step(4, "author the mappings: validate and run their offline tests")
        self.run_command("mapping", "test", "mappings/claims")

        self.step(5, "provision the curated and dead-letter topics, deploy the transformer")
        config = self._transformer_config()
        self.run_command("topics", "apply", "--mappings", "mappings/claims", "--config", str(config))
        start_offsets = self._end_offsets()  # show only what this run produces
        self._start_transformer(config)

        self.step(
            6, f"{self.duration:.0f} s of claims traffic at {self.rate:.0f} changes/s; curated events live"
        )
        received = self._drive_and_watch(engine, start_offsets)

        self.console.rule("[bold]Done")
        counts = distinct_counts(received)  # what the curated topics hold, each event once
        for topic in CURATED_TOPICS:
            self.console.print(f"  {topic:<28} {counts.get(topic, 0):>5} events")
        s = self.settings
        self.console.print(
            f"\n  Kafka            {s.bootstrap_servers}\n"
            f"  Kafka Connect    {s.connect_url}/connectors\n"
            f"  Schema registry  {s.registry_url}/subjects\n"
            f"  Transformer      http://{s.host}:{TRANSFORMER_HTTP_PORT}/metrics  (log: "
            f"{transformer_process(s).log_file})\n"
            f"  PostgreSQL       {s.postgres_dsn(DEMO_DATABASE, hide_password=True)}\n\n"
            f"  Everything keeps running. Stop it with: make down"
            f"   (demo took {time.monotonic() - started:.0f} s)"
        )

    def _end_offsets(self) -> dict[str, dict[int, int]]:
        consumer = Consumer(
            {"bootstrap.servers": self.settings.bootstrap_servers, "group.id": "eventbus-demo"}
        )
        offsets: dict[str, dict[int, int]] = {}
        try:
            metadata = consumer.list_topics(timeout=10)
            for topic in CURATED_TOPICS:
                partitions = metadata.topics.get(topic)
                if partitions is None or partitions.error is not None:
                    continue
                offsets[topic] = {}
                for partition in partitions.partitions:
                    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                    offsets[topic][partition] = high
        finally:
            consumer.close()
        return offsets

    def _transformer_config(self) -> Path:
        """The transformer's settings file, which `topics apply` reads too (same Kafka, same group)."""
        # It lives in the transformer's home folder, whose path is the process marker.
        home = Path(transformer_process(self.settings).marker)
        home.mkdir(parents=True, exist_ok=True)
        config = home / "config.yaml"
        config.write_text(
            "# Written by `make demo`.\n"
            "group_id: claims-transformer\n"
            f"http: {{host: {self.settings.host}, port: {TRANSFORMER_HTTP_PORT}}}\n"
            f"kafka: {{bootstrap_servers: '{self.settings.bootstrap_servers}'}}\n"
            f"registry: {{url: '{self.settings.registry_url}'}}\n"
        )
        return config

    def _start_transformer(self, config: Path) -> None:
        process = transformer_process(self.settings)
        if process.is_running():
            self.console.print(f"  transformer already running (pid {process.pid()})")
            return
        home = Path(process.marker)
        mappings = self.repo / "mappings" / "claims"
        shown = mappings.relative_to(self.repo)
        self.console.print(f"[cyan]$ eventbus transformer run --mappings {shown} --config {config}[/]")
        process.start(
            [sys.executable, "-m", "eventbus.cli", "transformer", "run", "--mappings", str(mappings),
             "--config", str(config)],
            cwd=home,
        )  # fmt: skip
        self._wait_ready(process)

    def _wait_ready(self, process: ManagedProcess) -> None:
        import httpx

        deadline = time.monotonic() + 90
        url = f"http://{self.settings.host}:{TRANSFORMER_HTTP_PORT}/readyz"
        while time.monotonic() < deadline:
            if not process.is_running():
                raise DemoError(
                    f"the transformer exited; last lines of {process.log_file}:\n{process.tail(30)}"
                )
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    self.console.print(f"  transformer ready (pid {process.pid()}, {url})")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise DemoError(f"the transformer did not become ready; see {process.log_file}")

    def _drive_and_watch(
        self, engine: object, start_offsets: dict[str, dict[int, int]]
    ) -> list[ReceivedEvent]:
        traffic = ClaimsTraffic(engine, seed=int(time.time()))  # type: ignore[arg-type]
        errors: list[BaseException] = []

        def drive() -> None:
            try:
                traffic.run(rate=self.rate, duration=self.duration)
            except BaseException as error:  # surfaced after the live view ends
                errors.append(error)

        driver = threading.Thread(target=drive, name="claims-traffic", daemon=True)
        reader = CuratedEventReader(
            self.settings.bootstrap_servers,
            self.settings.registry_url,
            CURATED_TOPICS,
            start_offsets=start_offsets,
        )
        received: list[ReceivedEvent] = []
        recent: deque[ReceivedEvent] = deque(maxlen=12)
        driver.start()
        settle_until: float | None = None
        with (
            reader,
            Live(self._view(traffic, received, recent), console=self.console, refresh_per_second=4) as live,
        ):
            while True:
                batch = reader.poll(0.25)
                received.extend(batch)
                recent.extend(batch)
                live.update(self._view(traffic, received, recent))
                if not driver.is_alive():
                    # Give the last transaction time to commit before counting.
                    settle_until = settle_until or time.monotonic() + 3
                    if time.monotonic() > settle_until:
                        break
        if errors:
            raise DemoError(f"the traffic generator failed: {errors[0]}")
        return received

    @staticmethod
    def _view(traffic: ClaimsTraffic, received: list[ReceivedEvent], recent: deque[ReceivedEvent]) -> Group:
        counts = distinct_counts(received)
        summary = Table.grid(padding=(0, 2))
        summary.add_row(
            f"source changes: [bold]{traffic.stats.changes}[/]",
            *(f"{topic}: [bold]{counts.get(topic, 0)}[/]" for topic in CURATED_TOPICS),
        )
        table = Table("topic", "key", "event", "ce_id", title="latest curated events (Avro, read_committed)")
        for event in reversed(recent):
            value = ", ".join(f"{k}={v}" for k, v in event.value.items() if k != "claim_id")
            table.add_row(
                event.topic, str(event.key.get("claim_id")), value[:70], event.headers.get("ce_id", "")[:8]
            )
        return Group(summary, table)


def stop_transformer(settings: StackSettings | None = None) -> bool:
    return transformer_process(settings or StackSettings()).stop()
