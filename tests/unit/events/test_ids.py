"""Event ids are RFC 4122 version-5 UUIDs of the change's identity (what `uuid.uuid5` computes)."""

from __future__ import annotations

import uuid

import pytest

from eventbus.events.ids import EVENT_ID_NAMESPACE, EventIdFactory, canonical_key, event_id


@pytest.mark.parametrize(
    ("lsn", "tx_id", "key"),
    [
        (976448368, 7405305, {"id": 1000201}),
        (None, None, None),
        (0, -1, {}),
        (2**63 - 1, 12, {"b": "x", "a": 1.5}),
    ],
)
def test_the_id_is_the_uuid5_of_mapping_table_and_position(lsn, tx_id, key) -> None:
    factory = EventIdFactory(
        connector="claims", table="public.claims", mapping="claim_decided", mapping_version=3, emit_index=1
    )
    name = (
        f"claim_decided|3|1|claims|public.claims|{-1 if lsn is None else lsn}|"
        f"{-1 if tx_id is None else tx_id}|{canonical_key(key)}"
    )
    expected = str(uuid.uuid5(EVENT_ID_NAMESPACE, name))
    assert factory(lsn, tx_id, key) == expected
    assert uuid.UUID(expected).version == 5
    assert (
        event_id(
            connector="claims",
            lsn=lsn,
            tx_id=tx_id,
            table="public.claims",
            primary_key=key,
            mapping="claim_decided",
            mapping_version=3,
            emit_index=1,
        )
        == expected
    )


def test_every_variant_digit_is_set_as_uuid5_sets_it() -> None:
    factory = EventIdFactory(connector="c", table="s.t", mapping="m", mapping_version=1, emit_index=0)
    seen = set()
    for lsn in range(400):  # enough hashes for each of the 16 values of the 17th hex digit
        expected = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"m|1|0|c|s.t|{lsn}|7|"))
        assert factory(lsn, 7, None) == expected
        seen.add(expected[19])
    assert seen == set("89ab")
