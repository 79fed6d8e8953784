"""Poison and hostile staging records (issue #8): corrupt bytes, wrong or garbage schema parts, missing
fields, wrong types, huge values, TOAST placeholders — through `Processor.handle`. Every case ends as a
valid curated event, a filtered change, or a dead letter with a reason; nothing escapes, nothing hangs.

Random mutation (seeded, so a failure names a reproducible case: 15k) and hypothesis (3 x 1.5k), plus
every column of every seed as a TOAST placeholder and the huge values, run over 20k cases in about
20 seconds. The bugs these found have their own regression tests in test_regressions.py.
"""

from __future__ import annotations

import copy
import json
import random
import struct
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbus.debezium.logical_types import PLACEHOLDER
from tests.unit.fuzz.harness import (
    CANARY,
    Harness,
    Seed,
    captured_seeds,
    generated_seeds,
    other_table_seed,
    sample_harness,
    scenario_harness,
    toast_everywhere,
)

pytestmark = pytest.mark.timeout(120)

RANDOM_CASES = 15_000
HYPOTHESIS = settings(
    max_examples=1_500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

# --- mutations -------------------------------------------------------------------------------------

JUNK_VALUES: list[Any] = [
    None, True, 0, -1, 2**63, -(2**63) - 1, 2**200, 1.5e308, -0.0, "", "x", CANARY, PLACEHOLDER,
    "2026-13-45T99:99:99Z", "AxY=", "!!not base64!!", [], [1, "a", None], {}, {"nested": {"x": [1]}},
    "\u0000\ud7ff\U0010ffff", "9" * 400,
]  # fmt: skip


def _junk(rng: random.Random, *extra: Any) -> Any:
    """A junk value, copied: the same list or dict object must not end up in two places."""
    return copy.deepcopy(rng.choice([*JUNK_VALUES, *extra]))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:50]):
            found += _paths(v, (*prefix, i))
    return found


def _set(document: Any, path: tuple[Any, ...], value: Any, *, delete: bool = False) -> None:
    node = document
    for step in path[:-1]:
        node = node[step]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


def _deep(depth: int, rng: random.Random) -> Any:
    value: Any = rng.choice(["leaf", 1, None])
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"d": value}
    return value


def mutate_document(document: dict[str, Any], rng: random.Random, others: list[dict[str, Any]]) -> Any:
    """A structural mutation of a parsed Connect JSON record."""
    paths = _paths(document)
    choice = rng.randrange(10)
    path = rng.choice(paths) if paths else ()
    if choice == 0 and path:  # a field goes missing
        _set(document, path, None, delete=True)
    elif choice in (1, 2) and path:  # a field of the wrong type
        _set(document, path, _junk(rng))
    elif choice == 3:  # a payload column of a row with a planted value of the wrong type
        payload = document.get("payload")
        row = payload.get(rng.choice(("before", "after"))) if isinstance(payload, dict) else None
        if isinstance(row, dict) and row:
            row[rng.choice(list(row))] = rng.choice([CANARY, 2**70, [CANARY], {"v": CANARY}, 1e300])
    elif choice == 4:  # the schema part of another record (another table, another version)
        donor = rng.choice(others)
        document["schema"] = orjson.loads(orjson.dumps(donor.get("schema")))  # a copy: donors stay intact
    elif choice == 5 and path:  # deep nesting where a scalar was
        _set(document, path, _deep(rng.randrange(50, 400), rng))
    elif choice == 6:  # the TOAST placeholder in a random column (also in non-string columns)
        copies = toast_everywhere(document)
        if copies:
            return rng.choice(copies)
    elif choice == 7:  # schema type names swapped
        schema = document.get("schema")
        schema_paths = [p for p in _paths(schema) if p and p[-1] == "type"] if schema else []
        if schema_paths:
            _set(
                schema,
                rng.choice(schema_paths),
                rng.choice(["string", "int64", "bytes", "struct", "map", "x"]),
            )
    elif choice == 8:  # op / source fields of the envelope
        payload = document.get("payload")
        if isinstance(payload, dict):
            field = rng.choice(["op", "source", "ts_ms", "transaction"])
            payload[field] = _junk(rng, "c", "u", "d", "r", "t", "m", "z")
            source = payload.get("source")
            if isinstance(source, dict):
                name = rng.choice(["lsn", "sequence", "txId", "snapshot", "ts_ms", "table"])
                source[name] = _junk(rng, '["1","x"]', '["9",null]', "[1,2,3]")
    else:  # the whole payload or schema replaced
        document[rng.choice(["payload", "schema"])] = _junk(rng)
    return document


def encode(document: Any) -> bytes:
    """JSON bytes of a mutated record; integers beyond 64 bits and deep nesting (beyond orjson's
    writer) are written by the standard library, as a Java producer could write them."""
    try:
        return orjson.dumps(document)
    except TypeError:
        return json.dumps(document, separators=(",", ":"), default=str).encode()


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """A byte-level corruption of a record."""
    choice = rng.randrange(7)
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    if choice == 0:  # flipped bytes
        raw = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    if choice == 1:  # truncated
        return data[: rng.randrange(len(data))]
    if choice == 2:  # garbage inserted
        at = rng.randrange(len(data))
        return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30))) + data[at:]
    if choice == 3:  # a Confluent wire-format header with some schema id in front (Avro framing)
        return b"\0" + struct.pack(">I", rng.randrange(2**32)) + data
    if choice == 4:  # not UTF-8 at all
        return data.decode("utf-8").encode("utf-16")
    if choice == 5:  # a segment duplicated
        a, b = sorted(rng.randrange(len(data)) for _ in range(2))
        return data[:b] + data[a:b] + data[b:]
    return data + b"}" * rng.randrange(1, 4)


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> Harness:
    return sample_harness("mock://fuzz-sample")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    return scenario_harness(tmp_path_factory.mktemp("fuzz"), "mock://fuzz-scenario")[0]


def _seeds() -> list[tuple[str, Seed]]:
    captured = captured_seeds()
    generated = generated_seeds(120, seed=8)
    return (
        [("sample", s) for s in captured]
        + [("scenario", s) for s in generated]
        + [
            ("sample", other_table_seed(captured[0].topic)),
            ("scenario", other_table_seed(generated[0].topic)),
        ]
    )


SEEDS = [(which, seed) for which, seed in _seeds() if seed.value is not None]  # tombstones: below


def _run(harnesses: dict[str, Harness], which: str, seed: Seed, key: bytes | None, value: bytes | None,
         case: str, canary: bool = False) -> str:  # fmt: skip
    try:
        return harnesses[which].check(seed.topic, key, value, canary=canary)
    except Exception as error:
        shown = value if value is None or len(value) < 600 else value[:600] + b"..."
        raise AssertionError(f"{case} (seed {seed.name}): {error!r}\nvalue: {shown!r}") from error


# --- tests -----------------------------------------------------------------------------------------


def test_the_seeds_themselves_become_events(sample: Harness, scenario: Harness) -> None:
    harnesses = {"sample": sample, "scenario": scenario}
    outcomes = [_run(harnesses, which, seed, seed.key, seed.value, "seed") for which, seed in SEEDS]
    assert outcomes.count("emitted") > 20  # the seeds are realistic: many become curated events


def test_random_mutations_of_real_records(sample: Harness, scenario: Harness) -> None:
    harnesses = {"sample": sample, "scenario": scenario}
    rng = random.Random(20261127)
    documents = [orjson.loads(seed.value) for _, seed in SEEDS if seed.value]
    for case in range(RANDOM_CASES):
        which, seed = rng.choice(SEEDS)
        key, value = seed.key, seed.value
        assert value is not None
        kind = rng.randrange(10)
        if kind < 6:  # structural
            document = mutate_document(orjson.loads(value), rng, documents)
            value = encode(document)
        elif kind < 9:  # bytes
            value = mutate_bytes(value, rng)
        else:  # the key instead, or no value at all (a tombstone)
            key = mutate_bytes(key or b"{}", rng) if rng.random() < 0.8 else None
            value = value if rng.random() < 0.9 else None
        _run(harnesses, which, seed, key, value, f"case {case}")
    total = sample.outcomes.total + scenario.outcomes.total
    assert total >= RANDOM_CASES
    # The mutations reach every outcome and every kind of dead letter, or they test too little.
    for harness in (sample, scenario):
        assert harness.outcomes.emitted and harness.outcomes.filtered and harness.outcomes.dead_lettered
    assert {"decode", "mapping"} <= set(sample.outcomes.kinds) | set(scenario.outcomes.kinds)
    # The allowed fast/checked differences stay rare: a systematic divergence must not hide in them.
    allowed = sum(sample.allowed_differences.values()) + sum(scenario.allowed_differences.values())
    # (15,000 cases: about 150, two thirds of them a broken key record on a change nothing emits from)
    assert allowed < RANDOM_CASES // 50, (sample.allowed_differences, scenario.allowed_differences)


def test_toast_placeholder_in_every_column(sample: Harness, scenario: Harness) -> None:
    harnesses = {"sample": sample, "scenario": scenario}
    cases = 0
    for which, seed in SEEDS:
        if seed.value is None:
            continue
        for toasted in toast_everywhere(orjson.loads(seed.value))[:40]:
            _run(harnesses, which, seed, seed.key, orjson.dumps(toasted), "toast")
            cases += 1
    assert cases > 500


def test_a_value_planted_in_any_column_never_reaches_a_reason(sample: Harness, scenario: Harness) -> None:
    """Row values may be personal data: a dead-letter reason names columns and types, never a value."""
    harnesses = {"sample": sample, "scenario": scenario}
    plants = [CANARY, [CANARY], {"v": CANARY}, f"2026-01-01{CANARY}", CANARY.encode().hex()]
    dead = cases = 0
    for which, seed in SEEDS:
        assert seed.value is not None
        document = orjson.loads(seed.value)
        for side in ("before", "after"):
            for number, column in enumerate(document["payload"].get(side) or {}):
                copy = orjson.loads(seed.value)
                copy["payload"][side][column] = plants[(number + cases) % len(plants)]
                outcome = _run(
                    harnesses, which, seed, seed.key, encode(copy), f"{side}.{column}", canary=True
                )
                dead += outcome == "dead_lettered"
                cases += 1
    assert dead > 100  # the planted values did make mappings fail


def test_huge_values_are_bounded(sample: Harness) -> None:
    """10 MB strings, very deep nesting, enormous numbers: handled, each within the test's timeout."""
    harnesses = {"sample": sample}
    which, seed = next((w, s) for w, s in SEEDS if w == "sample" and s.value and b'"op":"u"' in s.value)
    assert seed.value is not None
    document = orjson.loads(seed.value)
    column = next(iter(document["payload"]["after"]))
    huge = "v" * (10 * 1024 * 1024)
    cases: list[bytes] = []
    for side in ("after", "before"):
        for name in document["payload"][side]:
            copy = orjson.loads(seed.value)
            copy["payload"][side][name] = huge
            cases.append(orjson.dumps(copy))
    # Deeper than orjson parses: a decode error, not a crash.
    nested = b"[" * 5000 + b'"x"' + b"]" * 5000
    cases.append(seed.value.replace(b'"op":"u"', b'"op":"u","deep":' + nested))
    cases.append(b"[" * 200_000 + b"]" * 200_000)
    cases.append(seed.value.replace(b'"op":"u"', b'"op":"u","pad":"' + b"x" * 5_000_000 + b'"'))
    copy = orjson.loads(seed.value)
    copy["payload"]["after"][column] = int("9" * 4000)
    cases.append(encode(copy))
    cases.append(seed.value[:-1] + b',"z":' + b"9" * 5000 + b"}")
    for number, value in enumerate(cases):
        _run(harnesses, which, seed, seed.key, value, f"huge {number}")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@HYPOTHESIS
@given(index=st.integers(min_value=0), where=st.integers(min_value=0), replacement=json_values,
       delete=st.booleans())  # fmt: skip
def test_hypothesis_any_json_anywhere(
    sample: Harness, scenario: Harness, index: int, where: int, replacement: Any, delete: bool
) -> None:
    """Any JSON value (or nothing) at any place of a real record."""
    which, seed = SEEDS[index % len(SEEDS)]
    assert seed.value is not None
    document = orjson.loads(seed.value)
    paths = _paths(document)
    path = paths[where % len(paths)]
    _set(document, path, replacement, delete=delete)
    value = encode(document)
    _run({"sample": sample, "scenario": scenario}, which, seed, seed.key, value, f"{path} := {replacement!r}")


@HYPOTHESIS
@given(index=st.integers(min_value=0), data=st.binary(max_size=300), at=st.integers(min_value=0))
def test_hypothesis_bytes_spliced_into_records(
    sample: Harness, scenario: Harness, index: int, data: bytes, at: int
) -> None:
    which, seed = SEEDS[index % len(SEEDS)]
    assert seed.value is not None
    position = at % (len(seed.value) + 1)
    value = seed.value[:position] + data + seed.value[position:]
    _run({"sample": sample, "scenario": scenario}, which, seed, seed.key, value, f"splice at {position}")


@HYPOTHESIS
@given(index=st.integers(min_value=0), value=st.binary(max_size=200), key=st.none() | st.binary(max_size=60))
def test_hypothesis_arbitrary_bytes(
    sample: Harness, scenario: Harness, index: int, value: bytes, key: bytes | None
) -> None:
    which, seed = SEEDS[index % len(SEEDS)]
    _run({"sample": sample, "scenario": scenario}, which, seed, key, value, "arbitrary bytes")
