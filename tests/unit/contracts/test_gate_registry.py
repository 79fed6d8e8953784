"""The start-up gate's registry contract: a registry failing half-way (a fake Apicurio over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eventbus.errors import ServiceUnavailableError
from eventbus.events.compatibility import check_compatibility
from tests.unit.events.fake_registry import FakeRegistry, Fault

WITHDRAWN = "claim_withdrawn-value"


def _withdrawn(sample: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((sample / "schemas" / "claim_withdrawn.avsc").read_text())
    return schema


# --- 4. a registry failing while the verdict is read -------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", f"config/{WITHDRAWN}", 503),  # the subject's level
        ("GET", f"config/{WITHDRAWN}", None),
        ("GET", f"subjects/{WITHDRAWN}/versions/latest", 500),
        ("POST", f"compatibility/subjects/{WITHDRAWN}/versions/latest", 503),  # the verdict
        ("POST", f"compatibility/subjects/{WITHDRAWN}/versions/latest", None),
    ],
)
def test_a_registry_failing_while_the_verdict_is_read_is_waited_for(
    sample: Path, method: str, path: str, status: int | None
) -> None:
    fake = FakeRegistry()
    schema = _withdrawn(sample)
    fake.register(WITHDRAWN, schema)
    fake.faults.append(Fault(method, path, status))
    # ServiceUnavailableError is what the service waits out; never a default or a final refusal.
    with pytest.raises(ServiceUnavailableError) as caught:
        check_compatibility(fake.client(), WITHDRAWN, schema)
    assert ("HTTP 50" if status else "ConnectError") in str(caught.value)
    assert check_compatibility(fake.client(), WITHDRAWN, schema).registry_verdict is True  # it is back
