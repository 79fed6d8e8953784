"""Realistic Debezium 3.x PostgreSQL change records for tests and benchmarks.

The records are what Kafka Connect's `JsonConverter` (schemas enabled) writes for the Debezium
PostgreSQL connector with `topic.prefix=claims` and default settings (`decimal.handling.mode=precise`,
`time.precision.mode=adaptive`), for a 20-column `public.claims` table with REPLICA IDENTITY FULL:
compact JSON, the schema first, field schemas keyed in JsonConverter's order
(`type, fields|items, optional, name, version, parameters, default, field`).

Every `SampleRecord` carries the exact Python values it encodes (`before`/`after`), so tests can check
that decoding gives them back. Generation is deterministic for a seed and cheap enough for benchmarks
(rows are kept in a pool and updates re-encode only the columns they change).
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import orjson

from eventbus.debezium.envelope import UNAVAILABLE
from eventbus.debezium.logical_types import PLACEHOLDER

DEBEZIUM_VERSION: Final = "3.6.1.Final"
SNAPSHOT_ALLOWED: Final = "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"


@dataclass(frozen=True, slots=True)
class SampleColumn:
    """One column of the sample table: its PostgreSQL type and the Connect schema Debezium gives it."""

    name: str
    pg_type: str
    schema: Mapping[str, Any]  # Connect field schema without the "field" key
    nullable: bool


def _col(
    name: str, pg_type: str, ctype: str, nullable: bool, logical: str | None = None, **params: str
) -> SampleColumn:
    schema: dict[str, Any] = {"type": ctype, "optional": nullable}
    if logical:
        schema["name"] = logical
        schema["version"] = 1
    if params:
        schema["parameters"] = dict(params)
    return SampleColumn(name, pg_type, schema, nullable)


COLUMNS: Final[tuple[SampleColumn, ...]] = (
    _col("id", "bigint primary key", "int64", False),
    _col("claim_number", "varchar(20)", "string", False),
    _col("claim_type_code", "varchar(12)", "string", False),
    _col("status", "varchar(40)", "string", False),
    _col("program_type_code", "varchar(10)", "string", True),
    _col("claimant_participant_id", "bigint", "int64", False),
    _col("veteran_participant_id", "bigint", "int64", False),
    _col("claimant_name", "varchar(200)", "string", True),
    _col("station_number", "integer", "int32", False),
    _col("priority", "smallint", "int16", False),
    _col(
        "amount",
        "numeric(12,2)",
        "bytes",
        True,
        "org.apache.kafka.connect.data.Decimal",
        scale="2",
        **{"connect.decimal.precision": "12"},
    ),
    _col("score", "double precision", "double", True),  # JsonConverter's name for FLOAT64
    _col("is_veteran", "boolean", "boolean", False),
    _col("claimant_uuid", "uuid", "string", False, "io.debezium.data.Uuid"),
    _col("metadata", "jsonb", "string", True, "io.debezium.data.Json"),
    _col("created_at", "timestamp(6)", "int64", False, "io.debezium.time.MicroTimestamp"),
    _col("updated_at", "timestamptz", "string", False, "io.debezium.time.ZonedTimestamp"),
    _col("claimant_birth_date", "date", "int32", True, "io.debezium.time.Date"),
    _col("date_closed", "date", "int32", True, "io.debezium.time.Date"),
    _col("notes", "text", "string", True),
)
"""The sample table's columns, in table order (write mappings against these names)."""

COLUMN_NAMES: Final[tuple[str, ...]] = tuple(c.name for c in COLUMNS)
KEY_COLUMNS: Final[tuple[str, ...]] = ("id",)

STATUSES: Final = (
    "Open",
    "Pending",
    "Ready for Decision",
    "Authorized",
    "Continued at Authorization",
    "Complete",
    "Cancelled",
)
CLAIM_TYPE_CODES: Final = ("010LCMN", "020NEW", "020SUPP", "110LCOMP", "130DPNEBNADJ", "400SUPP", "930AMC")
PROGRAM_TYPE_CODES: Final = ("CPL", "CPD", "PMC", None)
_NAMES: Final = (
    "Alvarez",
    "Brooks",
    "Chen",
    "Diallo",
    "Evans",
    "Fitzgerald",
    "García",
    "Hughes",
    "Ito",
    "Johnson",
    "Kowalski",
    "Nguyen",
    "O'Brien",
    "Patel",
    "Quinn",
    "Smith",
    "Washington",
)
_FLAGS: Final = ("hardship", "homeless", "terminal", "pow")
_EPOCH: Final = datetime(1970, 1, 1)
_EPOCH_DATE: Final = date(1970, 1, 1)
_BASE_TS: Final = datetime(2026, 11, 2, 14, 0, 0, tzinfo=UTC)


# --------------------------------------------------------------------------------------------------
# Schemas


def _field(schema: Mapping[str, Any], name: str) -> dict[str, Any]:
    out = dict(schema)
    out["field"] = name
    return out


def row_schema(topic_prefix: str = "claims", field: str = "after") -> dict[str, Any]:
    return {
        "type": "struct",
        "fields": [_field(c.schema, c.name) for c in COLUMNS],
        "optional": True,
        "name": f"{topic_prefix}.public.claims.Value",
        "field": field,
    }


def _source_schema() -> dict[str, Any]:
    def f(name: str, ctype: str, optional: bool) -> dict[str, Any]:
        return {"type": ctype, "optional": optional, "field": name}

    return {
        "type": "struct",
        "fields": [
            f("version", "string", False),
            f("connector", "string", False),
            f("name", "string", False),
            f("ts_ms", "int64", False),
            {
                "type": "string",
                "optional": True,
                "name": "io.debezium.data.Enum",
                "version": 1,
                "parameters": {"allowed": SNAPSHOT_ALLOWED},
                "default": "false",
                "field": "snapshot",
            },
            f("db", "string", False),
            f("sequence", "string", True),
            f("ts_us", "int64", True),
            f("ts_ns", "int64", True),
            f("schema", "string", False),
            f("table", "string", False),
            f("txId", "int64", True),
            f("lsn", "int64", True),
            f("xmin", "int64", True),
        ],
        "optional": False,
        "name": "io.debezium.connector.postgresql.Source",
        "field": "source",
    }


def value_schema(topic_prefix: str = "claims") -> dict[str, Any]:
    """The Connect schema of the value records (the Debezium envelope)."""
    return {
        "type": "struct",
        "fields": [
            row_schema(topic_prefix, "before"),
            row_schema(topic_prefix, "after"),
            _source_schema(),
            {
                "type": "struct",
                "fields": [
                    {"type": "string", "optional": False, "field": "id"},
                    {"type": "int64", "optional": False, "field": "total_order"},
                    {"type": "int64", "optional": False, "field": "data_collection_order"},
                ],
                "optional": True,
                "name": "event.block",
                "version": 1,
                "field": "transaction",
            },
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
            {"type": "int64", "optional": True, "field": "ts_us"},
            {"type": "int64", "optional": True, "field": "ts_ns"},
        ],
        "optional": False,
        "name": f"{topic_prefix}.public.claims.Envelope",
        "version": 2,
    }


def key_schema(topic_prefix: str = "claims") -> dict[str, Any]:
    return {
        "type": "struct",
        "fields": [{"type": "int64", "optional": False, "field": "id"}],
        "optional": False,
        "name": f"{topic_prefix}.public.claims.Key",
    }


def topic_for(topic_prefix: str = "claims") -> str:
    return f"{topic_prefix}.public.claims"


# --------------------------------------------------------------------------------------------------
# Encoders: exact Python value → what Debezium writes in JSON


def encode_decimal(value: Decimal, scale: int) -> str:
    """Base64 of the unscaled value's minimal big-endian two's complement (Java BigInteger bytes)."""
    unscaled = int(value.scaleb(scale))
    length = ((unscaled if unscaled >= 0 else ~unscaled).bit_length() + 8) // 8

    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode("ascii")


def encode_micro_timestamp(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def encode_zoned_timestamp(value: datetime) -> str:
    """ISO-8601 in UTC with 'Z', fraction digits trimmed as Java's ISO_OFFSET_DATE_TIME prints them."""
    v = value.astimezone(UTC)
    text = v.strftime("%Y-%m-%dT%H:%M:%S")
    if v.microsecond:
        text += f".{v.microsecond:06d}".rstrip("0")
    return text + "Z"


def encode_date(value: date) -> int:
    return (value - _EPOCH_DATE).days


def jsonb_text(obj: Mapping[str, Any]) -> str:
    """PostgreSQL's jsonb output: keys ordered by length then bytes, `", "` and `": "` separators."""
    ordered = {k: obj[k] for k in sorted(obj, key=lambda k: (len(k.encode()), k.encode()))}
    return json.dumps(ordered, ensure_ascii=False)


_ENCODERS: Final[dict[str, Callable[[Any], Any]]] = {
    "amount": lambda v: encode_decimal(v, 2),
    "claimant_uuid": str,
    "created_at": encode_micro_timestamp,
    "updated_at": encode_zoned_timestamp,
    "claimant_birth_date": encode_date,
    "date_closed": encode_date,
}


def encode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Exact values → Debezium's raw JSON values (the inverse of the decoder's converters)."""
    out = {}
    for name, value in row.items():
        if value is None:
            out[name] = None
        elif value is UNAVAILABLE:
            out[name] = PLACEHOLDER
        else:
            enc = _ENCODERS.get(name)
            out[name] = enc(value) if enc else value
    return out


# --------------------------------------------------------------------------------------------------
# Generation


@dataclass(slots=True)
class SampleRecord:
    """One generated record: Kafka key/value bytes plus the exact values they encode."""

    topic: str
    key: bytes
    value: bytes
    op: str
    key_values: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    lsn: int
    tx_id: int
    ts_ms: int


class _Gen:
    def __init__(self, seed: int, topic_prefix: str, replica_identity: str, toast_fraction: float) -> None:
        self.rng = random.Random(seed)
        self.prefix = topic_prefix
        self.full = replica_identity == "full"
        self.toast_fraction = toast_fraction
        self.next_id = 1_000_001
        self.rows: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (exact, raw) per live row
        self.lsn = 0x3A2F_1B40 + self.rng.randrange(1 << 20)
        self.tx_id = 7_400_000 + self.rng.randrange(10_000)
        self.tx_left = 0
        self.clock_us = int(_BASE_TS.timestamp()) * 1_000_000 + self.rng.randrange(10**6)
        self.value_head = b'{"schema":' + orjson.dumps(value_schema(topic_prefix)) + b',"payload":'
        self.key_head = b'{"schema":' + orjson.dumps(key_schema(topic_prefix)) + b',"payload":'
        self.topic = topic_for(topic_prefix)

    def new_row(self) -> dict[str, Any]:
        r = self.rng
        rid = self.next_id
        self.next_id += 1
        created = datetime(2015, 1, 1) + timedelta(microseconds=r.randrange(11 * 365 * 86_400 * 10**6))
        status = r.choice(STATUSES[:4])
        meta = {
            "source": r.choice(("VBMS", "eBenefits", "VA.gov", "mail")),
            "flags": [r.choice(("hardship", "homeless", "terminal", "pow")) for _ in range(r.randrange(3))],
            "intake_version": r.randrange(1, 9),
        }
        return {
            "id": rid,
            "claim_number": f"{600_000_000 + rid:09d}",
            "claim_type_code": r.choice(CLAIM_TYPE_CODES),
            "status": status,
            "program_type_code": r.choice(PROGRAM_TYPE_CODES),
            "claimant_participant_id": r.randrange(600_000_000, 700_000_000),
            "veteran_participant_id": r.randrange(600_000_000, 700_000_000),
            "claimant_name": None if r.random() < 0.05 else f"{r.choice(_NAMES)}, {r.choice(_NAMES)}",
            "station_number": r.choice((301, 317, 319, 330, 351, 372, 397)),
            "priority": r.randrange(6),
            "amount": None if r.random() < 0.1 else Decimal(r.randrange(-500_000, 50_000_000)).scaleb(-2),
            "score": None if r.random() < 0.1 else r.random() * 100,
            "is_veteran": r.random() < 0.8,
            "claimant_uuid": UUID(int=r.getrandbits(128), version=4),
            "metadata": None if r.random() < 0.1 else jsonb_text(meta),
            "created_at": created,
            "updated_at": datetime.fromtimestamp(self.clock_us // 10**6, UTC).replace(
                microsecond=self.clock_us % 10**6
            ),
            # Veterans' birth dates are mostly before 1970: negative day counts.
            "claimant_birth_date": None
            if r.random() < 0.05
            else date(1940, 1, 1) + timedelta(days=r.randrange(60 * 365)),
            "date_closed": None,
            "notes": None if r.random() < 0.5 else f"Claim note {r.randrange(10**6)}: evidence requested.",
        }

    def change(self, row: dict[str, Any], raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new version of `row`: the columns an update typically touches."""
        r = self.rng
        new, new_raw = dict(row), dict(raw)
        status = r.choice(STATUSES)
        upd = {
            "status": status,
            "updated_at": datetime.fromtimestamp(self.clock_us // 10**6, UTC).replace(
                microsecond=self.clock_us % 10**6
            ),
            "priority": r.randrange(6),
        }
        if r.random() < 0.3:
            upd["amount"] = Decimal(r.randrange(-500_000, 50_000_000)).scaleb(-2)
        if status in ("Complete", "Cancelled"):
            upd["date_closed"] = (_BASE_TS + timedelta(days=r.randrange(-30, 1))).date()
        new.update(upd)
        new_raw.update(encode_row(upd))
        return new, new_raw

    def source(self, snapshot: str, ts_ms: int) -> dict[str, Any]:
        return {
            "version": DEBEZIUM_VERSION,
            "connector": "postgresql",
            "name": self.prefix,
            "ts_ms": ts_ms,
            "snapshot": snapshot,
            "db": "claims",
            "sequence": f'["{self.lsn - 152}","{self.lsn}"]',
            "ts_us": ts_ms * 1000,
            "ts_ns": ts_ms * 1_000_000,
            "schema": "public",
            "table": "claims",
            "txId": self.tx_id,
            "lsn": self.lsn,
            "xmin": None,
        }

    def record(self, op: str) -> SampleRecord:
        r = self.rng
        self.clock_us += r.randrange(50, 5_000)
        if self.tx_left <= 0:
            self.tx_id += r.randrange(1, 4)
            self.tx_left = r.randrange(1, 6)
        self.tx_left -= 1
        self.lsn += r.randrange(120, 2_400)
        if op in ("u", "d") and not self.rows:
            op = "c"
        before = before_raw = after = after_raw = None
        if op in ("c", "r"):
            after = self.new_row()
            after_raw = encode_row(after)
            self.rows.append((after, after_raw))
        elif op == "u":
            i = r.randrange(len(self.rows))
            before, before_raw = self.rows[i]
            after, after_raw = self.change(before, before_raw)
            self.rows[i] = (after, after_raw)
            if not self.full:
                before = before_raw = None
                if after["notes"] is not None and r.random() < self.toast_fraction:
                    after = dict(after, notes=UNAVAILABLE)
                    after_raw = dict(after_raw, notes=PLACEHOLDER)
        else:  # "d"
            i = r.randrange(len(self.rows))
            before, before_raw = self.rows[i]
            self.rows[i] = self.rows[-1]
            self.rows.pop()
            if not self.full:  # REPLICA IDENTITY DEFAULT: only the key survives in `before`
                before = {c: (before[c] if c in KEY_COLUMNS else None) for c in COLUMN_NAMES}
                before_raw = {c: (before_raw[c] if c in KEY_COLUMNS else None) for c in COLUMN_NAMES}
        row_id = (after or before)["id"]  # type: ignore[index]
        ts_ms = self.clock_us // 1000
        emitted_us = self.clock_us + r.randrange(2_000, 40_000)
        payload = {
            "before": before_raw,
            "after": after_raw,
            "source": self.source("true" if op == "r" else "false", ts_ms),
            "transaction": None,
            "op": op,
            "ts_ms": emitted_us // 1000,
            "ts_us": emitted_us,
            "ts_ns": emitted_us * 1000,
        }
        value = self.value_head + orjson.dumps(payload) + b"}"
        key = self.key_head + b'{"id":' + str(row_id).encode() + b"}}"
        return SampleRecord(
            self.topic, key, value, op, {"id": row_id}, before, after, self.lsn, self.tx_id, ts_ms
        )


def generate_records(
    n: int,
    *,
    seed: int = 0,
    op_weights: Mapping[str, float] | None = None,
    topic_prefix: str = "claims",
    replica_identity: str = "full",
    toast_fraction: float = 0.0,
    warm_rows: int = 200,
) -> Iterator[SampleRecord]:
    """Yield `n` records for `public.claims`, deterministic for `seed`.

    `op_weights` picks operations (default: 10 % creates, 85 % updates, 5 % deletes; `r` gives snapshot
    reads). `warm_rows` creates that many rows first (not yielded) so updates have rows to change.
    `replica_identity="default"` drops `before` from updates, keeps only the key in deletes, and puts
    the TOAST placeholder in `notes` of `toast_fraction` of the updates, as PostgreSQL then does.
    """
    if replica_identity not in ("full", "default"):
        raise ValueError("replica_identity must be 'full' or 'default'")
    weights = dict(op_weights or {"c": 0.10, "u": 0.85, "d": 0.05})
    gen = _Gen(seed, topic_prefix, replica_identity, toast_fraction)
    for _ in range(warm_rows):
        gen.record("c")
    ops, cum = list(weights), []
    total = 0.0
    for op in ops:
        total += weights[op]
        cum.append(total)
    # One draw for all operations: `choices` per record costs more than building the record's JSON.
    for op in gen.rng.choices(ops, cum_weights=cum, k=n):
        yield gen.record(op)


def generate_updates(n: int, *, seed: int = 0) -> list[SampleRecord]:
    """`n` update records (the benchmark's workload)."""
    return list(generate_records(n, seed=seed, op_weights={"u": 1.0}))
