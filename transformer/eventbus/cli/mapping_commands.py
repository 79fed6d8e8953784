"""`eventbus mapping validate|test|run|schema|new|tables`: check, test and try mapping files offline;
scaffold one from a live table and keep table descriptions up to date.

Exit codes: 0 success, 1 a mapping is invalid, a test failed or `run` dead-lettered a change, 2 the
tool could not do its job (unreadable input file, bad option).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import orjson
import typer

from eventbus.mapping.errors import MappingError

# The engine (compiler, spec, test runner) is imported inside each command: `eventbus --help` and
# the other command groups do not pay for loading it (CLI start-up).

app = typer.Typer(help="Validate, test and run declarative mapping files offline.", no_args_is_help=True)

_PATHS = typer.Argument(None, help="Mapping files or folders (default: mappings/).")


def _paths(paths: list[Path] | None, *, required: bool = True) -> list[Path]:
    """The mapping files under `paths`. When `required` (validate, test), a path that does not exist
    is an error (exit 2), and so is finding no mapping file at all (exit 1): a mistyped path in CI
    must not pass as "nothing failed". (`tables` also takes the folder to write a description to.)"""
    from eventbus.mapping.discovery import discover

    given = paths or [Path("mappings")]
    missing = [str(path) for path in given if not path.exists()]
    if missing and required:
        typer.secho(f"no such file or folder: {', '.join(missing)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    found = discover(given)
    if not found:
        where = ", ".join(str(path) for path in given)
        if required:
            message = f"no mapping files found in {where}: nothing was checked"
            typer.secho(message, fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        typer.secho(f"no mapping files found in {where}", fg=typer.colors.YELLOW, err=True)
    return found


@app.command()
def validate(paths: list[Path] | None = _PATHS) -> None:
    """Load every mapping: YAML, keys, expressions, Avro schemas and captured table columns."""
    from eventbus.mapping.compiler import compile_mapping
    from eventbus.mapping.spec import load_mapping
    from eventbus.mapping.tables import captured_table_path, near_description

    failed = 0
    for path in _paths(paths):
        try:
            compiled = compile_mapping(load_mapping(path))
        except MappingError as error:
            failed += 1
            typer.secho(error.render(), fg=typer.colors.RED, err=True)
            typer.echo("", err=True)
            continue
        if compiled.analysis.table is None:
            # Valid as far as it can be told, but a misspelled column would show only at run time.
            table = compiled.spec.source.table
            typer.echo(f"ok  {path}")
            missing = f"    columns not checked: {captured_table_path(path, table)} is missing"
            if near := near_description(path, table):
                # names are case-sensitive: likely a misspelled source.table, whose topic never fills
                advice = f"; source.table {table}: {near} (its staging topic would be another)"
            else:
                advice = (
                    f"; save the `schema` half of a staging record's value of {table} there to check "
                    "columns and types"
                )
            typer.secho(missing + advice, fg=typer.colors.YELLOW)
            continue
        typer.echo(f"ok  {path}")
    if failed:
        typer.secho(f"{failed} invalid mapping file(s)", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


@app.command("test")
def test_command(
    paths: list[Path] | None = _PATHS,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List passing tests too."),
) -> None:
    """Run the inline tests, `<mapping>.tests.yaml` suites and `tests/<mapping>/*.jsonl` fixtures."""
    from eventbus.mapping.testing import test_mapping_file

    passed = failed = 0
    for path in _paths(paths):
        for result in test_mapping_file(path):
            if result.passed:
                passed += 1
                if verbose:
                    typer.echo(f"PASS {result.headline()}")
                continue
            failed += 1
            typer.secho(f"FAIL {result.headline()}", fg=typer.colors.RED, err=True)
            for line in result.diff:
                typer.echo(line, err=True)
    colour = typer.colors.RED if failed else typer.colors.GREEN
    typer.secho(f"{passed} passed, {failed} failed", fg=colour, err=True)
    if failed:
        raise typer.Exit(1)


def _open_output(path: Path | None) -> TextIO:
    return sys.stdout if path is None or str(path) == "-" else path.open("w", encoding="utf-8")


@app.command()
def run(
    mapping: Path = typer.Option(..., "--mapping", "-m", help="The mapping file."),
    input_files: list[Path] = typer.Option(
        ...,
        "--input",
        "-i",
        help="Debezium Connect JSON lines ('-' = stdin); repeat for the records of several tables "
        "(lookups: they are run in commit order).",
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="Events as JSON lines (default stdout)."),
    dead_letter: Path | None = typer.Option(None, "--dead-letter", help="Failed records as JSON lines."),
) -> None:
    """Run a mapping over recorded change events; print one JSON line per curated event. Exits 1
    when a change was dead-lettered (each is named by its input file and line)."""
    from eventbus.mapping.compiler import compile_mapping
    from eventbus.mapping.spec import load_mapping
    from eventbus.mapping.testing import run_records
    from eventbus.mapping.text_files import read_utf8

    try:
        compiled = compile_mapping(load_mapping(mapping))
    except MappingError as error:
        typer.secho(error.render(), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    lines: list[str] = []
    origins: list[tuple[str, int]] = []  # (input, line in it) of each line: dead letters name it
    try:
        for input_file in input_files:
            read = sys.stdin.read() if str(input_file) == "-" else read_utf8(input_file)
            name = "<stdin>" if str(input_file) == "-" else str(input_file)
            for number, line in enumerate(read.splitlines(), start=1):
                lines.append(line)
                origins.append((name, number))
    except MappingError as error:  # unreadable, or not UTF-8 (with the line of the first bad byte)
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    outcome = run_records(compiled, lines)
    out = _open_output(output)
    try:
        for record in outcome.events:
            out.write(orjson.dumps(record).decode() + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    for record in outcome.dead_letters:
        record["input"], record["line"] = origins[record["line"] - 1]
        where = f"{record['input']}:{record['line']}"
        typer.secho(f"dead letter at {where}: {record['reason']}", fg=typer.colors.RED, err=True)
    if dead_letter is not None:  # written even when empty: a stale file must not outlive this run
        with dead_letter.open("w", encoding="utf-8") as handle:
            for record in outcome.dead_letters:
                handle.write(orjson.dumps(record).decode() + "\n")
    counts = f"{len(outcome.events)} event(s), {len(outcome.dead_letters)} dead letter(s)"
    typer.echo(f"{counts}, {outcome.skipped} skipped", err=True)
    if outcome.without_key and outcome.events:
        typer.secho(
            f"note: {outcome.without_key} record(s) without their key: their events' ids are made from the "
            "event key, the service's from the staging record's key (the same only when the event key is "
            'the primary key); give lines as {"key": ..., "value": ...} to compare ids with the service',
            fg=typer.colors.YELLOW,
            err=True,
        )
    if outcome.dead_letters:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the mapping file format (for editor completion and checks)."""
    from eventbus.mapping.spec import MappingSpec

    document = MappingSpec.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "eventbus mapping file"
    typer.echo(json.dumps(document, indent=2))


# --- authoring from a table: `mapping new`, `mapping tables` ----------------------------------------

_SOURCE = typer.Option(..., "--source", "-s", help="Source name (connectors/NAME.yaml) or a definition file.")


def _source_definition(name: str) -> tuple[Any, Any]:
    """(definition, settings) of a source, found as `eventbus source` finds it."""
    from eventbus.sources.definition_files import definition_path, load_definition
    from eventbus.sources.settings import SourceSettings

    settings = SourceSettings()
    path = Path(name) if name.endswith((".yaml", ".yml")) or "/" in name else None
    return load_definition(path or definition_path(settings.connectors_dir, name)), settings


@contextmanager
def _domain_errors() -> Iterator[None]:
    from eventbus.errors import EventBusError

    try:
        yield
    except EventBusError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(error.exit_code) from None


@app.command()
def new(
    name: str = typer.Argument(..., help="Mapping name (snake_case; also its topic and file name)."),
    source: str = _SOURCE,
    table: str = typer.Option(..., "--table", "-t", help="SCHEMA.TABLE to publish changes of."),
    on: str = typer.Option("insert,update", "--on", help="Operations, comma-separated (or: delete)."),
    key: str | None = typer.Option(
        None,
        "--key",
        help="Key columns, comma-separated (default: the primary key, or the source's key_columns).",
    ),
    folder: Path | None = typer.Option(
        None, "--dir", help="Mapping folder (default: <mappings dir>/<source>)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing mapping and its schemas."),
) -> None:
    """Scaffold a mapping from a live table: table description, Avro schemas, mapping, one test."""
    from eventbus.mapping.scaffold import ScaffoldError, scaffold_mapping
    from eventbus.mapping.scaffold_files import ScaffoldExists, place_files
    from eventbus.sources.database import connect
    from eventbus.sources.inspection import ancestors_of
    from eventbus.sources.table_descriptions import capture_note, live_description

    with _domain_errors():
        definition, settings = _source_definition(source)
        qualified = table if "." in table else f"public.{table}"
        with connect(definition, definition.resolve_password()) as connection:
            description = live_description(
                connection, definition.name, qualified, definition.key_columns_of(qualified)
            )
            ancestors = ancestors_of(connection, description.table)
    target = folder or settings.mappings_dir / definition.name
    operations = tuple(op.strip() for op in on.split(",") if op.strip())
    try:
        scaffold = scaffold_mapping(
            name,
            connector=definition.name,
            table=description.table,
            description=description.value,
            key_columns=tuple(c.strip() for c in key.split(",")) if key else description.key_columns,
            operations=operations,
            generated_from=f" (source {definition.name})",
            left_out=[
                f"column {column.name!r} ({column.describe()}) left out: {why}"
                for column, why in description.skipped
            ],
        )
    except (ScaffoldError, ValueError) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    _say_skipped(description, definition.name)
    for note in scaffold.notes:
        typer.secho(f"note: {note}", fg=typer.colors.YELLOW)
    if capture := capture_note(description.table, ancestors, definition):
        typer.secho(f"note: {capture}", fg=typer.colors.YELLOW)
    tests: list[int] = []
    try:
        # checked in a temporary folder first: nothing is written unless all of it is right
        written = place_files(
            target,
            {**description.files(), **scaffold.files},
            check=lambda staged: tests.append(_check_scaffold(staged / f"{name}.yaml")),
            force=force,
        )
    except ScaffoldExists as error:
        if any(path.parent.name == "tables" for path in error.paths):
            # the table changed since its description was written for another mapping
            error.args = (f"{error}, or refresh the description for every mapping of the table with "
                          f"`eventbus mapping tables --source {definition.name}`",)  # fmt: skip
        typer.secho(f"error: {error}; nothing was written", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        message = f"error: writing into {target}: {error}; nothing was written"
        typer.secho(message, fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"ok  {target / f'{name}.yaml'}: valid, {tests[0]} test(s) pass")


def _check_scaffold(path: Path) -> int:
    """Validate and test the starter mapping (in its temporary folder); the number of tests. A
    starter that does not pass is a bug here, said at once, and nothing is written."""
    from eventbus.mapping.compiler import compile_mapping
    from eventbus.mapping.spec import load_mapping
    from eventbus.mapping.testing import test_mapping_file

    nothing = "the starter mapping failed its own check (a bug of `mapping new`): nothing was written"
    try:
        compile_mapping(load_mapping(path))
    except MappingError as error:
        typer.secho(error.render(), fg=typer.colors.RED, err=True)
        typer.secho(f"error: {nothing}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    results = test_mapping_file(path)
    failed = [result for result in results if not result.passed]
    for result in failed:
        typer.secho(f"FAIL {result.headline()}", fg=typer.colors.RED, err=True)
        for line in result.diff:
            typer.echo(line, err=True)
    if failed:
        typer.secho(f"error: {nothing}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    return len(results)


def _say_skipped(description: Any, source: str) -> None:
    """Columns left out of a description from the database: a mapping cannot read them until they
    are described, from a staging record that carries them, by Debezium's own schema."""
    from eventbus.sources.naming import staging_topic

    for column, why in description.skipped:
        topic = staging_topic(source, description.table)
        hint = (
            ""  # a column Debezium is known to leave out: no staging record describes it either
            if why.startswith("Debezium sends no")
            else f": if Debezium sends it, describe the table from a staging record with `eventbus "
            f"mapping tables --source {source} --from-topic {topic}`"
        )
        typer.secho(
            f"note: column {column.name} of {description.table} ({column.describe()}: {why}) is not in the "
            f"description{hint}",
            fg=typer.colors.YELLOW,
            err=True,
        )


@app.command()
def tables(
    paths: list[Path] | None = _PATHS,
    source: str = _SOURCE,
    from_topic: str | None = typer.Option(
        None, "--from-topic", help="Take the description from this staging topic's latest record instead."
    ),
    bootstrap_servers: str | None = typer.Option(
        None,
        "--bootstrap-servers",
        help="Kafka (env EVENTBUS_KAFKA__BOOTSTRAP_SERVERS; default: local stack).",
    ),
) -> None:
    """Refresh the table descriptions (tables/*.json) of a source's mappings from the database."""
    from eventbus.mapping.spec import load_mapping
    from eventbus.sources.table_descriptions import (
        Description,
        description_from_topic,
        drift,
        live_description,
    )

    with _domain_errors():
        definition, settings = _source_definition(source)
        folders: dict[str, set[Path]] = {}  # table → folders of the mappings reading it
        for path in _paths(paths or [settings.mappings_dir], required=False):
            try:
                spec = load_mapping(path, check=False)
            except MappingError as error:
                typer.secho(error.one_line(), fg=typer.colors.YELLOW, err=True)
                continue
            tables_read = [spec.source.table] if spec.source.connector == definition.name else []
            tables_read += [
                lookup.table for lookup in spec.lookup.values()
                if (lookup.connector or spec.source.connector) == definition.name
            ]  # fmt: skip
            for table_name in tables_read:
                folders.setdefault(table_name, set()).add(path.parent)
        descriptions: list[Description] = []
        if from_topic is not None:
            kafka = bootstrap_servers or settings.kafka.bootstrap_servers
            found = description_from_topic(kafka, from_topic)
            base = (paths or [settings.mappings_dir / definition.name])[0]
            folders.setdefault(found.table, {base.parent if base.is_file() else base})
            descriptions.append(found)
        else:
            from eventbus.sources.database import connect

            with connect(definition, definition.resolve_password()) as connection:
                descriptions += [
                    live_description(connection, definition.name, t, definition.key_columns_of(t))
                    for t in sorted(folders)
                ]
    if not descriptions:
        typer.secho(f"no mapping of source {definition.name} found", fg=typer.colors.YELLOW, err=True)
    for description in descriptions:
        for folder in sorted(folders.get(description.table, ())):
            path = folder / "tables" / f"{description.table}.json"
            old = orjson.loads(path.read_bytes()) if path.exists() else None
            written = description.write(folder)
            if not written:
                typer.echo(f"unchanged {path}")
                continue
            typer.echo(f"{'updated' if old is not None else 'wrote'} {path}")
            for line in drift(old, description.value) if old is not None else ():
                typer.echo(f"    {line}")
        _say_skipped(description, definition.name)
