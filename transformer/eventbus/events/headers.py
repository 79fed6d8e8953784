"""CloudEvents 1.0 Kafka protocol binding, binary content mode, for curated events.

In binary mode the Kafka value is the event data itself (our Avro bytes) and every CloudEvents
attribute travels as a header named `ce_<attribute>`; `content-type` describes the value. Two more
headers carry the mapping that produced the event, so a consumer (or the dead-letter topic) can tell
which contract version wrote it.

Built per event, so: constant headers are pre-encoded once, per-mapping strings are encoded once and
cached, and the time is formatted with `time.gmtime` rather than through a `datetime`.
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


@lru_cache(maxsize=4096)
def _encoded(text: str) -> bytes:
    # Event types, sources and mapping names repeat for every event of a mapping.
    return text.encode()


@lru_cache(maxsize=1024)
def _utc_second(seconds: int) -> str:
    # Events of one batch share a handful of seconds; formatting is most of the header cost.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def rfc3339_from_ms(time_ms: int) -> str:
    """`2024-01-02T03:04:05.123Z`: UTC, millisecond precision, as the source timestamp has."""
    seconds, millis = divmod(time_ms, 1000)
    return f"{_utc_second(seconds)}.{millis:03d}Z"


def build_headers(event: CuratedEvent) -> list[tuple[str, bytes]]:
    """The Kafka headers of one curated event; `ce_time` is left out when the time is unknown."""
    headers = [
        SPECVERSION,
        ("ce_id", event.event_id.encode()),
        ("ce_type", _encoded(event.event_type)),
        ("ce_source", _encoded(event.event_source)),
        ("ce_subject", event.subject.encode()),
        CONTENT_TYPE,
        (MAPPING_HEADER, _encoded(event.mapping)),
        (MAPPING_VERSION_HEADER, _encoded(str(event.mapping_version))),
    ]
    if event.time_ms is not None:
        headers.append(("ce_time", rfc3339_from_ms(event.time_ms).encode()))
    return headers
