"""`eventbus catalog [PATHS] --out DIR`: Backstage catalog entries and an AsyncAPI document.

Writes `DIR/<event>/catalog-info.yaml` (one Backstage `Event` entity per curated topic),
`DIR/catalog-info.yaml` (a `Location` listing them, to register them all at once) and
`DIR/asyncapi.yaml` (AsyncAPI 3.0, every curated topic). Exit codes: 0 written, 1 a mapping is
invalid or lacks what the catalog needs (owner), 2 the tool failed (unwritable folder).
"""

from __future__ import annotations

from pathlib import Path

import typer

from eventbus.errors import ConfigError
from eventbus.mapping.errors import MappingError


def catalog(
    paths: list[Path] | None = typer.Argument(None, help="Mapping files or folders (default: mappings/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the catalog files into."),
    environment: str | None = typer.Option(
        None, "--environment", help="Bus environment listed with each topic (e.g. development)."
    ),
) -> None:
    """Generate one Backstage catalog-info.yaml per curated event and one AsyncAPI 3.0 document."""
    # Imported here, not at the top: every `eventbus` command would pay for them (CLI start-up).
    from eventbus.contracts.catalog import write_catalog
    from eventbus.contracts.collect import collect_contracts, load_specs

    try:
        written = write_catalog(collect_contracts(load_specs(paths)), out, environment=environment)
    except MappingError as error:
        typer.secho(error.render(), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except OSError as error:
        raise ConfigError(f"{out}: cannot write the catalog: {error.strerror}") from None
    for path in written:
        typer.echo(f"wrote {path}")
