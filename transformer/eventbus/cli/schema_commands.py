"""`eventbus schema check|register|pin`: govern the key/value schemas of curated topics.

For now schemas are given as files per topic (`--topic name=key.avsc,value.avsc`); the commands
will read them from mapping files later. Exit codes: 0 success, 1 a schema is incompatible,
2 the tool could not do its job (bad file, registry unreachable or refusing).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientRegistryError

from eventbus.errors import ConfigError
from eventbus.events.avro import TopicSchemas, connect_registry, register_schema
from eventbus.events.compatibility import DEFAULT_LEVEL, LEVELS, CompatibilityResult, check_compatibility
from eventbus.events.errors import SchemaRegistryError
from eventbus.events.schema_form import as_json, fingerprint, load_schema_file
from eventbus.events.schema_lock import LOCK_FILE_NAME, load_lock, save_lock

DEFAULT_REGISTRY_URL = "http://127.0.0.1:18081/apis/ccompat/v7"

app = typer.Typer(help="Check, register and pin curated-topic Avro schemas.", no_args_is_help=True)

_TOPICS = typer.Option(
    ..., "--topic", "-t", help="TOPIC=KEY.avsc,VALUE.avsc (repeatable): the schemas of one curated topic."
)
_REGISTRY = typer.Option(
    None, "--registry", help=f"Registry URL (env EVENTBUS_REGISTRY_URL, default {DEFAULT_REGISTRY_URL})."
)
_LEVEL = typer.Option(DEFAULT_LEVEL, "--compatibility", help="Level used when the subject has none set.")


def parse_topic_option(value: str) -> TopicSchemas:
    topic, sep, files = value.partition("=")
    paths = [p.strip() for p in files.split(",")] if sep else []
    if not topic or len(paths) != 2 or not all(paths):
        raise ConfigError(f"--topic {value!r}: expected TOPIC=KEY.avsc,VALUE.avsc")
    return TopicSchemas(topic.strip(), load_schema_file(Path(paths[0])), load_schema_file(Path(paths[1])))


def _client(registry: str | None) -> SchemaRegistryClient:
    return connect_registry(registry or os.environ.get("EVENTBUS_REGISTRY_URL") or DEFAULT_REGISTRY_URL)


def _level(level: str) -> str:
    if level.upper() not in LEVELS:
        raise ConfigError(f"--compatibility {level!r}: expected one of {', '.join(sorted(LEVELS))}")
    return level.upper()


def render(result: CompatibilityResult) -> str:
    """Human lines for one subject; `field X: int → string` reasons indented under the verdict."""
    if result.new_subject:
        head = f"{result.subject}: new subject (level {result.level})"
    else:
        verdict = "compatible" if result.compatible else "INCOMPATIBLE"
        by = "registry" if result.registry_verdict is not None else "local analysis"
        head = (
            f"{result.subject}: {verdict} with version {result.latest_version} under {result.level} "
            f"({result.level_source} level; verdict by {by})"
        )
    lines = [head]
    lines += [f"  - {issue}" for issue in result.issues]
    lines += [f"  - registry: {message}" for message in result.registry_messages]
    lines += [f"  ! {warning}" for warning in result.warnings]
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def _check_all(
    client: SchemaRegistryClient, specs: list[TopicSchemas], level: str
) -> list[CompatibilityResult]:
    return [
        check_compatibility(client, subject, schema, default_level=level)
        for spec in specs
        for subject, schema in spec.subjects()
    ]


@app.command()
def check(topics: list[str] = _TOPICS, registry: str | None = _REGISTRY, compatibility: str = _LEVEL) -> None:
    """Check each schema against its subject's latest version; never changes the registry."""
    specs = [parse_topic_option(t) for t in topics]
    results = _check_all(_client(registry), specs, _level(compatibility))
    for result in results:
        typer.echo(render(result))
    if not all(r.compatible for r in results):
        raise typer.Exit(1)


@app.command()
def register(
    topics: list[str] = _TOPICS, registry: str | None = _REGISTRY, compatibility: str = _LEVEL
) -> None:
    """Development: check, then register each schema and set the level on subjects that have none."""
    client = _client(registry)
    specs = [parse_topic_option(t) for t in topics]
    level = _level(compatibility)
    results = _check_all(client, specs, level)
    if not all(r.compatible for r in results):
        for result in results:
            typer.echo(render(result))
        typer.secho("nothing registered: fix the incompatible schemas first", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    for (subject, schema), result in zip(
        [s for spec in specs for s in spec.subjects()], results, strict=True
    ):
        schema_id = register_schema(client, subject, schema)
        if result.level_source == "default":
            # Apicurio's global default is NONE; without a subject level nothing would be enforced.
            try:
                client.set_compatibility(subject, level)
            except Exception as error:
                raise SchemaRegistryError(
                    f"{subject}: setting compatibility {level} failed: {error}"
                ) from None
        typer.echo(f"{subject}: schema id {schema_id}")


@app.command()
def pin(
    topics: list[str] = _TOPICS,
    registry: str | None = _REGISTRY,
    lock_file: Path = typer.Option(Path(LOCK_FILE_NAME), "--lock", help="Lock file to update."),
) -> None:
    """Record the registry's id of each (already registered) schema in the lock file; never registers."""
    client = _client(registry)
    lock = load_lock(lock_file)
    for spec in (parse_topic_option(t) for t in topics):
        for subject, schema in spec.subjects():
            try:
                registered = client.lookup_schema(subject, Schema(as_json(schema), "AVRO"))
            except ClientRegistryError as error:
                if error.http_status_code == 404:
                    raise SchemaRegistryError(
                        f"{subject}: this schema is not registered; register it (development) or have the "
                        f"event bus team register it, then pin again"
                    ) from None
                raise SchemaRegistryError(f"{subject}: lookup failed: {error}") from None
            if registered.schema_id is None:
                raise SchemaRegistryError(f"{subject}: the registry's lookup answer carries no schema id")
            lock.pin(subject, registered.schema_id, fingerprint(schema))
            typer.echo(f"{subject}: pinned schema id {registered.schema_id}")
    save_lock(lock, lock_file)
    typer.echo(f"wrote {lock_file}")
