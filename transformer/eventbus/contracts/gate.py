"""The compatibility gate: no schema reaches a curated topic unless its consumers can read it.

`check_contracts` is `eventbus schema check`; `startup_gate` is what the transformer calls once at
start-up, before any Kafka client exists. For every key and value subject the gate

1. asks whether this exact schema is already a version of the subject (`lookup`): if it is the
   latest, it was checked when it was registered; an older one (a rollback) is a change for the
   consumers already on the latest, and is checked like a new schema;
2. otherwise checks it against the subject's latest version(s) under the subject's compatibility
   level (BACKWARD by default), or under the bus's level when the subject's is NONE (the registry
   then accepts anything), and collects every incompatibility of every subject;
3. refuses with one `IncompatibleSchemaError` listing them all, before registering anything;
4. resolves the schema id: auto-register (development) registers, pinned (production,
   `auto.register.schemas=false`) takes the lock file's id after `verify_pinned` and never registers.

Several replicas run this at the same moment against the same subjects: apart from registering (in
development) it only reads, and a registration a concurrent replica made first counts as ours.
Registry failures become one-line errors: `ServiceUnavailableError` when it cannot be reached or
answers 5xx (the transformer waits for it), `SchemaRegistryError` for any other refusal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from functools import partial
from typing import TypeVar

from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientRegistryError

from eventbus.contracts.collect import TopicContract, collect_contracts
from eventbus.errors import EventBusError, ServiceUnavailableError
from eventbus.events.avro import RegistryMode, register_schema, registry_failure, verify_pinned
from eventbus.events.compatibility import DEFAULT_LEVEL, CompatibilityResult, check_compatibility
from eventbus.events.errors import IncompatibleSchemaError, SchemaRegistryError
from eventbus.events.resolution import explain
from eventbus.events.schema_form import AvroSchema, as_json
from eventbus.events.schema_lock import SchemaLock
from eventbus.mapping.compiler import CompiledMapping
from eventbus.mapping.spec import MappingSpec

log = logging.getLogger("eventbus.contracts")
T = TypeVar("T")


def startup_gate(
    compiled_mappings: Iterable[CompiledMapping | MappingSpec],
    registry_client: SchemaRegistryClient,
    mode: RegistryMode,
    lock: SchemaLock | None = None,
    *,
    default_level: str = DEFAULT_LEVEL,
) -> dict[str, int]:
    """`subject → schema id` for every curated topic of the mappings, or a refusal to start.

    Raises `IncompatibleSchemaError` (with the field-level explanation of every incompatible
    subject), `SchemaRegistryError` (a missing or stale pin, a registry refusal),
    `ServiceUnavailableError` (registry unreachable) or `MappingErrors` (mappings disagreeing on a
    topic's schemas).
    """
    contracts = collect_contracts(compiled_mappings)
    if mode is RegistryMode.PINNED and lock is None:
        raise SchemaRegistryError("pinned mode needs the schema lock file (schemas.lock.yaml)")
    probe(registry_client)
    existing: dict[str, int | None] = {}
    refused: list[tuple[TopicContract, CompatibilityResult]] = []
    for contract in contracts:
        for subject, schema in contract.subjects():
            registered = registered_version(registry_client, subject, schema)
            existing[subject] = registered.schema_id if registered is not None else None
            if registered is not None:
                result = _rollback_result(registry_client, subject, schema, registered)
                if result is None:
                    continue  # the latest version: it was checked when it was registered
            else:
                result = _guard(
                    partial(
                        check_compatibility,
                        registry_client,
                        subject,
                        schema,
                        default_level=default_level,
                        judge_none=True,
                    )
                )
            if not result.compatible:
                refused.append((contract, result))
    if refused:
        raise IncompatibleSchemaError(
            "schema change(s) would break consumers; not starting:\n"
            + "\n".join(render_refusal(contract, result) for contract, result in refused)
        )
    ids: dict[str, int] = {}
    for contract in contracts:
        for subject, schema in contract.subjects():
            if mode is RegistryMode.AUTO_REGISTER:
                known = existing[subject]
                if known is None:
                    known = register_schema(registry_client, subject, schema)
                ids[subject] = known
            else:
                assert lock is not None  # checked above; narrows the type
                # verify_pinned turns transport errors into ServiceUnavailableError itself
                ids[subject] = verify_pinned(registry_client, lock, subject, schema)
            log.debug("schema id resolved", extra={"subject": subject, "schema_id": ids[subject]})
    return ids


def check_contracts(
    client: SchemaRegistryClient,
    contracts: Iterable[TopicContract],
    *,
    default_level: str = DEFAULT_LEVEL,
    judge_none: bool = False,
) -> list[CompatibilityResult]:
    """Every subject's compatibility result (read-only: never changes the registry); `judge_none`:
    a subject under NONE is judged under `default_level` (see `check_compatibility`)."""
    contracts = list(contracts)
    probe(client)
    check = partial(check_compatibility, client, default_level=default_level, judge_none=judge_none)
    return [
        _guard(partial(check, subject, schema))
        for contract in contracts
        for subject, schema in contract.subjects()
    ]


def registered_id(client: SchemaRegistryClient, subject: str, schema: AvroSchema) -> int | None:
    """The id of `schema` if it is a version of `subject`, else None."""
    registered = registered_version(client, subject, schema)
    return registered.schema_id if registered is not None else None


def registered_version(
    client: SchemaRegistryClient, subject: str, schema: AvroSchema
) -> RegisteredSchema | None:
    """`schema` as a version of `subject` (id and version number), or None if it is not one."""
    try:
        return client.lookup_schema(subject, Schema(as_json(schema), "AVRO"))
    except ClientRegistryError as error:
        if error.http_status_code == 404:
            return None
        raise registry_failure(error, f"{subject}: lookup failed") from None
    except Exception as error:
        raise unreachable(error) from None


def _rollback_result(
    client: SchemaRegistryClient, subject: str, schema: AvroSchema, registered: RegisteredSchema
) -> CompatibilityResult | None:
    """None when `registered` (the mapping's schema) is the subject's latest version. Otherwise the
    mapping goes back to an older version (a rollback): consumers may already read with the latest,
    so the latest must be able to read what the mapping writes. That is the question, whatever the
    subject's level: the older schema reading the latest's data (what registering it as new would
    ask under BACKWARD) would refuse harmless rollbacks, e.g. to before a field was dropped."""
    latest = _guard(partial(client.get_latest_version, subject))
    if registered.version is not None and latest.version is not None:
        if registered.version == latest.version:
            return None
    elif registered.schema_id == latest.schema_id:  # a registry that does not say the version
        return None
    latest_text = latest.schema.schema_str
    if latest_text is None:
        raise SchemaRegistryError(f"{subject}: the registry returned its latest version without its text")
    # explain(new, old, BACKWARD) asks whether `new` reads data written with `old`.
    issues, warnings = explain(json.loads(latest_text), schema, "BACKWARD")
    note = (
        f"the mapping's schema is version {registered.version} of the subject (schema id "
        f"{registered.schema_id}), not its latest (version {latest.version}): consumers on the latest "
        "must read what the mapping writes"
    )
    if issues:
        note += "; update the mapping to the latest schema, or register a latest that reads it"
    return CompatibilityResult(
        subject, "BACKWARD", "default", latest.version, None,
        issues=tuple(issues), warnings=tuple(warnings), notes=(note,),
    )  # fmt: skip


def probe(client: SchemaRegistryClient) -> None:
    """Fail fast, in one line, when the registry cannot be reached (before any per-subject retry)."""
    if type(client).__name__ == "MockSchemaRegistryClient":
        return
    _guard(client.get_subjects)


def unreachable(error: Exception) -> ServiceUnavailableError:
    url = getattr(getattr(error, "request", None), "url", None)
    where = f" at {url}" if url else ""
    return ServiceUnavailableError(f"schema registry unreachable{where}: {type(error).__name__}: {error}")


def _guard(call: Callable[[], T]) -> T:
    # Our own errors pass; a transport error from the client (httpx, requests) becomes one line.
    try:
        return call()
    except EventBusError:
        raise
    except ClientRegistryError as error:
        raise registry_failure(error, "registry request failed") from None
    except Exception as error:
        raise unreachable(error) from None


# --- rendering: shared by the CLI and the start-up refusal -------------------------------------------


def render_result(result: CompatibilityResult) -> str:
    """Human lines for one subject; `field X: int → string` reasons indented under the verdict."""
    if result.new_subject:
        head = f"{result.subject}: new subject (level {result.level})"
    else:
        verdict = "compatible" if result.compatible else "INCOMPATIBLE"
        by = "registry" if result.registry_verdict is not None else "local analysis"
        source = f"{result.level_source} level" + (" NONE" if result.judged_under else "")
        head = (
            f"{result.subject}: {verdict} with version {result.latest_version} under "
            f"{result.applied_level} ({source}; verdict by {by})"
        )
    lines = [head]
    lines += [f"  - {issue}" for issue in result.issues]
    lines += [f"  - registry: {message}" for message in result.registry_messages]
    lines += [f"  ! {warning}" for warning in result.warnings]
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def render_refusal(contract: TopicContract, result: CompatibilityResult) -> str:
    mappings = ", ".join(str(spec.file or spec.name) for spec in contract.mappings)
    return f"{render_result(result)}\n  written by: {mappings}"
