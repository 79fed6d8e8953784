"""Source freshness: the newest change consumed per source, as a timestamp and an age."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest

from eventbus.service.freshness import SourceFreshness, source_of_topic
from eventbus.service.metrics import Metrics
from tests.unit.service.fakes import FakeMessage


def test_the_source_is_read_from_the_staging_topic_name() -> None:
    assert source_of_topic("staging.claims.public.claims") == "claims"
    assert source_of_topic("staging.billing.eu.ledger.entries") == "billing.eu"
    assert source_of_topic("someone_elses_topic") == "someone_elses_topic"


def test_each_partitions_last_record_decides_and_older_batches_do_not_move_it_back() -> None:
    freshness = SourceFreshness(["staging.claims.public.claims", "staging.hr.public.staff"])
    batch = [
        FakeMessage("staging.claims.public.claims", 0, 10, None, b"", timestamp_ms=1_000),
        FakeMessage("staging.claims.public.claims", 1, 4, None, b"", timestamp_ms=5_000),
        FakeMessage("staging.claims.public.claims", 0, 11, None, b"", timestamp_ms=2_000),
        FakeMessage("staging.hr.public.staff", 0, 7, None, b"", timestamp_ms=3_000),
    ]
    freshness.saw(batch)
    assert freshness.age_s("claims", now_s=10.0) == 5.0  # partition 1's record is the newest
    assert freshness.age_s("hr", now_s=10.0) == 7.0
    freshness.saw([FakeMessage("staging.hr.public.staff", 0, 3, None, b"", timestamp_ms=1_000)])
    assert freshness.age_s("hr", now_s=10.0) == 7.0  # a replayed, older record is no news
    assert freshness.age_s("unknown") is None


def test_series_appear_per_source_once_a_change_was_seen() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(["m"], registry=registry, staging_topics=["staging.claims.public.claims"])
    before = generate_latest(registry).decode()
    assert 'eventbus_source_last_change_timestamp_seconds{source="claims"}' not in before
    metrics.freshness.saw([FakeMessage("staging.claims.public.claims", 0, 0, None, b"", timestamp_ms=1_000)])
    after = generate_latest(registry).decode()
    assert 'eventbus_source_last_change_timestamp_seconds{source="claims"} 1.0' in after
    age = next(line for line in after.splitlines() if line.startswith("eventbus_source_last_change_age"))
    assert float(age.split()[-1]) > 1_000_000  # written in 1970, read now


def test_a_source_not_seen_since_start_up_ages_from_start_up() -> None:
    # After a restart a dead source sends nothing: its age must still grow, or the stale-source
    # alert (age > threshold) could never fire.
    freshness = SourceFreshness(["staging.claims.public.claims", "staging.hr.public.staff"], started_s=0.0)
    freshness.saw(
        [FakeMessage("staging.hr.public.staff", 0, 0, None, b"", timestamp_ms=time.time_ns() // 10**6)]
    )
    ages = {
        sample.labels["source"]: sample.value
        for family in freshness.collect()
        if family.name == "eventbus_source_last_change_age_seconds"
        for sample in family.samples
    }
    assert ages["claims"] > 1_000_000  # "started" in 1970: the time since start-up
    assert ages["hr"] < 60  # seen: the age of its newest change
