"""Schemas and a mock registry shared by the curated-event tests."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from eventbus.events.avro import connect_registry

_counter = itertools.count()

KEY_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "DecisionLetterKey",
    "namespace": "gov.va.eventbus",
    "fields": [{"name": "ClaimId", "type": "long"}],
}

VALUE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "DecisionLetterAvailability",
    "namespace": "gov.va.eventbus",
    "fields": [
        {"name": "ClaimId", "type": "long"},
        {"name": "ClaimTypeCode", "type": "string"},
        {"name": "ClaimLifecycleStatus", "type": ["null", "string"], "default": None},
        {"name": "Amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "DateClosed", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
        {"name": "DateUpdated", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


@pytest.fixture
def registry() -> SchemaRegistryClient:
    # A fresh in-memory registry per test (the mock keeps state per client instance).
    return connect_registry(f"mock://events-{next(_counter)}")
