"""`eventbus schema check|register|pin|verify`: govern the key/value schemas of curated topics.

The schemas come from the mapping files (`PATHS`: files or folders, default `mappings/`): every
curated topic's key and value schema, checked for agreement between the mappings that share a topic.
`--topic TOPIC=key.avsc,value.avsc` adds a topic given as bare schema files (for schemas without a
mapping yet). Exit codes: 0 success, 1 a schema is incompatible or a mapping is invalid, 2 the tool
could not do its job (bad file, registry unreachable or refusing) — one line, no traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from eventbus import defaults
from eventbus.errors import ConfigError
from eventbus.mapping.errors import MappingError

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from eventbus.contracts.collect import TopicContract
    from eventbus.events.compatibility import CompatibilityResult

# The registry client, the contracts and the Avro code are imported inside the commands that use
# them: `eventbus --help` and the other command groups do not pay for loading them (CLI start-up).

DEFAULT_REGISTRY_URL = defaults.REGISTRY_URL
DEFAULT_LEVEL = defaults.SCHEMA_COMPATIBILITY
LOCK_FILE_NAME = defaults.SCHEMA_LOCK_FILE

app = typer.Typer(help="Check, register and pin curated-topic Avro schemas.", no_args_is_help=True)

_PATHS = typer.Argument(None, help="Mapping files or folders (default: mappings/, unless --topic is given).")
_TOPICS = typer.Option(
    None, "--topic", "-t", help="TOPIC=KEY.avsc,VALUE.avsc (repeatable): a topic given by its schema files."
)
_REGISTRY = typer.Option(
    None,
    "--registry",
    help=f"Registry URL (env EVENTBUS_REGISTRY__URL as the transformer reads it, or EVENTBUS_REGISTRY_URL; "
    f"default {DEFAULT_REGISTRY_URL}).",
)
_LEVEL = typer.Option(DEFAULT_LEVEL, "--compatibility", help="Level used when the subject has none set.")
_LOCK = typer.Option(None, "--lock", help=f"Lock file (default: {LOCK_FILE_NAME} beside the mappings)).")


def parse_topic_option(value: str) -> TopicContract:
    from eventbus.contracts.collect import TopicContract
    from eventbus.events.schema_form import load_schema_file

    topic, sep, files = value.partition("=")
    paths = [p.strip() for p in files.split(",")] if sep else []
    if not topic or len(paths) != 2 or not all(paths):
        raise ConfigError(f"--topic {value!r}: expected TOPIC=KEY.avsc,VALUE.avsc")
    return TopicContract(
        topic.strip(), load_schema_file(Path(paths[0])), load_schema_file(Path(paths[1])), producers=()
    )


def contracts_of(paths: list[Path] | None, topics: list[str] | None) -> list[TopicContract]:
    """The topics to govern: from the mappings under `paths` and from `--topic` options."""
    from eventbus.contracts.collect import collect_contracts, load_specs

    contracts = [parse_topic_option(t) for t in topics or []]
    if paths or not contracts:
        contracts += collect_contracts(load_specs(paths))
    seen: set[str] = set()
    for contract in contracts:
        if contract.topic in seen:
            raise ConfigError(f"topic {contract.topic!r} is given twice (by --topic and by a mapping?)")
        seen.add(contract.topic)
    return contracts


def _contracts_or_exit(paths: list[Path] | None, topics: list[str] | None) -> list[TopicContract]:
    try:
        return contracts_of(paths, topics)
    except MappingError as error:
        # Invalid or disagreeing mappings: the user's files failed a check (exit 1), shown with excerpts.
        typer.secho(error.render(), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def _client(registry: str | None) -> SchemaRegistryClient:
    from eventbus.events.avro import connect_registry

    url = registry or os.environ.get("EVENTBUS_REGISTRY__URL") or os.environ.get("EVENTBUS_REGISTRY_URL")
    return connect_registry(url or DEFAULT_REGISTRY_URL)


def _level(level: str) -> str:
    from eventbus.events.compatibility import LEVELS

    if level.upper() not in LEVELS:
        raise ConfigError(f"--compatibility {level!r}: expected one of {', '.join(sorted(LEVELS))}")
    return level.upper()


def _lock_path(lock_file: Path | None, paths: list[Path] | None, topics: list[str] | None) -> Path:
    from eventbus.contracts.collect import default_lock_path

    if lock_file is not None:
        return lock_file
    if topics and not paths:
        return Path(LOCK_FILE_NAME)
    return default_lock_path(paths)


def _report(results: list[CompatibilityResult]) -> bool:
    from eventbus.contracts.gate import render_result

    for result in results:
        typer.echo(render_result(result))
    broken = [r.subject for r in results if not r.compatible]
    if broken:
        summary = f"{len(broken)} incompatible subject(s): {', '.join(broken)}"
        typer.secho(summary, fg=typer.colors.RED, err=True)
    return not broken


@app.command()
def check(
    paths: list[Path] | None = _PATHS,
    topics: list[str] | None = _TOPICS,
    registry: str | None = _REGISTRY,
    compatibility: str = _LEVEL,
    allow_none: bool = typer.Option(
        False, "--allow-none", help="Accept a subject whose registry level is NONE (nothing is enforced)."
    ),
) -> None:
    """Check each topic's key and value schema against the subject's latest version; read-only."""
    from eventbus.contracts.gate import check_contracts

    contracts = _contracts_or_exit(paths, topics)
    results = check_contracts(_client(registry), contracts, default_level=_level(compatibility))
    passed = _report(results)
    unenforced = [r.subject for r in results if r.unenforced and not r.new_subject]
    if unenforced and not allow_none:
        typer.secho(
            f"{len(unenforced)} subject(s) under NONE, where the registry accepts any change: "
            f"{', '.join(unenforced)}. The bus enforces BACKWARD: set the level (`schema register` "
            "does for subjects without one, or the registry's global level), or pass --allow-none",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    if not passed:
        raise typer.Exit(1)


@app.command()
def register(
    paths: list[Path] | None = _PATHS,
    topics: list[str] | None = _TOPICS,
    registry: str | None = _REGISTRY,
    compatibility: str = _LEVEL,
    allow_none: bool = typer.Option(
        False,
        "--allow-none",
        help="Register on a subject whose registry level is NONE without judging the change (deliberate).",
    ),
) -> None:
    """Development: check, then register each schema and set the level on subjects that have none."""
    from eventbus.contracts.gate import check_contracts
    from eventbus.events.avro import register_schema
    from eventbus.events.compatibility import ensure_level

    contracts = _contracts_or_exit(paths, topics)
    client = _client(registry)
    level = _level(compatibility)
    # Under NONE the registry accepts anything: unless told otherwise, judge the change under `level`.
    results = check_contracts(client, contracts, default_level=level, judge_none=not allow_none)
    if not all(r.compatible for r in results):
        _report(results)
        typer.secho("nothing registered: fix the incompatible schemas first", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    subjects = [s for contract in contracts for s in contract.subjects()]
    for (subject, schema), result in zip(subjects, results, strict=True):
        schema_id = register_schema(client, subject, schema)
        # The subject takes the level asked for when it has none of its own, or NONE (Apicurio's
        # default), under which nothing would be enforced. (The mock registry keeps no levels.)
        unset = result.level_source != "subject" or (result.unenforced and not allow_none)
        if unset and type(client).__name__ != "MockSchemaRegistryClient":
            ensure_level(client, subject, level)
        typer.echo(f"{subject}: schema id {schema_id}")
    if paths or not topics:
        # Registering creates no topic, and the bus does not auto-create them on the first write.
        folder = paths[0] if paths else Path("mappings")
        typer.echo(f"the topics themselves: `eventbus topics plan --mappings {folder}` (then `topics apply`)")


@app.command()
def pin(
    paths: list[Path] | None = _PATHS,
    topics: list[str] | None = _TOPICS,
    registry: str | None = _REGISTRY,
    lock_file: Path | None = _LOCK,
) -> None:
    """Record the registry's id of each (already registered) schema in the lock file; never registers."""
    from eventbus.contracts.gate import registered_id
    from eventbus.events.errors import SchemaRegistryError
    from eventbus.events.schema_form import fingerprint
    from eventbus.events.schema_lock import load_lock, save_lock

    contracts = _contracts_or_exit(paths, topics)
    client = _client(registry)
    path = _lock_path(lock_file, paths, topics)
    lock = load_lock(path)
    for contract in contracts:
        for subject, schema in contract.subjects():
            schema_id = registered_id(client, subject, schema)
            if schema_id is None:
                raise SchemaRegistryError(
                    f"{subject}: this schema is not registered; register it (development) or have the "
                    f"event bus team register it, then pin again"
                )
            lock.pin(subject, schema_id, fingerprint(schema))
            typer.echo(f"{subject}: pinned schema id {schema_id}")
    save_lock(lock, path)
    typer.echo(f"wrote {path}")


@app.command()
def verify(
    paths: list[Path] | None = _PATHS,
    registry: str | None = _REGISTRY,
    lock_file: Path | None = _LOCK,
    compatibility: str = _LEVEL,
) -> None:
    """Production dry run: resolve the pinned ids exactly as the transformer will; never registers."""
    from eventbus.contracts.collect import load_specs
    from eventbus.contracts.gate import startup_gate
    from eventbus.events.avro import RegistryMode
    from eventbus.events.schema_lock import load_lock

    try:
        specs = load_specs(paths)
    except MappingError as error:
        typer.secho(error.render(), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    path = _lock_path(lock_file, paths, None)
    if not path.exists():
        raise ConfigError(f"{path}: no lock file; run `eventbus schema pin` first")
    ids = startup_gate(
        specs, _client(registry), RegistryMode.PINNED, load_lock(path), default_level=_level(compatibility)
    )
    for subject, schema_id in sorted(ids.items()):
        typer.echo(f"{subject}: schema id {schema_id} (pinned in {path})")
