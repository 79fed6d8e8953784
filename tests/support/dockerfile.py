"""What transformer/Dockerfile declares, read from the file (for tests of the files that deploy it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "transformer" / "Dockerfile"


def _joined() -> str:
    # Continuation lines joined, comments dropped: one instruction a line.
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    return re.sub(r"\\\n\s*", " ", "\n".join(lines))


def healthcheck_command() -> list[str]:
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", _joined(), re.MULTILINE)
    assert match, "transformer/Dockerfile has no HEALTHCHECK in exec form"
    return list(json.loads(match.group(1)))


def final_user() -> str:
    users = re.findall(r"^USER (\S+)", _joined(), re.MULTILINE)
    assert users, "transformer/Dockerfile sets no USER"
    return str(users[-1])


def declared_volumes() -> set[str]:
    found: set[str] = set()
    for match in re.finditer(r"^VOLUME (\[.*\])", _joined(), re.MULTILINE):
        found |= set(json.loads(match.group(1)))
    return found
