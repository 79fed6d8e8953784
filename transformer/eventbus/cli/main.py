"""The `eventbus` command.

Exit codes follow one rule everywhere: 0 success, 1 a check or test failed, 2 the tool itself could
not do its job (bad input, a service down). Domain errors are printed as one message, no traceback.
"""

from __future__ import annotations

import sys

import typer

from eventbus.errors import EventBusError

app = typer.Typer(
    name="eventbus",
    help="Publish curated business events from database changes (Debezium → Kafka → Avro).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_subcommands() -> None:
    # One module per command group; the order here is the order of `eventbus --help`. The local
    # stack and the demo are development tools: the separate `eventbus-dev` command (devtools/).
    from eventbus.cli import (
        catalog_commands,
        dlq_commands,
        mapping_commands,
        schema_commands,
        source_commands,
        topics_commands,
        transformer_commands,
    )

    app.add_typer(source_commands.app, name="source")
    app.add_typer(mapping_commands.app, name="mapping")
    app.add_typer(schema_commands.app, name="schema")
    app.command(name="catalog")(catalog_commands.catalog)
    app.add_typer(topics_commands.app, name="topics")
    app.add_typer(transformer_commands.app, name="transformer")
    app.add_typer(dlq_commands.app, name="dlq")


_register_subcommands()


def run() -> None:
    """Console entry point: domain errors become one readable line and exit code 2."""
    try:
        app()
    except EventBusError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(error.exit_code)
