"""Replication-slot trouble on a source database, for `eventbus source status`.

A slot is what fills PostgreSQL's disk (nobody reads it, so it keeps every WAL segment since) or
what silently loses changes (it was dropped, or `max_slot_wal_keep_size` cut the WAL it needed).
`read_slot_rows()` reads `pg_replication_slots`, which every role may read; `classify_slots()` turns
the rows into findings with what to do, without a database, so every case is unit-tested.

Severity: `fail` (status exits 1) for what does not mend itself: a dropped slot, lost or about to be
lost WAL, a slot no connector will ever read again, or retained WAL beyond `max_retained_wal`;
`warn` for what usually passes (a RUNNING connector whose slot is not yet streaming: a snapshot
runs first, or the task restarts) or is not known to be a loss (a slot not created yet).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from eventbus.sources.connect_client import ConnectClient, ConnectorState
from eventbus.sources.database import describe_target, quote_literal, summarise_connection_error
from eventbus.sources.errors import SourceError
from eventbus.sources.inspection import wal_status_column
from eventbus.sources.naming import source_of_slot
from eventbus.sources.preflight import format_bytes
from eventbus.sources.spec import SourceDefinition

Severity = Literal["warn", "fail"]
# Snapshot modes under which a connector starting without offsets captures the tables' rows again.
_SNAPSHOTTING = frozenset({"initial", "initial_only", "when_needed", "always"})


@dataclass(frozen=True, slots=True)
class SlotRow:
    """One row of `pg_replication_slots`."""

    name: str
    plugin: str | None
    slot_type: str  # logical | physical
    database: str | None  # None for a physical slot
    active: bool
    wal_status: str | None  # reserved | extended | unreserved | lost; None before PostgreSQL 13
    retained_bytes: int | None  # current LSN - restart_lsn; None once the WAL is lost


@dataclass(frozen=True, slots=True)
class SlotFinding:
    kind: Literal["missing", "inactive", "wal_unreserved", "wal_lost", "orphaned"]
    severity: Severity
    slot: str
    message: str  # what is wrong, why it matters, and what to do
    retained_bytes: int | None = None
    fix: tuple[str, ...] = ()  # commands or SQL, to run in order

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"fix": list(self.fix)}


@dataclass(frozen=True, slots=True)
class SourceSlot:
    """What `classify_slots` needs to know about the source beside the slot rows."""

    source: str
    slot: str  # the slot its connector reads (the connector config's `slot.name`)
    database: str
    snapshot_mode: str
    max_retained_wal_bytes: int
    connect_url: str


def read_slot_rows(connection: Connection, slot_name: str) -> list[SlotRow]:
    """The source's slot (wherever it is) and every slot of the connected database."""
    wal_status = wal_status_column(connection)
    rows = connection.execute(
        text(
            f"select slot_name, plugin, slot_type, database, active, {wal_status} as wal_status, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint as retained "
            "from pg_replication_slots where slot_name = :name or database = current_database() "
            "order by slot_name"
        ),
        {"name": slot_name},
    ).all()
    return [
        SlotRow(r.slot_name, r.plugin, r.slot_type, r.database, r.active, r.wal_status, r.retained)
        for r in rows
    ]


def drop_statement(slot: str) -> str:
    # The function takes the slot's name as a value, so it is quoted as a literal, not an identifier.
    return f"SELECT pg_drop_replication_slot({quote_literal(slot)});"


def classify_slots(
    source: SourceSlot,
    connector: ConnectorState | None,
    has_offsets: bool,
    rows: Collection[SlotRow],
    known_slots: Collection[str],
) -> list[SlotFinding]:
    """Findings about the source's slot and about orphaned slots of its database.

    `connector`: Connect's status (None: not registered); `has_offsets`: Connect keeps a position for
    it, so it has streamed from its slot; `known_slots`: every slot a definition or a registered
    connector names, which are therefore not orphaned even when nobody reads them now."""
    findings: list[SlotFinding] = []
    own = next((row for row in rows if row.name == source.slot), None)
    if own is None:
        if connector is not None:
            findings.append(_missing(source, connector, has_offsets))
    elif own.wal_status == "lost":
        findings.append(_wal_lost(source, own))
    else:
        if own.wal_status == "unreserved":
            findings.append(_wal_unreserved(source, own))
        if not own.active:
            findings.append(_inactive(source, own, connector))
    for row in rows:
        if (
            row.name != source.slot
            and row.slot_type == "logical"
            and row.database == source.database
            and not row.active
            and row.name not in known_slots
            and source_of_slot(row.name) is not None
        ):
            findings.append(_orphaned(row))
    return findings


def _start_anew(source: SourceSlot) -> tuple[str, tuple[str, ...]]:
    """How to start a source over on a new slot, and what that captures."""
    name = source.source
    commands = (f"eventbus source remove {name} --drop-slot --yes", f"eventbus source register {name}")
    if source.snapshot_mode in _SNAPSHOTTING:
        effect = f"snapshot_mode {source.snapshot_mode}: the new connector snapshots the tables again"
    else:
        effect = (
            f"snapshot_mode {source.snapshot_mode} takes no snapshot, so the rows changed meanwhile "
            "stay missing: set snapshot_mode: initial in the definition first to capture them again"
        )
    how = f"start anew on a new slot: `{commands[0]}`, then `{commands[1]}` ({effect})"
    return how, commands


def _missing(source: SourceSlot, connector: ConnectorState, has_offsets: bool) -> SlotFinding:
    how, commands = _start_anew(source)
    if has_offsets:
        return SlotFinding(
            "missing",
            "fail",
            source.slot,
            f"slot {source.slot} does not exist although connector {connector.name} is registered and "
            f"has streamed from it (Kafka Connect keeps its position): it was dropped, and the changes "
            f"made since are lost to this source; the connector cannot resume from a slot that is gone. "
            f"To recover, {how}",
            fix=commands,
        )
    return SlotFinding(
        "missing",
        "warn",
        source.slot,
        f"slot {source.slot} does not exist yet: connector {connector.name} ({connector.worst}) creates it "
        f"when its task starts. If it was dropped by hand, the changes made since are lost: {how}",
        fix=commands,
    )


def _wal_lost(source: SourceSlot, row: SlotRow) -> SlotFinding:
    how, commands = _start_anew(source)
    return SlotFinding(
        "wal_lost",
        "fail",
        row.name,
        f"slot {row.name} can no longer deliver changes (wal_status lost): it fell more than "
        f"max_slot_wal_keep_size behind and PostgreSQL removed WAL it still needed, so the changes in it "
        f"are lost to this source. To recover, {how}",
        row.retained_bytes,
        commands,
    )


def _wal_unreserved(source: SourceSlot, row: SlotRow) -> SlotFinding:
    how, commands = _start_anew(source)
    catch_up = (
        "the connector is reading it: it may still catch up"
        if row.active
        else "nobody is reading it: get its connector streaming now (the next finding says how)"
    )
    return SlotFinding(
        "wal_unreserved",
        "fail",
        row.name,
        f"slot {row.name} retains {format_bytes(row.retained_bytes)} of WAL, beyond max_slot_wal_keep_size "
        f"(wal_status unreserved): the next checkpoint removes WAL it still needs, and the changes in it "
        f"are then lost. {catch_up[0].upper()}{catch_up[1:]}; once wal_status is lost, {how}",
        row.retained_bytes,
        commands,
    )


def _inactive(source: SourceSlot, row: SlotRow, connector: ConnectorState | None) -> SlotFinding:
    name = source.source
    retains = f"retains {format_bytes(row.retained_bytes)} of WAL"
    growing = "which grows with every write on the database until the slot is read or dropped"
    drop = f"eventbus source remove {name} --drop-slot --yes"
    severity: Severity = "fail"
    if connector is None:
        fix: tuple[str, ...] = (f"eventbus source register {name}", drop)
        message = (
            f"slot {row.name} is not read by any connector (connector eventbus-source-{name} is not "
            f"registered) and {retains}, {growing}: `{fix[0]}` resumes streaming from it; if the "
            f"source is gone for good, `{drop}` drops it (its unread changes are lost)"
        )
    elif connector.state in ("PAUSED", "STOPPED"):
        resume = f"curl -X PUT {source.connect_url.rstrip('/')}/connectors/{connector.name}/resume"
        fix = (resume, drop)
        message = (
            f"slot {row.name} is not being read (connector {connector.state}) and {retains}, {growing}: "
            f"resume the connector (`{resume}`); if the source is no longer wanted, `{drop}`"
        )
    elif not connector.running:
        fix = (f"eventbus source restart {name}", drop)
        message = (
            f"slot {row.name} is not being read (connector {connector.worst}) and {retains}, {growing}: "
            f"fix what the connector reports, then `{fix[0]}`; if the source is no longer wanted, `{drop}`"
        )
    else:
        fix = (f"eventbus source restart {name}",)
        message = (
            f"slot {row.name} is not being read although connector {connector.name} is RUNNING (an "
            f"initial snapshot runs before streaming starts, or the task is restarting) and {retains}; "
            f"if it stays inactive, `{fix[0]}`"
        )
        over = row.retained_bytes is not None and row.retained_bytes > source.max_retained_wal_bytes
        if over:
            message += f" (above max_retained_wal, {format_bytes(source.max_retained_wal_bytes)})"
        else:
            severity = "warn"
    return SlotFinding("inactive", severity, row.name, message, row.retained_bytes, fix)


def _orphaned(row: SlotRow) -> SlotFinding:
    drop = drop_statement(row.name)
    severity: Severity
    if row.wal_status == "lost":  # its WAL is gone already: it only takes one of max_replication_slots
        holds, severity = "its WAL is lost already, yet it takes one of max_replication_slots", "warn"
    else:
        retained = format_bytes(row.retained_bytes)
        holds = f"it retains {retained} of WAL, growing with every write on the database"
        severity = "fail"
    return SlotFinding(
        "orphaned",
        severity,
        row.name,
        f"slot {row.name} follows the naming of eventbus source {source_of_slot(row.name)}, which no "
        f"definition and no registered connector uses (removed without --drop-slot?), and nobody reads "
        f"it: {holds}. If that source is gone for good, drop the slot as a role with REPLICATION (its "
        f"unread changes are lost): {drop}",
        row.retained_bytes,
        (drop,),
    )


def slot_findings(
    connection: Connection,
    definition: SourceDefinition,
    client: ConnectClient,
    connector: ConnectorState | None,
    known_slots: Collection[str],
) -> list[SlotFinding]:
    """Read the slots of the source's database and classify them (`classify_slots`)."""
    try:
        rows = read_slot_rows(connection, definition.slot_name)
    except DBAPIError as error:  # e.g. a standby, where pg_current_wal_lsn() is refused
        raise SourceError(
            f"cannot read pg_replication_slots on {describe_target(definition)}: "
            f"{summarise_connection_error(error)}"
        ) from None
    source = SourceSlot(
        definition.name,
        definition.slot_name,
        str(definition.database.dbname),
        definition.snapshot_mode,
        definition.max_retained_wal_bytes,
        client.url,
    )
    # Only a registered connector without its slot needs to know whether it ever streamed.
    missing = connector is not None and all(row.name != source.slot for row in rows)
    has_offsets = missing and bool(client.offsets(definition.connector_name))
    return classify_slots(source, connector, has_offsets, rows, {*known_slots, definition.slot_name})
