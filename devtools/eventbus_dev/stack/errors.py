"""Errors of the local stack."""

from __future__ import annotations

from eventbus.errors import EventBusError


class StackError(EventBusError):
    """The local stack could not be prepared, started or stopped."""


class PortInUseError(StackError):
    """A port the stack needs is held by a process that is not ours."""
