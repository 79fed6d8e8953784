"""Errors raised while encoding curated events and talking to the schema registry.

`SerializationFailed` is also a confluent-kafka `SerializationError`, so code written against the
Kafka client's serializer contract (e.g. a generic dead-letter handler) catches it too.
"""

from __future__ import annotations

from confluent_kafka.serialization import SerializationError

from eventbus.errors import EventBusError


class SerializationFailed(EventBusError, SerializationError):
    """A value does not fit its Avro schema.

    The message names the field path, the expected Avro type and the Python type received — never
    the value itself, because curated events may carry PII.
    """

    exit_code = 1

    def __init__(self, *, topic: str, part: str, path: str, expected: str, actual_type: str) -> None:
        self.topic = topic
        self.part = part
        self.path = path
        self.expected = expected
        self.actual_type = actual_type
        super().__init__(
            f"{topic} {part}: field {path or '<record>'}: expected {expected}, got a value of type "
            f"{actual_type}"
        )


class SchemaRegistryError(EventBusError):
    """The registry refused a request or does not hold what the lock file or mapping expects."""


class IncompatibleSchemaError(EventBusError):
    """A schema would break the consumers of its subject under the subject's compatibility level."""

    exit_code = 1
