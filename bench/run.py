"""`make bench`: run the registered benchmarks, write bench/results/latest.{json,md} and PNG charts.

Run: `.venv/bin/python -m bench.run` (all), `--only engine` (one; repeatable), `--list`.

A benchmark is a function `(options) -> dict` registered in `REGISTRY` with `register`; the keys it
returns are merged into `latest.json`. Scalars (numbers, null) go to the top level, lists and dicts
under `details.<benchmark>`. Every key of `RESULT_KEYS` is always present (null until measured), so
the file's shape does not depend on which benchmarks ran. A benchmark that raises is recorded as
failed (`status`), and the others still run. Charts need matplotlib; without it they are skipped
with a message and everything else is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # `python bench/run.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import container, engine, latency, lookups, startup, transformer
from bench.common import machine_info

RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"

# The stable shape of latest.json: every one of these is present, a number or null.
RESULT_KEYS: Final[tuple[str, ...]] = (
    "engine_changes_per_s",
    "engine_handwritten_changes_per_s",
    "engine_vs_handwritten",
    "transformer_eos_events_per_s",
    "transformer_alo_events_per_s",
    "raw_ceiling_events_per_s",
    "quix_events_per_s",
    "transformer_eos_plain_staging_events_per_s",
    "transformer_vs_raw",
    "transformer_vs_quix",
    "transformer_zstd_vs_plain_staging",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "e2e_p99_ms",
    "e2e_max_ms",
    "transformer_peak_rss_mb",
    "lookup_vs_plain",
    "lookup_vs_plain_cold",
    "lookup_store_rss_mb",
    "lookup_restore_s",
    "staging_bytes_per_change",
    "staging_raw_bytes_per_change",
    "image_size_mb",
    "container_ready_s",
    "container_stop_s",
    "cli_help_s",
    "mapping_validate_s",
    "mapping_validate_test_s",
)


@dataclass(frozen=True, slots=True)
class Target:
    """What a measurement should reach (issue 7); `at_least=False` means at most."""

    value: float
    at_least: bool = True

    def met(self, measured: float) -> bool:
        return measured >= self.value if self.at_least else measured <= self.value

    def __str__(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.value:g}"


# Issue #13 raised the engine and transformer targets (from #10's 100k/s, 0.7 and 2).
TARGETS: Final[dict[str, Target]] = {
    "engine_changes_per_s": Target(200_000),
    "engine_vs_handwritten": Target(0.8),
    "transformer_eos_events_per_s": Target(50_000),
    "transformer_vs_raw": Target(0.8),
    "transformer_vs_quix": Target(3.0),
    "transformer_zstd_vs_plain_staging": Target(0.95),
    "e2e_p99_ms": Target(250, at_least=False),
    "transformer_peak_rss_mb": Target(200, at_least=False),
    "lookup_vs_plain": Target(0.7),
    "lookup_store_rss_mb": Target(250, at_least=False),
    "image_size_mb": Target(250, at_least=False),
    "container_ready_s": Target(5, at_least=False),
    "container_stop_s": Target(10, at_least=False),
    "cli_help_s": Target(0.3, at_least=False),
    "mapping_validate_s": Target(0.5, at_least=False),
    "mapping_validate_test_s": Target(1.0, at_least=False),
}

DESCRIPTIONS: Final[dict[str, str]] = {
    "engine_changes_per_s": "mapping engine: decode → evaluate → encode, changes/s on one core",
    "engine_handwritten_changes_per_s": "hand-written function for the same mapping, same run",
    "engine_vs_handwritten": "engine / hand-written",
    "transformer_eos_events_per_s": "transformer, exactly-once, events/s",
    "transformer_alo_events_per_s": "transformer, at-least-once, events/s",
    "raw_ceiling_events_per_s": "confluent-kafka consume → produce loop, no mapping",
    "quix_events_per_s": "Quix Streams peer, same mapping, exactly-once",
    "transformer_eos_plain_staging_events_per_s": "transformer, exactly-once, uncompressed staging copy",
    "transformer_vs_raw": "transformer (exactly-once) / raw ceiling",
    "transformer_vs_quix": "transformer (exactly-once) / Quix Streams",
    "transformer_zstd_vs_plain_staging": "transformer on zstd staging / on an uncompressed copy",
    "e2e_p50_ms": "source commit → curated event visible (read_committed), p50",
    "e2e_p95_ms": "end-to-end p95",
    "e2e_p99_ms": "end-to-end p99",
    "e2e_max_ms": "end-to-end max",
    "transformer_peak_rss_mb": "transformer peak RSS",
    "lookup_vs_plain": "engine with two lookups per change / the same mapping without (store warm)",
    "lookup_vs_plain_cold": "the same, the store opened cold for every run (every row read from disk once)",
    "lookup_store_rss_mb": "transformer peak RSS with 1,000,000 looked-up rows (the rest on disk)",
    "lookup_restore_s": "rebuilding those rows from the staging topic on an empty disk, seconds",
    "staging_bytes_per_change": "staging topic on the broker's disk per change (zstd), bytes",
    "staging_raw_bytes_per_change": "the same records' key + value as read (uncompressed), bytes",
    "image_size_mb": "transformer image (transformer/Dockerfile), MB",
    "container_ready_s": "docker run → /readyz 200 against the local stack, hardened flags, median s",
    "container_stop_s": "docker stop of an idle, ready container until it exited, median s",
    "cli_help_s": "`eventbus --help`, wall seconds (median)",
    "mapping_validate_s": "`eventbus mapping validate mappings/claims`, wall seconds (median)",
    "mapping_validate_test_s": "`mapping validate` then `mapping test` of mappings/claims, wall s (median)",
}

Options = argparse.Namespace
ChartFunction = Callable[[dict[str, Any], Path], list[Path]]


@dataclass(frozen=True, slots=True)
class Benchmark:
    run: Callable[[Options], dict[str, Any]]
    charts: ChartFunction | None = None  # (this benchmark's result, results folder) -> files written
    needs_stack: bool = False


REGISTRY: dict[str, Benchmark] = {}


def register(
    name: str, *, charts: ChartFunction | None = None, needs_stack: bool = False
) -> Callable[[Callable[[Options], dict[str, Any]]], Callable[[Options], dict[str, Any]]]:
    """Decorator: add a benchmark function under `name` (run in registration order)."""

    def add(function: Callable[[Options], dict[str, Any]]) -> Callable[[Options], dict[str, Any]]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} registered twice")
        REGISTRY[name] = Benchmark(function, charts, needs_stack)
        return function

    return add


# --------------------------------------------------------------------------------------------------
# The engine benchmark


def _engine_charts(result: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engine_rates = result["engine_round_rates"]
    hand_rates = result["engine_handwritten_round_rates"]
    fig, (bars, rounds) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.6]})
    names = ["engine", "hand-written"]
    medians = [result["engine_changes_per_s"], result["engine_handwritten_changes_per_s"]]
    drawn = bars.bar(names, [m / 1000 for m in medians], color=["#3b6ea8", "#9aa5b1"])
    bars.bar_label(drawn, labels=[f"{m / 1000:.0f}k" for m in medians])
    bars.axhline(200, color="#c0392b", linestyle="--", linewidth=1, label="target 200k/s")
    bars.set_ylabel("thousand changes/s, one core (median)")
    bars.set_title(f"decode → map → Avro: ratio {result['engine_vs_handwritten']:.2f}")
    bars.legend(loc="lower right")
    numbers = range(1, len(engine_rates) + 1)
    rounds.plot(numbers, [r / 1000 for r in engine_rates], "o-", color="#3b6ea8", label="engine")
    rounds.plot(numbers, [r / 1000 for r in hand_rates], "s-", color="#9aa5b1", label="hand-written")
    rounds.set_xlabel("round (engine and hand-written interleaved)")
    rounds.set_ylabel("thousand changes/s")
    rounds.set_title("every round")
    rounds.set_ylim(bottom=0)
    rounds.legend(loc="lower right")
    fig.tight_layout()
    path = folder / "engine.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


@register("engine", charts=_engine_charts)
def run_engine(options: Options) -> dict[str, Any]:
    result = engine.measure(options.changes, options.rounds)
    engine.report(result)
    return result


@register("startup")
def run_startup(options: Options) -> dict[str, Any]:
    result = startup.measure()
    startup.report(result)
    return result


# --------------------------------------------------------------------------------------------------
# Transformer throughput (raw ceiling, Quix peer) and end-to-end latency: they need the stack

_transformer_rss: list[float] = []  # peak RSS of the transformer in every benchmark that ran one


def _peak_rss(result: dict[str, Any], key: str) -> dict[str, Any]:
    """`transformer_peak_rss_mb`: the highest of the throughput and latency runs measured so far."""
    if result.get(key) is not None:
        _transformer_rss.append(result[key])
    result["transformer_peak_rss_mb"] = max(_transformer_rss) if _transformer_rss else None
    return result


def _throughput_charts(result: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"eos": "transformer\nexactly-once", "alo": "transformer\nat-least-once",
             "raw": "raw ceiling\n(copy, EOS)", "quix": "Quix Streams\n(EOS)",
             "eos_plain": "transformer EOS,\nuncompressed staging"}  # fmt: skip
    keys = {"eos": "transformer_eos_events_per_s", "alo": "transformer_alo_events_per_s",
            "raw": "raw_ceiling_events_per_s", "quix": "quix_events_per_s",
            "eos_plain": "transformer_eos_plain_staging_events_per_s"}  # fmt: skip
    shown = [c for c in names if result.get(keys[c])]
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    medians = [result[keys[c]] / 1000 for c in shown]
    colors = {"eos": "#3b6ea8", "alo": "#6d9bd1", "raw": "#9aa5b1", "quix": "#d08c3b", "eos_plain": "#8fb3dc"}
    drawn = ax.bar([names[c] for c in shown], medians, color=[colors[c] for c in shown])
    ax.bar_label(drawn, labels=[f"{m:.0f}k" for m in medians])
    for i, contender in enumerate(shown):
        rounds = [r["changes_per_s"] / 1000 for r in result["throughput_runs"] if r["contender"] == contender]
        ax.plot([i] * len(rounds), rounds, "k.", alpha=0.6)
    ax.axhline(50, color="#c0392b", linestyle="--", linewidth=1, label="target 50k/s (exactly-once)")
    ax.set_ylabel("thousand staging changes/s (median; dots: rounds)")
    ax.set_title(
        f"{result['throughput_changes']:,} changes, 2 cores shared with the broker: "
        f"vs raw {result['transformer_vs_raw']}, vs Quix {result['transformer_vs_quix']}"
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    path = folder / "transformer_throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


@register("transformer", charts=_throughput_charts, needs_stack=True)
def run_transformer(options: Options) -> dict[str, Any]:
    result = transformer.measure(options.transformer_changes, options.transformer_rounds)
    transformer.report(result)
    return _peak_rss(result, "transformer_peak_rss_mb_throughput")


@register("lookups", needs_stack=True)
def run_lookups(options: Options) -> dict[str, Any]:
    result = lookups.measure(options.lookup_changes, options.rounds, options.lookup_rows)
    lookups.report(result)
    return result


@register("latency", charts=latency.cdf_chart, needs_stack=True)
def run_latency(options: Options) -> dict[str, Any]:
    result = latency.measure(latency.DEFAULT_RATE, options.latency_seconds)
    latency.report(result)
    return _peak_rss(result, "transformer_peak_rss_mb_latency")


@register("container", needs_stack=True)
def run_container(options: Options) -> dict[str, Any]:
    result = container.measure(options.container_runs)
    container.report(result)
    return result


# --------------------------------------------------------------------------------------------------
# Driver


def _split(name: str, result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    scalars = {k: v for k, v in result.items() if v is None or isinstance(v, (int, float, str, bool))}
    details = {k: v for k, v in result.items() if k not in scalars}
    return scalars, details


def _format(value: Any) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float) and value < 10:
        return f"{value:.3f}"
    if isinstance(value, (int, float)):
        return f"{value:,.0f}"
    return str(value)


def markdown(document: dict[str, Any], charts: list[Path]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Measured {document['measured_at']} at commit `{document['git_commit']}` on "
        f"{document['cores']} cores ({document['cpu_model']}), Python {document['python_version']}.",
        "",
        "| measurement | value | target | |",
        "| --- | ---: | --- | --- |",
    ]
    for key in RESULT_KEYS:
        value = document[key]
        target = TARGETS.get(key)
        verdict = ""
        if target is not None and isinstance(value, (int, float)):
            verdict = "met" if target.met(value) else "**missed**"
        lines.append(f"| `{key}` — {DESCRIPTIONS[key]} | {_format(value)} | {target or ''} | {verdict} |")
    lines += ["", "| benchmark | status |", "| --- | --- |"]
    lines += [f"| {name} | {status} |" for name, status in document["status"].items()]
    if charts:
        lines += ["", *(f"![{path.stem}]({path.name})" for path in charts)]
    return "\n".join(lines) + "\n"


def _merge_previous(document: dict[str, Any], path: Path, produced: set[str]) -> None:
    """Fill the keys the benchmarks run now did not produce from the previous results file."""
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for key in RESULT_KEYS:
        if key not in produced and previous.get(key) is not None:
            document[key] = previous[key]
    for name, status in previous.get("status", {}).items():
        if name not in document["status"]:
            # Kept twice is still kept from the run that measured it.
            if "(kept from " not in status:
                status = f"{status} (kept from {previous.get('measured_at')})"
            document["status"][name] = status
            if name in previous.get("details", {}):
                document["details"][name] = previous["details"][name]


def _write(path: Path, text: str) -> None:
    # Written beside and renamed, so a reader never sees half a file (*.tmp is git-ignored).
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks; results in bench/results/.")
    parser.add_argument("--only", action="append", choices=sorted(REGISTRY), help="run only these")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--changes", type=int, default=engine.DEFAULT_CHANGES, help="engine: changes")
    parser.add_argument("--rounds", type=int, default=engine.DEFAULT_ROUNDS, help="engine: rounds")
    parser.add_argument(
        "--transformer-changes", type=int, default=transformer.DEFAULT_CHANGES, help="throughput: changes"
    )
    parser.add_argument(
        "--transformer-rounds", type=int, default=transformer.DEFAULT_ROUNDS, help="throughput: rounds"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=latency.DEFAULT_SECONDS, help="latency: measured seconds"
    )
    parser.add_argument(
        "--lookup-changes", type=int, default=lookups.DEFAULT_CHANGES, help="lookups: changes"
    )
    parser.add_argument(
        "--lookup-rows", type=int, default=lookups.DEFAULT_ROWS, help="lookups: looked-up rows"
    )
    parser.add_argument(
        "--container-runs", type=int, default=container.DEFAULT_RUNS, help="container: start/stop runs"
    )
    parser.add_argument("--no-charts", action="store_true")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the previous latest.json numbers of the benchmarks not run now",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR)
    options = parser.parse_args(argv)
    if options.list:
        for name, bench in REGISTRY.items():
            print(f"{name}{'  (needs the stack)' if bench.needs_stack else ''}")
        return 0

    selected = options.only or list(REGISTRY)
    document: dict[str, Any] = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **machine_info(),
        **dict.fromkeys(RESULT_KEYS),
        "status": {},
        "details": {},
    }
    outcomes: dict[str, dict[str, Any]] = {}
    for name in selected:
        print(f"== {name}", flush=True)
        try:
            result = REGISTRY[name].run(options)
        except Exception as error:  # one broken benchmark must not lose the others' numbers
            traceback.print_exc()
            document["status"][name] = f"failed: {type(error).__name__}: {error}"
            continue
        scalars, details = _split(name, result)
        document.update(scalars)
        if details:
            document["details"][name] = details
        document["status"][name] = "ok"
        outcomes[name] = result

    options.output.mkdir(parents=True, exist_ok=True)
    if options.merge:
        produced = {key for result in outcomes.values() for key in result}
        _merge_previous(document, options.output / "latest.json", produced)
    charts: list[Path] = []
    if not options.no_charts and outcomes:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("charts skipped: matplotlib is not installed (pip install matplotlib)")
        else:
            for name, result in outcomes.items():
                chart = REGISTRY[name].charts
                if chart is not None:
                    charts += chart(result, options.output)
    if options.merge:  # the charts of the benchmarks kept from the previous run are still current
        kept = [name for name, status in document["status"].items() if "(kept from " in status]
        charts += [c for c in sorted(options.output.glob("*.png")) if c.stem.split("_")[0] in kept]
    _write(options.output / "latest.json", json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    _write(options.output / "latest.md", markdown(document, charts))
    print(f"wrote {options.output / 'latest.json'}, latest.md and {len(charts)} chart(s)")
    # Results kept from an earlier run (--merge) count as they were then: "ok (kept from ...)".
    return 0 if all(status.startswith("ok") for status in document["status"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
