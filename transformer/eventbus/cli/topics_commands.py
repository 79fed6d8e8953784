"""`eventbus topics plan|apply`: provision the topics the transformer writes, before it starts.

The topics: every curated topic of the mappings (with their `topic_settings`), the dead-letter topic
and, when a mapping looks rows up, the parked-changes topic (names and dead-letter settings from the
transformer's settings). The Kafka connection is the transformer's own (`--config`, `EVENTBUS_*`:
brokers, TLS, SASL/SCRAM or MSK IAM), so these commands reach the cluster as the service will.

Exit codes: 0 every topic is as declared (plan) or now is (apply); 1 something is missing or differs
(plan), or differs in a way apply does not change (more partitions than declared, another replication
factor); 2 the tool could not do its job (Kafka unreachable or refusing, bad settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from eventbus.cli.transformer_commands import CONFIG, MAPPINGS
from eventbus.mapping.errors import MappingError

if TYPE_CHECKING:
    from eventbus.service.settings import TransformerSettings
    from eventbus.topics.plan import TopicPlan

app = typer.Typer(
    help="Provision the curated and dead-letter topics the transformer writes (the bus has no "
    "auto-creation).",
    no_args_is_help=True,
)


def _plan(
    mappings: Path, config: Path | None, *, add_partitions: bool
) -> tuple[TransformerSettings, list[TopicPlan]]:
    from eventbus.contracts.collect import collect_contracts, load_specs
    from eventbus.service.published_topics import published_topics
    from eventbus.service.settings import load_settings
    from eventbus.topics.cluster import admin_client, read_topics
    from eventbus.topics.plan import plan_topics

    settings = load_settings(config)
    try:
        specs = load_specs([mappings])
        contracts = collect_contracts(specs)
    except MappingError as error:
        typer.secho(error.render(), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    wanted = published_topics(settings, contracts, lookups=any(spec.lookup for spec in specs))
    existing = read_topics(
        admin_client(settings.common_config(reveal=True)),
        [topic.name for topic in wanted],
        bootstrap=settings.kafka.bootstrap_servers,
        timeout_s=settings.transaction_timeout_ms / 1000,
    )
    return settings, plan_topics(wanted, existing, add_partitions=add_partitions)


@app.command()
def plan(mappings: Path = MAPPINGS, config: Path | None = CONFIG) -> None:
    """Show what `apply` would create or change; read-only. Exit 1 unless every topic is as declared."""
    _, plans = _plan(mappings, config, add_partitions=False)
    for item in plans:
        typer.echo(item.render())
    unsettled = [item for item in plans if not item.settled]
    if unsettled:
        with_config = f" --config {config}" if config is not None else ""
        typer.secho(
            f"{len(unsettled)} of {len(plans)} topic(s) not as declared; `eventbus topics apply "
            f"--mappings {mappings}{with_config}` creates and updates them",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)


@app.command()
def apply(
    mappings: Path = MAPPINGS,
    config: Path | None = CONFIG,
    add_partitions: bool = typer.Option(
        False,
        "--add-partitions",
        help="Add partitions to a topic that has fewer than declared (keys move: a key's events may be "
        "read out of order around the change).",
    ),
) -> None:
    """Create the missing topics and set differing configs; never removes partitions or topics."""
    from eventbus.topics.cluster import admin_client, apply_plans

    settings, plans = _plan(mappings, config, add_partitions=add_partitions)
    done = apply_plans(
        admin_client(settings.common_config(reveal=True)),
        plans,
        bootstrap=settings.kafka.bootstrap_servers,
        timeout_s=settings.transaction_timeout_ms / 1000,
    )
    for line in done:
        typer.echo(line)
    for item in plans:
        if item.settled:
            typer.echo(f"unchanged {item.topic.name} ({item.topic.role})")
    refused = [item for item in plans if item.refusals]
    for item in refused:
        typer.secho(item.render(), fg=typer.colors.RED, err=True)
    if refused:
        typer.secho(f"{len(refused)} topic(s) left as they are (above)", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
