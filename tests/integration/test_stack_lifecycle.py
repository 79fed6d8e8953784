"""The stack launcher's promises, on a second stack with its own ports and state folder: `up` twice
is a no-op, `status` tells the truth after a kill, `down` leaves no process of ours behind."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from eventbus_dev.stack.errors import PortInUseError
from eventbus_dev.stack.launcher import LocalStack
from eventbus_dev.stack.process import process_cmdline
from eventbus_dev.stack.settings import StackSettings

pytestmark = pytest.mark.stack


def _settings(state: Path, offset: int) -> StackSettings:
    default = StackSettings()
    return StackSettings(
        state_dir=state,
        cache_dir=default.cache,  # share the downloaded artifacts with the main stack
        postgres_port=default.postgres_port + offset,
        kafka_port=default.kafka_port + offset,
        kafka_controller_port=default.kafka_controller_port + offset,
        connect_port=default.connect_port + offset,
        registry_port=default.registry_port + offset,
        registry_management_port=default.registry_management_port + offset,
    )


def _our_processes(state: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            cmdline = process_cmdline(int(entry.name))
            if cmdline and str(state) in cmdline:
                pids.append(int(entry.name))
    return pids


def test_up_twice_status_after_kill_and_down(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    stack = LocalStack(_settings(state, offset=100))
    try:
        first = stack.up()
        assert [s.state for s in first] == ["ready"] * 4
        second = stack.up()
        assert [s.pid for s in second] == [s.pid for s in first], "a second `up` must not restart anything"

        registry_pid = next(s.pid for s in second if s.name == "registry")
        assert registry_pid is not None
        os.killpg(registry_pid, signal.SIGKILL)
        states = {s.name: s.state for s in stack.status()}
        assert states["registry"] == "dead"
        assert states["kafka"] == "ready"

        restarted = {s.name: s for s in stack.up()}
        assert restarted["registry"].state == "ready"
        assert restarted["registry"].pid != registry_pid
    finally:
        stack.down()
    assert _our_processes(state) == []
    assert {s.state for s in stack.status()} == {"stopped"}


def test_port_taken_by_foreign_process_is_named(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "stack", offset=200)
    with socket.socket() as squatter:
        squatter.bind((settings.host, settings.postgres_port))
        squatter.listen()
        with pytest.raises(
            PortInUseError,
            match=f"port {settings.postgres_port} \\(postgres\\).*EVENTBUS_STACK_POSTGRES_PORT",
        ):
            LocalStack(settings).up()
    assert _our_processes(tmp_path / "stack") == []
