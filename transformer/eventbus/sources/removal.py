"""Removing a source, as `eventbus source remove` does: its connector, and on request its slot,
publication and Connect's stored offsets, and its staging and heartbeat topics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from eventbus.sources.connect_client import ConnectClient
from eventbus.sources.database import connect, summarise_connection_error
from eventbus.sources.errors import SourceError
from eventbus.sources.inspection import read_slot
from eventbus.sources.registration import Log, quiet, topic_requests
from eventbus.sources.slot_health import offsets_tombstone
from eventbus.sources.spec import SourceDefinition
from eventbus.sources.topics import delete_topics
from eventbus.sql_names import quote_ident


@dataclass(slots=True)
class RemovalResult:
    connector_deleted: bool
    slot_dropped: bool = False
    publication_dropped: bool = False
    topics_deleted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def remove(
    definition: SourceDefinition,
    client: ConnectClient,
    *,
    drop_slot: bool,
    delete_topics_of: str | None = None,
    bootstrap_servers: str = "<bootstrap-servers>",
    timeout_s: float = 60.0,
    log: Log = quiet,
) -> RemovalResult:
    """Delete the connector. `drop_slot`: also its slot, publication and Connect's stored offsets.
    `delete_topics_of` (bootstrap servers): also its staging and heartbeat topics; otherwise they are
    kept, with whatever they hold, for the transformer and for a later `register`."""
    name = definition.connector_name
    stopped = drop_slot and client.stop(name)
    if stopped:
        # The slot goes, so must the position Connect keeps for it: a later `register` would
        # otherwise resume from a position the new slot never had, and its task would fail.
        _wait_stopped(client, name, time.monotonic() + timeout_s)
        client.reset_offsets(name)
        log(f"connector {name}: stopped, its source offsets reset")
    deleted = client.delete(name)
    log(f"connector {name}: {'deleted' if deleted else 'was not registered'}")
    result = RemovalResult(deleted)
    if drop_slot and deleted and not stopped:
        # It existed, yet "no such connector" to stop: Connect before 3.5, which has neither the
        # stop nor the offsets endpoint (KIP-875), so its stored position stays and must go by hand.
        note = (
            f"Kafka Connect before 3.5 cannot reset the source offsets it keeps for {name}: a later "
            f"`register` would resume from them and fail. Delete them before registering again: "
            f"{offsets_tombstone(definition.name, bootstrap_servers)}"
        )
        result.notes.append(note)
        log(note)
    topics = [request.name for request in topic_requests(definition)]
    if delete_topics_of is not None:
        result.topics_deleted = delete_topics(delete_topics_of, topics)
        log(f"topics deleted: {', '.join(result.topics_deleted) or 'none existed'}")
    else:
        log(f"topics kept (--delete-topics removes them): {', '.join(topics)}")
    if not drop_slot:
        log(f"slot {definition.slot_name} kept: `register` resumes where the connector stopped")
        return result
    password = definition.resolve_password()
    deadline = time.monotonic() + timeout_s
    with connect(definition, password) as connection:
        # Deleting a connector is asynchronous: its task holds the slot until it has stopped.
        while True:
            slot = read_slot(connection, definition.slot_name)
            if slot is None or not slot.active:
                break
            if time.monotonic() > deadline:
                raise SourceError(
                    f"slot {definition.slot_name} is still in use after {timeout_s:.0f}s; "
                    "is another consumer reading it?"
                )
            time.sleep(0.5)
        if slot is not None:
            connection.execute(text("select pg_drop_replication_slot(:name)"), {"name": definition.slot_name})
            result.slot_dropped = True
            log(f"slot {definition.slot_name}: dropped")
        else:
            log(f"slot {definition.slot_name}: did not exist")
        exists = connection.execute(
            text("select 1 from pg_publication where pubname = :name"), {"name": definition.publication_name}
        ).scalar()
        if exists:
            try:
                connection.exec_driver_sql(f"DROP PUBLICATION {quote_ident(definition.publication_name)}")
                result.publication_dropped = True
                log(f"publication {definition.publication_name}: dropped")
            except DBAPIError as error:  # not owning the publication is a note, not a failure
                note = f"publication {definition.publication_name} kept: {summarise_connection_error(error)}"
                result.notes.append(note)
                log(note)
    return result


def _wait_stopped(client: ConnectClient, name: str, deadline: float) -> None:
    while True:
        state = client.status(name)
        if state is None or (state.state == "STOPPED" and all(t.state != "RUNNING" for t in state.tasks)):
            return
        if time.monotonic() > deadline:
            raise SourceError(f"connector {name} did not stop (state: {state.state}); try again")
        time.sleep(0.5)
