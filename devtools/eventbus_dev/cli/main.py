"""The `eventbus-dev` command: development tooling, kept out of the product's `eventbus` command.

Exit codes as in `eventbus`: 0 success, 1 a check failed, 2 the tool itself could not do its job.
"""

from __future__ import annotations

import sys

import typer

from eventbus.errors import EventBusError

app = typer.Typer(
    name="eventbus-dev",
    help="Development tools of the event bus: the local stack, the sample claims demo, the container image.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_subcommands() -> None:
    from eventbus_dev.cli import demo_commands, image_commands, stack_commands

    app.add_typer(stack_commands.app, name="stack")
    app.add_typer(demo_commands.app, name="demo")
    app.add_typer(image_commands.app, name="image")


_register_subcommands()


def run() -> None:
    """Console entry point: domain errors become one readable line and their exit code."""
    try:
        app()
    except EventBusError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(error.exit_code)
