from __future__ import annotations

import dataclasses

from eventbus.events.headers import build_headers, rfc3339_from_ms
from eventbus.events.model import CuratedEvent

EVENT = CuratedEvent(
    mapping="decision_letter",
    mapping_version=12,
    topic="decision_letter_availability",
    key={"ClaimId": 1},
    value={},
    event_id="1b4e28ba-2fa1-51d2-883f-0016d3cca427",
    event_type="gov.va.claims.decision_letter_availability",
    event_source="/cdc/claims",
    subject="claim/1",
    time_ms=1709296245007,
)


def test_cloudevents_binary_mode_headers() -> None:
    headers = build_headers(EVENT)
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in headers)
    assert dict(headers) == {
        "ce_specversion": b"1.0",
        "ce_id": b"1b4e28ba-2fa1-51d2-883f-0016d3cca427",
        "ce_type": b"gov.va.claims.decision_letter_availability",
        "ce_source": b"/cdc/claims",
        "ce_subject": b"claim/1",
        "ce_time": b"2024-03-01T12:30:45.007Z",
        "content-type": b"application/avro",
        "eventbus_mapping": b"decision_letter",
        "eventbus_mapping_version": b"12",
    }
    assert len(headers) == len(dict(headers))


def test_unknown_time_leaves_ce_time_out() -> None:
    headers = dict(build_headers(dataclasses.replace(EVENT, time_ms=None)))
    assert "ce_time" not in headers


def test_rfc3339_handles_epoch_and_before() -> None:
    assert rfc3339_from_ms(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339_from_ms(-1) == "1969-12-31T23:59:59.999Z"
