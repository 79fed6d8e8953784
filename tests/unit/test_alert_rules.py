"""deploy/prometheus: alert rules Prometheus can load, on metrics the transformer registers."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest
from ruamel.yaml import YAML

from eventbus.service.metrics import Metrics
from tests.support.dashboard import queried_metrics
from tests.unit.service.fakes import FakeMessage

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "eventbus-rules.yaml"
_METRIC = re.compile(r"\b(eventbus_[a-z0-9_]+)\b")


def _rules() -> list[dict]:
    document = YAML(typ="safe").load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_rules_file_has_the_alerts_the_operations_guide_names() -> None:
    rules = _rules()
    names = {rule["alert"] for rule in rules}
    assert {"EventbusSourceStale", "EventbusLagGrowing", "EventbusDeadLetters"} <= names
    for rule in rules:
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    guide = (RULES.parents[2] / "docs" / "operations.md").read_text()
    assert all(name in guide for name in names)


def test_every_metric_a_rule_reads_is_registered_by_the_service() -> None:
    metrics = Metrics(["m"], staging_topics=["staging.claims.public.claims"])
    # Labelled series show once there is something to report: a partition, a change seen.
    metrics.lag.labels("staging.claims.public.claims", "0").set(0)
    metrics.freshness.saw([FakeMessage("staging.claims.public.claims", 0, 0, None, b"")])
    exposition = generate_latest(metrics.registry).decode()
    exposed = {
        line.split("{", 1)[0].split(" ", 1)[0] for line in exposition.splitlines() if line[:1].isalpha()
    }
    read = {name for rule in _rules() for name in _METRIC.findall(rule["expr"])}
    # The lookup stage registers its own collector: the dashboard queries those series too, and
    # tests/integration/lookups checks every series the dashboard queries on a running /metrics.
    lookups = {name for name in read if name.startswith("eventbus_lookup_")}
    assert lookups <= queried_metrics()
    read -= lookups
    assert read and read <= exposed, read - exposed


def test_unreadable_records_reach_their_own_series_and_alert() -> None:
    from eventbus.service.metrics import Tally

    metrics = Metrics(["m"], staging_topics=["staging.claims.public.claims"])
    tally = Tally(["m"])
    tally.consumed = tally.dead_lettered = tally.unreadable = 2
    metrics.flush(tally)
    assert "eventbus_records_unreadable_total 2.0" in generate_latest(metrics.registry).decode()
    alert = next(rule for rule in _rules() if rule["alert"] == "EventbusUnreadableRecords")
    assert "eventbus_records_unreadable_total" in alert["expr"]
