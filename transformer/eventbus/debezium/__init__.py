"""Debezium change envelopes: decoding staging records into `Change` objects."""
