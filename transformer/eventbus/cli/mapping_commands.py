"""`eventbus mapping validate|test|run|schema`: check, test and try mapping files offline.

Exit codes: 0 success, 1 a mapping is invalid or a test failed, 2 the tool could not do its job
(unreadable input file, bad option).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

import orjson
import typer

from eventbus.mapping.errors import MappingError

# The engine (compiler, spec, test runner) is imported inside each command: `eventbus --help` and
# the other command groups do not pay for loading it (CLI start-up).

app = typer.Typer(help="Validate, test and run declarative mapping files offline.", no_args_is_help=True)

_PATHS = typer.Argument(None, help="Mapping files or folders (default: mappings/).")


def _paths(paths: list[Path] | None) -> list[Path]:
    from eventbus.mapping.testing import discover

    found = discover(paths or [Path("mappings")])
    if not found:
        typer.secho("no mapping files found", fg=typer.colors.YELLOW, err=True)
    return found


@app.command()
def validate(paths: list[Path] | None = _PATHS) -> None:
    """Load every mapping: YAML, keys, expressions, Avro schemas and captured table columns."""
    from eventbus.mapping.compiler import compile_mapping
    from eventbus.mapping.spec import load_mapping
    from eventbus.mapping.tables import captured_table_path

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
            typer.secho(
                f"    columns not checked: {captured_table_path(path, table)} is missing; save the `schema` "
                f"half of a staging record's value of {table} there to check columns and types",
                fg=typer.colors.YELLOW,
            )
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
    """Run a mapping over recorded change events; print one JSON line per curated event."""
    from eventbus.mapping.compiler import compile_mapping
    from eventbus.mapping.spec import load_mapping
    from eventbus.mapping.testing import run_records

    try:
        compiled = compile_mapping(load_mapping(mapping))
    except MappingError as error:
        typer.secho(error.render(), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    lines: list[str] = []
    try:
        for input_file in input_files:
            lines += (
                sys.stdin.readlines()
                if str(input_file) == "-"
                else input_file.read_text("utf-8").splitlines()
            )
    except OSError as error:
        typer.secho(f"error: cannot read {input_file}: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    outcome = run_records(compiled, lines)
    out = _open_output(output)
    try:
        for record in outcome.events:
            out.write(orjson.dumps(record).decode() + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if outcome.dead_letters:
        if dead_letter is not None:
            with dead_letter.open("w", encoding="utf-8") as handle:
                for record in outcome.dead_letters:
                    handle.write(orjson.dumps(record).decode() + "\n")
        else:
            for record in outcome.dead_letters:
                typer.secho(
                    f"dead letter (line {record['line']}): {record['reason']}", fg=typer.colors.RED, err=True
                )
    counts = f"{len(outcome.events)} event(s), {len(outcome.dead_letters)} dead letter(s)"
    typer.echo(f"{counts}, {outcome.skipped} skipped", err=True)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the mapping file format (for editor completion and checks)."""
    from eventbus.mapping.spec import MappingSpec

    document = MappingSpec.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "eventbus mapping file"
    typer.echo(json.dumps(document, indent=2))
