"""The JSON log line's own fields (`ts`, `level`, `logger`, `msg`, `exception`) cannot be replaced by
an extra of the same name: the extra is kept beside them, prefixed."""

from __future__ import annotations

import io
import logging

import orjson

from eventbus.service.logs import JsonFormatter, configure_logging


def _line(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("eventbus.events", logging.WARNING, __file__, 1, "compatibility", (), None)
    record.__dict__.update(extra)
    document = orjson.loads(JsonFormatter().format(record))
    assert isinstance(document, dict)
    return document


def test_an_extra_named_like_a_field_of_the_line_is_kept_prefixed() -> None:
    line = _line(level="BACKWARD_TRANSITIVE", ts=1, logger="x", topic="claims")
    assert line["level"] == "WARNING" and line["logger"] == "eventbus.events"
    assert str(line["ts"]).endswith("Z") and line["msg"] == "compatibility"
    assert line["extra_level"] == "BACKWARD_TRANSITIVE"
    assert (line["extra_ts"], line["extra_logger"], line["topic"]) == (1, "x", "claims")


def test_an_extra_with_the_prefixed_name_too_loses_neither() -> None:
    line = _line(level="FULL", extra_level="NONE")
    assert (line["level"], line["extra_level"], line["extra_extra_level"]) == ("WARNING", "NONE", "FULL")


def test_through_a_logger_call() -> None:
    stream = io.StringIO()
    root = logging.getLogger("eventbus")
    saved = (root.handlers[:], root.level, root.propagate)  # the other tests' log capture needs them
    configure_logging("INFO", stream)
    try:
        logging.getLogger("eventbus.test").info("schema subject", extra={"level": "BACKWARD"})
    finally:
        root.handlers[:], root.propagate = saved[0], saved[2]
        root.setLevel(saved[1])
    line = orjson.loads(stream.getvalue())
    assert (line["level"], line["extra_level"]) == ("INFO", "BACKWARD")
