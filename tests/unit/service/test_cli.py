"""`eventbus transformer run` refuses to start on an invalid mapping: file:line errors, exit 1, nothing
consumed (no Kafka or registry is contacted: loading comes first)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.transformer.support import Scenario

EVENTBUS = Path(sys.executable).parent / "eventbus"
BROKEN = Path(__file__).resolve().parents[2] / "fixtures" / "mappings" / "broken"


def test_invalid_mapping_stops_start_up_with_file_and_line(tmp_path: Path) -> None:
    folder = Scenario(tmp_path).write_mappings()
    shutil.copy(BROKEN / "unknown_top_key.yaml", folder / "zz_broken.yaml")
    env = {
        **os.environ,
        "EVENTBUS_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "EVENTBUS_REGISTRY__URL": "http://127.0.0.1:1",
    }
    result = subprocess.run(
        [str(EVENTBUS), "transformer", "run", "--mappings", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{folder / 'zz_broken.yaml'}:" in result.stderr
    assert "transformer starting" not in result.stderr + result.stdout


def test_bad_settings_exit_2_without_echoing_secrets(tmp_path: Path) -> None:
    folder = Scenario(tmp_path).write_mappings()
    env = {**os.environ, "EVENTBUS_KAFKA__SASL__PASSWORD": "do-not-print-me"}
    result = subprocess.run(
        [str(EVENTBUS), "transformer", "run", "--mappings", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "use SASL_SSL" in result.stderr
    assert "do-not-print-me" not in result.stderr + result.stdout
