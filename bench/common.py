"""Helpers shared by the benchmarks: honest per-core timing and a description of the machine.

"Per core" means CPU time of this process on one core: the process is pinned to a single CPU
(`os.sched_setaffinity`) so the scheduler cannot spread or migrate it, and durations are taken with
`time.process_time()`, which does not count time the process spent waiting while a noisy neighbour
used the core. Wall time is recorded next to it so the two can be compared.
"""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def pinned_to_one_core() -> Iterator[int | None]:
    """Pin this process to the last CPU it may run on, and restore its affinity afterwards.

    Yields that CPU (None where affinity is unsupported). The last CPU rather than CPU 0: interrupts
    and most system daemons favour CPU 0. Restoring matters: later benchmarks in the same process
    (the transformer, the end-to-end run) must have every core.
    """
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    cpu = max(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Move everything alive now (the generated input) out of the collector's sight during a timing.

    The benchmark holds 100k+ input records, far more live objects than the service ever has; left
    in the young generations they would make the cyclic collector's passes (triggered by the events
    the code under test allocates) scan them again and again. `gc.freeze()` keeps the collector
    running for what the measured code allocates, as in the service, without that artefact.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass(frozen=True, slots=True)
class Timing:
    cpu_s: float
    wall_s: float


def timed(run: Callable[[], Any]) -> tuple[Timing, Any]:
    """Run once; CPU and wall seconds."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = run()
    cpu1, wall1 = time.process_time(), time.perf_counter()
    return Timing(cpu1 - cpu0, wall1 - wall0), result


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_commit() -> str | None:
    """The commit measured, with `-dirty` when the working tree differs from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def machine_info() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "executable": sys.executable,
        # Which build runs the benchmarks: a distribution's (e.g. Debian's /usr) or a self-built one;
        # the same code runs about a fifth slower on an unoptimized build (bench/README.md).
        "python_base": sys.base_prefix,
        "python_shared_libpython": _loads_libpython(),
    }


def _loads_libpython() -> bool | None:
    """Whether this interpreter runs from a shared libpython (None: cannot tell off Linux)."""
    try:
        return "/libpython" in Path("/proc/self/maps").read_text()
    except OSError:
        return None
