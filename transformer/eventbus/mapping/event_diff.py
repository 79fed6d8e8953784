"""Mapping events in the forms people read: the Avro JSON line `eventbus mapping run` prints, and the
field-by-field difference `eventbus mapping test` shows between expected and actual events.

Both sides of a difference are shown alike (`_shown`): times as ISO-8601 text, decimals as their
digits, whatever form the test wrote them in. Booleans, integers and floats match only their own
type (`same_types`): Python's `True == 1 == 1.0` let an expected `true` pass for a published 1. Events
the test lists in another order than the mapping emits them are said to be so instead of a diff of
every field.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Final

import orjson

from eventbus.events.model import CuratedEvent
from eventbus.mapping import avro
from eventbus.mapping.compiler import CompiledMapping
from eventbus.mapping.spec import ExpectedEvent


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


# --- comparing ------------------------------------------------------------------------------------


def _normal(value: Any, record_field: avro.RecordField | None) -> Any:
    """A value in comparable form: expected YAML values and actual Avro-ready values meet here."""
    if record_field is None:
        return value
    items = _items(record_field)
    if items is not None and isinstance(value, list):
        return [_normal(item, items) for item in value]
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
    items = _items(record_field)
    if items is not None and isinstance(value, list):
        return f"[{', '.join(_shown(item, items) for item in value)}]"
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


def _items(record_field: avro.RecordField) -> avro.RecordField | None:
    """An array field's elements, as a field of their own (None for any other field)."""
    schema = record_field.type.schema
    if record_field.type.kind != "array" or not isinstance(schema, dict):
        return None
    return avro.RecordField(record_field.name, avro.describe(schema.get("items"), {}))


_EPOCH: Final = dt.datetime(1970, 1, 1)

# Equal in Python (True == 1 == 1.0), different values in an event: an expected value of one of these
# types matches a published value of the same type only.
_STRICT_TYPES: Final = {bool: "a boolean", int: "an integer", float: "a float"}


def same_types(want: Any, got: Any) -> bool:
    """False when a boolean, integer or float meets a value of another of these types, at any depth
    (Python's == says `true` is 1 and 1 is 1.0); any other pairing is left to the values' own ==."""
    if want.__class__ in _STRICT_TYPES and got.__class__ in _STRICT_TYPES:
        return want.__class__ is got.__class__
    if isinstance(want, list) and isinstance(got, list):
        return all(same_types(w, g) for w, g in zip(want, got, strict=False))
    if isinstance(want, dict) and isinstance(got, dict):
        return all(same_types(want[name], got[name]) for name in want.keys() & got.keys())
    return True


def shown_apart(want: Any, got: Any, want_text: str, got_text: str) -> tuple[str, str]:
    """Both sides of a difference; when only their types differ, as written and with the types named
    (an expected 1 of a double field would otherwise read "expected 1.0, got 1.0")."""
    if want.__class__ in _STRICT_TYPES and got.__class__ in _STRICT_TYPES and want == got:
        return f"{want!r} ({_STRICT_TYPES[want.__class__]})", f"{got!r} ({_STRICT_TYPES[got.__class__]})"
    if want_text == got_text:
        return want_text, f"{got_text} (of other types: true, 1 and 1.0 are different values)"
    return want_text, got_text


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
        elif _normal(want, record_field) != _normal(actual[name], record_field) or not same_types(
            want, actual[name]
        ):
            expected_text, actual_text = shown_apart(
                want, actual[name], _shown(want, record_field), _shown(actual[name], record_field)
            )
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

