"""`eventbus source check|register|status|remove|list`: register source databases with Debezium.

Exit codes as everywhere: 0 success, 1 a check failed (or a connector is not running), 2 the tool
could not do its job (a service down, a bad definition). Errors are one message, never a traceback,
also when the commands are invoked in-process (tests), so each command handles them itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from eventbus.errors import EventBusError
from eventbus.sources.errors import ConnectUnavailableError

if TYPE_CHECKING:
    from eventbus.sources.before_images import BeforeImageNeeds
    from eventbus.sources.check_items import CheckItem
    from eventbus.sources.connect_client import ConnectClient
    from eventbus.sources.preflight import PreflightReport
    from eventbus.sources.settings import SourceSettings
    from eventbus.sources.source_status import SourceStatus
    from eventbus.sources.spec import SecretRef, SourceDefinition

# The source machinery (database drivers, SQLAlchemy, pydantic settings) is imported inside each
# command: `eventbus --help` and the other command groups do not pay for loading it (CLI start-up).

app = typer.Typer(
    help="Register source databases: preflight checks, Debezium connector, Kafka Connect.",
    no_args_is_help=True,
)

_NAME = typer.Argument(..., help="Source name (connectors/NAME.yaml) or a path to a definition file.")
_JSON = typer.Option(False, "--json", help="Print the result as JSON (for scripts).")
_CONNECTORS = typer.Option(
    None, "--connectors-dir", help="Definitions folder (env EVENTBUS_CONNECTORS_DIR, default connectors/)."
)
_MAPPINGS = typer.Option(
    None, "--mappings-dir", help="Mappings folder (env EVENTBUS_MAPPINGS_DIR, default mappings/)."
)
_CONNECT = typer.Option(
    None, "--connect-url", help="Kafka Connect REST URL (env EVENTBUS_CONNECT_URL, default: local stack)."
)
_KAFKA = typer.Option(
    None,
    "--bootstrap-servers",
    help="Kafka bootstrap servers (env EVENTBUS_KAFKA__BOOTSTRAP_SERVERS, default: local stack).",
)

MARKS = {"ok": "[ok]  ", "warn": "[warn]", "fail": "[FAIL]"}
COLOURS = {"ok": typer.colors.GREEN, "warn": typer.colors.YELLOW, "fail": typer.colors.RED}


@contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    """Domain errors → one message on stderr (and `{"error": ...}` on stdout with --json), exit code."""
    try:
        yield
    except EventBusError as error:
        if as_json:
            typer.echo(json.dumps({"error": str(error)}))
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(error.exit_code) from None


def _settings(**overrides: Any) -> SourceSettings:
    from eventbus.sources.settings import SourceSettings

    return SourceSettings().with_overrides(**overrides)


def _definition(name: str, settings: SourceSettings) -> SourceDefinition:
    from eventbus.sources.definition_files import definition_path, load_definition

    path = Path(name) if name.endswith((".yaml", ".yml")) or "/" in name else None
    return load_definition(path or definition_path(settings.connectors_dir, name))


def _needs(definition: SourceDefinition, settings: SourceSettings) -> BeforeImageNeeds:
    from eventbus.sources.before_images import before_image_needs

    return before_image_needs(settings.mappings_dir, definition.name)


def _print_report(report: PreflightReport, heading: str | None = None) -> None:
    typer.echo(heading or f"source {report.source}: {report.target}")
    width = max(len(item.title) for item in report.items)
    for item in report.items:
        typer.secho(f"  {MARKS[item.status]} {item.title:<{width}}  {item.detail}", fg=COLOURS[item.status])
        if item.status != "ok" and item.fix is not None:
            _print_fix(item, report.fixable(item))
    failed = len(report.failed)
    warned = sum(1 for item in report.items if item.status == "warn")
    summary = f"{failed} failing, {warned} warning(s)" if failed or warned else "all checks passed"
    typer.secho(summary, fg=typer.colors.RED if failed else typer.colors.GREEN, bold=True)


def _print_fix(item: CheckItem, fixable: bool | None) -> None:
    assert item.fix is not None
    who = {
        "grant_replication": "a superuser",
        "grant_select": "the table owner or a superuser",
        "table_owner": "the table owner or a superuser",
        "create_publication": "a role with CREATE on the database owning the tables, or a superuser",
        "alter_publication": "the publication and table owner, or a superuser",
        "restart": "a superuser, then a server restart",
        "manual": "a person deciding",
    }[item.fix.requires]
    applicable = " (this role may apply it: --fix)" if fixable else ""
    if item.fix.sql:
        typer.echo(f"         fix, as {who}{applicable}:")
        for statement in item.fix.sql:
            typer.echo(f"           {statement}")
    if item.fix.note:
        typer.echo(f"         note: {item.fix.note}")


def _fix_password(env: str | None, file: Path | None) -> SecretRef:
    from eventbus.sources.spec import SecretRef

    if file is not None:
        return SecretRef(file=str(file))
    return SecretRef(env=env or "EVENTBUS_FIX_PASSWORD")


@app.command()
def check(
    name: str = _NAME,
    fix: bool = typer.Option(False, "--fix", help="Apply the fixes the role may apply, after showing them."),
    fix_user: str | None = typer.Option(
        None, "--as", help="Apply fixes as this (more privileged) role instead of the source's role."
    ),
    fix_password_env: str | None = typer.Option(
        None, "--as-password-env", help="Variable holding --as's password (default EVENTBUS_FIX_PASSWORD)."
    ),
    fix_password_file: Path | None = typer.Option(None, "--as-password-file", help="File with it."),
    connectors_dir: Path | None = _CONNECTORS,
    mappings_dir: Path | None = _MAPPINGS,
    as_json: bool = _JSON,
) -> None:
    """Inspect the database and print a checklist, with the exact SQL that fixes each failing item."""
    from eventbus.sources.database import connect
    from eventbus.sources.inspection import inspect_capabilities
    from eventbus.sources.preflight import apply_fixes, fixes_to_apply, run_preflight

    with _errors(as_json):
        settings = _settings(connectors_dir=connectors_dir, mappings_dir=mappings_dir)
        definition = _definition(name, settings)
        needs = _needs(definition, settings)
        password = definition.resolve_password()
        report = run_preflight(definition, password, needs)
        unreachable = report.capabilities is None
        result: dict[str, Any] = {"before": report.to_json()} if fix else report.to_json()
        if not as_json:
            _print_report(report)
        if fix and report.capabilities is not None:  # not `unreachable`, spelled so that the type narrows
            fixer_password = (
                _fix_password(fix_password_env, fix_password_file).resolve() if fix_user else password
            )
            with connect(definition, fixer_password, user=fix_user) as connection:
                capabilities = (
                    inspect_capabilities(
                        connection,
                        definition.tables,
                        definition.publication_name,
                        report.capabilities.server_version_num,
                    )
                    if fix_user
                    else report.capabilities
                )
                assert capabilities is not None
                todo = fixes_to_apply(report, capabilities)
                if not as_json:
                    typer.echo(f"\napplying {len(todo)} fix(es) as role {capabilities.role}:")
                    for item in todo:
                        for statement in item.fix.sql if item.fix else ():
                            typer.echo(f"  {statement}")
                applied = apply_fixes(connection, todo)
            for outcome in applied:
                if not outcome.ok and not as_json:
                    typer.secho(f"  failed: {' '.join(outcome.sql)}: {outcome.error}", fg=typer.colors.RED)
            report = run_preflight(definition, password, needs)
            report.applied = applied
            result = {"before": result["before"], "after": report.to_json()}
            if not as_json:
                typer.echo("")
                _print_report(report, f"after fixes: source {report.source}")
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        if unreachable:
            raise typer.Exit(2)
        if not report.passed:
            raise typer.Exit(1)


@app.command()
def register(
    name: str = _NAME,
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for RUNNING and streaming."),
    connectors_dir: Path | None = _CONNECTORS,
    mappings_dir: Path | None = _MAPPINGS,
    connect_url: str | None = _CONNECT,
    bootstrap_servers: str | None = _KAFKA,
    as_json: bool = _JSON,
) -> None:
    """Preflight, create staging topics, PUT the connector config (only if changed), wait for RUNNING."""
    from eventbus.sources.registration import register as register_source

    with _errors(as_json):
        settings = _settings(
            connectors_dir=connectors_dir,
            mappings_dir=mappings_dir,
            connect_url=connect_url,
            bootstrap_servers=bootstrap_servers,
        )
        definition = _definition(name, settings)
        log = (lambda _: None) if as_json else (lambda message: typer.echo(message, err=True))
        result = register_source(
            definition, settings, _needs(definition, settings), timeout_s=timeout, log=log
        )
        if as_json:
            typer.echo(json.dumps(result.to_json(), indent=2))
            return
        if result.action == "unchanged":
            typer.echo(f"{result.connector}: no change")
        else:
            typer.echo(f"{result.connector}: {result.action}")
            for line in result.diff.lines():
                typer.echo(f"  {line}")
        state = result.state.state if result.state else "unknown"
        streaming = "streaming" if result.streaming else "not streaming yet"
        typer.secho(f"{result.connector}: {state}, {streaming}", fg=typer.colors.GREEN)


@app.command()
def status(
    name: str | None = typer.Argument(None, help="One source (default: every definition)."),
    connectors_dir: Path | None = _CONNECTORS,
    connect_url: str | None = _CONNECT,
    bootstrap_servers: str | None = _KAFKA,
    stale_after: float | None = typer.Option(
        None,
        "--stale-after",
        help="Seconds without a change or heartbeat after which a source is stale, exit 1 "
        "(env EVENTBUS_STALE_AFTER_S, default 300).",
    ),
    as_json: bool = _JSON,
) -> None:
    """Connector and task state, slot lag in bytes and slot trouble (dropped, not read, WAL lost or
    held by an idle source, orphaned slots), the newest change and heartbeat and their age. Exit 1
    unless every connector and task is RUNNING, every source is fresh and no slot finding fails."""
    from eventbus.sources.connect_client import ConnectClient
    from eventbus.sources.definition_files import discover_definitions, load_definition
    from eventbus.sources.preflight import format_bytes
    from eventbus.sources.source_status import source_statuses

    with _errors(as_json):
        settings = _settings(
            connectors_dir=connectors_dir,
            connect_url=connect_url,
            bootstrap_servers=bootstrap_servers,
            stale_after_s=stale_after,
        )
        definitions = (
            [_definition(name, settings)]
            if name
            else [load_definition(p) for p in discover_definitions(settings.connectors_dir)]
        )
        with ConnectClient(settings.connect_url) as client:
            known_slots = _known_slots(settings.connectors_dir, definitions, client)
            statuses = source_statuses(
                definitions, client, settings.kafka.bootstrap_servers, settings.stale_after_s, known_slots
            )
        if as_json:
            typer.echo(json.dumps([s.to_json() for s in statuses], indent=2))
        for s in statuses if not as_json else []:
            state = "NOT REGISTERED"
            if s.state:
                state = s.state.worst
                if state != s.state.state:  # e.g. the connector RUNNING, a task FAILED
                    state += f" (connector {s.state.state})"
            colour = typer.colors.GREEN if s.state and s.state.running else typer.colors.RED
            typer.secho(f"{s.source} ({s.connector}): {state}", fg=colour, bold=True)
            for task in s.state.tasks if s.state else []:
                typer.echo(f"  task {task.id}: {task.state} on {task.worker_id}")
            if s.state and s.state.failure:
                typer.secho("  " + s.state.failure.replace("\n", "\n  "), fg=typer.colors.RED)
            if s.slot_error:
                typer.echo(f"  slot: unknown ({s.slot_error})")
            elif s.slot is None:
                typer.echo("  slot: absent")
            else:
                activity = "active" if s.slot.active else "inactive"
                typer.echo(
                    f"  slot: {activity}, lag {format_bytes(s.slot.lag_bytes)} ({s.slot.lag_bytes} bytes), "
                    f"retains {format_bytes(s.slot.retained_bytes)} of WAL"
                )
            for finding in s.slot_findings:
                typer.secho(
                    f"  SLOT {finding.severity.upper()}: {finding.message}",
                    fg=COLOURS[finding.severity],
                )
            change = s.last_change
            typer.echo(
                f"  last change: {change['timestamp']} op={change['op']} on {change['topic']}"
                if change
                else "  last change: none on the staging topics"
            )
            beat = s.heartbeat
            typer.echo(f"  last heartbeat: {beat['timestamp']}" if beat else "  last heartbeat: none")
            _print_freshness(s)
        if not definitions and not as_json:
            typer.echo(f"no source definitions in {settings.connectors_dir}")
        if not all(s.state and s.state.running and not s.stale() and not s.slot_failing for s in statuses):
            raise typer.Exit(1)


def _known_slots(
    connectors_dir: Path, definitions: list[SourceDefinition], client: ConnectClient
) -> set[str]:
    """Slots that are someone's, so `status` never calls them orphaned: those of every definition
    (also of a file that does not load: its default slot) and those registered connectors read."""
    from eventbus.sources.definition_files import discover_definitions, load_definition
    from eventbus.sources.naming import slot_name

    known = {d.slot_name for d in definitions} | client.slot_names()
    for path in discover_definitions(connectors_dir):
        known.add(slot_name(path.stem))
        # A file that does not load is its own problem, reported where it is used.
        with suppress(EventBusError):
            known.add(load_definition(path).slot_name)
    return known


def _print_freshness(status: SourceStatus) -> None:
    age = status.age_s()
    limit = f"{status.stale_after_s:.0f} s"
    if age is None:
        typer.secho(f"  STALE: no change and no heartbeat on Kafka (threshold {limit})", fg=typer.colors.RED)
    elif status.stale():
        typer.secho(
            f"  STALE: silent for {age:.0f} s (threshold {limit}): changes are not flowing; "
            f"`eventbus source restart {status.source}` restarts the connector",
            fg=typer.colors.RED,
        )
    else:
        typer.echo(f"  fresh: newest change or heartbeat {age:.1f} s ago (threshold {limit})")


@app.command()
def remove(
    name: str = _NAME,
    drop_slot: bool = typer.Option(
        False, "--drop-slot", help="Also drop the replication slot and the publication (after confirming)."
    ),
    delete_topics: bool = typer.Option(
        False, "--delete-topics", help="Also delete the staging and heartbeat topics (after confirming)."
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    connectors_dir: Path | None = _CONNECTORS,
    connect_url: str | None = _CONNECT,
    as_json: bool = _JSON,
) -> None:
    """Delete the connector; with --drop-slot also the slot (its unread changes are lost), the
    publication and Connect's stored offsets (a later register starts anew); staging topics are kept
    unless --delete-topics."""
    from eventbus.sources.connect_client import ConnectClient
    from eventbus.sources.removal import remove as remove_source

    with _errors(as_json):
        settings = _settings(connectors_dir=connectors_dir, connect_url=connect_url)
        definition = _definition(name, settings)
        if drop_slot and not yes:
            typer.confirm(
                f"Drop slot {definition.slot_name} and publication {definition.publication_name}? "
                "Changes not yet streamed are lost",
                abort=True,
            )
        if delete_topics and not yes:
            typer.confirm("Delete the staging topics? Changes not yet transformed are lost", abort=True)
        log = (lambda _: None) if as_json else (lambda message: typer.echo(message))
        with ConnectClient(settings.connect_url) as client:
            result = remove_source(
                definition, client, drop_slot=drop_slot, log=log,
                delete_topics_of=settings.kafka.bootstrap_servers if delete_topics else None,
                bootstrap_servers=settings.kafka.bootstrap_servers,
            )  # fmt: skip
        if as_json:
            typer.echo(json.dumps(asdict(result)))


@app.command()
def restart(
    name: str = _NAME,
    connectors_dir: Path | None = _CONNECTORS,
    connect_url: str | None = _CONNECT,
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for the connector to run."),
) -> None:
    """Restart the connector and all its tasks, then wait until they run (slot and offsets kept)."""
    from eventbus.sources.connect_client import ConnectClient
    from eventbus.sources.registration import restart as restart_source

    with _errors(False):
        settings = _settings(connectors_dir=connectors_dir, connect_url=connect_url)
        definition = _definition(name, settings)
        with ConnectClient(settings.connect_url) as client:
            restart_source(definition, client, timeout_s=timeout, log=typer.echo)


@app.command("list")
def list_command(
    connectors_dir: Path | None = _CONNECTORS,
    connect_url: str | None = _CONNECT,
    as_json: bool = _JSON,
) -> None:
    """The source definitions and, when Connect answers, each connector's state."""
    from eventbus.sources.connect_client import ConnectClient
    from eventbus.sources.definition_files import discover_definitions, load_definition

    with _errors(as_json):
        settings = _settings(connectors_dir=connectors_dir, connect_url=connect_url)
        definitions = [load_definition(p) for p in discover_definitions(settings.connectors_dir)]
        states: dict[str, str] = {}
        warning = None
        try:
            with ConnectClient(settings.connect_url, timeout=10) as client:
                for d in definitions:
                    state = client.status(d.connector_name)
                    states[d.name] = state.state if state else "NOT REGISTERED"
        except ConnectUnavailableError as error:
            # Listing the definitions works offline; the state column is then unknown.
            warning = str(error)
        rows: list[dict[str, Any]] = [
            {
                "name": d.name,
                "file": d.file,
                "database": f"{d.database.host}:{d.database.port}/{d.database.dbname}",
                "tables": d.tables,
                "connector": d.connector_name,
                "state": states.get(d.name, "unknown"),
            }
            for d in definitions
        ]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        else:
            for row in rows:
                tables = f"{len(row['tables'])} table(s)"
                typer.echo(f"{row['name']:<20} {row['state']:<15} {row['database']:<40} {tables}")
            if not rows:
                typer.echo(f"no source definitions in {settings.connectors_dir}")
        if warning:
            typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
