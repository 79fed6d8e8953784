"""A service told to stop while it checks its topics against a broker that is gone does not wait out
the request timeout: `read_topics` asks `give_up` while no answer has come."""

from __future__ import annotations

import socket
import time

import pytest
from confluent_kafka.admin import AdminClient

from eventbus.topics.cluster import read_topics
from eventbus.topics.errors import TopicsCheckInterrupted


def _nowhere() -> str:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def test_a_stop_ends_the_wait_for_a_broker_that_does_not_answer() -> None:
    bootstrap = _nowhere()
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    asked_at = time.monotonic()
    with pytest.raises(TopicsCheckInterrupted):
        read_topics(
            admin, ["curated"], bootstrap=bootstrap, timeout_s=30,
            give_up=lambda: time.monotonic() - asked_at > 1.0,
        )  # fmt: skip
    assert time.monotonic() - asked_at < 5, "the 30 s request timeout was waited out"
