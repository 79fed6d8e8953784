"""Fixtures of the transformer's integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.transformer.support import Scenario, create_topics
from tests.support.stack import StackEndpoints


@pytest.fixture
def scenario(stack: StackEndpoints, tmp_path: Path) -> Scenario:
    """Fresh names; the staging topic has 3 partitions, each curated topic 3 (as the mappings
    declare), the dead-letter topic 1 (the default): the broker creates none of them itself."""
    scenario = Scenario(tmp_path)
    create_topics(
        stack.bootstrap_servers,
        {
            scenario.staging_topic: 3,
            scenario.status_topic: 3,
            scenario.closed_topic: 3,
            scenario.dlq_topic: 1,
        },
    )
    return scenario
