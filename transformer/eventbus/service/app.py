"""Wiring: settings + mappings folder → registry ids → clients → loop.

Start-up order matters: mappings are compiled and schema ids resolved *before* any Kafka client
exists, so an invalid mapping or a wrong schema pin stops the service before it joins the group
(never half-loaded, never holding partitions it cannot process). Once the cluster has answered
(`init_transactions`), the topics it publishes to are checked, still before it joins the group.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaException

from eventbus.contracts.gate import startup_gate
from eventbus.errors import ConfigError, ServiceUnavailableError
from eventbus.events.avro import AvroEventSerializer, RegistryMode, connect_registry
from eventbus.events.schema_lock import LOCK_FILE_NAME, load_lock
from eventbus.lookups.feeder import RelatedTopicsFeeder
from eventbus.lookups.versions import Interest
from eventbus.mapping.sensitivity import HASHED, publication
from eventbus.mapping.spec import PERSONAL
from eventbus.service.http import Health, HealthServer
from eventbus.service.kafka_settings import refusal_hint
from eventbus.service.loading import MappingSet, load_mapping_set
from eventbus.service.lookup_stage import LookupStage, open_store
from eventbus.service.loop import LoopOptions, TransformerLoop
from eventbus.service.metrics import Metrics, Tally
from eventbus.service.processor import DEFAULT_MAX_RECORD_BYTES, Processor
from eventbus.service.producer_renewal import RenewableProducer
from eventbus.service.published_topics import check_published_topics, vanished_topics
from eventbus.service.settings import SaslMechanism, TransformerSettings
from eventbus.service.staging_topics import (
    warn_of_missing_staging_topics,
    warn_of_uncompacted_lookup_topics,
)
from eventbus.topics.errors import TopicsCheckInterrupted

log = logging.getLogger("eventbus.service")
T = TypeVar("T")
_REGISTRY_FIRST_DELAY_S = 1.0
_REGISTRY_MAX_DELAY_S = 30.0
# How long a fatal timeout waits for the cluster to say whether a topic we write went away.
TOPICS_DIAGNOSIS_TIMEOUT_S = 10.0


def load(settings: TransformerSettings, mappings_dir: Path) -> tuple[MappingSet, AvroEventSerializer]:
    """Compile every mapping, then resolve every schema id (before any Kafka client is created).

    For one-shot tools (`eventbus dlq replay`): a registry that does not answer is an error at once
    (the person running it decides when to try again); the service waits (`wait_for_registry`)."""
    mappings = load_mapping_set(mappings_dir, hash_salt=settings.hash_salt.get_secret_value())
    return mappings, resolve_schemas(settings, mappings, mappings_dir)


def resolve_schemas(
    settings: TransformerSettings, mappings: MappingSet, mappings_dir: Path
) -> AvroEventSerializer:
    """One attempt at the registry: the compatibility gate, then the schema ids."""
    registry = connect_registry(**settings.registry_config(reveal=True))
    lock = None
    if settings.registry.mode is RegistryMode.PINNED:
        lock_file = settings.registry.lock_file or mappings_dir / LOCK_FILE_NAME
        if not lock_file.exists():
            # Every subject would be "not pinned": say which file was looked for instead
            raise ConfigError(
                f"registry.mode is pinned but the lock file {lock_file} does not exist: pin the schemas "
                "(`eventbus schema pin`) or set registry.lock_file (EVENTBUS_REGISTRY__LOCK_FILE)"
            )
        lock = load_lock(lock_file)
    # The compatibility gate (issue #9): refuses to start on a schema that would break consumers,
    # then resolves the ids (registers in development, pinned ids in production).
    schema_ids = startup_gate(mappings.mappings, registry, settings.registry.mode, lock)
    return AvroEventSerializer(mappings.topic_schemas, schema_ids)


def wait_for_registry(resolve: Callable[[], T], health: Health, stop: threading.Event) -> T | None:
    """`resolve()`, again after a back-off (doubling up to `_REGISTRY_MAX_DELAY_S`) for as long as
    the registry does not answer; None if `stop` is set meanwhile.

    A registry that is starting, restarting or briefly unreachable is a reason to wait, not to exit:
    `/readyz` answers 503 with the reason meanwhile, `/healthz` stays alive, and each attempt is one
    log line. Whatever the registry *answers* (an incompatible schema, a wrong pin) is final.
    """
    delay = _REGISTRY_FIRST_DELAY_S
    attempt = 1
    while True:
        health.beat()
        try:
            result = _until_stopped(resolve, health, stop)
        except _Stopped:
            return None
        except ServiceUnavailableError as error:
            health.reason = f"waiting for the schema registry: {error}"
            log.warning(
                "schema registry not answering; waiting",
                extra={"attempt": attempt, "retry_in_s": delay, "error": str(error)},
            )
        else:
            health.reason = "starting"
            return result
        deadline = time.monotonic() + delay
        while not stop.is_set() and time.monotonic() < deadline:
            health.beat()  # waiting is what we should be doing: alive, not ready
            stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        if stop.is_set():
            return None
        delay = min(delay * 2, _REGISTRY_MAX_DELAY_S)
        attempt += 1


class _Stopped(Exception):
    """The stop event was set while a registry request was under way."""


def _until_stopped(resolve: Callable[[], T], health: Health, stop: threading.Event) -> T:
    """`resolve()` on a thread of its own, so that a stop (SIGTERM) is honoured at once even while a
    request waits for a registry that accepts connections but never answers (up to `timeout_s`)."""
    outcome: list[Any] = []

    def attempt() -> None:
        try:
            outcome.append((True, resolve()))
        except BaseException as error:  # handed to the caller as it is
            outcome.append((False, error))

    worker = threading.Thread(target=attempt, name="registry-request", daemon=True)
    worker.start()
    while True:
        worker.join(0.2)
        if not worker.is_alive():
            break
        health.beat()
        if stop.is_set():
            raise _Stopped
    done, value = outcome[0]
    if not done:
        raise value
    result: T = value
    return result


def build(
    settings: TransformerSettings,
    mappings: MappingSet,
    serializer: AvroEventSerializer,
    *,
    group_id: str | None = None,
    transactional_id: str | None = None,
    processor_class: type[Processor] = Processor,
    health: Health | None = None,
    metrics: Metrics | None = None,
) -> tuple[TransformerLoop, Metrics, Health]:
    """The clients, processor and loop for `mappings` (the replay tool passes its own group/ids)."""
    health = health or Health(settings.http.stall_after_s, settings.http.broker_gone_after_s)
    metrics = metrics or Metrics(
        (m.spec.name for m in mappings.mappings), staging_topics=mappings.staging_topics
    )
    tally = Tally(m.spec.name for m in mappings.mappings)
    librdkafka_log = logging.getLogger("eventbus.librdkafka")
    loop_ref: list[TransformerLoop] = []
    consumer_conf: dict[str, Any] = settings.consumer_config(reveal=True) | {
        "logger": librdkafka_log,
        "error_cb": lambda error: loop_ref[0].on_error(error),
    }
    producer_conf: dict[str, Any] = settings.producer_config(reveal=True) | {
        "logger": librdkafka_log,
        # Reports for failures only: no per-record Python call on success, and at-least-once
        # still learns that it must not commit past a failed record.
        "delivery.report.only.error": True,
        "on_delivery": lambda error, message: loop_ref[0].on_delivery(error, message),
        "error_cb": lambda error: loop_ref[0].on_error(error),
    }
    if group_id is not None:
        consumer_conf["group.id"] = group_id
    if transactional_id is not None and "transactional.id" in producer_conf:
        producer_conf["transactional.id"] = transactional_id
    kind = "producer"
    try:
        # A full local queue or a retriable error waits as long as a transactional call may take.
        producers = RenewableProducer(producer_conf, settings.transaction_timeout_ms / 1000)
        kind = "consumer"
        consumer = Consumer(consumer_conf)
    except (KafkaException, ValueError, TypeError) as error:
        hint = refusal_hint(str(error), kind, getattr(settings.kafka, kind))
        raise ConfigError(f"the Kafka {kind} refused its configuration: {error}{hint}") from None
    produce = producers.produce
    processor = processor_class(
        mappings,
        serializer,
        produce,
        dead_letter_topic=settings.dlq_topic,
        group=settings.group_id,
        tally=tally,
        dedup=settings.dedup,
        max_record_bytes=int(producer_conf.get("message.max.bytes", DEFAULT_MAX_RECORD_BYTES)),
    )
    options = LoopOptions(
        exactly_once=settings.exactly_once,
        batch_size=settings.batch_size,
        commit_interval_s=settings.commit_interval_ms / 1000,
        overlap_commits=settings.overlap_commits,
        max_records_per_transaction=settings.max_records_per_transaction,
        operation_timeout_s=settings.transaction_timeout_ms / 1000,
        shutdown_timeout_s=settings.shutdown_timeout_s,
    )
    lookups = _lookup_stage(settings, mappings, produce, consumer_conf, processor, metrics)
    loop = TransformerLoop(consumer, producers, processor, tally, metrics, health, options, lookups)
    loop_ref.append(loop)
    if settings.kafka.sasl.mechanism is SaslMechanism.OAUTHBEARER:
        # librdkafka asks for the first MSK IAM token through the producer's poll queue.
        producers.current.poll(1.0)
    return loop, metrics, health


def _lookup_stage(
    settings: TransformerSettings,
    mappings: MappingSet,
    produce: Any,
    consumer_conf: dict[str, Any],
    processor: Processor,
    metrics: Metrics,
) -> LookupStage | None:
    """The lookup store, its feeder and the parked changes, when a mapping looks rows up."""
    interest = Interest.of(mappings.mappings)
    if not interest:
        return None
    if not settings.exactly_once:
        # Without transactions a parked change and its partition's offset are not committed together.
        log.warning("lookups with at-least-once delivery: a crash may publish a parked change twice "
                    "(same event id)")  # fmt: skip
    feeder_conf = {k: v for k, v in consumer_conf.items() if k != "error_cb"}
    feeder_conf["group.id"] = f"{consumer_conf['group.id']}.lookups"  # never commits: assign only
    # Small fetches: a restore reads the related topics as fast as it can decode them, and the
    # client's default buffering (MBs per fetch, decompressed) took ~140 MB of RSS there.
    feeder_conf.update({"fetch.max.bytes": 1_048_576, "max.partition.fetch.bytes": 262_144,
                        "queued.max.messages.kbytes": 1024, "queued.min.messages": 1000})  # fmt: skip
    feeder = RelatedTopicsFeeder(
        open_store(settings.lookup_store_path),
        interest,
        feeder_conf,
        settings.common_config(reveal=True),
        timeout_s=settings.transaction_timeout_ms / 1000,
    )
    stage = LookupStage(
        mappings.mappings, feeder, produce, settings.parked_changes_topic, feeder_conf,
        admin_config=settings.common_config(reveal=True),
    )  # fmt: skip
    stage.attach(processor)  # Kafka is first contacted by `open()`, after init_transactions
    metrics.registry.register(stage.collector())
    return stage


def hashed_personal_fields(mappings: MappingSet) -> list[str]:
    """`mapping.field` of every pii/phi field published through hash(): without a salt such a hash
    is a lookup table away from the value."""
    found = []
    for compiled in mappings.mappings:
        spec = compiled.spec
        for block in spec.emit:
            for name, value in (*block.key.items(), *block.fields.items()):
                if spec.sensitivity.get(name) not in PERSONAL:
                    continue
                ways = publication(value).ways
                if ways is not None and HASHED in ways:
                    found.append(f"{spec.name}.{name}")
    return sorted(set(found))


def run_service(settings: TransformerSettings, mappings_dir: Path) -> int:
    """`eventbus transformer run`: returns the exit code (0 after a clean stop)."""
    started = time.monotonic()
    mappings = load_mapping_set(mappings_dir, hash_salt=settings.hash_salt.get_secret_value())
    health = Health(settings.http.stall_after_s, settings.http.broker_gone_after_s)
    metrics = Metrics((m.spec.name for m in mappings.mappings), staging_topics=mappings.staging_topics)
    server = None
    if settings.http.enabled:
        # Up before the registry is asked: an orchestrator sees "alive, not ready" while we wait.
        server = HealthServer(settings.http.host, settings.http.port, health, metrics.registry).start()
    log.info(
        "transformer starting",
        extra={
            "mappings": [f"{m.spec.name} v{m.spec.version}" for m in mappings.mappings],
            "staging_topics": mappings.staging_topics,
            "curated_topics": mappings.curated_topics(),
            "dead_letter_topic": settings.dlq_topic,
            "delivery": str(settings.delivery),
            "group_id": settings.group_id,
            "transactional_id": settings.transactional_id if settings.exactly_once else None,
            "http_port": server.port if server else None,
        },
    )
    unsalted = [] if settings.hash_salt.get_secret_value() else hashed_personal_fields(mappings)
    if unsalted:
        log.warning(
            "personal fields are hashed without hash_salt: anyone can hash candidate values (every "
            "SSN, every e-mail address of a list) and match them; set EVENTBUS_HASH_SALT, the same "
            "on every instance",
            extra={"fields": unsalted},
        )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # Until the loop installs its own: SIGTERM while waiting for the registry is a clean stop.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    code = 0
    try:
        serializer = wait_for_registry(
            lambda: resolve_schemas(settings, mappings, mappings_dir), health, stop
        )
        if serializer is not None:
            loop, _, _ = build(settings, mappings, serializer, health=health, metrics=metrics)
            loop.install_signal_handlers()
            if stop.is_set():
                loop.stop()
            # Step 1 failing (broker unreachable, fenced) raises: the CLI prints its one line
            # (`error: init_transactions: ...`) and exits 2. The loop logs a fatal error itself.
            loop.init_transactions()
            # The cluster answered: a topic we publish to that is missing or has another partition
            # count stops us here, with the command that provisions it (one line, exit 2).
            # SIGTERM now reaches the loop's handler: a stop asked meanwhile skips the check, or ends it.
            with contextlib.suppress(TopicsCheckInterrupted):
                if not loop.stop_requested:
                    check_published_topics(
                        settings, mappings.mappings, mappings_dir, give_up=lambda: loop.stop_requested
                    )
                if not loop.stop_requested:  # a missing staging topic is only said (see the module)
                    warn_of_missing_staging_topics(
                        settings, mappings.mappings, give_up=lambda: loop.stop_requested
                    )
                if not loop.stop_requested:
                    warn_of_uncompacted_lookup_topics(
                        settings, mappings.mappings, give_up=lambda: loop.stop_requested
                    )
            loop.diagnose_timeout = lambda: vanished_topics(
                settings, mappings.mappings, mappings_dir, timeout_s=TOPICS_DIAGNOSIS_TIMEOUT_S
            )
            loop.open_lookups()
            loop.subscribe(mappings.staging_topics)
            code = loop.run()
    finally:
        totals = metrics.totals
        log.info(
            "transformer stopped",
            extra={"accounting": totals.as_dict(), "uptime_s": round(time.monotonic() - started, 3)},
        )
        if server is not None:
            server.stop()
    return code
