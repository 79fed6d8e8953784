"""The fuzz harness: real change records, mutated, through `Processor.handle` with a collecting producer
and the mock registry; every case must end as curated events, a filtered change, or a dead letter
with a reason — never an exception.

Seeds are the captured Debezium records of the sample mappings (`mappings/claims/tests/*/*.jsonl`,
routed to the four sample mappings) and generated ones from `eventbus_dev.samples` (routed to
the transformer tests' two mappings), including REPLICA IDENTITY DEFAULT records with TOAST
placeholders. A fixture of another table is fed on a mapped topic too (the wrong table's schema).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import orjson

from eventbus.debezium.connect_json import ConnectJsonDecoder
from eventbus.debezium.logical_types import PLACEHOLDER
from eventbus.events.avro import AvroEventSerializer, RegistryMode, connect_registry
from eventbus.service import dead_letter as dl
from eventbus.service.loading import MappingSet, load_mapping_set
from eventbus.service.metrics import Tally
from eventbus.service.partitions import PartitionState
from eventbus.service.processor import Processor
from eventbus_dev.samples import generate_records
from tests.integration.transformer.support import Scenario

REPO = Path(__file__).resolve().parents[3]
DLQ = "fuzz.dlq"
CANARY = "CANARY-7f3a"  # a value planted in rows: must never show up in a dead-letter reason


@dataclass(frozen=True, slots=True)
class Seed:
    topic: str
    key: bytes | None
    value: bytes | None
    name: str


@dataclass
class Outcomes:
    emitted: int = 0
    filtered: int = 0
    dead_lettered: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.emitted + self.filtered + self.dead_lettered


class Produced(list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]]):
    def __call__(self, topic: str, value: bytes | None, key: bytes | None, headers: Any = None) -> None:
        self.append((topic, value, key, dict(headers or [])))


class CheckedPathOnly(ConnectJsonDecoder):
    """A decoder that hands out no payload: every record view takes the checked path (`decode`)."""

    __slots__ = ("payloads_refused",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.payloads_refused = 0

    def decode_payload(self, value: bytes | None, topic: str | None = None) -> None:
        self.payloads_refused += 1
        return None


class Harness:
    """One processor over a mappings folder; `check()` runs a record and judges its outcome."""

    def __init__(self, folder: Path, registry: str) -> None:
        self.mappings: MappingSet = load_mapping_set(folder)
        serializer = AvroEventSerializer.from_registry(
            connect_registry(registry), self.mappings.topic_schemas, mode=RegistryMode.AUTO_REGISTER
        )
        self.produced = Produced()
        self.tally = Tally(m.spec.name for m in self.mappings.mappings)
        self.processor = Processor(
            self.mappings, serializer, self.produced, dead_letter_topic=DLQ, group="fuzz", tally=self.tally
        )
        # The same processor restricted to its checked path (`decode` → `Change` for every record):
        # the payload fast path must produce exactly what it produces.
        self.checked_produced = Produced()
        self.checked = Processor(
            self.mappings, serializer, self.checked_produced, dead_letter_topic=DLQ, group="fuzz",
            tally=Tally(m.spec.name for m in self.mappings.mappings),
        )  # fmt: skip
        self.checked._decoder = CheckedPathOnly(schemas_enabled=True)
        # Checked as Avro without logical types: a long is a valid timestamp-millis whatever its year
        # (a column whose logical type vanished gives far-future times; Python's datetime stops at 9999).
        self.value_schemas = {
            t.topic: fastavro.parse_schema(_physical(t.value_schema)) for t in self.mappings.topic_schemas
        }
        self.outcomes = Outcomes()
        self.offset = 0
        self.allowed_differences: dict[str, int] = {}  # kind -> count (`_unread_part_dead_letters`)

    def check(self, topic: str, key: bytes | None, value: bytes | None, *, canary: bool = False) -> str:
        """Run one record; returns its outcome, or raises AssertionError naming what went wrong."""
        before = (self.tally.emitted_from, self.tally.filtered, self.tally.dead_lettered, self.tally.consumed)
        self.produced.clear()
        self.offset += 1
        # A fresh partition state: dedup must not hide a mutated copy of an earlier seed.
        state = PartitionState(None, None)
        self.tally.consumed += 1
        self.processor.handle(
            value, key, [("origin", b"fuzz")], topic, 0, self.offset,
            self.processor.routes.get(topic, ()), state,
        )  # fmt: skip
        after = (self.tally.emitted_from, self.tally.filtered, self.tally.dead_lettered, self.tally.consumed)
        self._same_as_the_checked_path(topic, key, value)
        moved = [a - b for a, b in zip(after[:3], before[:3], strict=True)]
        assert sorted(moved) == [0, 0, 1], f"one outcome per record, got {moved}"
        curated = [p for p in self.produced if p[0] != DLQ]
        dead = [p for p in self.produced if p[0] == DLQ]
        if moved[2]:
            assert dead, "dead-lettered but nothing written to the DLQ"
            for _, dlq_value, dlq_key, headers in dead:
                reason = headers[dl.REASON].decode()
                if dlq_value != value:  # only a value too large to be a dead letter itself is left out
                    limit = self.processor.max_record_bytes
                    assert len(value) > limit - 4096, "the DLQ keeps the original bytes"
                    assert dlq_value == b"" and "left out of this dead letter" in reason, reason
                else:
                    assert dlq_key == key, "the DLQ keeps the original key"
                assert reason.strip(), "a dead letter without a reason"
                assert headers[dl.KIND].decode() in dl.KINDS
                assert len(headers[dl.REASON]) <= dl.MAX_REASON_BYTES
                if canary:
                    assert CANARY not in reason, f"a row value leaked into the reason: {reason[:200]}"
                self.outcomes.kinds[headers[dl.KIND].decode()] = (
                    self.outcomes.kinds.get(headers[dl.KIND].decode(), 0) + 1
                )
            self.outcomes.dead_lettered += 1
            outcome = "dead_lettered"
        elif moved[0]:
            assert curated, "emitted-from without an event"
            self.outcomes.emitted += 1
            outcome = "emitted"
        else:
            assert not curated and not dead, "filtered but something was produced"
            self.outcomes.filtered += 1
            outcome = "filtered"
        for topic_out, event_value, event_key, headers in curated:
            # A curated event is valid Confluent-framed Avro of its topic's value schema.
            assert event_value is not None and event_value[:1] == b"\0" and event_key is not None
            fastavro.schemaless_reader(io.BytesIO(event_value[5:]), self.value_schemas[topic_out])
            assert headers["ce_id"]
        return outcome

    def _same_as_the_checked_path(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        fast = list(self.produced)
        checked = self._checked_path(topic, key, value)
        allowed = _unread_part_dead_letters(fast, checked)
        if fast != checked and allowed is not None:
            self.allowed_differences[allowed] = self.allowed_differences.get(allowed, 0) + 1
        if fast != checked and allowed == "unread part":
            return
        if fast != checked and allowed == "invalid UTF-8" and value is not None:
            # Only if the bad bytes are where no mapping reads: with them replaced, the checked
            # path must give exactly the fast path's output.
            checked = self._checked_path(topic, key, value.decode("utf-8", "replace").encode())
            if fast != checked and _unread_part_dead_letters(fast, checked) == "unread part":
                return  # the bad bytes were in an unread part too (a source field's name)
        assert fast == checked, f"fast path {_brief(fast)} != checked path {_brief(checked)}"

    def _checked_path(self, topic: str, key: bytes | None, value: bytes | None) -> _Produced:
        self.checked_produced.clear()
        decoder = self.checked._decoder
        assert isinstance(decoder, CheckedPathOnly)
        refused = decoder.payloads_refused
        self.checked.handle(
            value, key, [("origin", b"fuzz")], topic, 0, self.offset,
            self.checked.routes.get(topic, ()), PartitionState(None, None),
        )  # fmt: skip
        assert value is None or decoder.payloads_refused > refused, "the checked processor took the fast path"
        return list(self.checked_produced)


_Produced = list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]]


def _brief(produced: _Produced) -> list[Any]:
    """What differs, without the kilobytes of the record: topics and headers (DLQ) or values."""
    return [(p[0], p[3]) if p[0] == DLQ else (p[0], p[1], p[3]) for p in produced]


def _unread_part_dead_letters(fast: _Produced, checked: _Produced) -> str | None:
    """Which allowed difference this may be, if any. The checked path decodes the whole record at
    once and dead-letters a defect anywhere in it; the fast path decodes a part only when it is read,
    so a defect in a part that no mapping reads for this change is no dead letter there:

    * "unread part": the key record, read only for an event's id, or the source block, read by a
      mapping that emits and by the dedup watermark for a change with an outcome: both only on a
      change no mapping emits from;
    * "invalid UTF-8": text that is not valid UTF-8 in a column no mapping reads (skipped, never
      decoded); the caller checks that the bad bytes change nothing the mappings read.
    """
    reasons = [p[3][dl.REASON] for p in checked if p[0] == DLQ and p[3][dl.KIND] == b"decode"]
    if not reasons or len(reasons) != len(checked) or any(p[0] == DLQ for p in fast):
        return None
    unread_when_filtered = (b"key record", b": source.", b"'source' block")
    if not fast and all(any(part in reason for part in unread_when_filtered) for reason in reasons):
        return "unread part"
    if all(b"value record" in reason and b"Invalid UTF-8" in reason for reason in reasons):
        return "invalid UTF-8"
    return None


def _physical(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _physical(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_physical(v) for v in schema]
    return schema


def sample_harness(registry: str) -> Harness:
    return Harness(REPO / "mappings" / "claims", registry)


def scenario_harness(tmp: Path, registry: str) -> tuple[Harness, Scenario]:
    scenario = Scenario(tmp, source="claims")
    return Harness(scenario.write_mappings(), registry), scenario


def captured_seeds() -> list[Seed]:
    """The real records beside the sample mappings (what Debezium wrote on the stack)."""
    seeds = []
    for path in sorted((REPO / "mappings" / "claims" / "tests").glob("*/*.jsonl")):
        if path.name.endswith(".expected.jsonl"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            doc = orjson.loads(line)
            key = None if doc.get("key") is None else orjson.dumps(doc["key"])
            value = None if doc.get("value") is None else orjson.dumps(doc["value"])
            seeds.append(Seed(doc["topic"], key, value, f"{path.name}:{number}"))
    return seeds


def generated_seeds(n: int, seed: int) -> list[Seed]:
    """Generated records for the transformer tests' mappings, half with TOAST placeholders."""
    out = []
    for identity, toast in (("full", 0.0), ("default", 0.5)):
        for r in generate_records(n // 2, seed=seed, topic_prefix="staging.claims", warm_rows=20,
                                  replica_identity=identity, toast_fraction=toast):  # fmt: skip
            out.append(Seed(r.topic, r.key, r.value, f"generated:{identity}:{r.op}"))
    return out


def other_table_seed(topic: str) -> Seed:
    """A real record of another table (every logical type), fed on a mapped topic."""
    value = (REPO / "tests" / "fixtures" / "debezium" / "all_types_update.json").read_bytes().strip()
    return Seed(topic, None, value, "all_types_update on a mapped topic")


Mutator = Callable[[Any, Any], Any]


def toast_everywhere(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One copy per column of before/after with the TOAST placeholder in it."""
    copies = []
    payload = document.get("payload") or {}
    for side in ("before", "after"):
        row = payload.get(side)
        if not isinstance(row, dict):
            continue
        for column in row:
            copy = orjson.loads(orjson.dumps(document))
            copy["payload"][side][column] = PLACEHOLDER
            copies.append(copy)
    return copies
