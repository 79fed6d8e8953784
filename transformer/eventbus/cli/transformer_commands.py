"""`eventbus transformer run|config`: the service, and the configuration it would run with.

Exit codes: 0 clean stop, 1 a mapping is invalid (every problem printed as `file:line:col: ...`),
2 the service could not do its job (bad settings, registry or Kafka refused, fatal Kafka error).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from eventbus.mapping.errors import MappingError

app = typer.Typer(
    help="Run the transformer service (staging changes → curated Avro events).", no_args_is_help=True
)

CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    envvar="EVENTBUS_CONFIG_FILE",
    help="YAML settings file (EVENTBUS_* win).",
)
MAPPINGS = typer.Option(
    ..., "--mappings", "-m", envvar="EVENTBUS_MAPPINGS_DIR", help="Folder of mapping files (all are loaded)."
)


@app.command()
def run(mappings: Path = MAPPINGS, config: Path | None = CONFIG) -> None:
    """Compile every mapping, then consume, transform and publish until SIGTERM."""
    from eventbus.service.app import run_service
    from eventbus.service.logs import configure_logging
    from eventbus.service.settings import load_settings

    settings = load_settings(config)
    configure_logging(settings.log_level)
    try:
        code = run_service(settings, mappings)
    except MappingError as error:
        typer.secho(error.render(), fg=typer.colors.RED, err=True)
        typer.secho("not started: fix the mapping(s) above", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@app.command("config")
def config_command(config: Path | None = CONFIG) -> None:
    """Print the effective settings and librdkafka configurations (secrets masked)."""
    from eventbus.service.settings import load_settings

    typer.echo(json.dumps(load_settings(config).effective(), indent=2, default=str))
