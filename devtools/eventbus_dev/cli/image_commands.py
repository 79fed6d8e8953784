"""`eventbus-dev image build|engine`: the transformer's container image on a Docker engine.

An engine that answers is used; otherwise Debian's is installed and started as a process of the
stack (`stack down` stops it). Without a reachable registry the base image is made from Debian
packages. Every fallback is printed.
"""

from __future__ import annotations

import json

import typer
from rich.console import Console

from eventbus_dev.stack.docker_engine import DockerEngine
from eventbus_dev.stack.images import TRANSFORMER_IMAGE, build_transformer_image
from eventbus_dev.stack.settings import StackSettings

app = typer.Typer(
    help="Build the transformer's container image (transformer/Dockerfile).", no_args_is_help=True
)
console = Console(stderr=True)


def _log(message: str) -> None:
    console.print(f"[dim]image[/] {message}")


@app.command()
def engine() -> None:
    """Make sure a Docker engine answers (ours if none does) and print its DOCKER_HOST."""
    found = DockerEngine(StackSettings()).ensure()
    for note in found.notes:
        console.print(f"[yellow]fallback[/] {note}")
    typer.echo(f"DOCKER_HOST={found.host}")


@app.command()
def build(
    tag: str = typer.Option(TRANSFORMER_IMAGE, help="Image name and tag."),
    base: str | None = typer.Option(
        None, help="BASE_IMAGE; default: python:3.11-slim, else one from Debian packages."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print tag, base, size and notes as JSON."),
) -> None:
    """Build the image with BuildKit on the host's network; print its size and every fallback taken."""
    settings = StackSettings()
    found = DockerEngine(settings).ensure()
    result = build_transformer_image(found, settings.repo_dir, settings.cache, _log, tag=tag, base=base)
    if as_json:
        typer.echo(json.dumps({**result.__dict__, "size_mb": result.size_mb, "docker_host": found.host}))
        return
    for note in result.notes:
        console.print(f"[yellow]fallback[/] {note}")
    typer.echo(f"{result.tag}: {result.size_mb} MB on {result.base}, built in {result.build_seconds:.0f}s "
               f"(DOCKER_HOST={found.host})")  # fmt: skip
