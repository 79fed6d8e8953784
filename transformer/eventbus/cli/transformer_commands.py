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


@app.command()
def probe(
    path: str = typer.Argument("/healthz", help="/healthz (alive) or /readyz (ready to consume)."),
    config: Path | None = CONFIG,
    timeout: float = typer.Option(3.0, help="Seconds to wait for the answer."),
) -> None:
    """Ask the running service's health endpoint, on the host and port of the same settings.

    For container health checks and exec probes: exit 0 when the endpoint answers 200, 1 otherwise
    (the reason is printed). A service bound to every address (0.0.0.0, ::) is asked on loopback.
    """
    import urllib.error
    import urllib.request

    from eventbus.service.settings import load_settings

    if path not in ("/healthz", "/readyz"):
        raise typer.BadParameter("expected /healthz or /readyz", param_hint="PATH")
    http = load_settings(config).http
    if not http.enabled:
        typer.echo("the HTTP endpoints are disabled (EVENTBUS_HTTP__ENABLED=false)", err=True)
        raise typer.Exit(1)
    if http.port == 0:
        typer.echo("EVENTBUS_HTTP__PORT=0 (a free port each start): set a fixed port to probe it", err=True)
        raise typer.Exit(1)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(http.host, http.host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{http.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            typer.echo(answer.read().decode(errors="replace").strip())
    except urllib.error.HTTPError as answer:  # 503 and its reason
        typer.echo(f"{url}: {answer.code} {answer.read().decode(errors='replace').strip()}", err=True)
        raise typer.Exit(1) from None
    except (OSError, ValueError) as error:
        typer.echo(f"{url}: {error}", err=True)
        raise typer.Exit(1) from None
