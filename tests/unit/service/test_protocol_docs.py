"""The exactly-once steps are written twice, in `service/loop.py` and `docs/transformer.md`: the same
text, so that neither can drift from the other."""

from __future__ import annotations

import re
from pathlib import Path

from eventbus.service import loop

DOCS = Path(__file__).resolve().parents[3] / "docs" / "transformer.md"


def _steps(text: str) -> str:
    """From step 1 to the end of the Rebalance paragraph, as one line of words."""
    start = re.search(r"^\s*1\. `init_transactions\(\)`", text, re.MULTILINE)
    assert start is not None, "step 1 not found"
    rest = text[start.start() :]
    end = rest.index("leave the group.") + len("leave the group.")
    return " ".join(rest[:end].split())


def test_the_numbered_steps_in_the_code_and_the_docs_are_the_same() -> None:
    assert loop.__doc__ is not None
    assert _steps(loop.__doc__) == _steps(DOCS.read_text())
