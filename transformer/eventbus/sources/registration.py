"""Register and restart a source: the steps behind `eventbus source register|restart`.

Its status: `source_status.py`; removing it: `removal.py`.

Registration, in order (each step is safe to repeat, so the whole is idempotent):
1. preflight as the definition's role; any failing item stops here (`eventbus source check` says how
   to fix it);
2. create or extend the publication when the role may (the connector has autocreate disabled);
3. create the staging topics and the heartbeat topic with the definition's partitions/retention;
4. diff the rendered config against Connect's; `PUT /connectors/<name>/config` only when it differs;
5. wait until the tasks run the new config, the connector and its tasks are RUNNING (a FAILED task
   raises with its trace summarised), and the slot is active, i.e. changes are being streamed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from pydantic import SecretStr

from eventbus.sources.before_images import BeforeImageNeeds
from eventbus.sources.check_items import AppliedFix
from eventbus.sources.connect_client import ConnectClient, ConnectorState
from eventbus.sources.connector_config import (
    ConfigDiff,
    ConnectorConfig,
    diff_configs,
    render_connector_config,
)
from eventbus.sources.database import connect
from eventbus.sources.errors import (
    ConnectorFailedError,
    ConnectRequestError,
    DatabaseUnavailableError,
    PreflightFailedError,
    SourceError,
)
from eventbus.sources.inspection import read_slot
from eventbus.sources.preflight import PreflightReport, apply_fixes, run_preflight
from eventbus.sources.settings import SourceSettings
from eventbus.sources.spec import SourceDefinition
from eventbus.sources.topics import TopicRequest, TopicResult, ensure_topics

Log = Callable[[str], None]


def quiet(message: str) -> None:
    pass


@dataclass(slots=True)
class RegistrationResult:
    source: str
    connector: str
    action: str  # created | updated | unchanged
    diff: ConfigDiff
    topics: list[TopicResult]
    publication: list[AppliedFix]
    state: ConnectorState | None
    streaming: bool
    config: ConnectorConfig

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "connector": self.connector,
            "action": self.action,
            "diff": self.diff.to_json(),
            "topics": [{"name": t.name, "action": t.action, "detail": t.detail} for t in self.topics],
            "publication": [{"sql": a.sql, "ok": a.ok, "error": a.error} for a in self.publication],
            "state": self.state.to_json() if self.state else None,
            "streaming": self.streaming,
            "config": self.config.redacted(),
        }


def topic_requests(definition: SourceDefinition, looked_up: Iterable[str] = ()) -> list[TopicRequest]:
    """The staging topics to create; a looked-up table's is compacted (see `TopicRequest.compacted`)."""
    staging = definition.staging_topics
    compacted = set(looked_up)
    requests = [
        TopicRequest(
            topic,
            staging.partitions,
            staging.replication_factor,
            staging.retention_ms,
            compacted=table in compacted,
        )
        for table, topic in definition.staging_topics_by_table().items()
    ]
    if definition.heartbeat.interval_ms > 0:
        # One partition: heartbeats carry no key order worth spreading.
        requests.append(
            TopicRequest(definition.heartbeat_topic, 1, staging.replication_factor, staging.retention_ms)
        )
    return requests


def added_tables(diff: ConfigDiff) -> list[str]:
    """Tables a config change adds to the connector's capture list (regex-escaped in the config)."""
    change = diff.changed.get("table.include.list")
    if change is None:
        return []
    current, desired = ({re.sub(r"\\(.)", r"\1", t) for t in side.split(",") if t} for side in change)
    return sorted(desired - current)


def refuse_a_shared_slot(client: ConnectClient, definition: SourceDefinition) -> None:
    """A slot has one reader: a second connector on it is RUNNING yet retries "slot is active for
    PID ..." forever, and streams nothing while the slot looks active (held by the first)."""
    for name in client.list_connectors():
        if name == definition.connector_name:
            continue
        config = client.get_config(name) or {}
        same_database = (
            config.get("database.dbname") == str(definition.database.dbname)
            and config.get("database.hostname") == definition.database.host_for_connect
            and config.get("database.port", "5432") == str(definition.database.port_for_connect)
        )
        if same_database and config.get("slot.name", "debezium") == definition.slot_name:
            raise SourceError(
                f"replication slot {definition.slot_name} of database {definition.database.dbname} is "
                f"already read by connector {name}, and a slot has one reader: give this source a slot "
                f"of its own ('slot' in {definition.file}, or leave it out for eventbus_{definition.name})"
            )


def register(
    definition: SourceDefinition,
    settings: SourceSettings,
    needs: BeforeImageNeeds,
    *,
    timeout_s: float = 120.0,
    log: Log = quiet,
) -> RegistrationResult:
    password = definition.resolve_password()
    # Step 1: preflight.
    report = run_preflight(definition, password, needs)
    if report.capabilities is None:  # not even reachable: a service problem, not a failed check
        raise DatabaseUnavailableError(report.items[0].detail)
    if not report.passed:
        raise PreflightFailedError(_preflight_message(definition, report))
    # Connect must answer before anything is changed (publication, topics), so that "Connect is
    # down" leaves nothing half-done behind.
    with ConnectClient(settings.connect_url) as client:
        client.info()
        refuse_a_shared_slot(client, definition)

    # Step 2: publication, when the role may create or extend it (preflight said "warn").
    publication_items = [
        item for item in report.items if item.key == "publication" and item.status == "warn" and item.fix
    ]
    applied: list[AppliedFix] = []
    if publication_items:
        for item in publication_items:
            assert item.fix is not None
            for statement in item.fix.sql:
                log(f"publication: {statement}")
        with connect(definition, password) as connection:
            applied = apply_fixes(connection, publication_items)
        failed = [a for a in applied if not a.ok]
        if failed:
            raise SourceError(f"cannot prepare publication {definition.publication_name}: {failed[0].error}")

    # Step 3: topics.
    topics = ensure_topics(settings.kafka.bootstrap_servers, topic_requests(definition, needs.looked_up))
    for topic in topics:
        log(f"topic {topic.name}: {topic.action}{' (' + topic.detail + ')' if topic.detail else ''}")

    # Step 4: the connector config.
    config = render_connector_config(definition, password)
    with ConnectClient(settings.connect_url) as client:
        current = client.get_config(config.name)
        diff = diff_configs(current, config)
        if current is None or not diff.empty:
            _validate(client, definition, config)
        if current is None:
            action = "created"
            client.put_config(config.name, config.for_connect())
        elif diff.empty:
            action = "unchanged"
        else:
            action = "updated"
            client.put_config(config.name, config.for_connect())
        log(f"connector {config.name}: {action}")
        for table in added_tables(diff) if action == "updated" else []:
            log(f"note: {table} was added to a connector that has already taken its snapshot: its existing "
                "rows are not read, only the changes from now on (Debezium snapshots a table once, when "
                "the connector first starts)")  # fmt: skip

        # Step 5: wait until it runs what we asked for, and streams.
        deadline = time.monotonic() + timeout_s
        if action == "updated":
            _wait_tasks_reconfigured(client, config, deadline)
        restart_failed = action == "unchanged"
        state = _wait_running(
            client, config.name, deadline, restart_failed=restart_failed, log=log, source=definition.name
        )
    streaming = wait_slot_active(definition, password, deadline)
    if not streaming:
        log(f"slot {definition.slot_name} is not active yet (a snapshot may still be running)")
    return RegistrationResult(
        definition.name, config.name, action, diff, topics, applied, state, streaming, config
    )


def _validate(client: ConnectClient, definition: SourceDefinition, config: ConnectorConfig) -> None:
    """Connect's validation before the PUT: its per-field messages (the PUT only reports the first
    problem, and for some only an internal error)."""
    reference = definition.database.connect_password
    try:
        problems = client.validate(config.name, config.for_connect())
    except ConnectRequestError as error:
        if reference is None:
            raise
        # e.g. the file of a `${file:...}` reference does not exist on the worker
        raise ConnectRequestError(
            f"{error}; connect_password {reference} is resolved by the Connect workers: "
            "check their config.providers and the secret's file"
        ) from None
    if problems:
        hint = ""
        if reference is not None and any("password authentication failed" in p for p in problems):
            hint = (
                f"\nconnect_password {reference} is resolved by the Connect workers: check "
                "their config.providers, the secret's file and key, and the password in it"
            )
        raise ConnectRequestError(
            f"Kafka Connect found the config of {config.name} invalid:\n  " + "\n  ".join(problems) + hint
        )


def _preflight_message(definition: SourceDefinition, report: PreflightReport) -> str:
    lines = [f"source {definition.name} is not ready to register:"]
    lines += [f"  - {item.title}: {item.detail}" for item in report.failed]
    lines.append(f"run `eventbus source check {definition.name}` for the SQL that fixes each item")
    return "\n".join(lines)


def _wait_tasks_reconfigured(client: ConnectClient, config: ConnectorConfig, deadline: float) -> None:
    """After an update Connect restarts the connector, which then hands its tasks new configs; until
    then the status still shows the *old* tasks RUNNING, so "RUNNING" alone would prove nothing."""
    wanted = config.for_connect()
    while time.monotonic() < deadline:
        tasks = client.task_configs(config.name)
        if tasks and all(all(task.get(k) == v for k, v in wanted.items()) for task in tasks):
            return
        time.sleep(0.5)
    raise SourceError(f"connector {config.name}: tasks did not pick up the new config in time")


# Debezium's words when Connect's stored offsets point at WAL the slot no longer has.
_POSITION_GONE: Final = "no longer available on the server"


def _wait_running(
    client: ConnectClient, name: str, deadline: float, *, restart_failed: bool, log: Log, source: str
) -> ConnectorState:
    state: ConnectorState | None = None
    restarted = False
    while True:
        state = client.status(name)
        if state is not None:
            if state.running:
                return state
            failure = state.failure
            if failure:
                if restart_failed and not restarted:
                    # Unchanged config but a failed task: a restart is what "register" should do.
                    log(f"connector {name} had failed; restarting it")
                    client.restart(name)
                    restarted = True
                    time.sleep(1.0)
                    continue
                if _POSITION_GONE in failure:
                    failure += (
                        f"\nConnect still holds this connector's offsets from before, at a position its "
                        f"slot no longer has (dropped and created again?). To start anew with the "
                        f"snapshot mode: `eventbus source remove {source} --drop-slot --yes`, then "
                        f"`eventbus source register {source}`."
                    )
                raise ConnectorFailedError(failure)
        if time.monotonic() > deadline:
            shown = state.state if state else "not known to Connect"
            raise SourceError(f"connector {name} is not RUNNING after waiting (state: {shown})")
        time.sleep(0.5)


def restart(
    definition: SourceDefinition, client: ConnectClient, *, timeout_s: float = 120.0, log: Log = quiet
) -> ConnectorState:
    """Restart the connector and every task (a FAILED task, or a worker that lost track of them),
    then wait until all run again. The slot and Connect's offsets are kept: it resumes where it was."""
    name = definition.connector_name
    if client.status(name) is None:
        raise SourceError(
            f"connector {name} is not registered; `eventbus source register {definition.name}` creates it"
        )
    client.restart(name, only_failed=False)
    log(f"connector {name}: restart requested (connector and tasks)")
    state = _wait_running(
        client, name, time.monotonic() + timeout_s, restart_failed=False, log=log, source=definition.name
    )
    log(f"connector {name}: RUNNING, {len(state.tasks)} task(s)")
    return state


def wait_slot_active(definition: SourceDefinition, password: SecretStr, deadline: float) -> bool:
    """True once the slot exists and a walsender streams from it (the connector is consuming)."""
    with connect(definition, password) as connection:
        while True:
            slot = read_slot(connection, definition.slot_name)
            if slot is not None and slot.active:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
