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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from eventbus.debezium.envelope import Change
from eventbus.errors import ValueApart
from eventbus.events.errors import SerializationFailed
from eventbus.events.model import CuratedEvent
from eventbus.mapping.compiler import CompiledMapping, compile_mapping, test_change
from eventbus.mapping.discovery import TEST_SUFFIX
from eventbus.mapping.errors import MappingError, MappingErrors, MappingEvaluationError
from eventbus.mapping.event_diff import compare_events, event_record, same_types, shown_apart
from eventbus.mapping.spec import MappingSpec, MappingTest, load_mapping
from eventbus.mapping.spec_errors import located_errors
from eventbus.mapping.test_values import UnfitTestData, decoded_row, given_tables
from eventbus.mapping.text_files import read_utf8
from eventbus.mapping.yaml_loader import (
    KeyPath,
    Locations,
    describe_value,
    first_content_line,
    load_yaml_file,
)


@dataclass(slots=True)
class TestResult:
    mapping: str
    name: str
    file: str
    line: int | None
    passed: bool
    reason: str = ""
    diff: list[str] = field(default_factory=list)
    column: int | None = None  # with `line`, where the failure was written (a test data value)

    __test__ = False  # not a pytest class

    def headline(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.line and self.column:
            where += f":{self.column}"
        return f"{self.name} [{where}]" + ("" if self.passed else f": {self.reason}")


# --- running changes ----------------------------------------------------------------------------


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
    # Records given without their key: the event id is made from the event's key instead of the
    # staging key the service uses, so it differs from the service's when the two keys differ.
    without_key: int = 0


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
            if key is None:
                outcome.without_key += 1
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
            events = compiled.events_of_change(change)
            for event in events:
                serialize(event)
            outcome.events.extend(event_record(compiled, event) for event in events)
        except (orjson.JSONDecodeError, DecodeError, MappingEvaluationError, SerializationFailed) as error:
            _dead_letter(outcome, compiled, number, text, error)
    if recorded is not None:
        for _, _, number, text, change in sorted(triggers, key=lambda trigger: trigger[:2]):
            try:
                events = compiled.events_of_change(change, recorded.at(change))
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


# --- running tests ----------------------------------------------------------------------------


def run_test(
    compiled: CompiledMapping,
    test: MappingTest,
    file: str,
    line: int | None,
    serialize: Callable[[CuratedEvent], object] | None = None,
    place: tuple[Locations, KeyPath] | None = None,
) -> TestResult:
    """One inline test; `serialize` (`offline_serializer`) also encodes its events, as the service does.
    `place` (the file's locations, the test's key path in it) places a test data error at its value."""
    spec = compiled.spec
    change = test.change
    source = change.source.model_dump() if change.source else None
    result = TestResult(spec.name, test.name, file, line, passed=False)
    table = compiled.analysis.table
    columns = table.columns if table is not None else None
    try:
        before = decoded_row(columns, change.before, "change.before", ("change", "before"))
        after = decoded_row(columns, change.after, "change.after", ("change", "after"))
        tables = given_tables(compiled, test.given)
    except UnfitTestData as error:
        result.reason = f"test data: {error}"
        position = place[0].of_value((*place[1], *error.path)) if place and error.path else None
        if position is not None:
            result.line, result.column = position.line, position.column
        return result
    decoded = test_change(spec, change.op_code, before, after, source=source, key=change.key)
    lookups = None
    if compiled.lookups:
        from eventbus.debezium.errors import DecodeError
        from eventbus.lookups.offline import given_lookups  # the lookups package builds on this one

        try:
            lookups = given_lookups(compiled, test.given, decoded, tables)
        except DecodeError as error:  # a given row the lookup store cannot hold (an integer beyond 64 bits)
            result.reason = f"test data: given: {error.with_data()}"
            return result
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


def _expected_error(test: MappingTest) -> str:
    return "" if test.expect_error is None else f" (expected an error containing {test.expect_error!r})"


def _line_of(spec: MappingSpec, path: tuple[Any, ...]) -> int | None:
    locations = spec._locations
    position = locations.of_value(path) if locations else None
    return position.line if position else None


def _sibling_tests(
    mapping_file: Path,
) -> Iterator[tuple[MappingTest, int | None, tuple[Locations, KeyPath]] | MappingError]:
    """The tests of `<mapping>.tests.yaml` with their line, or the file's errors: a broken tests file
    fails as its own results, the mapping's other tests still run."""
    suite = mapping_file.with_name(mapping_file.name.rsplit(".", 1)[0] + TEST_SUFFIX)
    if not suite.exists():
        return
    try:
        data, locations = load_yaml_file(suite)
    except MappingError as error:
        yield error
        return
    if not isinstance(data, list):
        found = "the file is empty" if data is None else f"its YAML document is {describe_value(data)}"
        yield MappingError(
            f"not a tests file: {found}",
            file=suite,
            line=first_content_line(locations.text),
            column=1,
            hint="a tests file is a YAML list of tests (- name: ..., change: ..., expect: ...)",
        )
        return
    for index, item in enumerate(data):
        position = locations.of_value((index,))
        try:
            test = MappingTest.model_validate(item)
        except ValidationError as error:
            yield located_errors(error, item, locations, str(suite), MappingTest, at=(index,))
            continue
        yield test, position.line if position else None, (locations, (index,))


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
        try:
            outcome = run_records(compiled, read_utf8(case).splitlines())
            expected = _expected_records(expected_file)
        except MappingError as error:
            result.file, result.line, result.column = error.file or result.file, error.line, error.column
            result.reason = error.message
            yield result
            continue
        if outcome.dead_letters:
            first = outcome.dead_letters[0]
            result.line = first["line"]
            result.reason = f"dead letter: {first['reason']}"
            yield result
            continue
        diff = _compare_records(expected, outcome.events)
        result.passed = not diff
        result.diff = diff
        result.reason = "" if result.passed else f"output differs from {expected_file.name}"
        yield result


def _expected_records(path: Path) -> list[dict[str, Any]]:
    """The events of an `.expected.jsonl`, one JSON object a line; a broken line is a `MappingError`
    at its line (a hand edit, a merge conflict), not a traceback."""
    records = []
    for number, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise MappingError(f"not valid JSON: {error}", file=path, line=number) from None
        if not isinstance(record, dict):
            raise MappingError(
                f"expected an event (a JSON object with topic, key, value), got {describe_value(record)}",
                file=path,
                line=number,
                hint="one event a line, as `eventbus mapping run` writes them",
            )
        records.append(record)
    return records


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
                    one, other = want[part].get(name, "<missing>"), got[part].get(name, "<missing>")
                    if one != other or not same_types(one, other):
                        shown_want, shown_got = shown_apart(one, other, repr(one), repr(other))
                        diff.append(
                            f"  line {index + 1} {part}.{name}: expected {shown_want}, got {shown_got}"
                        )
            elif want[part] != got.get(part) or not same_types(want[part], got.get(part)):
                shown_want, shown_got = shown_apart(
                    want[part], got.get(part), repr(want[part]), repr(got.get(part))
                )
                diff.append(f"  line {index + 1} {part}: expected {shown_want}, got {shown_got}")
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
    locations = spec._locations
    results = [
        run_test(
            compiled,
            test,
            str(path),
            _line_of(spec, ("tests", index)),
            serialize,
            (locations, ("tests", index)) if locations else None,
        )
        for index, test in enumerate(spec.tests)
    ]
    suite = str(path.with_name(path.name.rsplit(".", 1)[0] + TEST_SUFFIX))
    for item in _sibling_tests(path):
        if isinstance(item, MappingError):
            results.extend(_failed_tests_file(spec.name, suite, item))
            continue
        test, line, place = item
        results.append(run_test(compiled, test, suite, line, serialize, place))
    results.extend(_fixture_cases(compiled, path))
    return results


def _failed_tests_file(mapping: str, suite: str, error: MappingError) -> list[TestResult]:
    """A tests file's load errors as failing results, one each, placed where they are."""
    return [
        TestResult(
            mapping,
            "tests file",
            problem.file or suite,
            problem.line,
            False,
            f"{problem.key_path}: {problem.message}" if problem.key_path else problem.message,
            [f"  hint: {problem.hint}"] if problem.hint else [],
            problem.column,
        )
        for problem in (error.errors if isinstance(error, MappingErrors) else [error])
    ]


test_mapping_file.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name
