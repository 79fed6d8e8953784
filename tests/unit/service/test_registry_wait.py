"""A schema registry that does not answer at start-up, or stops answering half-way through the
start-up gate, is waited for: /readyz says why, /healthz stays alive, one log line per attempt."""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientRegistryError
from prometheus_client import CollectorRegistry

from eventbus.errors import ServiceUnavailableError
from eventbus.events.avro import AvroEventSerializer, RegistryMode, connect_registry
from eventbus.events.errors import SchemaRegistryError
from eventbus.service import app
from eventbus.service.http import Health, HealthServer
from eventbus.service.loading import load_mapping_set
from eventbus.service.metrics import Tally
from eventbus.service.partitions import Partitions
from eventbus.service.processor import Processor
from eventbus.service.settings import load_settings
from tests.integration.transformer.support import Scenario
from tests.unit.events.fake_registry import FakeRegistry, Fault
from tests.unit.service.fakes import FakeMessage

MockBase: Any = type(connect_registry("mock://registry-wait"))


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[logging.LogRecord]]:
    """Short back-offs; yields the service's log records."""
    monkeypatch.setattr(app, "_REGISTRY_FIRST_DELAY_S", 0.01)
    monkeypatch.setattr(app, "_REGISTRY_MAX_DELAY_S", 0.02)
    handler, logger = _Collect(), logging.getLogger("eventbus.service")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def server() -> Iterator[tuple[Health, str]]:
    health = Health()
    http = HealthServer("127.0.0.1", 0, health, CollectorRegistry()).start()
    try:
        yield health, f"http://127.0.0.1:{http.port}"
    finally:
        http.stop()


def _attempts(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.getMessage() == "schema registry not answering; waiting"]


def test_registry_down_then_failing_mid_gate_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, waits: list[logging.LogRecord], server: Any
) -> None:
    health, url = server
    seen: list[tuple[int, str, int]] = []

    def probe() -> None:
        ready = httpx.get(f"{url}/readyz", timeout=5)
        seen.append((ready.status_code, ready.json()["reason"], httpx.get(f"{url}/healthz").status_code))

    class MockSchemaRegistryClient(MockBase):  # the gate recognises the mock by this name
        # First the registry cannot be reached at all; then it answers the first lookup and fails
        # the next one with a 503 (restarting half-way through the gate); then it is back.
        lookups = 0

        def lookup_schema(self, *args: Any, **kwargs: Any) -> Any:
            probe()
            type(self).lookups += 1
            if type(self).lookups == 1:
                request = httpx.Request("POST", "http://127.0.0.1:1/subjects/x")
                raise httpx.ConnectError("connection refused", request=request)
            if type(self).lookups == 3:
                raise ClientRegistryError(503, 50301, "registry is starting")
            return super().lookup_schema(*args, **kwargs)

    registry = MockSchemaRegistryClient({"url": "mock://registry-wait"})
    monkeypatch.setattr(app, "connect_registry", lambda **_: registry)
    folder = Scenario(tmp_path).write_mappings()
    settings = load_settings(instance_id="i1")
    mappings = load_mapping_set(folder)

    serializer = app.wait_for_registry(
        lambda: app.resolve_schemas(settings, mappings, folder), health, threading.Event()
    )

    assert serializer is not None and serializer.schema_id(mappings.curated_topics()[0], "value") > 0
    assert [len(_attempts(waits)), *(r.__dict__["attempt"] for r in _attempts(waits))] == [2, 1, 2]
    assert "ConnectError" in _attempts(waits)[0].__dict__["error"]
    assert "HTTP 503" in _attempts(waits)[1].__dict__["error"]
    assert all(ready == 503 and alive == 200 for ready, _, alive in seen)
    assert seen[1][1].startswith("waiting for the schema registry: schema registry unreachable")
    assert any("schema registry unavailable" in reason for _, reason, _ in seen)
    assert health.readiness() == (False, "starting")  # ready only once the loop consumes


def test_an_answer_that_refuses_is_final(waits: list[logging.LogRecord]) -> None:
    def refuse() -> None:
        raise SchemaRegistryError("pinned schema id 7 does not exist in the registry")

    with pytest.raises(SchemaRegistryError):
        app.wait_for_registry(refuse, Health(), threading.Event())
    assert not _attempts(waits)


def test_a_stop_while_waiting_ends_the_wait(waits: list[logging.LogRecord]) -> None:
    stop = threading.Event()

    def unreachable() -> None:
        stop.set()  # SIGTERM arrives while the registry is away
        raise ServiceUnavailableError("schema registry unreachable: ConnectError: refused")

    assert app.wait_for_registry(unreachable, Health(), stop) is None
    assert len(_attempts(waits)) == 1


def test_a_running_service_never_asks_the_registry(tmp_path: Path) -> None:
    """Ids are resolved once at start-up: once running, a registry outage cannot stop the service."""
    scenario = Scenario(tmp_path)
    mappings = load_mapping_set(scenario.write_mappings())
    registry = connect_registry("mock://registry-outage")
    serializer = AvroEventSerializer.from_registry(
        registry, mappings.topic_schemas, mode=RegistryMode.AUTO_REGISTER
    )

    def gone(*_: Any, **__: Any) -> Any:
        raise AssertionError("the registry was asked while running")

    for name in dir(registry):
        if not name.startswith("_") and callable(getattr(registry, name)):
            setattr(registry, name, gone)
    produced: list[str] = []
    tally = Tally(m.spec.name for m in mappings.mappings)
    processor = Processor(
        mappings, serializer, lambda topic, *_, **__: produced.append(topic), dead_letter_topic="dlq",
        group="g", tally=tally,
    )  # fmt: skip
    records = scenario.records(100)
    processor.process(
        [FakeMessage(r.topic, 0, i, r.key, r.value) for i, r in enumerate(records)], Partitions()
    )
    assert produced and "dlq" not in produced
    # The methods above cannot be reached today: the serializer keeps no reference to the client.
    # That is the design this test guards, so it checks it too.
    client = weakref.ref(registry)
    del registry
    gc.collect()
    assert client() is None, "the running service holds the registry client"


def test_a_stop_is_honoured_while_a_registry_request_hangs() -> None:
    """A registry that accepts connections and never answers kept SIGTERM waiting for the request's
    timeout and the client's own retries (about two minutes): the wait now ends at once."""
    import time

    stop = threading.Event()
    release = threading.Event()

    def hanging() -> None:
        release.wait(30)  # a request waiting for an answer that does not come

    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    try:
        assert app.wait_for_registry(hanging, Health(), stop) is None
        assert time.monotonic() - started < 2
    finally:
        release.set()


def test_the_registry_client_makes_one_request_per_attempt() -> None:
    assert load_settings().registry_config()["max.retries"] == 0


def test_a_registry_failing_while_the_gate_reads_levels_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, waits: list[logging.LogRecord]
) -> None:
    """A 503 on the compatibility level (then a refused connection on the verdict) made the gate a
    final error, or decided on a default level: each is now one more attempt of the wait."""
    fake = FakeRegistry()
    monkeypatch.setattr(app, "connect_registry", lambda **_: fake.client())
    folder = Scenario(tmp_path).write_mappings()
    settings = load_settings(instance_id="i1")
    mappings = load_mapping_set(folder)
    spec = mappings.topic_schemas[0]
    value = spec.value_subject
    # Version 1 has a field more than the mapping's schema: the gate asks for a verdict.
    note = {"name": "note", "type": ["null", "string"], "default": None}
    fake.register(value, {**spec.value_schema, "fields": [*spec.value_schema["fields"], note]})
    fake.faults += [
        Fault("GET", f"config/{value}", 503),
        Fault("POST", f"compatibility/subjects/{value}/versions/latest", None),
    ]

    serializer = app.wait_for_registry(
        lambda: app.resolve_schemas(settings, mappings, folder), Health(), threading.Event()
    )

    assert serializer is not None
    attempts = _attempts(waits)
    assert [r.__dict__["attempt"] for r in attempts] == [1, 2]
    assert "HTTP 503" in attempts[0].__dict__["error"]
    assert "ConnectError" in attempts[1].__dict__["error"]
