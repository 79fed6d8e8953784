"""Errors of topic provisioning; each is one message the CLI prints without a traceback."""

from __future__ import annotations

from eventbus.errors import ConfigError, EventBusError


class TopicsError(EventBusError):
    """Reading or changing the cluster's topics failed (exit code 2: the tool could not do its job)."""


class TopicsNotProvisionedError(ConfigError):
    """A topic the transformer writes is missing or has another partition count than declared."""


class TopicsCheckInterrupted(Exception):  # not an error: the caller asked to stop
    """Reading the cluster's topics was given up because the caller is stopping (SIGTERM)."""
