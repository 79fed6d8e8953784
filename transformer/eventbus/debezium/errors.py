"""Errors raised while decoding Debezium staging records.

A `DecodeError` means one record cannot be understood; the service sends that record to the
dead-letter topic and carries on, so the message must say what is wrong with *the record*.
"""

from __future__ import annotations

from eventbus.errors import EventBusError


class DecodeError(EventBusError):
    """A staging record (or one of its column values) is not a Debezium change we can decode."""
