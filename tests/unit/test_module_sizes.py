"""No module of the service over the house limit of 480 lines: a larger one is split by concept, so that
a newcomer finds where a thing lives from the file names alone."""

from __future__ import annotations

from pathlib import Path

PRODUCT = Path(__file__).resolve().parents[2] / "transformer" / "eventbus"
MAX_LINES = 480


def test_no_module_of_the_service_is_over_the_limit() -> None:
    sizes = {
        path.relative_to(PRODUCT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in PRODUCT.rglob("*.py")
    }
    assert len(sizes) > 100  # the package was found
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert too_long == {}, f"split these by concept (at most {MAX_LINES} lines): {too_long}"
