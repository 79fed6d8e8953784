"""`eventbus dlq list|show|replay`: read the dead-letter topic, and re-run its records through the
current mappings.

Exit codes of `replay`: 0 every replayed record now succeeded, 1 some failed again (they are back on
the DLQ), 2 the tool could not do its job. `list` and `show` only read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from eventbus.cli.transformer_commands import CONFIG, MAPPINGS
from eventbus.mapping.errors import MappingError

if TYPE_CHECKING:
    from eventbus.service.dead_letter_reader import DeadLetter

app = typer.Typer(help="Inspect and replay the transformer's dead-letter topic.", no_args_is_help=True)


@app.command()
def replay(
    mappings: Path = MAPPINGS,
    config: Path | None = CONFIG,
    from_beginning: bool = typer.Option(
        False,
        "--from-beginning",
        help="Replay the whole DLQ, not only what earlier replays left: the events of dead letters an "
        "earlier replay resolved are published again (same event ids).",
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


@app.command("list")
def list_command(
    config: Path | None = CONFIG,
    limit: int = typer.Option(
        50,
        "--limit",
        "-n",
        min=0,
        help="The newest dead letters listed (of all partitions, by time), newest last (0: none).",
    ),
) -> None:
    """The dead letters, one line each (place, time, kind, mapping, origin, attempt, reason), then
    how many there are of each kind, mapping and reason."""
    from eventbus.service.dead_letter_reader import newest, read_dead_letters
    from eventbus.service.settings import load_settings

    settings = load_settings(config)
    counts: Counter[tuple[str, str, str]] = Counter()

    def counted() -> Iterator[DeadLetter]:
        for letter in read_dead_letters(settings):
            counts[_group(letter)] += 1
            yield letter

    for letter in newest(counted(), limit):
        info = letter.info
        when = _time(letter.timestamp_ms)
        if info is None:
            typer.echo(f"{letter.place}  {when}  (not written by the transformer: no eventbus_dlq headers)")
            continue
        mapping = f"{info.mapping} v{info.mapping_version}" if info.mapping else "-"
        origin = f"{info.origin.topic}[{info.origin.partition}]@{info.origin.offset}"
        typer.echo(f"{letter.place}  {when}  {info.kind:<13} {mapping}  {origin}  attempt {info.attempt}")
        typer.echo(f"    {info.reason}")
    typer.echo(f"{counts.total()} dead letter(s) on {settings.dlq_topic}")
    for (kind, mapping, reason), count in counts.most_common():
        typer.echo(f"  {count:>6}  {kind:<13} {mapping:<30} {reason}")


def _group(letter: DeadLetter) -> tuple[str, str, str]:
    """What `dlq list` counts a dead letter under: its kind, mapping and reason."""
    if letter.info is None:
        return ("foreign", "-", "")
    # The reason from its start: the field or column it names is what tells two groups apart
    # (reasons name, never quote, so equal reasons group together)
    return (letter.info.kind, letter.info.mapping or "-", _summary(letter.info.reason))


def _summary(reason: str, width: int = 100) -> str:
    return reason if len(reason) <= width else reason[: width - 1] + "…"


@app.command()
def show(
    place: str = typer.Argument(..., help="PARTITION@OFFSET, as `dlq list` prints it."),
    config: Path | None = CONFIG,
    value: bool = typer.Option(
        False, "--value", help="Print the record's value too (the staging record: it may hold personal data)."
    ),
) -> None:
    """One dead letter in full: its headers, the original ones, and the sizes of key and value."""
    from eventbus.service.dead_letter_reader import read_dead_letters
    from eventbus.service.settings import load_settings

    partition_text, _, offset_text = place.partition("@")
    if not (partition_text.isdigit() and offset_text.isdigit()):
        typer.secho(f"{place!r} is not PARTITION@OFFSET (e.g. 0@42)", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    settings = load_settings(config)
    wanted = (int(partition_text), int(offset_text))
    found = read_dead_letters(settings, partition=wanted[0], offset=wanted[1])
    letter = next((d for d in found if d.offset == wanted[1]), None)
    if letter is None:
        typer.secho(f"no record at {place} of {settings.dlq_topic}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    shown: dict[str, object] = {
        "place": f"{settings.dlq_topic}[{letter.partition}]@{letter.offset}",
        "time": _time(letter.timestamp_ms),
        "key_bytes": None if letter.key is None else len(letter.key),
        "value_bytes": None if letter.value is None else len(letter.value),
    }
    if letter.info is not None:
        info = letter.info
        shown |= {
            "kind": info.kind,
            "reason": info.reason,
            "mapping": info.mapping,
            "mapping_version": info.mapping_version,
            "origin": f"{info.origin.topic}[{info.origin.partition}]@{info.origin.offset}",
            "attempt": info.attempt,
            "original_headers": {k: (v or b"").decode("utf-8", "replace") for k, v in info.original_headers},
        }
    if value:
        shown["key"] = None if letter.key is None else letter.key.decode("utf-8", "replace")
        shown["value"] = None if letter.value is None else letter.value.decode("utf-8", "replace")
    typer.echo(json.dumps(shown, indent=2, ensure_ascii=False))


def _time(timestamp_ms: int | None) -> str:
    if timestamp_ms is None:
        return "-"
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
