"""Session-wide fixtures. The stack starts lazily, once, only when a test asks for it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.stack import (
    StackEndpoints,
    docker_engine_available,
    start_compose_stack,
    start_local_stack,
)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEndpoints]:
    """The real services: local processes by default, docker-compose when asked and possible."""
    choice = os.environ.get("EVENTBUS_TEST_STACK", "local")
    if choice == "docker":
        if not docker_engine_available():
            pytest.fail("EVENTBUS_TEST_STACK=docker but no Docker engine answers `docker info`")
        yield from start_compose_stack()
    elif choice == "local":
        yield start_local_stack()
    else:
        pytest.fail(f"EVENTBUS_TEST_STACK must be 'local' or 'docker', not {choice!r}")


@pytest.fixture(autouse=True)
def kill_leftover_transformers() -> Iterator[None]:
    """A test that fails before stopping its transformer process must not leave it running."""
    yield
    from tests.integration.transformer.support import TransformerProcess

    TransformerProcess.kill_leftovers()


_CONTAINER_TESTS = "tests/integration/container/"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The container tests run last, so that building their image overlaps the other tests."""
    items.sort(key=lambda item: item.nodeid.startswith(_CONTAINER_TESTS))


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.nodeid.startswith(_CONTAINER_TESTS) for item in session.items):
        from tests.support.containers import start_image_build

        start_image_build()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Every fallback the container tests took (engine, base image), and the image they built."""
    import sys

    containers = sys.modules.get("tests.support.containers")
    notes = getattr(containers, "FALLBACKS", [])
    if notes:
        terminalreporter.section("container engine and image")
        for note in notes:
            terminalreporter.write_line(note)
