"""`eventbus topics plan|apply` before any cluster answers: an invalid `topic_settings` is a mapping
error (file:line, exit 1, Kafka never asked); an unreachable cluster is one line and exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.transformer.support import Scenario

EVENTBUS = Path(sys.executable).parent / "eventbus"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _topics(command: str, folder: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
           "EVENTBUS_TRANSACTION_TIMEOUT_MS": "2000"}  # fmt: skip
    return subprocess.run(
        [str(EVENTBUS), "topics", command, "--mappings", str(folder)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_an_invalid_topic_setting_is_reported_at_its_line(tmp_path: Path, command: str) -> None:
    folder = Scenario(tmp_path).write_mappings(partitions=0)
    result = _topics(command, folder, _closed_port())
    assert result.returncode == 1, result.stderr
    line = next(n for n, text in enumerate((folder / "status.yaml").read_text().splitlines(), 1)
                if "topic_settings" in text)  # fmt: skip
    assert f"{folder / 'status.yaml'}:{line}:" in result.stderr
    assert "emit[0].topic_settings.partitions: input should be greater than or equal to 1" in result.stderr
    assert "Kafka did not answer" not in result.stderr  # the mappings are checked before Kafka is asked


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path: Path) -> None:
    folder = Scenario(tmp_path).write_mappings()
    port = _closed_port()
    result = _topics("plan", folder, port)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: describing topic ") and f"Kafka did not answer at 127.0.0.1:{port}" in last
