"""`stack/pick-python.sh`: the interpreter `make setup` builds the virtualenv with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "stack" / "pick-python.sh"


def _pick(env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=True, env=env)
    return result.stdout.strip()


def test_the_pick_is_a_python_311_or_newer_with_venv() -> None:
    chosen = _pick()
    check = "import sys, venv, ensurepip; print(sys.version_info >= (3, 11))"
    answer = subprocess.run([chosen, "-c", check], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "True", chosen


def _usable(python: Path) -> bool:
    if not python.exists():
        return False
    check = "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"
    return subprocess.run([str(python), "-c", check], capture_output=True, check=False).returncode == 0


def test_the_system_interpreter_comes_before_path() -> None:
    # A PATH whose only python3 is this test's interpreter: the system's own usable interpreter is
    # still named first; only without one does the script fall back to `python3` from PATH.
    env = {"PATH": f"{Path(sys.executable).parent}:/bin", "HOME": os.environ.get("HOME", "/")}
    system = [Path("/usr/bin/python3"), Path("/usr/local/bin/python3")]
    expected = next((str(python) for python in system if _usable(python)), "python3")
    assert _pick(env) == expected
