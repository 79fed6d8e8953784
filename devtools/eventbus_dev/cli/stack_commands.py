"""`eventbus-dev stack up|down|status|logs`: the local stack without Docker."""

from __future__ import annotations

import json
import subprocess

import typer
from rich.console import Console
from rich.table import Table

from eventbus_dev.stack.launcher import LocalStack, ServiceStatus
from eventbus_dev.stack.settings import StackSettings

app = typer.Typer(help="Run PostgreSQL, Kafka, Kafka Connect + Debezium and Apicurio Registry locally.")
console = Console(stderr=True)


def _stack() -> LocalStack:
    return LocalStack(StackSettings(), log=lambda message: console.print(f"[dim]stack[/] {message}"))


def _print_status(statuses: list[ServiceStatus], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([status.__dict__ for status in statuses], indent=2))
        return
    table = Table("service", "pid", "endpoint", "state", "log")
    colours = {"ready": "green", "starting": "yellow", "dead": "red", "stopped": "dim"}
    for s in statuses:
        table.add_row(s.name, str(s.pid or "-"), s.endpoint, f"[{colours[s.state]}]{s.state}[/]", s.log_file)
    Console().print(table)


@app.command()
def up(as_json: bool = typer.Option(False, "--json", help="Print the status as JSON.")) -> None:
    """Download what is missing, start every service, wait until each answers (a no-op if running)."""
    stack = _stack()
    statuses = stack.up()
    _print_status(statuses, as_json)
    settings = stack.settings
    console.print(
        f"PostgreSQL {settings.postgres_dsn(hide_password=True)}\n"
        f"Kafka      {settings.bootstrap_servers}\n"
        f"Connect    {settings.connect_url}\n"
        f"Registry   {settings.registry_url}"
    )


@app.command()
def down() -> None:
    """Stop the processes this stack started (data is kept in the state folder)."""
    stopped = _stack().down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print the status as JSON.")) -> None:
    """Each service's pid, endpoint and health. Exit code 1 unless every service is ready."""
    statuses = _stack().status()
    _print_status(statuses, as_json)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)


@app.command()
def logs(
    service: str = typer.Argument(..., help="postgres, kafka, registry or connect"),
    lines: int = typer.Option(100, "--lines", "-n", help="How many lines from the end."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
) -> None:
    """Show a service's log file."""
    process = _stack().service(service).process
    if follow:
        subprocess.run(["tail", "-n", str(lines), "-F", str(process.log_file)], check=False)
    else:
        typer.echo(process.tail(lines))
