"""Connect JSON decoding: envelopes, keys, schema caching, tombstones, truncate, malformed input."""

from __future__ import annotations

import typing
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import msgspec
import orjson
import pytest

from eventbus.debezium import payload_parser
from eventbus.debezium.connect_json import ConnectJsonDecoder, decode_connect_json
from eventbus.debezium.connect_schema import ConnectTableSchema, table_schema_from_connect
from eventbus.debezium.envelope import OPS, UNAVAILABLE
from eventbus.debezium.errors import DecodeError, parser_message
from eventbus.debezium.positions import log_position
from eventbus.debezium.record import StagingRecord
from eventbus.debezium.source_block import payload_order, payload_source
from eventbus.debezium.table_schema import UnknownColumnError
from eventbus.errors import EventBusError
from eventbus.mapping.expression_language import SOURCE_FIELDS

FIXTURE = Path(__file__).parents[2] / "fixtures" / "debezium" / "all_types_update.json"
TOPIC = "shop.public.all_types"


@pytest.fixture()
def raw() -> bytes:
    return FIXTURE.read_bytes()


def test_all_types_fixture_decodes_to_exact_values(raw):
    change = ConnectJsonDecoder().decode(raw, topic=TOPIC)
    assert change is not None and change.op == "u"
    t = change.table
    assert isinstance(t, ConnectTableSchema) and t.name == "public.all_types"
    before = t.convert_row(change.before)
    assert before == {
        "id": 7,
        "amount": Decimal("517.69"),
        "refund": Decimal("-499.77"),
        "ratio": Decimal("-0.057"),
        "born_at": datetime(1930, 11, 18, 0, 28, 29, 876544),
        "legacy_ts": datetime(1969, 12, 30, 23, 59, 59, 999000),
        "nano_ts": datetime(2023, 11, 14, 22, 13, 20, 123456),
        "updated_at": datetime(2024, 2, 29, 23, 59, 59, 500000, tzinfo=UTC),
        "birth_date": date(1960, 1, 1),
        "opens_at": time(9, 30),
        "closes_at": time(18, 0),
        "tz_time": time(10, 15, 30, 250000, tzinfo=UTC),
        "wait": -timedelta(days=1, hours=1, minutes=1, seconds=1, microseconds=1),
        "uid": UUID("9f1c4a52-6f0e-4d2a-9d5c-2f3b8e7a1c44"),
        "doc": '{"a": 1, "bc": [true, null]}',
        "mood": "happy",
        "flags": 0b01011,
        "tags": ["a", None, "c"],
        "scores": [1, -2, 3],
        "blob": b"\xde\xad\xbe\xef",
        "weight": before["weight"],  # NaN != NaN
        "body": "long text",
    }
    assert before["weight"] != before["weight"]
    after = t.convert_row(change.after)
    assert after["amount"] == Decimal("-499.77")
    for col in ("body", "doc", "tags", "scores", "blob"):
        assert after[col] is UNAVAILABLE, col
    assert after["ratio"] is None and after["born_at"] is None
    assert str(after["weight"]) == "-0.0"


def test_source_transaction_and_timestamps(raw):
    change = decode_connect_json(raw, topic=TOPIC)
    s = change.source
    assert (s.connector, s.db, s.schema, s.table) == ("shop", "shopdb", "public", "all_types")
    assert (s.ts_ms, s.lsn, s.tx_id, s.snapshot) == (1764253440123, 24023360, 771, "false")
    assert s.sequence == '["24023128","24023360"]'
    assert change.ts_ms == 1764253440190
    assert change.transaction == {"id": "771:24023360", "total_order": 2, "data_collection_order": 1}


def _compact(raw: bytes) -> bytes:
    return raw.rstrip(b"\n")


def test_schema_prefix_is_reused_and_table_shared(raw):
    dec = ConnectJsonDecoder()
    doc = orjson.loads(raw)
    first = dec.decode(_compact(raw), topic=TOPIC)
    doc["payload"]["after"]["id"] = 8
    second_raw = (
        b'{"schema":' + orjson.dumps(doc["schema"]) + b',"payload":' + orjson.dumps(doc["payload"]) + b"}"
    )
    second = dec.decode(second_raw, topic=TOPIC)
    assert second.table is first.table
    assert second.after["id"] == 8
    # the fast path was taken: the prefix cached for the topic matches this record
    assert second_raw.startswith(dec._value_last[TOPIC].prefix)


def test_schema_change_builds_a_new_table_and_alternation_reuses_both(raw):
    dec = ConnectJsonDecoder()
    doc = orjson.loads(raw)
    v1 = _compact(raw)
    doc["schema"]["fields"][1]["fields"].append({"type": "string", "optional": True, "field": "added"})
    doc["schema"]["fields"][0]["fields"].append({"type": "string", "optional": True, "field": "added"})
    doc["payload"]["after"]["added"] = "new"
    v2 = orjson.dumps(doc)
    t1 = dec.decode(v1, topic=TOPIC).table
    c2 = dec.decode(v2, topic=TOPIC)
    assert c2.table is not t1 and "added" in c2.table.columns
    assert c2.table.converter("added")(c2.after["added"]) == "new"
    assert dec.decode(v1, topic=TOPIC).table is t1
    assert dec.decode(v2, topic=TOPIC).table is c2.table


def test_payload_key_inside_schema_does_not_confuse_the_split(raw):
    doc = orjson.loads(raw)
    doc["schema"]["fields"][0]["fields"][0]["parameters"] = {"x": "1", "payload": "tricky"}
    doc["schema"]["fields"][1]["fields"][0]["parameters"] = {"x": "1", "payload": "tricky"}
    data = orjson.dumps(doc)
    dec = ConnectJsonDecoder()
    assert dec.decode(data, topic=TOPIC).after["id"] == 7
    assert dec.decode(data, topic=TOPIC).after["id"] == 7


def test_key_record():
    dec = ConnectJsonDecoder()
    key = (
        b'{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],'
        b'"optional":false,"name":"claims.public.claims.Key"},"payload":{"id":1000042}}'
    )
    assert dec.decode_key(key, "t") == {"id": 1000042}
    assert dec.decode_key(key, "t") == {"id": 1000042}
    assert dec.decode_key(b'{"id":5}', "t2") == {"id": 5}  # schemas disabled
    assert dec.decode_key(None) is None


def test_tombstone_is_none():
    assert ConnectJsonDecoder().decode(None) is None


def test_truncate_and_message(raw):
    doc = orjson.loads(raw)
    doc["payload"].update(op="t", before=None, after=None, transaction=None)
    change = ConnectJsonDecoder().decode(orjson.dumps(doc))
    assert change.op == "t" and change.before is None and change.after is None
    assert change.table.name == "public.all_types"

    message = {
        "schema": {
            "type": "struct",
            "fields": [
                {"type": "string", "optional": False, "field": "op"},
                {"type": "int64", "optional": True, "field": "ts_ms"},
                {
                    "type": "struct",
                    "fields": [{"type": "string", "optional": False, "field": "name"}],
                    "optional": False,
                    "name": "io.debezium.connector.postgresql.Source",
                    "field": "source",
                },
                {
                    "type": "struct",
                    "fields": [
                        {"type": "string", "optional": False, "field": "prefix"},
                        {"type": "bytes", "optional": True, "field": "content"},
                    ],
                    "optional": False,
                    "name": "io.debezium.connector.postgresql.Message",
                    "field": "message",
                },
            ],
            "optional": False,
            "name": "io.debezium.connector.postgresql.MessageValue",
        },
        "payload": {
            "op": "m",
            "ts_ms": 1,
            "source": {"name": "shop", "db": "shopdb", "schema": "", "table": ""},
            "message": {"prefix": "audit", "content": "aGk="},
        },
    }
    change = ConnectJsonDecoder().decode(orjson.dumps(message))
    assert change.op == "m" and change.message == {"prefix": "audit", "content": "aGk="}
    assert change.before is None and change.after is None


def test_schemaless_records_keep_raw_values(raw):
    payload = orjson.loads(raw)["payload"]
    dec = ConnectJsonDecoder()
    change = dec.decode(orjson.dumps(payload))
    assert change.table.name == "public.all_types" and change.table.columns == {}
    assert change.table.converter("amount")(change.before["amount"]) == "AMo5"  # raw: no schema, no type
    assert change.table.converter("body")(change.after["body"]) is UNAVAILABLE


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON list, expected an object"),
        (b'{"schema": {"type": "struct", "fields": []}}', "missing 'payload'"),
        (
            b'{"schema": null, "payload": {}, "x": 1}',
            r"other keys besides schema and payload \(has 'payload', 'schema', 1 other key\(s\)\)",
        ),
        (b'{"schema": {"type": "struct", "fields": []}, "payload": 3}', "payload is int"),
        (
            b'{"schema": {"type": "struct", "fields": []}, "payload": {"op": "x", "source": {}}}',
            "unknown or missing op 'x'",
        ),
        (b'{"op": "c", "after": {"id": 1}}', "'source' block missing"),
        (b'{"op": "c", "after": {"id": 1}, "source": {"name": "a", "db": "b"}}', "lacks 'schema'"),
        (
            b'{"op": "u", "after": null, "source": {"name": "a", "db": "b", "schema": "s", "table": "t"}}',
            "without an 'after'",
        ),
        (
            b'{"op": "u", "after": [1], "source": {"name": "a", "db": "b", "schema": "s", "table": "t"}}',
            "must be objects",
        ),
        (b'{"op": ["c"], "source": {}}', "unknown or missing op"),
        (b'{"schema": {"type": "struct"}, "payload": {"op": "c"}}', "unusable schema"),
        (
            b'{"schema": {"type": "struct", "fields": '
            b'[{"type": "array", "optional": true, "field": "after"}]}, "payload": {}}',
            "unusable schema",
        ),
    ],
)
def test_malformed_records_raise_decode_error(data, message):
    with pytest.raises(DecodeError, match=message) as info:
        ConnectJsonDecoder().decode(data, topic="claims.public.claims")
    assert isinstance(info.value, EventBusError)


def test_decode_error_names_the_topic():
    with pytest.raises(DecodeError, match=r"value record of topic 'claims\.public\.claims'"):
        ConnectJsonDecoder().decode(b"{", topic="claims.public.claims")


def test_strict_modes():
    with pytest.raises(DecodeError, match=r"schemas\.enable"):
        ConnectJsonDecoder(schemas_enabled=True).decode(b'{"op": "c"}')
    with pytest.raises(DecodeError, match=r"schemas\.enable=false"):
        ConnectJsonDecoder(schemas_enabled=False).decode(b'{"schema": null, "payload": {}}')


def test_table_schema_from_captured_schema(raw):
    doc = orjson.loads(raw)
    for source in (doc, doc["schema"], doc["schema"]["fields"][1]):
        table = table_schema_from_connect(source)
        assert table.name == "public.all_types"
        assert list(table.columns)[:3] == ["id", "amount", "refund"]
        assert table.columns["amount"].parameters["scale"] == "2"
        assert table.converter("amount")("AMo5") == Decimal("517.69")
        assert table.converter("amount") is table.converter("amount")
    with pytest.raises(UnknownColumnError, match="no column 'nope'; columns: id, amount"):
        table.converter("nope")
    with pytest.raises(DecodeError):
        ConnectTableSchema.from_connect_schema({"type": "string"})


def test_custom_placeholder(raw):
    data = raw.replace(b"__debezium_unavailable_value", b"__gone")
    change = ConnectJsonDecoder(placeholder="__gone").decode(data)
    assert change.table.converter("body")(change.after["body"]) is UNAVAILABLE


# --- the hot path: decode_payload ---------------------------------------------------------------


def _with_payload(raw: bytes, **changes: object) -> bytes:
    doc = orjson.loads(raw)
    doc["payload"].update(changes)
    return orjson.dumps(doc)


def test_decode_payload_reads_what_decode_reads(raw):
    decoder = ConnectJsonDecoder()
    for attempt in ("first record: full parse", "second: the schema prefix"):
        usual = decoder.decode_payload(raw, TOPIC)
        assert usual is not None, attempt
        payload, table = usual
        change = decoder.decode(raw, None, TOPIC)
        assert table is change.table  # the same table object, so mappings bind once
        assert payload["op"] == change.op
        assert (payload["before"], payload["after"]) == (change.before, change.after)
        assert payload["source"]["lsn"] == change.source.lsn
    truncate = _with_payload(raw, op="t", before=None, after=None)
    assert decoder.decode_payload(truncate, TOPIC)[0]["op"] == "t"


@pytest.mark.parametrize(
    "changes",
    [
        {"op": "x"},
        {"op": ["u"]},
        {"op": "u", "after": None},
        {"after": [1]},
        {"before": "text"},
    ],
)
def test_decode_payload_leaves_unusual_envelopes_to_decode(raw, changes):
    """`None` means: call `decode`, which names the problem."""
    data = _with_payload(raw, **changes)
    decoder = ConnectJsonDecoder()
    assert decoder.decode_payload(raw, TOPIC) is not None  # the prefix is known: the fast branch
    assert decoder.decode_payload(data, TOPIC) is None
    with pytest.raises(DecodeError):
        decoder.decode(data, None, TOPIC)


@pytest.fixture()
def compact(raw: bytes) -> bytes:
    """The fixture as JsonConverter writes it (no whitespace): the schema prefix is recognised."""
    return orjson.dumps(orjson.loads(raw))


def test_read_only_keeps_the_mapped_columns_and_the_whole_envelope(compact):
    raw = compact
    full, narrow = ConnectJsonDecoder(), ConnectJsonDecoder()
    narrow.read_only(TOPIC, ["amount", "mood", "no_such_column"])
    for attempt in ("first record: full parse", "second: the schema prefix, narrow parser"):
        whole, _ = full.decode_payload(raw, TOPIC)
        payload, table = narrow.decode_payload(raw, TOPIC)
        assert table.name == "public.all_types", attempt
        for row in ("before", "after"):
            kept = {c: whole[row][c] for c in ("amount", "mood")}
            assert payload[row] == (kept if attempt.startswith("second") else whole[row]), attempt
        assert {k: v for k, v in payload.items() if k not in ("before", "after")} == {
            k: v for k, v in whole.items() if k not in ("before", "after")
        }
    # Other topics are parsed whole; `decode` (the checked path) always is.
    other = ConnectJsonDecoder()
    other.read_only("another.topic", ["amount"])
    other.decode_payload(raw, TOPIC)
    assert other.decode_payload(raw, TOPIC)[0]["after"] == full.decode_payload(raw, TOPIC)[0]["after"]
    assert narrow.decode(raw, None, TOPIC).after == full.decode(raw, None, TOPIC).after


def test_read_only_keeps_fewer_columns_of_the_before_row_when_told(compact):
    decoder, full = ConnectJsonDecoder(), ConnectJsonDecoder()
    decoder.read_only(TOPIC, ["amount", "mood"], before=["mood"])
    decoder.decode_payload(compact, TOPIC)
    payload, _ = decoder.decode_payload(compact, TOPIC)
    whole, _ = full.decode_payload(compact, TOPIC)
    assert payload["after"] == {c: whole["after"][c] for c in ("amount", "mood")}
    assert payload["before"] == {"mood": whole["before"]["mood"]}
    decoder.read_only(TOPIC, ["amount"], before=[])  # a mapping that reads nothing of before
    assert decoder.decode_payload(compact, TOPIC)[0]["before"] == {}
    null_before = _with_payload(compact, before=None)
    assert decoder.decode_payload(null_before, TOPIC)[0]["before"] is None


@pytest.mark.parametrize(
    "changes",
    [{"op": "x"}, {"op": ["u"]}, {"op": "u", "after": None}, {"after": [1]}, {"before": "text"}],
)
def test_read_only_leaves_unusual_envelopes_to_decode_too(compact, changes):
    raw = compact
    data = _with_payload(raw, **changes)
    decoder = ConnectJsonDecoder()
    decoder.read_only(TOPIC, ["amount"])
    assert decoder.decode_payload(raw, TOPIC) is not None
    assert decoder.decode_payload(raw, TOPIC)[0]["after"].keys() == {"amount"}  # narrow from now on
    assert decoder.decode_payload(data, TOPIC) is None
    with pytest.raises(DecodeError):
        decoder.decode(data, None, TOPIC)


def test_read_only_parses_big_integers_exactly(compact):
    """orjson reads integers beyond 64 bits as floats; msgspec (the narrow parser) keeps them."""
    raw = compact
    data = compact.replace(b'"after":{"id":7', b'"after":{"id":' + str(2**70).encode())
    assert data != compact
    decoder = ConnectJsonDecoder()
    decoder.read_only(TOPIC, ["id"])
    decoder.decode_payload(raw, TOPIC)
    assert decoder.decode_payload(data, TOPIC)[0]["after"] == {"id": 2**70}


def test_decode_payload_without_schema_or_of_a_deleted_field_is_none(raw):
    doc = orjson.loads(raw)
    decoder = ConnectJsonDecoder()
    assert decoder.decode_payload(orjson.dumps(doc["payload"]), TOPIC) is None  # schemas.enable=false
    del doc["payload"]["op"]
    assert decoder.decode_payload(orjson.dumps(doc), TOPIC) is None
    assert decoder.decode_payload(None, TOPIC) is None


def test_decode_payload_raises_what_decode_raises_for_broken_json():
    with pytest.raises(DecodeError, match="not valid JSON"):
        ConnectJsonDecoder().decode_payload(b"{", TOPIC)


@pytest.mark.parametrize(
    ("field", "junk", "checked_path"),
    [
        ("lsn", "0/16B3748", "refuses"),
        ("ts_ms", 1.5, "refuses"),
        ("ts_ms", True, "refuses"),
        ("lsn", 2**63 + 5, "accepts"),  # beyond `SourceBlock`'s bounds: the checked path reads it
        ("lsn", 2**64, "accepts"),  # exactly, as an int (both paths read JSON with msgspec)
        ("txId", [1], "refuses"),
        ("snapshot", True, "refuses"),
        ("sequence", 7, "refuses"),
        ("name", None, "refuses"),  # None: the field is removed
        ("ts_ms", None, "accepts"),  # merely unusual
    ],
)
@pytest.mark.parametrize("form", ["as in the fixture", "compact: the schema prefix is known"])
def test_decode_payload_leaves_unusual_source_blocks_to_decode(raw, field, junk, checked_path, form):
    """A payload's source block read through `payload_source`/`payload_order` (kept raw by the
    payload parser, decoded to `SourceBlock` when read) or checked by `usual_source` (a payload parsed
    whole) is only one the checked path accepts; it names the problem of the others. The record view
    takes the checked path for them."""
    doc = orjson.loads(raw)
    if junk is None:
        del doc["payload"]["source"][field]
    else:
        doc["payload"]["source"][field] = "__junk__"
    indent = 0 if form.startswith("compact") else orjson.OPT_INDENT_2
    data = orjson.dumps(doc, option=indent).replace(b'"__junk__"', orjson.dumps(str(junk)) if isinstance(
        junk, str) else str(junk).lower().encode() if not isinstance(junk, list) else b"[1]")  # fmt: skip
    decoder = ConnectJsonDecoder()
    decoder.read_only(TOPIC, ["amount"])
    assert decoder.decode_payload(orjson.dumps(orjson.loads(raw)), TOPIC) is not None  # learns the prefix
    usual = decoder.decode_payload(data, TOPIC)
    block = order = None
    if usual is not None:  # the block is checked when it is read
        try:
            order = payload_order(usual[0])
            block = payload_source(usual[0])
        except msgspec.MsgspecError:
            pass
    if checked_path == "accepts":
        record = StagingRecord(decoder, data, None, TOPIC)
        source = decoder.decode(data, None, TOPIC).source
        assert getattr(source, field) == (None if junk is None else junk)
        if block is not None:  # a usual block after all (a big LSN parsed whole): the same value
            assert block[field] == junk
        assert record.position == log_position(source.lsn, source.snapshot, source.sequence)
        assert record.ts_ms == source.ts_ms
    else:
        assert block is None, "a block the checked path refuses was handed out"
        if field in {"lsn", "ts_ms", "snapshot", "sequence"}:  # the ordering fields
            assert order is None
        problem = field if junk is not None else f"lacks {field!r}"
        with pytest.raises(DecodeError, match=problem):
            decoder.decode(data, None, TOPIC)
        if order is None:  # the record view takes the checked path, at once or for its position
            with pytest.raises(DecodeError, match=problem):
                StagingRecord(decoder, data, None, TOPIC).position  # noqa: B018 - the property decodes


def test_the_payload_keeps_the_source_fields_a_mapping_can_read(compact):
    decoder = ConnectJsonDecoder()
    decoder.read_only(TOPIC, ["amount"])
    decoder.decode_payload(compact, TOPIC)
    payload, _ = decoder.decode_payload(compact, TOPIC)
    change = decoder.decode(compact, None, TOPIC)
    names = {"connector": "name", "tx_id": "txId"}
    assert isinstance(payload["source"], msgspec.Raw)  # not built until it is read
    assert payload_order(payload) == (
        change.source.lsn, change.source.snapshot, change.source.sequence, change.source.ts_ms
    )  # fmt: skip
    block = payload_source(payload)
    assert payload["source"] is block  # decoded once
    assert set(block) == {names.get(name, name) for name in SOURCE_FIELDS}
    for name in SOURCE_FIELDS:
        assert block[names.get(name, name)] == getattr(change.source, name)


def test_the_payload_parser_knows_the_op_codes_the_envelope_does() -> None:
    assert set(typing.get_args(payload_parser.Op)) == OPS


def test_a_payload_without_rows_or_op_is_left_to_decode(raw) -> None:
    """The typed parser requires `before`, `after` and `op`; a record lacking one is read whole and,
    still unusual, left to `decode`, which accepts a missing row or names what is wrong."""
    decoder = ConnectJsonDecoder(schemas_enabled=True)
    decoder.read_only(TOPIC, ["id"])
    assert decoder.decode_payload(raw, TOPIC) is not None  # the topic's schema prefix is known now
    without = {}
    for field in ("before", "after", "op"):
        document = orjson.loads(raw)
        del document["payload"][field]
        without[field] = orjson.dumps(document)
        assert decoder.decode_payload(without[field], TOPIC) is None
    assert decoder.decode(without["before"], topic=TOPIC).before is None
    with pytest.raises(DecodeError, match="op"):
        decoder.decode(without["op"], topic=TOPIC)


def test_a_parser_message_keeps_its_rule_and_position_but_no_piece_of_the_document() -> None:
    ssn = "123-45-6789"
    with pytest.raises(msgspec.ValidationError) as typed:
        msgspec.json.Decoder(dict[str, typing.Literal["c", "u"]]).decode(b'{"op": "%s"}' % ssn.encode())
    assert ssn in str(typed.value)  # msgspec quotes the value it refuses
    assert parser_message(typed.value) == "Invalid enum value <...> - at `$[...]`"
    with pytest.raises(orjson.JSONDecodeError) as broken:
        orjson.loads(b'{"ssn": tru%s}' % ssn.encode())
    # JSON's grammar in quotes stays: it says what was expected
    assert parser_message(broken.value) == "invalid literal, expected 'true': line 1 column 9 (char 8)"
    assert parser_message(ValueError(f"bad value {ssn!r} in \"{ssn}\"")) == "bad value <...> in <...>"


_SSN = "123-45-6789"
_SOURCE = '{"name": "a", "db": "b", "schema": "s", "table": "t"}'


@pytest.mark.parametrize(
    "record",
    [
        '{"schema": {"type": "struct", "fields": []}, "123-45-6789": {}}',  # a key where payload goes
        '{"123-45-6789": 1}',
        '{"payload": {"123-45-6789": 1}, "schema": 2, "x": 3}',
        '{"schema": null, "payload": {"ssn": "123-45-6789" 123-45-6789}}',  # not JSON after the value
        '{"schema": null, "payload": {"ssn": "123-45-6789\\q"}}',  # a bad escape inside it
        '{"schema": null, "payload": {"ssn": 123-45-6789}}',
        '{"schema": null, "payload": {"op": "123-45-6789", "after": {}, "source": {}}}',
        '{"schema": null, "payload": {"op": "c", "after": {}, "source": {"123-45-6789": 1}}}',
        '{"schema": null, "payload": {"op": "c", "after": {}, "source": '
        + _SOURCE[:-1]
        + ', "ts_ms": "123-45-6789"}}',
        '{"schema": null, "payload": {"op": "c", "after": "123-45-6789", "source": ' + _SOURCE + "}}",
        '{"schema": {"type": "struct", "fields": [{"field": "after", "type": "struct", "fields": '
        '[{"field": "ssn", "type": "123-45-6789"}]}]}, "payload": {}}',  # a value as a Connect type
        '["123-45-6789"]',
    ],
)
def test_a_decode_error_never_quotes_the_record_s_keys_or_values(record: str) -> None:
    for enabled in (None, True, False):  # the service insists on schemas (True)
        decoder = ConnectJsonDecoder(schemas_enabled=enabled)
        with pytest.raises(DecodeError) as caught:
            StagingRecord(decoder, record.encode(), None, TOPIC).checked()
        assert _SSN not in str(caught.value) and _SSN.replace("-", "") not in str(caught.value)
