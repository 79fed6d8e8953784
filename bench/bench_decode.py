"""Micro-benchmark: µs per record to decode 100k generated 20-column Debezium updates (Connect JSON).

Run: `.venv/bin/python bench/bench_decode.py`. Prints the median of 5 runs; decode only (no mapping,
no value conversion), with the key decoded too when `--with-key` is given.
"""

from __future__ import annotations

import statistics
import sys
import time

from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus_dev.samples import generate_updates

N = 100_000
RUNS = 5


def main() -> None:
    with_key = "--with-key" in sys.argv
    t0 = time.perf_counter()
    records = generate_updates(N, seed=42)
    gen_us = (time.perf_counter() - t0) / N * 1e6
    values = [(r.value, r.key if with_key else None, r.topic) for r in records]
    size = sum(len(v) for v, _, _ in values) / N
    results = []
    for _ in range(RUNS):
        decode = ConnectJsonDecoder().decode
        start = time.perf_counter()
        for value, key, topic in values:
            decode(value, key, topic)
        results.append((time.perf_counter() - start) / N * 1e6)
    print(f"generated {N} updates ({size:.0f} B each) at {gen_us:.1f} µs/record")
    print(
        f"decode{' +key' if with_key else ''}: {statistics.median(results):.2f} µs/record "
        f"(median of {RUNS}; runs: {', '.join(f'{r:.2f}' for r in results)})"
    )


if __name__ == "__main__":
    main()
