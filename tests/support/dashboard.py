"""The Grafana dashboard under deploy/: the metric names its queries read."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "eventbus-transformer.json"
_METRIC = re.compile(r"\b((?:eventbus|process)_[a-z0-9_]+)\b")


def queries() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def queried_metrics() -> set[str]:
    """Every series name a query reads (`_bucket`, `_total` as exposed)."""
    return {name for expr in queries() for name in _METRIC.findall(expr)}


def missing_from(exposition: str) -> set[str]:
    """The queried names with no sample in a /metrics text."""
    samples = [line for line in exposition.splitlines() if line[:1].isalpha()]  # not # HELP / # TYPE
    exposed = {line.split("{", 1)[0].split(" ", 1)[0] for line in samples}
    return queried_metrics() - exposed
