"""Errors of the transformer service.

Start-up problems (bad settings, unreadable mappings) are `ConfigError`s from `eventbus.errors`;
what goes wrong while running is one of these.
"""

from __future__ import annotations

from eventbus.errors import EventBusError


class ServiceError(EventBusError):
    """The service cannot continue (exit code 2: the tool itself failed)."""


class FatalKafkaError(ServiceError):
    """The Kafka client reported a fatal error (e.g. the producer was fenced by a newer instance)."""
