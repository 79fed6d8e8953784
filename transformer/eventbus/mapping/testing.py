"""Offline mapping tests and runs: no Kafka, no database, no registry.

Three kinds of tests per mapping file `<dir>/<name>.yaml`:
1. inline `tests:` in the mapping (changes written with decoded YAML values);
2. `<dir>/<name>.tests.yaml`: a YAML list of tests in the same format, for long suites;
3. `<dir>/tests/<mapping name>/<case>.jsonl`: real Debezium records (Connect JSON lines, schemas on
   or off) with the expected output `<case>.expected.jsonl` in `eventbus mapping run` format, so a
   reviewed run output becomes a regression test.

A failing test reads `name [file:line]: reason`, followed by a field-by-field diff.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import orjson
from pydantic import ValidationError

from eventbus.debezium.envelope import Change
from eventbus.debezium.logical_types import PLACEHOLDER
from eventbus.debezium.temporal_types import parse_iso_interval
from eventbus.errors import ValueApart
from eventbus.events.errors import SerializationFailed
from eventbus.events.model import CuratedEvent
from eventbus.mapping import avro
from eventbus.mapping.compiler import CompiledMapping, compile_mapping, test_change
from eventbus.mapping.errors import MappingError, MappingErrors, MappingEvaluationError
from eventbus.mapping.spec import ExpectedEvent, MappingSpec, MappingTest, load_mapping
from eventbus.mapping.tables import ColumnInfo
from eventbus.mapping.yaml_loader import load_yaml_file

TEST_SUFFIX = ".tests.yaml"
SKIPPED_DIRS = frozenset({"tables", "schemas", "tests"})
# Not mappings although they are YAML beside them: the committed schema lock (events/schema_lock.py).
SKIPPED_FILES = frozenset({"schemas.lock.yaml"})


@dataclass(slots=True)
class TestResult:
    mapping: str
    name: str
    file: str
    line: int | None
    passed: bool
    reason: str = ""
    diff: list[str] = field(default_factory=list)

    __test__ = False  # not a pytest class

    def headline(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{self.name} [{where}]" + ("" if self.passed else f": {self.reason}")


# --- discovery ----------------------------------------------------------------------------------


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Mapping files under `paths` (files are taken as given; test, table and schema files skipped)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
            continue
        for candidate in sorted(path.rglob("*")):
            if candidate.suffix not in (".yaml", ".yml") or candidate.name.endswith(TEST_SUFFIX):
                continue
            if candidate.name in SKIPPED_FILES:
                continue
            if SKIPPED_DIRS.intersection(candidate.relative_to(path).parts[:-1]):
                continue
            found.append(candidate)
    return found


# --- running changes ----------------------------------------------------------------------------


def _rfc3339(time_ms: int | None) -> str | None:
    if time_ms is None:
        return None
    moment = dt.datetime.fromtimestamp(time_ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_record(compiled: CompiledMapping, event: CuratedEvent) -> dict[str, Any]:
    """One output line of `eventbus mapping run`: topic, key and value in Avro JSON form, headers."""
    key_schema, value_schema = compiled.schemas_for_topic(event.topic)
    headers = {
        "ce_specversion": "1.0",
        "ce_id": event.event_id,
        "ce_type": event.event_type,
        "ce_source": event.event_source,
        "ce_subject": event.subject,
        "eventbus_mapping": event.mapping,
        "eventbus_mapping_version": str(event.mapping_version),
    }
    time = _rfc3339(event.time_ms)
    if time is not None:
        headers["ce_time"] = time
    return {
        "topic": event.topic,
        "key": avro.to_avro_json(event.key, key_schema),
        "value": avro.to_avro_json(event.value, value_schema),
        "headers": headers,
    }


def offline_serializer(compiled: CompiledMapping) -> Callable[[CuratedEvent], object]:
    """The service's Avro encoding of `compiled`'s events (schema ids do not matter offline): a value
    its schema cannot hold (a string into a map, an integer beyond 64 bits, ...) fails offline with
    the `SerializationFailed` the service would dead-letter, not only in production."""
    from eventbus.events.avro import AvroEventSerializer, TopicSchemas, subject_name
    from eventbus.events.schema_form import load_schema_file

    schemas = [
        TopicSchemas(
            plan.topic,
            load_schema_file(Path(plan.key_schema.path)),
            load_schema_file(Path(plan.value_schema.path)),
        )
        for plan in compiled.analysis.emits
    ]
    ids = {subject_name(s.topic, part): 1 for s in schemas for part in ("key", "value")}
    return AvroEventSerializer(schemas, ids).serialize


@dataclass(slots=True)
class RunOutcome:
    events: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # tombstones and blank lines


def run_records(compiled: CompiledMapping, lines: Iterable[bytes | str]) -> RunOutcome:
    """Decode Debezium Connect JSON lines and run the mapping; failures become dead letters.

    A line is either the record value itself or `{"key": ..., "value": ..., "topic": ...}`.
    Schemaless records (schemas.enable=false) are converted with the captured table schema when the
    mapping has one, so decimals and timestamps come out exact as they would in production.
    """
    from eventbus.debezium.connect_json import ConnectJsonDecoder, SchemalessTableSchema
    from eventbus.debezium.errors import DecodeError

    decoder = ConnectJsonDecoder()
    serialize = offline_serializer(compiled)  # all of a record's events encode, or it is a dead letter
    captured = compiled.analysis.table
    captured_schema = captured.table_schema() if captured is not None else None
    outcome = RunOutcome()
    recorded = None
    if compiled.lookups:
        from eventbus.lookups.offline import RecordedLookups, commit_order

        recorded = RecordedLookups(compiled)
        # Every related row first (all of them are known offline), then the triggers in commit order
        triggers: list[tuple[tuple[int, int], int, int, str, Change]] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not text.strip():
            outcome.skipped += 1
            continue
        try:
            document = orjson.loads(text)
            key = value = None
            topic = None
            if isinstance(document, dict) and "value" in document and not {"payload", "op"} & document.keys():
                topic = document.get("topic")
                key = None if document.get("key") is None else orjson.dumps(document["key"])
                value = None if document["value"] is None else orjson.dumps(document["value"])
            else:
                value = text.encode("utf-8")
            change = decoder.decode(value, key, topic)
            if change is None:
                outcome.skipped += 1
                continue
            if (
                isinstance(change.table, SchemalessTableSchema)
                and captured_schema is not None
                and change.table.name == compiled.spec.source.table
            ):
                # Only the mapped table's own records: another table's stays what it is (and is
                # skipped below), never read as if it were the mapped one.
                change.table = captured_schema
            if recorded is not None and recorded.is_related(change):
                recorded.add(change)
            if change.table.name != compiled.spec.source.table:
                if recorded is None or not recorded.is_related(change):
                    outcome.skipped += 1  # another table's record: the service would not route it here
                continue
            if recorded is not None:
                triggers.append((commit_order(change), len(triggers), number, text, change))
                continue
            events = compiled.bind(change.table)(change)
            for event in events:
                serialize(event)
            outcome.events.extend(event_record(compiled, event) for event in events)
        except (orjson.JSONDecodeError, DecodeError, MappingEvaluationError, SerializationFailed) as error:
            _dead_letter(outcome, compiled, number, text, error)
    if recorded is not None:
        for _, _, number, text, change in sorted(triggers, key=lambda trigger: trigger[:2]):
            try:
                events = compiled.bind(change.table)(change, recorded.at(change))
                for event in events:
                    serialize(event)
            except (MappingEvaluationError, SerializationFailed) as error:
                _dead_letter(outcome, compiled, number, text, error)
                continue
            outcome.events.extend(event_record(compiled, event) for event in events)
    return outcome


def _dead_letter(
    outcome: RunOutcome, compiled: CompiledMapping, number: int, text: str, error: Exception
) -> None:
    # The author's test data: the reason shows the value the service's dead letter leaves out (the
    # record is in the output anyway)
    if isinstance(error, orjson.JSONDecodeError):
        reason = f"not valid JSON: {error}"
    else:
        reason = error.with_data() if isinstance(error, ValueApart) else str(error)
    outcome.dead_letters.append(
        {
            "line": number,
            "reason": reason,
            "mapping": compiled.spec.name,
            "mapping_version": compiled.spec.version,
            "record": text.rstrip("\n"),
        }
    )


# --- comparing ------------------------------------------------------------------------------------


def _normal(value: Any, record_field: avro.RecordField | None) -> Any:
    """A value in comparable form: expected YAML values and actual Avro-ready values meet here."""
    if record_field is None:
        return value
    if isinstance(value, str | int | float | Decimal | dt.date | dt.time) and not isinstance(value, bool):
        try:
            _, coerce = avro.coercer(record_field.type)
            value = coerce(value)
        except ValueError:
            return value
    if record_field.type.kind == "decimal" and isinstance(value, Decimal):
        return value.normalize()  # 12.5 and 12.50 are the same amount
    if record_field.type.kind == "decimal" and isinstance(value, str):
        try:
            return Decimal(value).normalize()
        except ArithmeticError:
            return value
    return avro.json_value(value, record_field.type)


def _shown(value: Any, record_field: avro.RecordField | None) -> str:
    """A value as a diff shows it, expected and actual alike: Avro's JSON form, but times as ISO-8601
    text (an epoch count says little) and decimals as their digits."""
    if record_field is None:
        return repr(value)
    normal = _normal(value, record_field)
    kind = record_field.type.kind
    if isinstance(normal, int) and not isinstance(normal, bool):
        unit = {"timestamp-millis": 1_000, "local-timestamp-millis": 1_000,
                "timestamp-micros": 1_000_000, "local-timestamp-micros": 1_000_000}.get(kind)  # fmt: skip
        if unit is not None:
            moment = _EPOCH + dt.timedelta(microseconds=normal * (1_000_000 // unit))
            text = moment.isoformat(timespec="microseconds" if unit == 1_000_000 else "milliseconds")
            return text + ("Z" if not kind.startswith("local") else "")
        if kind == "date":
            return (dt.date(1970, 1, 1) + dt.timedelta(days=normal)).isoformat()
    if isinstance(normal, Decimal):
        return format(normal, "f")
    return repr(normal)


_EPOCH: Final = dt.datetime(1970, 1, 1)


def _where_texts_differ(want: Any, got: Any) -> str:
    """For two long texts, where the first difference is (a diff of 200 characters says little)."""
    if not (isinstance(want, str) and isinstance(got, str)) or max(len(want), len(got)) <= 40:
        return ""
    pairs = enumerate(zip(want, got, strict=False))
    at = next((i for i, (a, b) in pairs if a != b), min(len(want), len(got)))
    return (
        f"\n      first difference at character {at}: expected …{want[max(at - 10, 0) : at + 20]!r}…, "
        f"got …{got[max(at - 10, 0) : at + 20]!r}…"
    )


def _compare_dict(
    what: str, expected: dict[str, Any], actual: dict[str, Any], schema: avro.RecordSchema, exact: bool
) -> list[str]:
    diff = []
    for name, want in expected.items():
        record_field = schema.fields.get(name)
        if name not in actual:
            diff.append(f"  {what}.{name}: expected {_shown(want, record_field)}, missing")
        elif _normal(want, record_field) != _normal(actual[name], record_field):
            expected_text, actual_text = _shown(want, record_field), _shown(actual[name], record_field)
            diff.append(
                f"  {what}.{name}: expected {expected_text}, got {actual_text}"
                + _where_texts_differ(want, actual[name])
            )
    if exact:
        for name in actual.keys() - expected.keys():
            diff.append(f"  {what}.{name}: not expected, got {_shown(actual[name], schema.fields.get(name))}")
    return diff


def _event_diff(compiled: CompiledMapping, want: ExpectedEvent, event: CuratedEvent) -> list[str]:
    key_schema, value_schema = compiled.schemas_for_topic(event.topic)
    lines = []
    if want.topic is not None and want.topic != event.topic:
        lines.append(f"  topic: expected {want.topic!r}, got {event.topic!r}")
    if want.key is not None:
        lines += _compare_dict("key", want.key, event.key, key_schema, exact=True)
    if want.value is not None:
        lines += _compare_dict("value", want.value, event.value, value_schema, exact=True)
    if want.contains is not None:
        lines += _compare_dict("value", want.contains, event.value, value_schema, exact=False)
    return lines


def _expected_line(want: ExpectedEvent) -> str:
    shown = {k: v for k, v in (("topic", want.topic), ("key", want.key), ("value", want.value),
                               ("contains", want.contains)) if v is not None}  # fmt: skip
    return orjson.dumps(shown, default=str).decode()


def compare_events(
    compiled: CompiledMapping, expected: list[ExpectedEvent], events: list[CuratedEvent]
) -> list[str]:
    """Field-by-field differences (empty when the events match)."""
    diff: list[str] = []
    if len(expected) != len(events):
        diff.append(f"  expected {len(expected)} event(s), got {len(events)}")
        for want in expected:
            diff.append(f"  expected: {_expected_line(want)}")
        for event in events:
            record = event_record(compiled, event)
            got = orjson.dumps({"topic": record["topic"], "value": record["value"]}).decode()
            diff.append(f"  got:      {got}")
        return diff
    per_event = [_event_diff(compiled, want, event) for want, event in zip(expected, events, strict=True)]
    if any(per_event) and len(events) > 1 and _matches_in_another_order(compiled, expected, events):
        return [
            "  the expected events are all there, in another order: the mapping emits them as "
            + ", ".join(event.topic for event in events)
            + " (its emit blocks' order); list them in that order"
        ]
    for index, lines in enumerate(per_event):
        if lines:
            diff.append(f"  event {index}:" if len(events) > 1 else "")
            diff.extend(lines)
    return [line for line in diff if line]


def _matches_in_another_order(
    compiled: CompiledMapping, expected: list[ExpectedEvent], events: list[CuratedEvent]
) -> bool:
    unused = list(events)
    for want in expected:
        match = next((event for event in unused if not _event_diff(compiled, want, event)), None)
        if match is None:
            return False
        unused.remove(match)
    return True


# --- running tests ----------------------------------------------------------------------------


# Debezium's timestamp types without a zone: the service reads them as naive (wall-clock) datetimes.
_NAIVE_TIMESTAMPS: Final = frozenset(
    {
        "org.apache.kafka.connect.data.Timestamp",
        "io.debezium.time.Timestamp",
        "io.debezium.time.MicroTimestamp",
        "io.debezium.time.NanoTimestamp",
    }
)


def _test_value(column: ColumnInfo, value: Any) -> Any:
    """A column's value as written in a test (YAML: numbers, text, ISO-8601) → the Python value the
    service's decoder gives for that column, so that conditions and arithmetic see what they see in
    production (`after.total > 100` on a numeric column compares decimals, not text). Raises
    ValueError saying what the text should look like."""
    kind = column.kind
    if value is None or value.__class__ is bool or (value.__class__ is str and value == PLACEHOLDER):
        return value
    if kind == "decimal" and isinstance(value, str | int | float):
        try:
            result = Decimal(str(value).strip())
        except ArithmeticError:
            raise ValueError("a decimal is written as text, e.g. \"1234.50\"") from None
        if not result.is_finite():
            raise ValueError("a decimal column holds finite numbers")
        return result
    if kind == "date" and isinstance(value, str):
        return dt.date.fromisoformat(value.strip())
    if kind == "datetime" and isinstance(value, str | dt.datetime):
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value.strip())
        if column.logical in _NAIVE_TIMESTAMPS:  # a wall-clock reading: no zone, as in the service
            return moment if moment.tzinfo is None else moment.astimezone(dt.UTC).replace(tzinfo=None)
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    if kind == "time" and isinstance(value, str) and column.logical != "io.debezium.time.ZonedTime":
        return dt.time.fromisoformat(value.strip())
    if kind == "uuid" and isinstance(value, str):
        return UUID(value.strip())
    if kind == "duration" and isinstance(value, str):
        interval = parse_iso_interval(value.strip())  # ISO-8601, e.g. P1Y2M3DT4H5M6.5S
        if column.logical == "io.debezium.time.Interval":
            return interval  # interval.handling.mode=string: months, days and time kept apart
        return interval.to_timedelta()  # MicroDuration: Debezium's months of 365.25/12 days
    return value


def _test_row(
    columns: Mapping[str, ColumnInfo] | None, row: dict[str, Any] | None, where: str
) -> dict[str, Any] | None:
    if row is None or not columns:
        return row
    out = {}
    for name, value in row.items():
        column = columns.get(name)
        try:
            out[name] = value if column is None else _test_value(column, value)
        except ValueError as error:
            raise _TestDataError(
                f"{where}.{name}: {value!r} does not fit the {column.kind} column {name} ({error})"  # type: ignore[union-attr]
            ) from None
    return out


class _TestDataError(Exception):
    """A test's row value that cannot be the column's value; the test fails with this message."""


def run_test(
    compiled: CompiledMapping,
    test: MappingTest,
    file: str,
    line: int | None,
    serialize: Callable[[CuratedEvent], object] | None = None,
) -> TestResult:
    """One inline test; `serialize` (`offline_serializer`) also encodes its events, as the service does."""
    spec = compiled.spec
    change = test.change
    source = change.source.model_dump() if change.source else None
    result = TestResult(spec.name, test.name, file, line, passed=False)
    table = compiled.analysis.table
    columns = table.columns if table is not None else None
    try:
        before = _test_row(columns, change.before, "change.before")
        after = _test_row(columns, change.after, "change.after")
        given_tables = _given_tables(compiled, test.given)
    except _TestDataError as error:
        result.reason = f"test data: {error}"
        return result
    decoded = test_change(spec, change.op_code, before, after, source=source, key=change.key)
    lookups = None
    if compiled.lookups:
        from eventbus.lookups.offline import given_lookups  # the lookups package builds on this one

        lookups = given_lookups(compiled, test.given, decoded, given_tables)
    try:
        events = compiled.apply_decoded(decoded, lookups)
        if serialize is not None:
            for event in events:
                serialize(event)
    except MappingEvaluationError as error:
        # Test data, so the value is shown (and may be expected); dead-letter reasons leave it out
        if test.expect_error is not None and test.expect_error in error.with_data():
            result.passed = True
        else:
            result.reason = f"evaluation error: {error.with_data()}" + _expected_error(test)
        return result
    except SerializationFailed as error:  # what the service would dead-letter (kind serialization)
        if test.expect_error is not None and test.expect_error in str(error):
            result.passed = True
        else:
            result.reason = f"serialization error (the service would dead-letter it): {error}"
            result.reason += _expected_error(test)
        return result
    if test.expect_error is not None:
        result.reason = f"expected an error containing {test.expect_error!r}, got {len(events)} event(s)"
        return result
    diff = compare_events(compiled, test.expect or [], events)
    result.passed = not diff
    result.diff = diff
    result.reason = "" if result.passed else "events differ"
    return result


class GivenRowsTable:
    """The table version of an inline test's `given:` rows of a looked-up table: its converters turn
    the values as written in the test into the values the service decodes (`_test_value`)."""

    def __init__(self, name: str, columns: Mapping[str, ColumnInfo]) -> None:
        self.name = name
        self.fingerprint = f"given:{name}"
        self.columns = columns

    def converter(self, column: str) -> Callable[[Any], Any]:
        info = self.columns[column]
        return lambda value: _test_value(info, value)


def _given_tables(
    compiled: CompiledMapping, given: dict[str, list[dict[str, Any]]]
) -> dict[str, GivenRowsTable]:
    """The looked-up tables' versions for `given:` rows; raises `_TestDataError` for a value that
    cannot be its column's (checked now, so the test names it instead of failing as it is read)."""
    if not given:
        return {}
    from eventbus.mapping.lookups import lookup_tables

    described = [table for table in lookup_tables(compiled.spec, []).values() if table is not None]
    tables = {table.name: GivenRowsTable(table.name, table.columns) for table in described}
    for name, rows in given.items():
        version = tables.get(name)
        for index, row in enumerate(rows):
            _test_row(version.columns if version else None, row, f"given.{name}[{index}]")
    return tables


def _expected_error(test: MappingTest) -> str:
    return "" if test.expect_error is None else f" (expected an error containing {test.expect_error!r})"


def _line_of(spec: MappingSpec, path: tuple[Any, ...]) -> int | None:
    locations = spec._locations
    position = locations.of_value(path) if locations else None
    return position.line if position else None


def _sibling_tests(mapping_file: Path) -> Iterator[tuple[MappingTest | MappingError, int | None]]:
    suite = mapping_file.with_name(mapping_file.name.rsplit(".", 1)[0] + TEST_SUFFIX)
    if not suite.exists():
        return
    data, locations = load_yaml_file(suite)
    if not isinstance(data, list):
        yield MappingError("a tests file holds a YAML list of tests", file=suite, line=1, column=1), 1
        return
    for index, item in enumerate(data):
        position = locations.of_value((index,))
        line = position.line if position else None
        try:
            yield MappingTest.model_validate(item), line
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            yield MappingError(f"test {index}: {where}: {first['msg']}", file=suite, line=line), line


def _fixture_cases(compiled: CompiledMapping, mapping_file: Path) -> Iterator[TestResult]:
    folder = mapping_file.parent / "tests" / compiled.spec.name
    if not folder.is_dir():
        return
    for case in sorted(folder.glob("*.jsonl")):
        if case.name.endswith(".expected.jsonl"):
            continue
        expected_file = case.with_name(case.name[: -len(".jsonl")] + ".expected.jsonl")
        result = TestResult(compiled.spec.name, case.stem, str(case), None, passed=False)
        if not expected_file.exists():
            result.reason = f"no expected output {expected_file.name} (write it from `eventbus mapping run`)"
            yield result
            continue
        outcome = run_records(compiled, case.read_text(encoding="utf-8").splitlines())
        if outcome.dead_letters:
            first = outcome.dead_letters[0]
            result.line = first["line"]
            result.reason = f"dead letter: {first['reason']}"
            yield result
            continue
        expected = [
            orjson.loads(x) for x in expected_file.read_text(encoding="utf-8").splitlines() if x.strip()
        ]
        diff = _compare_records(expected, outcome.events)
        result.passed = not diff
        result.diff = diff
        result.reason = "" if result.passed else f"output differs from {expected_file.name}"
        yield result


def _compare_records(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    diff = []
    if len(expected) != len(actual):
        diff.append(f"  expected {len(expected)} event(s), got {len(actual)}")
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        for part in ("topic", "key", "value", "headers"):
            if part not in want:
                continue  # an expected line may leave out headers
            if isinstance(want[part], dict) and isinstance(got.get(part), dict):
                for name in sorted(want[part].keys() | got[part].keys()):
                    if want[part].get(name, "<missing>") != got[part].get(name, "<missing>"):
                        shown_want = want[part].get(name, "<missing>")
                        shown_got = got[part].get(name, "<missing>")
                        diff.append(
                            f"  line {index + 1} {part}.{name}: expected {shown_want!r}, got {shown_got!r}"
                        )
            elif want[part] != got.get(part):
                diff.append(f"  line {index + 1} {part}: expected {want[part]!r}, got {got.get(part)!r}")
    return diff


def test_mapping_file(path: str | Path, *, hash_salt: bytes | str = b"") -> list[TestResult]:
    """Load, compile and run every test of one mapping file; a load error is one failing result."""
    path = Path(path)
    try:
        spec = load_mapping(path)
        compiled = compile_mapping(spec, hash_salt=hash_salt)
    except MappingError as error:
        errors = error.errors if isinstance(error, MappingErrors) else [error]
        return [TestResult(path.stem, "load", str(path), e.line, False, str(e)) for e in errors]
    serialize = offline_serializer(compiled)
    results = [
        run_test(compiled, test, str(path), _line_of(spec, ("tests", index)), serialize)
        for index, test in enumerate(spec.tests)
    ]
    for item, line in _sibling_tests(path):
        if isinstance(item, MappingError):
            results.append(
                TestResult(spec.name, "tests file", item.file or "", item.line, False, item.message)
            )
        else:
            suite = path.with_name(path.name.rsplit(".", 1)[0] + TEST_SUFFIX)
            results.append(run_test(compiled, item, str(suite), line, serialize))
    results.extend(_fixture_cases(compiled, path))
    return results


test_mapping_file.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name
