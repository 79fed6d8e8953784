"""Structured JSON logs: one object a line on stderr, for the container's log collector.

Fields: `ts` (RFC 3339, UTC), `level`, `logger`, `msg`, plus whatever a call passes in `extra=`. An
extra named like one of these (or `exception`) is kept as `extra_<name>`: a line's own fields are
what a collector filters and sorts by (`extra={"level": ...}`, say a compatibility level, would
otherwise replace the line's log level).
Secrets never reach a log line: settings are only ever logged through `effective()` (masked), and
record values (PII) are never logged, only where a record is (topic/partition/offset).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final, TextIO

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)
_OWN: Final = frozenset({"ts", "level", "logger", "msg", "exception"})  # the line's own fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        seconds = record.created
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        entry: dict[str, Any] = {
            "ts": f"{stamp}.{int(seconds % 1 * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                if key in _OWN:
                    key = f"extra_{key}"
                    while key in record.__dict__:  # an extra of that name too: neither is lost
                        key = f"extra_{key}"
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route the `eventbus` loggers (and librdkafka's, passed as `logger`) to JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("eventbus")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
