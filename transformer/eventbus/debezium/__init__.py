"""Debezium change envelopes: decoding staging records into `Change` objects.

Connect JSON (the staging format every connector is registered with): `connect_json` (how it reads
the JSON: `payload_parser`; the per-topic schema prefix it skips: `schema_prefix`; an unusual envelope
checked field by field: `envelope_check`); the envelope's names and the `Change` it decodes to:
`envelope`; the lazy per-record view the engine reads: `record`;
Connect schemas → column types and table schemas: `connect_schema`; the envelope's `source` block and
its checks: `source_block`; per-column converters: `logical_types` (time types: `temporal_types`; their
error reporting: `conversion_errors`). (Generated records for tests and benchmarks are a development
tool: devtools/, not this package.)

Nothing is re-exported here on purpose: importing one submodule (the mapping compiler needs only
`envelope` and `record`) must not import the JSON decoder too, which the CLI's start-up would pay for.
"""
