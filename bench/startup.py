"""CLI start-up as an author feels it (#15 point 6): wall time of `eventbus --help`, of `eventbus mapping
validate` on the sample folder, and of `validate` followed by `mapping test` on it.

Each command runs as its own process (what a person or a CI step starts), `ROUNDS` times after one
warm-up run (so the operating system's file cache is warm, as it is at a desk); the median is
reported. Wall time, not CPU time: import time is what the person waits for.

Run alone: `.venv/bin/python -m bench.run --only startup --merge`.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

from bench.common import REPO

ROUNDS: Final = 7
SAMPLE: Final = REPO / "mappings" / "claims"
EVENTBUS: Final = Path(sys.executable).parent / "eventbus"


def _wall(*args: str) -> float:
    started = time.perf_counter()
    completed = subprocess.run([str(EVENTBUS), *args], capture_output=True, check=False, cwd=REPO)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"eventbus {' '.join(args)} exited {completed.returncode}: {completed.stderr[-500:]!r}"
        )
    return elapsed


def _compile_bytecode() -> None:
    """Write the package's .pyc files, as `pip install` of the wheel does. An editable checkout
    normally gets them on first import, but not where PYTHONDONTWRITEBYTECODE is set (as on the CI
    machines): every run would then compile ≈ 50 modules from source (≈ 45 ms), which no installed
    copy does."""
    import eventbus

    for package_dir in eventbus.__path__:
        compileall.compile_dir(package_dir, quiet=1)


def measure(rounds: int = ROUNDS) -> dict[str, Any]:
    _compile_bytecode()
    commands = {
        "cli_help_s": [("--help",)],
        "mapping_validate_s": [("mapping", "validate", str(SAMPLE))],
        "mapping_validate_test_s": [("mapping", "validate", str(SAMPLE)), ("mapping", "test", str(SAMPLE))],
    }
    for steps in commands.values():  # warm-up: file cache, .pyc files
        for step in steps:
            _wall(*step)
    runs: dict[str, list[float]] = {key: [] for key in commands}
    for _ in range(rounds):  # interleaved, so a noisy moment hits every command alike
        for key, steps in commands.items():
            runs[key].append(sum(_wall(*step) for step in steps))
    result: dict[str, Any] = {key: round(statistics.median(times), 3) for key, times in runs.items()}
    result["startup_runs_s"] = {key: [round(t, 3) for t in times] for key, times in runs.items()}
    # Wall time on a shared machine: the load says how far from an idle desk the numbers are.
    result["startup_conditions"] = {"load_average_1m_at_end": round(os.getloadavg()[0], 2), "rounds": rounds}
    return result


def report(result: dict[str, Any]) -> None:
    for key in ("cli_help_s", "mapping_validate_s", "mapping_validate_test_s"):
        print(f"{key}: {result[key]:.3f} s (median of {len(result['startup_runs_s'][key])})")
