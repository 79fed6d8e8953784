"""Fixtures of the container tests: a Docker engine (ours where none answers) and the image, built
once per session from transformer/Dockerfile (in the background from the start of the session, see
tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eventbus_dev.stack.docker_engine import Engine
from eventbus_dev.stack.images import ImageBuild
from tests.support.containers import TransformerContainer, engine_and_image


@pytest.fixture(scope="session")
def docker_engine() -> Engine:
    return engine_and_image()[0]


@pytest.fixture(scope="session")
def transformer_image() -> ImageBuild:
    return engine_and_image()[1]


@pytest.fixture(autouse=True)
def remove_containers() -> Iterator[None]:
    """No container of a test outlives it (a failed test's included)."""
    yield
    TransformerContainer.remove_leftovers()
