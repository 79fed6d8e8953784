"""The transformer service: staging changes in, curated Avro events out, exactly once.

One module per concept: `settings` (configuration, librdkafka rendering), `security` (SASL/TLS and
the MSK IAM token provider), `loading` (mappings → routes and topic schemas), `dedup` (source-log
positions and the watermark kept in committed offset metadata), `partitions` (each assigned
partition's committed and batch position: the only owner of offsets), `processor` (decode → map →
encode → produce for one batch), `loop` (the exactly-once / at-least-once consume-transform-produce
loop), `transactions` (the open batch's transaction: begin, commit, abort and rewind),
`commit_overlap` (the next batch processed while a transaction commits), `progress` (its lag metrics
and progress line), `kafka_errors` (how each Kafka client error is handled), `bounds` (a run that
stops at end offsets), `dead_letter` and `replay` (DLQ records and their replay), `metrics`, `http`
(health and Prometheus endpoints), `logs` (JSON logs) and `app` (wiring them together, waiting for
the registry).
"""
