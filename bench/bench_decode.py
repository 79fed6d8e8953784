"""How to parse a staging record's payload: the parsers compared on the benchmark's records (#13).

Run: `.venv/bin/python -m bench.bench_decode [--changes N] [--rounds R]`. Pinned to one core, CPU
time, rounds interleaved (every parser once per round), median µs per record. The records are the
engine benchmark's (`eventbus_dev.samples`: 20-column `public.claims`, Connect JSON with schemas,
≈ 6.5 kB a value of which the payload is ≈ 1 kB); "narrow" parsers keep of `before`/`after` only
the five columns the benchmark's mapping reads (what `ConnectJsonDecoder.read_only` is given).

Contenders:
* `orjson_whole`: the whole record, schema included (what a naive consumer does);
* `orjson_payload`: the payload after the topic's known schema prefix (the decoder until #13);
* `msgspec_payload`: the same span, msgspec without a type (for scale);
* `msgspec_narrow_typeddict`: msgspec with a TypedDict per topic (the decoder now): the skipped
  columns are never built, and the payload is still a dict for the generated mapping code;
* `msgspec_narrow_struct`: msgspec `Struct`s, the fastest, but the mapping code would then read
  attributes instead of keys and tell a missing column from a null one differently.
(pysimdjson's lazy documents were not taken: a parser holds one document, and a value kept past
the next parse — a record parked for a lookup — would read freed memory.)
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from bench.common import pinned_to_one_core, quiet_gc, timed
from eventbus.debezium.payload_parser import narrow_payload_loads
from eventbus_dev.samples import generate_records

COLUMNS = ("id", "status", "claim_type_code", "station_number", "amount", "updated_at")
PAYLOAD_SEP = b',"payload":'


class _Row(msgspec.Struct):
    id: Any = None
    status: Any = None
    claim_type_code: Any = None
    station_number: Any = None
    amount: Any = None
    updated_at: Any = None


class _Payload(msgspec.Struct):
    op: Any = None
    before: _Row | None = None
    after: _Row | None = None
    source: Any = None
    transaction: Any = None
    ts_ms: Any = None
    ts_us: Any = None
    ts_ns: Any = None


def contenders() -> dict[str, Callable[[bytes, int], Any]]:
    untyped = msgspec.json.Decoder().decode
    narrow = narrow_payload_loads(COLUMNS)
    struct = msgspec.json.Decoder(_Payload).decode
    return {
        "orjson_whole": lambda value, start: orjson.loads(value),
        "orjson_payload": lambda value, start: orjson.loads(memoryview(value)[start:-1]),
        "msgspec_payload": lambda value, start: untyped(memoryview(value)[start:-1]),
        "msgspec_narrow_typeddict": lambda value, start: narrow(memoryview(value)[start:-1]),
        "msgspec_narrow_struct": lambda value, start: struct(memoryview(value)[start:-1]),
    }


def measure(changes: int, rounds: int) -> dict[str, float]:
    values = [r.value for r in generate_records(changes, seed=20261202)]
    records = [(v, v.index(PAYLOAD_SEP) + len(PAYLOAD_SEP)) for v in values]
    runs: dict[str, list[float]] = {name: [] for name in contenders()}
    with pinned_to_one_core(), quiet_gc():
        for _ in range(rounds):
            for name, parse in contenders().items():

                def run(parse: Callable[[bytes, int], Any] = parse) -> None:
                    for value, start in records:
                        parse(value, start)

                timing, _ = timed(run)
                runs[name].append(timing.cpu_s / changes * 1e6)
    return {name: statistics.median(times) for name, times in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    result = measure(options.changes, options.rounds)
    base = result["orjson_payload"]
    for name, us in result.items():
        print(f"{name:26s} {us:6.2f} µs/record   {us / base:5.2f} x orjson_payload")


if __name__ == "__main__":
    main()
