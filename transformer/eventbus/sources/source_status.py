"""What `eventbus source status` reports on a source: Connect's state of its connector and tasks,
its slot (lag, retained WAL, trouble: `slot_health`) and the newest change and heartbeat on Kafka."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError

from eventbus.errors import EventBusError
from eventbus.sources.connect_client import ConnectClient, ConnectorState
from eventbus.sources.database import connect, describe_target, summarise_connection_error
from eventbus.sources.inspection import SlotFacts, read_slot
from eventbus.sources.slot_health import SlotFinding, slot_findings
from eventbus.sources.spec import SourceDefinition


@dataclass(slots=True)
class SourceStatus:
    source: str
    connector: str
    state: ConnectorState | None
    slot: SlotFacts | None
    slot_error: str | None = None
    last_change: dict[str, Any] | None = None
    heartbeat: dict[str, Any] | None = None  # the newest record on the source's heartbeat topic
    stale_after_s: float | None = None
    notes: list[str] = field(default_factory=list)
    slot_findings: list[SlotFinding] = field(default_factory=list)  # slot trouble, with what to do
    database: str = ""  # host:port/dbname: sources of one database see the same orphaned slots

    @property
    def slot_failing(self) -> bool:
        return any(finding.severity == "fail" for finding in self.slot_findings)

    @property
    def newest_seen_ms(self) -> int | None:
        """When the newest change or heartbeat was written (Kafka record time), None if neither."""
        times = [seen["timestamp_ms"] for seen in (self.last_change, self.heartbeat) if seen]
        return max(times) if times else None

    def age_s(self, now_ms: int | None = None) -> float | None:
        """Seconds since the newest change or heartbeat: how long the source has been silent."""
        newest = self.newest_seen_ms
        if newest is None:
            return None
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return max(0.0, (now - newest) / 1000)

    def stale(self, now_ms: int | None = None) -> bool:
        """Silent for longer than `stale_after_s` (or never heard of). A live connector writes a
        heartbeat every `heartbeat.interval` even while its tables are idle, so silence means that
        changes stopped flowing, whatever the connector's state says."""
        if self.stale_after_s is None:
            return False
        age = self.age_s(now_ms)
        return age is None or age > self.stale_after_s

    def to_json(self) -> dict[str, Any]:
        slot = None
        if self.slot is not None:
            slot = {
                "active": self.slot.active,
                "wal_status": self.slot.wal_status,
                "lag_bytes": self.slot.lag_bytes,
                "retained_bytes": self.slot.retained_bytes,
            }
        return {
            "source": self.source,
            "connector": self.connector,
            "state": self.state.to_json() if self.state else None,
            "slot": slot,
            "slot_error": self.slot_error,
            "last_change": self.last_change,
            "heartbeat": self.heartbeat,
            "age_s": self.age_s(),
            "stale_after_s": self.stale_after_s,
            "stale": self.stale(),
            "slot_findings": [finding.to_json() for finding in self.slot_findings],
        }


def source_status(
    definition: SourceDefinition,
    client: ConnectClient,
    bootstrap_servers: str,
    stale_after_s: float | None = None,
    known_slots: Collection[str] = (),
) -> SourceStatus:
    """Connector and task state, the slot's lag in bytes and its trouble (read on the source
    database), and the newest change and heartbeat on Kafka; `stale_after_s`: the silence after which
    it is stale; `known_slots`: slots of other definitions and connectors, which are not orphaned."""
    from eventbus.sources.last_change import last_change  # confluent consumer only when needed

    state = client.status(definition.connector_name)
    database = definition.database
    status = SourceStatus(
        definition.name,
        definition.connector_name,
        state,
        None,
        stale_after_s=stale_after_s,
        database=f"{database.host}:{database.port}/{database.dbname}",
    )
    try:
        password = definition.resolve_password()
        with connect(definition, password) as connection:
            status.slot = read_slot(connection, definition.slot_name)
            status.slot_findings = slot_findings(
                connection, definition, client, state, known_slots, bootstrap_servers
            )
    except EventBusError as error:  # the slot is one column of the status: a DB problem keeps the rest
        status.slot_error = str(error)
    except DBAPIError as error:  # a query refused (pg_current_wal_lsn() on a standby)
        status.slot_error = (
            f"cannot read the slot on {describe_target(definition)}: {summarise_connection_error(error)}"
        )
    status.last_change = last_change(bootstrap_servers, list(definition.staging_topics_by_table().values()))
    if definition.heartbeat.interval_ms > 0:
        status.heartbeat = last_change(bootstrap_servers, [definition.heartbeat_topic])
    return status


def source_statuses(
    definitions: Iterable[SourceDefinition],
    client: ConnectClient,
    bootstrap_servers: str,
    stale_after_s: float | None = None,
    known_slots: Collection[str] = (),
) -> list[SourceStatus]:
    """`source_status` of each definition, each orphaned slot reported once (`report_orphans_once`)."""
    statuses = [source_status(d, client, bootstrap_servers, stale_after_s, known_slots) for d in definitions]
    report_orphans_once(statuses)
    return statuses


def report_orphans_once(statuses: Iterable[SourceStatus]) -> None:
    """Every source of a database sees that database's orphaned slots; the first one reports each,
    so that one slot is one finding (one drop to run) however many sources share the database."""
    seen: set[tuple[str, str]] = set()
    for status in statuses:
        kept: list[SlotFinding] = []
        for finding in status.slot_findings:
            if finding.kind == "orphaned":
                if (status.database, finding.slot) in seen:
                    continue
                seen.add((status.database, finding.slot))
            kept.append(finding)
        status.slot_findings = kept
