"""Only the product ships (#13.6): `eventbus` never imports the development tools (`eventbus_dev`,
devtools/), and the distribution built from pyproject.toml holds the `eventbus` package alone.

The import checks run in a fresh interpreter in which `eventbus_dev` cannot be imported at all, as in
the container image, so a module that reached for it would fail there and here alike.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCT = REPO / "transformer" / "eventbus"
DEV_PACKAGE = "eventbus_dev"

# Makes `eventbus_dev` unimportable (as where only the product is installed), then runs the check.
_WITHOUT_DEV_TOOLS = f"""
import importlib.abc, sys
class _NoDevTools(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {DEV_PACKAGE!r} or name.startswith({DEV_PACKAGE + "."!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}} (the product must not need it)")
        return None
sys.meta_path.insert(0, _NoDevTools())
"""

_IMPORT_EVERY_MODULE = """
import importlib, pkgutil, eventbus
names = [m.name for m in pkgutil.walk_packages(eventbus.__path__, "eventbus.")]
for name in names:
    if not name.endswith(".__main__"):  # runs the CLI
        importlib.import_module(name)
print(len(names))
print(sorted(m for m in sys.modules if m == "eventbus_dev" or m.startswith("eventbus_dev.")))
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_DEV_TOOLS + code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_product_module_imports_the_dev_tools() -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted(PRODUCT.rglob("*.py"))
        for name in sorted(_imported_names(path))
        if name == DEV_PACKAGE or name.startswith(DEV_PACKAGE + ".")
    ]
    assert not offenders


def test_every_product_module_imports_without_the_dev_tools() -> None:
    result = _python(_IMPORT_EVERY_MODULE)
    assert result.returncode == 0, result.stderr
    count, loaded = result.stdout.splitlines()[-2:]
    assert int(count) > 50, "pkgutil found the package's modules"
    assert loaded == "[]"


def test_eventbus_help_lists_no_dev_command() -> None:
    result = _python("from eventbus.cli.main import run; run()", "--help")
    assert result.returncode == 0, result.stderr
    # The first word of each row of the Commands box (option rows start with "-").
    commands = {match[1] for match in re.finditer(r"^[│|] (\w[\w-]*) ", result.stdout, re.M)}
    assert {"source", "mapping", "schema", "transformer", "dlq"} <= commands, result.stdout
    assert not {"stack", "demo"} & commands, result.stdout


def test_the_distribution_holds_the_product_package_alone() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    find = config["tool"]["setuptools"]["packages"]["find"]
    assert find["where"] == ["transformer"]
    assert find["include"] == ["eventbus", "eventbus.*"]
    # Nothing else under transformer/ that a looser configuration (or a COPY) could pick up.
    packages = {p.parent.name for p in (REPO / "transformer").glob("*/__init__.py")}
    assert packages == {"eventbus"}
