"""The schema prefix of a Connect JSON record: `{"schema":<schema>,"payload":`.

With `schemas.enable=true` the schema is most of a record's bytes and the same for every record of
one table version, so the decoder (`connect_json`) keeps, per topic, the last prefix seen
(`SchemaEntry`) and parses only the payload of a record that starts with it. `split_prefix` finds
where the prefix ends in a record parsed in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from eventbus.debezium.payload_parser import JSON_ERRORS, loads

SCHEMA_HEAD: Final = b'{"schema":'
PAYLOAD_SEP: Final = b',"payload":'


@dataclass(slots=True)
class SchemaEntry:
    """What is cached per distinct schema: its record prefix and what was built from it."""

    prefix: bytes  # b'{"schema":...,"payload":', or b"" when the bytes could not be split
    plen: int
    table: Any  # ConnectTableSchema for values, None for keys


def split_prefix(data: bytes, schema: Any) -> int | None:
    """Length of `{"schema":<schema>,"payload":` in `data`, checked against the parsed schema.

    `,"payload":` cannot occur unescaped inside a JSON string, but could occur as a key inside the
    schema (a parameter called payload), so each candidate is verified by parsing what precedes it.
    """
    if not data.startswith(SCHEMA_HEAD):
        return None
    start = len(SCHEMA_HEAD)
    pos = data.find(PAYLOAD_SEP, start)
    while pos != -1:
        try:
            if loads(data[start:pos]) == schema:
                return pos + len(PAYLOAD_SEP)
        except JSON_ERRORS:
            pass
        pos = data.find(PAYLOAD_SEP, pos + 1)
    return None
