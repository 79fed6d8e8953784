"""`eventbus-dev`: the development commands the Makefile calls (`stack up|down|status`, `demo run|stop`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), {"stack", "demo"}),
        (("stack",), {"up", "down", "status", "logs"}),
        (("demo",), {"run", "setup", "generate", "stop"}),
    ],
)
def test_dev_commands_are_there(args: tuple[str, ...], expected: set[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eventbus_dev.cli", *args, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {line.strip("│| ").split(" ")[0] for line in result.stdout.splitlines()}
    assert expected <= rows, result.stdout
