"""deploy/grafana: a dashboard Grafana can import, querying only metrics the transformer has.

(That they exist on a *running* transformer's /metrics is checked in tests/integration/lookups.)"""

from __future__ import annotations

import json

from prometheus_client import generate_latest

from eventbus.service.metrics import Metrics
from tests.support.dashboard import DASHBOARD, missing_from, queried_metrics, queries
from tests.unit.service.fakes import FakeMessage


def test_the_dashboard_is_importable_json_with_a_query_per_panel() -> None:
    document = json.loads(DASHBOARD.read_text())
    assert document["uid"] and document["panels"]
    assert len({panel["id"] for panel in document["panels"]}) == len(document["panels"])
    for panel in document["panels"]:
        assert panel["targets"], panel["title"]
        assert all(target["expr"].count("(") == target["expr"].count(")") for target in panel["targets"])
    assert len(queries()) >= 10


def test_every_queried_metric_other_than_lookups_is_registered_by_the_service() -> None:
    metrics = Metrics(["m"], staging_topics=["staging.x.public.t"])
    metrics.lag.labels("staging.x", "0").set(0)  # labelled gauges show once a partition is assigned
    metrics.freshness.saw([FakeMessage("staging.x.public.t", 0, 0, None, b"")])  # and a source once seen
    exposition = generate_latest(metrics.registry).decode()
    lookups = {name for name in queried_metrics() if name.startswith("eventbus_lookup_")}
    assert lookups, "the dashboard shows the lookups"
    assert missing_from(exposition) == lookups  # those come from the lookup stage's own collector
