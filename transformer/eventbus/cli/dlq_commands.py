"""`eventbus dlq replay`: re-run dead-lettered records through the current mappings.

Exit codes: 0 every replayed record now succeeded, 1 some failed again (they are back on the DLQ),
2 the tool could not do its job.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from eventbus.cli.transformer_commands import CONFIG, MAPPINGS
from eventbus.mapping.errors import MappingError

app = typer.Typer(help="Inspect and replay the transformer's dead-letter topic.", no_args_is_help=True)


@app.command()
def replay(
    mappings: Path = MAPPINGS,
    config: Path | None = CONFIG,
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Replay the whole DLQ, not only what earlier replays left."
    ),
) -> None:
    """Replay the DLQ (up to its current end) exactly once, then print the accounting."""
    from eventbus.service.logs import configure_logging
    from eventbus.service.replay import replay_dead_letters
    from eventbus.service.settings import load_settings

    settings = load_settings(config)
    configure_logging(settings.log_level)
    try:
        result = replay_dead_letters(settings, mappings, from_beginning=from_beginning)
    except MappingError as error:
        typer.secho(error.render(), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(result, indent=2))
    if result["accounting"]["dead_lettered"]:
        raise typer.Exit(1)
