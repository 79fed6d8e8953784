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
    # Imported here so that `eventbus --help` stays fast and each command group owns its module.
    from eventbus.cli import stack_commands

    app.add_typer(stack_commands.app, name="stack")
    app.add_typer(__import__("eventbus.cli.mapping_commands", fromlist=["app"]).app, name="mapping")
    app.add_typer(__import__("eventbus.cli.schema_commands", fromlist=["app"]).app, name="schema")
    app.command(name="catalog")(__import__("eventbus.cli.catalog_commands", fromlist=["catalog"]).catalog)
    app.add_typer(__import__("eventbus.cli.source_commands", fromlist=["app"]).app, name="source")
    app.add_typer(__import__("eventbus.cli.transformer_commands", fromlist=["app"]).app, name="transformer")
    app.add_typer(__import__("eventbus.cli.dlq_commands", fromlist=["app"]).app, name="dlq")
    app.add_typer(__import__("eventbus.cli.demo_commands", fromlist=["app"]).app, name="demo")


_register_subcommands()


def run() -> None:
    """Console entry point: domain errors become one readable line and exit code 2."""
    try:
        app()
    except EventBusError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(error.exit_code)
