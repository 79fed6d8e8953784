"""Replication-slot trouble on a source database, for `eventbus source status`.

A slot is what fills PostgreSQL's disk (nobody reads it, so it keeps every WAL segment since) or
what silently loses changes (it was dropped, or `max_slot_wal_keep_size` cut the WAL it needed).
`read_slot_rows()` reads `pg_replication_slots`, which every role may read; `classify_slots()` turns
the rows into findings with what to do, without a database, so every case is unit-tested.

Severity: `fail` (status exits 1) for what does not mend itself: a dropped slot, lost or about to be
lost WAL, a slot no connector will ever read again, or an unread slot retaining WAL beyond
`max_retained_wal`; `warn` for what usually passes (a RUNNING connector whose slot is not yet
streaming: a snapshot runs first, or the task restarts; a read slot retaining WAL beyond the limit:
a connector catching up, or idle captured tables on a written database, cured by heartbeats) or is
not known to be a loss (a slot not created yet).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from eventbus.sources.connect_client import ConnectClient, ConnectorState
from eventbus.sources.database import describe_target, quote_literal, summarise_connection_error
from eventbus.sources.errors import SourceError
from eventbus.sources.inspection import server_version_num, wal_status_column
from eventbus.sources.naming import connector_name, source_of_slot, topic_prefix
from eventbus.sources.preflight import format_bytes
from eventbus.sources.spec import SourceDefinition
from eventbus.sql_names import quote_ident

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
    kind: Literal["missing", "inactive", "wal_unreserved", "wal_lost", "wal_retained", "orphaned"]
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
    publication: str = ""
    user: str = ""
    heartbeat_interval_ms: int = 10_000
    heartbeat_action_query: str | None = None
    heartbeat_where: str = "<definition>"  # file:line of the definition's `heartbeat` (or the file)
    server_version_num: int | None = None
    bootstrap_servers: str = "<bootstrap-servers>"


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
    has_offsets: bool | None,
    rows: Collection[SlotRow],
    known_slots: Collection[str],
) -> list[SlotFinding]:
    """Findings about the source's slot and about orphaned slots of its database.

    `connector`: Connect's status (None: not registered); `has_offsets`: Connect keeps a position for
    it, so it has streamed from its slot (None: Connect cannot say, before 3.5); `known_slots`: every
    slot a definition or a registered connector names, which are therefore not orphaned even when
    nobody reads them now."""
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
        elif own.wal_status != "unreserved" and _over_limit(source, own):  # unreserved: said already
            findings.append(_wal_retained(source, own))
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


def _over_limit(source: SourceSlot, row: SlotRow) -> bool:
    return row.retained_bytes is not None and row.retained_bytes > source.max_retained_wal_bytes


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


def _missing(source: SourceSlot, connector: ConnectorState, has_offsets: bool | None) -> SlotFinding:
    how, commands = _start_anew(source)
    if has_offsets is None:
        return _missing_before_connect_3_5(source, connector)
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


def offsets_tombstone(source: str, bootstrap_servers: str) -> str:
    """A kcat command deleting the position Connect keeps for the source's connector: a null record
    under its key (Connect's JSON of [connector name, Debezium's source partition {"server": topic
    prefix}]) on the workers' offsets topic, in the partition Java's producer would choose (murmur2)."""
    key = json.dumps([connector_name(source), {"server": topic_prefix(source)}])
    key = key.replace(", ", ",").replace(": ", ":")  # Connect writes the key without spaces
    return (
        f"echo '{key}|' | kcat -P -b {bootstrap_servers} -t <offset.storage.topic of the "
        f"Connect workers, e.g. _connect-offsets> -K '|' -Z -X partitioner=murmur2_random"
    )


def _missing_before_connect_3_5(source: SourceSlot, connector: ConnectorState) -> SlotFinding:
    # A warning, not a failure: without Connect's offsets API (KIP-875, Kafka 3.5) a dropped slot and
    # one the task has not created yet (the first seconds after `register`) look the same here, and
    # failing every fresh registration would teach people to ignore the status. The message says how
    # to tell them apart and the whole way back, which on such a Connect cannot reset the offsets
    # through REST (`remove --drop-slot` resets them only on 3.5+).
    name = source.source
    tombstone = offsets_tombstone(name, source.bootstrap_servers)
    commands = (
        f"eventbus source remove {name} --drop-slot --yes",
        tombstone,
        f"eventbus source register {name}",
    )
    return SlotFinding(
        "missing",
        "warn",
        source.slot,
        f"slot {source.slot} does not exist and this Kafka Connect (before 3.5: no offsets API) cannot "
        f"say whether connector {connector.name} ({connector.worst}) has streamed from it. Just "
        f"registered: its task creates the slot, check again in a minute. Still missing, or the "
        f"staging topics already hold its changes: it was dropped, and the changes made since are "
        f"lost to this source. To start anew, `{commands[0]}`, then delete the position Connect still "
        f"keeps for it (Connect before 3.5 cannot reset it, and a new connector of that name would "
        f"resume from it and fail): `{tombstone}`, then `{commands[2]}` (snapshot_mode "
        f"{source.snapshot_mode}). Upgrading Kafka Connect to 3.5 or later makes the second step "
        f"part of `remove --drop-slot` and turns this warning into a sure verdict",
        fix=commands,
    )


def _wal_retained(source: SourceSlot, row: SlotRow) -> SlotFinding:
    """A read slot that still holds WAL: its confirmed position does not move. Debezium confirms a
    position only when a change of the publication (or a heartbeat carrying one) reaches it, so idle
    captured tables on a written database, or a quiet database on a server whose other databases are
    written (WAL is the server's, a slot the database's), keep every WAL segment since (Debezium's
    PostgreSQL docs, "WAL disk space consumption")."""
    limit = format_bytes(source.max_retained_wal_bytes)
    where = source.heartbeat_where
    register = f"eventbus source register {source.source}"
    fix: tuple[str, ...]
    if source.heartbeat_interval_ms > 0 and source.heartbeat_action_query:
        cure = (
            f"heartbeats and heartbeat.action_query are set ({where}), so check that the query runs "
            f"(the Connect worker's log names a failing heartbeat action query) and, if it writes a "
            f"table, that the table is in publication {source.publication}: only a change Debezium "
            f"receives moves the slot"
        )
        fix = ()
    else:
        setting = _heartbeat_setting(source)
        steps = () if _emits_messages(source) else _heartbeat_table_sql(source)
        fix = (*steps, register)
        cure = (
            f"if the captured tables are idle while the database (or another database of the server) "
            f"is written, nothing moves it: set in the definition ({where}) {setting}"
            + (f", after creating its table: {' '.join(steps)}" if steps else "")
            + f"; then `{register}` applies it"
        )
    # A warning, as in `source check` and as `max_retained_wal` promises: a connector catching up
    # on a backlog retains WAL too, and gets past it by itself.
    return SlotFinding(
        "wal_retained",
        "warn",
        row.name,
        f"slot {row.name} is read but retains {format_bytes(row.retained_bytes)} of WAL, above "
        f"max_retained_wal ({limit}): its confirmed position is not moving. If the connector is "
        f"catching up (changes on the staging topics are recent), it passes by itself; {cure}",
        row.retained_bytes,
        fix,
    )


HEARTBEAT_TABLE = "public.eventbus_heartbeat"
# A transactional message (true): its commit is what Debezium confirms; PostgreSQL 14+'s pgoutput
# sends messages (Debezium asks for them there), and the message itself is not published
# (`message.prefix.exclude.list`). Needs no table, no grant and no publication change.
EMIT_MESSAGE_QUERY = "SELECT pg_logical_emit_message(true, 'eventbus_heartbeat', now()::text)"
TABLE_QUERY = f"UPDATE {HEARTBEAT_TABLE} SET at = now() WHERE id = 1"


def _heartbeat_setting(source: SourceSlot) -> str:
    interval = "" if source.heartbeat_interval_ms > 0 else "interval: 10s, "
    if _emits_messages(source):
        setting = f'`heartbeat: {{{interval}action_query: "{EMIT_MESSAGE_QUERY}"}}`'
        return f"{setting} (PostgreSQL 14+: no table needed)"
    return f'`heartbeat: {{{interval}action_query: "{TABLE_QUERY}"}}`'


def _emits_messages(source: SourceSlot) -> bool:
    return source.server_version_num is not None and source.server_version_num >= 140000


def _heartbeat_table_sql(source: SourceSlot) -> tuple[str, ...]:
    """The heartbeat table, writable by the source's role and in its publication, so that each
    heartbeat's update reaches Debezium (which filters it out: it is not a captured table)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} (id int PRIMARY KEY, at timestamptz NOT NULL);",
        f"INSERT INTO {HEARTBEAT_TABLE} VALUES (1, now()) ON CONFLICT (id) DO NOTHING;",
        f"GRANT SELECT, UPDATE ON {HEARTBEAT_TABLE} TO {quote_ident(source.user)};",
        f"ALTER PUBLICATION {quote_ident(source.publication)} ADD TABLE {HEARTBEAT_TABLE};",
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
            f"slot {row.name} is not read by any connector (connector {connector_name(name)} is not "
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
        if _over_limit(source, row):
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
    bootstrap_servers: str = "<bootstrap-servers>",
) -> list[SlotFinding]:
    """Read the slots of the source's database and classify them (`classify_slots`)."""
    try:
        rows = read_slot_rows(connection, definition.slot_name)
        version = server_version_num(connection)
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
        publication=definition.publication_name,
        user=str(definition.database.user),
        heartbeat_interval_ms=definition.heartbeat.interval_ms,
        heartbeat_action_query=definition.heartbeat.action_query,
        heartbeat_where=definition.where(("heartbeat",)),
        server_version_num=version,
        bootstrap_servers=bootstrap_servers,
    )
    # Only a registered connector without its slot needs to know whether it ever streamed.
    missing = connector is not None and all(row.name != source.slot for row in rows)
    has_offsets: bool | None = False
    if missing:
        offsets = client.offsets(definition.connector_name)
        has_offsets = None if offsets is None else bool(offsets)
    return classify_slots(source, connector, has_offsets, rows, {*known_slots, definition.slot_name})
