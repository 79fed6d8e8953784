"""Errors of the transformer service.

Start-up problems (bad settings, unreadable mappings) are `ConfigError`s from `eventbus.errors`;
what goes wrong while running is one of these.
"""

from __future__ import annotations

from eventbus.errors import EventBusError


class ServiceError(EventBusError):
    """The service cannot continue (exit code 2: the tool itself failed)."""


class FatalKafkaError(ServiceError):
    """The Kafka client reported a fatal error (e.g. the producer was fenced by a newer instance).
    `timed_out`: the error is that something did not happen in time (no answer, records not
    delivered), whose cause the client does not know; `hint` is our guess at it, after `detail`."""

    def __init__(self, detail: str, *, hint: str = "", timed_out: bool = False) -> None:
        super().__init__(detail + hint)
        self.detail, self.hint, self.timed_out = detail, hint, timed_out
