"""The transformer service: staging changes in, curated Avro events out, exactly once.

One module per concept: `settings` (configuration, librdkafka rendering), `security` (SASL/TLS and
the MSK IAM token provider), `loading` (mappings → routes and topic schemas), `dedup` (source-log
watermarks kept in committed offset metadata), `processor` (decode → map → encode → produce for one
batch), `loop` (the exactly-once / at-least-once consume-transform-produce loop), `dead_letter`
(DLQ records and replay), `metrics`, `http` (health and Prometheus endpoints), `logs` (JSON logs)
and `app` (wiring them together).
"""
