"""CloudEvents 1.0 Kafka protocol binding, binary content mode, for curated events.

In binary mode the Kafka value is the event data itself (our Avro bytes) and every CloudEvents
attribute travels as a header named `ce_<attribute>`; `content-type` describes the value. Two more
headers carry the mapping that produced the event, so a consumer (or the dead-letter topic) can tell
which contract version wrote it.

Built per event, so: constant headers are pre-encoded once, the four headers fixed per mapping
(type, source, mapping name and version) are built once per mapping and reused, and the time is
formatted with `time.gmtime` once per second, the milliseconds appended from a table.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Final

from eventbus.events.model import CuratedEvent

SPECVERSION: Final = ("ce_specversion", b"1.0")
CONTENT_TYPE: Final = ("content-type", b"application/avro")
MAPPING_HEADER: Final = "eventbus_mapping"
MAPPING_VERSION_HEADER: Final = "eventbus_mapping_version"

_Header = tuple[str, bytes]
_MILLIS: Final = tuple(f".{n:03d}Z".encode() for n in range(1000))
_MAX_MAPPINGS: Final = 4096
_per_mapping: dict[tuple[str, str, str, int], tuple[_Header, _Header, _Header, _Header]] = {}


@lru_cache(maxsize=1024)
def _utc_second(seconds: int) -> str:
    # Events of one batch share a handful of seconds; formatting is most of the header cost.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


@lru_cache(maxsize=1024)
def _utc_second_bytes(seconds: int) -> bytes:
    return _utc_second(seconds).encode()


def rfc3339_from_ms(time_ms: int) -> str:
    """`2024-01-02T03:04:05.123Z`: UTC, millisecond precision, as the source timestamp has."""
    seconds, millis = divmod(time_ms, 1000)
    return f"{_utc_second(seconds)}.{millis:03d}Z"


def _mapping_headers(
    event_type: str, event_source: str, mapping: str, version: int
) -> tuple[_Header, _Header, _Header, _Header]:
    key = (event_type, event_source, mapping, version)
    found = _per_mapping.get(key)
    if found is None:
        if len(_per_mapping) >= _MAX_MAPPINGS:
            _per_mapping.clear()
        found = _per_mapping[key] = (
            ("ce_type", event_type.encode()),
            ("ce_source", event_source.encode()),
            (MAPPING_HEADER, mapping.encode()),
            (MAPPING_VERSION_HEADER, str(version).encode()),
        )
    return found


def build_headers(event: CuratedEvent) -> list[tuple[str, bytes]]:
    """The Kafka headers of one curated event; `ce_time` is left out when the time is unknown."""
    ce_type, ce_source, mapping, version = _mapping_headers(
        event.event_type, event.event_source, event.mapping, event.mapping_version
    )
    headers = [
        SPECVERSION,
        ("ce_id", event.event_id.encode()),
        ce_type,
        ce_source,
        ("ce_subject", event.subject.encode()),
        CONTENT_TYPE,
        mapping,
        version,
    ]
    time_ms = event.time_ms
    if time_ms.__class__ is int:
        seconds, millis = divmod(time_ms, 1000)
        headers.append(("ce_time", _utc_second_bytes(seconds) + _MILLIS[millis]))
    elif time_ms is not None:  # not what Debezium writes: formatted (or refused) as it always was
        headers.append(("ce_time", rfc3339_from_ms(time_ms).encode()))
    return headers
