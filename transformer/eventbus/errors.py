"""The root of every error this project raises on purpose.

Each subsystem adds a few subclasses next to its code; the CLI catches `EventBusError` and prints
its message (no traceback), so messages must tell the user what to do.
"""

from __future__ import annotations


class EventBusError(Exception):
    """Base class: an error the user can act on."""

    exit_code = 2


class ConfigError(EventBusError):
    """A setting or a user-authored file is invalid."""


class ServiceUnavailableError(EventBusError):
    """A service we depend on (database, broker, Connect, registry) cannot be reached."""
