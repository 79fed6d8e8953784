"""A staging topic the mappings read that does not exist yet is one warning at start-up, naming the
topics and the command that creates them; never a reason to stop (Debezium creates it with the
table's first change)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from eventbus.service import staging_topics
from eventbus.service.loading import load_mapping_set
from eventbus.service.settings import load_settings
from eventbus.topics.errors import TopicsError
from eventbus.topics.model import ExistingTopic
from tests.unit.contracts.conftest import copy_sample

LIFECYCLE = "staging.claims.public.claim_lifecycle_status"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "eventbus.service" and r.levelno == logging.WARNING]


def test_missing_staging_topics_are_one_warning_with_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mappings = load_mapping_set(copy_sample(tmp_path))
    asked: list[list[str]] = []

    def read_topics(admin: Any, names: Any, **options: Any) -> dict[str, ExistingTopic | None]:
        asked.append(sorted(names))
        assert options["configs"] is False  # partitions only: DESCRIBE is all it needs
        return {name: None if name == LIFECYCLE else ExistingTopic(name, 1, 1) for name in names}

    monkeypatch.setattr(staging_topics, "read_topics", read_topics)
    with caplog.at_level(logging.INFO, logger="eventbus.service"):
        staging_topics.warn_of_missing_staging_topics(load_settings(), mappings.mappings)
    assert asked == [mappings.staging_topics]
    (warning,) = _warnings(caplog)
    assert warning.topics == [LIFECYCLE]  # type: ignore[attr-defined]
    assert warning.command == "eventbus source register claims"  # type: ignore[attr-defined]
    assert "do not exist yet" in warning.getMessage()


def test_topics_of_several_sources_name_each_source_once(caplog: pytest.LogCaptureFixture) -> None:
    sources = {"staging.a.public.x": "a", "staging.a.public.y": "a", "staging.b.public.z": "b",
               "staging.c.public.w": "c"}  # fmt: skip
    existing = {"staging.c.public.w": ExistingTopic("staging.c.public.w", 1, 1)}
    with caplog.at_level(logging.WARNING, logger="eventbus.service"):
        staging_topics.report_missing_staging_topics(sources, existing)
    (warning,) = _warnings(caplog)
    assert warning.topics == ["staging.a.public.x", "staging.a.public.y", "staging.b.public.z"]  # type: ignore[attr-defined]
    assert warning.command == "eventbus source register a && eventbus source register b"  # type: ignore[attr-defined]


def test_every_topic_there_or_no_answer_is_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mappings = load_mapping_set(copy_sample(tmp_path))

    def all_there(admin: Any, names: Any, **_: Any) -> dict[str, ExistingTopic | None]:
        return {name: ExistingTopic(name, 1, 1) for name in names}

    monkeypatch.setattr(staging_topics, "read_topics", all_there)
    with caplog.at_level(logging.WARNING, logger="eventbus.service"):
        staging_topics.warn_of_missing_staging_topics(load_settings(), mappings.mappings)

    def refused(admin: Any, names: Any, **_: Any) -> Any:
        raise TopicsError("describing topic x: not allowed")

    monkeypatch.setattr(staging_topics, "read_topics", refused)
    with caplog.at_level(logging.WARNING, logger="eventbus.service"):
        staging_topics.warn_of_missing_staging_topics(load_settings(), mappings.mappings)  # no raise
    assert _warnings(caplog) == []


class _StartedLoop:
    """What `run_service` asks of the loop, in order."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.stop_requested = False
        self.diagnose_timeout: Any = None

    def install_signal_handlers(self) -> None:
        pass

    def init_transactions(self) -> None:
        self.steps.append("init_transactions")

    def open_lookups(self) -> None:
        self.steps.append("open_lookups")

    def subscribe(self, topics: list[str]) -> None:
        self.steps.append("subscribe")

    def run(self) -> int:
        return 0


def test_the_service_start_up_checks_the_staging_topics_before_subscribing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventbus.service import app

    folder = copy_sample(tmp_path)
    steps: list[str] = []
    monkeypatch.setattr(app.signal, "signal", lambda *_: None)  # pytest's own handlers stay
    monkeypatch.setattr(app, "wait_for_registry", lambda *_: object())
    monkeypatch.setattr(app, "build", lambda *_, **__: (_StartedLoop(steps), None, None))
    monkeypatch.setattr(app, "check_published_topics", lambda *_, **__: steps.append("published"))
    monkeypatch.setattr(app, "warn_of_missing_staging_topics", lambda *_, **__: steps.append("staging"))
    monkeypatch.setattr(app, "warn_of_uncompacted_lookup_topics", lambda *_, **__: steps.append("compacted"))
    settings = load_settings(http={"enabled": False})
    assert app.run_service(settings, folder) == 0
    assert steps == ["init_transactions", "published", "staging", "compacted", "open_lookups", "subscribe"]


# --- a looked-up table's staging topic must be compacted ------------------------------------------

CLAIMS = "staging.claims.public.claims"


def _topic(name: str, **config: str) -> ExistingTopic:
    return ExistingTopic(name, 1, 1, config)


def test_a_looked_up_topic_that_deletes_old_rows_is_one_warning_with_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mappings = load_mapping_set(copy_sample(tmp_path))  # two of the sample mappings look up claims
    asked: list[list[str]] = []

    def read_topics(admin: Any, names: Any, **options: Any) -> dict[str, ExistingTopic | None]:
        asked.append(sorted(names))
        assert options["configs"] is True  # the cleanup policy is a config
        return {
            name: _topic(name, **{"cleanup.policy": "delete", "retention.ms": "604800000"}) for name in names
        }

    monkeypatch.setattr(staging_topics, "read_topics", read_topics)
    with caplog.at_level(logging.WARNING, logger="eventbus.service"):
        staging_topics.warn_of_uncompacted_lookup_topics(load_settings(), mappings.mappings)
    assert asked == [[CLAIMS]]  # the looked-up tables' topics only
    (warning,) = _warnings(caplog)
    assert warning.topics == [CLAIMS]  # type: ignore[attr-defined]
    assert warning.command == "eventbus source register claims"  # type: ignore[attr-defined]
    assert "not compacted" in warning.getMessage()


@pytest.mark.parametrize(
    "config",
    [
        {"cleanup.policy": "compact"},
        {"cleanup.policy": "delete, compact"},  # both: compacted, and old segments deleted by age
        {"cleanup.policy": "delete", "retention.ms": "-1"},  # nothing is ever deleted
    ],
)
def test_a_topic_that_keeps_every_rows_latest_version_is_no_warning(
    config: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    existing: dict[str, ExistingTopic | None] = {CLAIMS: _topic(CLAIMS, **config), "staging.x.public.y": None}
    with caplog.at_level(logging.WARNING, logger="eventbus.service"):
        staging_topics.report_uncompacted_lookup_topics(
            {CLAIMS: "claims", "staging.x.public.y": "x"}, existing
        )
    assert _warnings(caplog) == []


def test_without_lookups_nothing_is_read_and_a_refusal_is_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mappings = load_mapping_set(copy_sample(tmp_path))
    plain = tuple(m for m in mappings.mappings if not m.analysis.lookups)
    assert plain and len(plain) < len(mappings.mappings)

    def never(admin: Any, names: Any, **_: Any) -> Any:
        raise AssertionError("no lookups: no topic to read")

    monkeypatch.setattr(staging_topics, "read_topics", never)
    staging_topics.warn_of_uncompacted_lookup_topics(load_settings(), plain)

    def refused(admin: Any, names: Any, **_: Any) -> Any:
        raise TopicsError("reading the configs of topic x: not allowed")

    monkeypatch.setattr(staging_topics, "read_topics", refused)
    with caplog.at_level(logging.INFO, logger="eventbus.service"):
        staging_topics.warn_of_uncompacted_lookup_topics(load_settings(), mappings.mappings)  # no raise
    assert _warnings(caplog) == []
    assert any("not checked" in r.getMessage() for r in caplog.records)
