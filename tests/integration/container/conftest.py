"""Fixtures of the container tests: a Docker engine (ours where none answers) and the image, built
once per session from transformer/Dockerfile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eventbus_dev.stack.docker_engine import DockerEngine, Engine
from eventbus_dev.stack.images import ImageBuild, build_transformer_image
from eventbus_dev.stack.settings import StackSettings
from tests.support.containers import FALLBACKS, TransformerContainer
from tests.support.stack import REPO

IMAGE = "eventbus-transformer:test"


@pytest.fixture(scope="session")
def docker_engine() -> Engine:
    engine = DockerEngine(StackSettings()).ensure()
    FALLBACKS.extend(engine.notes)
    return engine


@pytest.fixture(scope="session")
def transformer_image(docker_engine: Engine) -> ImageBuild:
    settings = StackSettings()
    built = build_transformer_image(docker_engine, REPO, settings.cache, lambda _: None, tag=IMAGE)
    FALLBACKS.extend(note for note in built.notes if note not in FALLBACKS)
    FALLBACKS.append(f"image {built.tag}: {built.size_mb} MB on {built.base}, built in {built.build_seconds:.0f}s")
    return built


@pytest.fixture(autouse=True)
def remove_containers() -> Iterator[None]:
    """No container of a test outlives it (a failed test's included)."""
    yield
    TransformerContainer.remove_leftovers()
