"""The stack's KRaft cluster ids: never taken for a command-line option by Kafka's storage tool."""

from __future__ import annotations

import uuid

import pytest

from eventbus_dev.stack import services


def test_an_id_that_would_start_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 puts 62 ('-' in the URL-safe alphabet) in the first base64 digit.
    drawn = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(services.uuid, "uuid4", lambda: next(drawn))

    cluster_id = services.new_kraft_cluster_id()

    assert cluster_id == "EAAAAAAAAAAAAAAAAAAAAA"
    assert next(drawn, None) is None, "the first id, starting with '-', was not drawn again"


def test_ids_are_22_url_safe_characters() -> None:
    for _ in range(200):
        cluster_id = services.new_kraft_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert set(cluster_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
