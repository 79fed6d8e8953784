"""Development tools of the event bus CDC producer; never part of the service's install or image.

`stack`: the local PostgreSQL, Kafka, Kafka Connect + Debezium and Apicurio Registry, as processes.
`demo`: the sample claims domain (database model, realistic traffic, the `make demo` walk-through).
`samples`: realistic generated Debezium records for benchmarks, fuzz and integration tests.
`cli`: the `eventbus-dev` command (`eventbus-dev stack ...`, `eventbus-dev demo ...`).

The dependency goes one way: these tools use the `eventbus` package; `eventbus` never imports them
(tests/unit/test_product_only.py checks it).
"""
