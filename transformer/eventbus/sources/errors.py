"""Errors of source registration. Each one is a single message the CLI prints without a traceback."""

from __future__ import annotations

from eventbus.errors import ConfigError, EventBusError, ServiceUnavailableError


class SourceError(EventBusError):
    """Source registration could not do its job (exit code 2)."""


class SourceDefinitionError(ConfigError):
    """A `connectors/NAME.yaml` file is invalid; the message starts with `file:line:`."""


class SecretUnavailableError(SourceDefinitionError):
    """A secret named in a definition (environment variable or file) cannot be read."""


class DatabaseUnavailableError(ServiceUnavailableError):
    """The source database cannot be reached or refuses the login."""


class ConnectUnavailableError(ServiceUnavailableError):
    """Kafka Connect's REST API does not answer."""


class ConnectRequestError(SourceError):
    """Kafka Connect answered with an error (a bad config, an unknown connector, ...)."""


class ConnectorFailedError(SourceError):
    """The connector or one of its tasks reached FAILED; the message carries the summarised trace."""


class KafkaAdminError(SourceError):
    """Creating or describing staging topics failed."""


class PreflightFailedError(SourceError):
    """`register` refuses to run because preflight items fail (exit code 1: a check failed)."""

    exit_code = 1
