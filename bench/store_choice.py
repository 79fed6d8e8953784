"""Why the lookup store is SQLite: the same workload on SQLite (the real `VersionStore`) and RocksDB.

Run: `.venv/bin/python -m bench.store_choice [--rows N] [--reads N]` (needs `pip install rocksdict`,
the maintained RocksDB binding with wheels on PyPI; not a dependency of the service).

The workload is the store's: a restore writes N row versions (JSON rows of a 6-column table, key
text, commit position) in batches of 5,000, each batch atomic with the topic offsets it came from;
then lookups read random keys' version lists, oldest first, from a freshly opened store (every read
from disk: the service's in-memory rows are not what is compared). Each store runs in its own
process, so its peak RSS is its own. RocksDB is laid out as SQLite is: one entry per version under
`table \\x1f key \\x1f commit \\x1f lsn` (fixed-width numbers), a version list is a prefix scan.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

TABLE = "claims/public.veterans(participant_id)"
BATCH = 5_000


def _row(key: int, version: int) -> dict[str, Any]:
    return {"participant_id": key, "branch": f"B{version % 7}", "active": version % 2 == 0,
            "station_number": 300 + key % 90, "name_hash": f"{key * 2654435761 % 2**32:08x}",
            "updated_at": 1_700_000_000_000_000 + version}  # fmt: skip


def _versions(rows: int) -> Iterator[tuple[str, int, int, dict[str, Any]]]:
    """Three versions for a third of the keys, one for the rest: `rows` versions in commit order
    (made as written, so that the process's memory is the store's, not the workload's)."""
    key, commit = 10**9, 0
    while True:
        key += 1
        for version in range(3 if key % 3 == 0 else 1):
            commit += 1
            if commit > rows:
                return
            yield str(key), commit, version, _row(key, version)


def _sample_keys(rows: int, reads: int) -> list[str]:
    keys = sorted({key for key, _, _, _ in _versions(rows)})
    return random.Random(3).sample(keys, reads)


def _sqlite(folder: Path, rows: int, reads: int) -> dict[str, float]:
    from eventbus.lookups.store import Version, VersionStore

    store = VersionStore(folder / "store.sqlite")
    started = time.perf_counter()
    for number, (key, commit, _version, row) in enumerate(_versions(rows), 1):
        store.add(TABLE, key, Version(commit, commit, 0, row, None))
        if number % BATCH == 0:
            store.commit_offsets({("staging.bench.public.veterans", 0): number})
    store.commit_offsets({("staging.bench.public.veterans", 0): rows})
    write_s = time.perf_counter() - started
    store.close()
    rss_written = _rss_mb()
    keys = _sample_keys(rows, reads)
    store = VersionStore(folder / "store.sqlite", cached_keys=2)
    started = time.perf_counter()
    found = sum(len(store.versions(TABLE, key)) for key in keys)
    read_s = time.perf_counter() - started
    store.close()
    size = sum(f.stat().st_size for f in folder.iterdir())
    return _figures(rows, write_s, reads, read_s, found, size, rss_written)


def _rocksdb(folder: Path, rows: int, reads: int) -> dict[str, float]:
    from rocksdict import Options, Rdict, WriteBatch

    def prefix(key: str) -> bytes:
        return f"{TABLE}\x1f{key}\x1f".encode()

    options = Options(raw_mode=True)
    options.create_if_missing(True)
    db = Rdict(str(folder / "rocks"), options)
    started = time.perf_counter()
    batch = WriteBatch(raw_mode=True)
    for number, (key, commit, _version, row) in enumerate(_versions(rows), 1):
        batch.put(
            prefix(key) + b"%020d\x1f%020d" % (commit, commit), orjson.dumps([commit, commit, 0, row, None])
        )
        if number % BATCH == 0:
            batch.put(b"\x00offsets/staging.bench.public.veterans/0", str(number).encode())
            db.write(batch)
            batch = WriteBatch(raw_mode=True)
    batch.put(b"\x00offsets/staging.bench.public.veterans/0", str(rows).encode())
    db.write(batch)
    db.flush()
    write_s = time.perf_counter() - started
    db.close()
    rss_written = _rss_mb()
    keys = _sample_keys(rows, reads)
    db = Rdict(str(folder / "rocks"), options)
    started = time.perf_counter()
    found = 0
    for key in keys:
        start = prefix(key)
        iterator = db.iter()
        iterator.seek(start)
        while iterator.valid() and iterator.key().startswith(start):
            orjson.loads(iterator.value())
            found += 1
            iterator.next()
    read_s = time.perf_counter() - started
    db.close()
    size = sum(f.stat().st_size for f in (folder / "rocks").rglob("*") if f.is_file())
    return _figures(rows, write_s, reads, read_s, found, size, rss_written)


def _rss_mb() -> float:
    """Peak RSS so far (the write phase's, read before the keys to sample are made)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _figures(
    rows: int, write_s: float, reads: int, read_s: float, found: int, size: int, rss_written: float
) -> dict[str, float]:
    return {
        "write_rows_per_s": round(rows / write_s),
        "read_us": round(read_s / reads * 1e6, 1),
        "versions_read": found,
        "disk_mb": round(size / 2**20, 1),
        "peak_rss_mb": rss_written,
    }


def _one(kind: str, rows: int, reads: int) -> dict[str, float]:
    """In a fresh process, in a fresh folder."""
    folder = Path(tempfile.mkdtemp(prefix=f"eventbus-store-{kind}-"))
    try:
        output = subprocess.run(
            [sys.executable, "-m", "bench.store_choice", "--only", kind, "--rows", str(rows),
             "--reads", str(reads), "--folder", str(folder)],
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
        ).stdout  # fmt: skip
        return json.loads(output.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "rocksdb"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only:
        run = _sqlite if args.only == "sqlite" else _rocksdb
        print(json.dumps(run(args.folder, args.rows, args.reads)))
        return 0
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        print("needs the RocksDB binding: .venv/bin/pip install rocksdict", file=sys.stderr)
        return 2
    results: dict[str, list[dict[str, float]]] = {"sqlite": [], "rocksdb": []}
    for number in range(1, args.rounds + 1):  # alternating, so a noisy minute hits both
        for kind in results:
            results[kind].append(_one(kind, args.rows, args.reads))
            print(f"round {number} {kind:>7}: {results[kind][-1]}", flush=True)
    print(f"\n{args.rows:,} row versions, {args.reads:,} cold reads, median of {args.rounds} rounds:")
    for kind, runs in results.items():
        median = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
        print(f"  {kind:>7}: write {median['write_rows_per_s']:>9,.0f} versions/s   "
              f"read {median['read_us']:>6.1f} µs   disk {median['disk_mb']:>6.1f} MB   "
              f"peak RSS {median['peak_rss_mb']:>6.1f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
