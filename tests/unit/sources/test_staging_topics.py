"""`source register` brings an existing staging topic's configs in line, and leaves alone the ones
that already are: `cleanup.policy` is a list whose order (and spacing) Kafka keeps as given."""

from __future__ import annotations

from typing import Any

import pytest

from eventbus.sources import topics
from eventbus.sources.topics import TopicRequest


class _Admin:
    """The one call `_reconcile` makes besides describing configs: altering them."""

    def __init__(self) -> None:
        self.altered: list[tuple[str, str]] = []

    def incremental_alter_configs(self, resources: list[Any], request_timeout: float) -> dict[Any, Any]:
        for resource in resources:
            self.altered += [(entry.name, entry.value) for entry in resource.incremental_configs]
        return {resource: _Done() for resource in resources}


class _Done:
    def result(self, timeout: float) -> None:
        return None


def _reconcile(
    monkeypatch: pytest.MonkeyPatch, request: TopicRequest, current: dict[str, str]
) -> tuple[topics.TopicResult, list[tuple[str, str]]]:
    monkeypatch.setattr(topics, "_configs", lambda admin, name: current)
    admin = _Admin()
    result = topics._reconcile(admin, request, request.partitions)  # type: ignore[arg-type]
    return result, admin.altered


@pytest.mark.parametrize(
    ("wanted", "existing"),
    [
        ("compact", "compact"),
        ("compact", " compact"),  # as an operator may have set it by hand
        ("compact,delete", "delete,compact"),
        ("compact,delete", "delete, compact"),
    ],
)
def test_a_cleanup_policy_in_another_order_or_spacing_is_the_same_policy(
    monkeypatch: pytest.MonkeyPatch, wanted: str, existing: str
) -> None:
    request = TopicRequest("staging.shop.public.things", 3, None, 604800000, compacted=True)
    config = {**request.config(), "cleanup.policy": wanted}
    monkeypatch.setattr(TopicRequest, "config", lambda self: config)
    result, altered = _reconcile(monkeypatch, request, {**config, "cleanup.policy": existing})
    assert (result.action, altered) == ("unchanged", [])


def test_a_different_policy_or_retention_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    request = TopicRequest("staging.shop.public.things", 3, None, 604800000)
    result, altered = _reconcile(
        monkeypatch, request, {"retention.ms": "86400000", "cleanup.policy": "compact,delete"}
    )
    assert altered == [("retention.ms", "604800000"), ("cleanup.policy", "delete")]
    assert result.action == "updated"
