"""`eventbus-dev demo ...`: the sample claims domain (see `make demo`)."""

from __future__ import annotations

import typer
from rich.console import Console

from eventbus_dev.demo.database import DEMO_DATABASE, ensure_database, seed_if_empty
from eventbus_dev.demo.traffic import ClaimsTraffic
from eventbus_dev.stack.settings import StackSettings

app = typer.Typer(help="The sample claims domain: database, traffic, and the end-to-end walk-through.")
console = Console(stderr=True)


@app.command()
def run(
    duration: float = typer.Option(60.0, help="Seconds of generated traffic."),
    rate: float = typer.Option(20.0, help="Source changes per second."),
) -> None:
    """Stack, database, source, mappings, transformer, a minute of traffic, curated events live."""
    from eventbus_dev.demo.walkthrough import Walkthrough

    Walkthrough(duration=duration, rate=rate).run()


@app.command()
def setup(
    fresh: bool = typer.Option(False, "--fresh", help="Drop and recreate the database first."),
    claims: int = typer.Option(50, help="Claims to seed when the table is empty."),
) -> None:
    """Create the claims database and its tables on the local stack, seeded with existing claims."""
    engine = ensure_database(StackSettings(), fresh=fresh)
    seeded = seed_if_empty(engine, claims)
    console.print(f"database {DEMO_DATABASE!r} ready; {seeded} claims seeded")


@app.command()
def generate(
    rate: float = typer.Option(20.0, help="Source changes per second."),
    duration: float = typer.Option(60.0, help="Seconds to run."),
    seed: int = typer.Option(7, help="Random seed: the same seed replays the same story."),
) -> None:
    """Drive realistic change traffic into the claims database."""
    from eventbus_dev.demo.traffic import make_engine

    engine = make_engine(StackSettings().postgres_dsn(DEMO_DATABASE))
    stats = ClaimsTraffic(engine, seed=seed).run(rate=rate, duration=duration)
    for action, count in sorted(stats.actions.items()):
        console.print(f"{action:<22} {count}")
    console.print(f"{stats.changes} changes in {stats.transactions} transactions")


@app.command()
def stop() -> None:
    """Stop the demo's transformer (the stack keeps running: `eventbus-dev stack down`)."""
    from eventbus_dev.demo.walkthrough import stop_transformer

    console.print("transformer stopped" if stop_transformer() else "no demo transformer was running")
